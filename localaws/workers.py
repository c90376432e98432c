"""Worker processes (Spark ETL, training) tied to the backend's life.

Each worker runs in its own process group (``start_new_session``) that the
backend terminates as a whole, and asks the kernel to kill it when the backend
dies (``PR_SET_PDEATHSIG``, so even ``kill -9`` of the backend leaves no worker
behind; Spark's JVM exits when its Python driver's pipe closes). A pidfile per
worker lets the next backend on the same data directory reap any group that
survived anyway, before it recovers the records.

The kernel sends the death signal when the *thread* that forked the child exits,
so every worker is started from one launcher thread that lives as long as the backend.
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from localaws.paths import REPO, workers_dir

LOG = logging.getLogger("localaws.workers")
PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> Callable[[], None]:
    libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None

    def preexec() -> None:
        if libc is not None:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the backend died between fork and prctl
            os._exit(1)

    return preexec


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc), to tell it from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _group_members(pgid: int, started_after: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and int(fields[19]) >= started_after:
            members.append(int(entry.name))
    return members


def reap_orphans() -> list[int]:
    """Kill every process group a previous backend on this data directory left running; their pids."""
    killed: list[int] = []
    folder = workers_dir()
    for pidfile in sorted(folder.glob("*.pid")) if folder.is_dir() else []:
        try:
            pgid, started = (int(x) for x in pidfile.read_text().split())
        except (OSError, ValueError):
            pidfile.unlink(missing_ok=True)
            continue
        members = _group_members(pgid, started)
        if members:
            LOG.warning("reaping worker group %s left by a previous backend (%s)", pgid, pidfile.stem)
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            killed += members
        pidfile.unlink(missing_ok=True)
    return killed


class Workers:
    """Starts workers from one long-lived thread; tracks them; terminates them all on shutdown."""

    def __init__(self) -> None:
        self._requests: queue.Queue = queue.Queue()
        self._running: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._launcher = threading.Thread(target=self._launch_loop, name="worker-launcher", daemon=True)
        self._launcher.start()

    def spawn(
        self,
        key: str,
        argv: list[str],
        log: Path,
        finished: Callable[[int, Path], None],
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen:
        """Start ``argv`` (output to ``log``); ``finished(exit code, log)`` runs when it ends."""
        done: Future = Future()
        self._requests.put((key, argv, log, env, done))
        process = done.result()

        def wait() -> None:
            code = process.wait()
            with self._lock:
                self._running.pop(key, None)
            _pidfile(key).unlink(missing_ok=True)
            try:
                finished(code, log)
            except Exception:  # noqa: BLE001 - a bookkeeping error must not go unseen in a daemon thread
                LOG.exception("recording the end of worker %s failed", key)

        threading.Thread(target=wait, name=f"wait-{key}", daemon=True).start()
        return process

    def _launch_loop(self) -> None:
        while True:
            key, argv, log, env, done = self._requests.get()
            try:
                done.set_result(self._start(key, argv, log, env))
            except BaseException as err:  # noqa: BLE001 - handed to the caller, who reports it
                done.set_exception(err)

    def _start(self, key: str, argv: list[str], log: Path, env: dict[str, str] | None) -> subprocess.Popen:
        log.parent.mkdir(parents=True, exist_ok=True)
        workers_dir().mkdir(parents=True, exist_ok=True)
        environment = {
            **os.environ,
            **(env or {}),
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        with open(log, "wb") as handle:
            process = subprocess.Popen(
                argv,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environment,
                cwd=REPO,
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),  # noqa: PLW1509 - only prctl and getppid run there
            )
        started = _start_time(process.pid) or 0
        _pidfile(key).write_text(f"{process.pid} {started}\n")
        with self._lock:
            self._running[key] = process
        return process

    def terminate(self, key: str) -> None:
        with self._lock:
            process = self._running.get(key)
        if process is not None and process.poll() is None:
            _signal_group(process, signal.SIGTERM)

    def terminate_all(self, grace: float = 10) -> None:
        with self._lock:
            processes = list(self._running.values())
        for process in processes:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def _pidfile(key: str) -> Path:
    return workers_dir() / (key.replace(":", "-").replace("/", "-") + ".pid")
