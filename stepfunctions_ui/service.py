"""What the Step Functions view shows for a DAG: its export, validation, graph and template, cached.

Airflow 3 keeps DAG authors' code out of the API server, and so does this view: it never reads,
imports or parses a DAG file. It compiles the DAG Airflow's DAG processor stored in the metadata
database (the latest ``SerializedDagModel`` row: the DAG version the API server and the DAG
header show), with the exporter's one front end (``exporters.serialized`` + ``exporters.api.export_view``), the same
code ``python -m exporters export`` runs after serializing the parsed DAG.

Cache and concurrency:

- one entry per (DAG id, serialized DAG hash): a new DAG version (the DAG processor re-parsed a
  changed file) builds a new entry; an unchanged DAG is never rebuilt;
- single flight per key: one build per DAG version at a time, at most ``BUILD_PROCESSES`` builds at
  once; other requests for it wait for that build, other DAGs' requests do not wait at all;
- a build (and a graph rendering) runs in a child process forked for it, at a lower CPU priority:
  the compile is pure CPU, and in the API server's process it would hold the GIL that Airflow's own
  routes need. The child reads the stored JSON in a short database session of its own, compiles it
  and sends back plain data; it is killed once it has used ``BUILD_CPU_SECONDS`` of CPU or run
  ``BUILD_SECONDS`` (the view then says so, and the DAG version is tried again after
  ``FAILED_RETRY_SECONDS``). CPU time is the real bound: a niced build on a busy machine may wait
  long for the CPU without being at fault; the wall-clock bound only ends a build that is stuck;
- requests wait asynchronously (no worker thread and no database session held while waiting)
  and at most ``WAIT_SECONDS``: then they answer "still building" (503, Retry-After) and the
  build goes on to fill the cache.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import importlib
import logging
import os
import pickle
import queue
import re
import select as select_fd
import signal
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from airflow.models.dag import DagModel
from airflow.models.dag_version import DagVersion
from airflow.models.serialized_dag import SerializedDagModel
from airflow.utils.session import create_session
from sqlalchemy import func, select

from exporters import cloudformation, converters
from exporters.api import export_view
from exporters.errors import DagLoadError, ExportError
from exporters.rendering import render
from exporters.serialized import from_serialized
from exporters.validation import validate_definition
from stepfunctions_ui.admission import stepped_aside
from stepfunctions_ui.aws import aws_conn_id_of

log = logging.getLogger(__name__)

# Airflow's own rule for DAG ids (airflow.utils.helpers.KEY_REGEX), bounded like its ID column.
DAG_ID_RE = re.compile(r"^[\w.-]{1,250}$", re.ASCII)
EXPORTER_ADDED = "added by the exporter"
WAIT_SECONDS = 15.0  # the longest a request waits for a build before answering "still building"
BUILD_PROCESSES = 2  # builds at once (each in its own child process)
BUILD_CPU_SECONDS = 60.0  # a build (graph rendering included) that has used this much CPU is killed
BUILD_SECONDS = 300.0  # a build still running after this long (stuck, not busy) is killed
FAILED_RETRY_SECONDS = 300.0  # a killed build's answer is kept this long, then the DAG version is tried again
BUILD_NICENESS = 10  # builds yield the CPU to the API server's own requests


def preload() -> None:
    """Import in this process what a build would import lazily: forked build children then start with it.

    The exporter imports the provider operator modules it has converters for (about 0.5 s) and its
    compiler on first use; without this every build process would import them again.
    """
    converters._resolve_lazy()
    importlib.import_module("exporters.compiler")
    try:
        import graphviz  # noqa: F401 - optional (the "graph" extra): the view then says why it has no graph
    except ImportError:
        pass


preload()


def valid_dag_id(dag_id: str) -> bool:
    return bool(DAG_ID_RE.match(dag_id)) and dag_id not in (".", "..")


@dataclass(frozen=True)
class DagRecord:
    """A DAG as Airflow's metadata DB knows it: its latest serialized version (no DAG data loaded)."""

    dag_id: str
    serialized_id: Any  # SerializedDagModel.id (a UUID) of the latest version; None: never serialized
    dag_hash: str | None
    version_number: int | None
    created_at: datetime | None = None
    is_stale: bool = False

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.dag_id, self.dag_hash)

    @property
    def version_label(self) -> str:
        if self.version_number is None:
            return "no stored version"
        when = f", stored {self.created_at:%Y-%m-%d %H:%M:%S} UTC" if self.created_at else ""
        return f"version {self.version_number}{when}"


def _records(session: Any, dag_ids: set[str] | None = None, one: str | None = None) -> list[DagRecord]:
    latest = (
        select(SerializedDagModel.dag_id, func.max(SerializedDagModel.created_at).label("created_at"))
        .group_by(SerializedDagModel.dag_id)
        .subquery()
    )
    stmt = (
        select(
            DagModel.dag_id,
            DagModel.is_stale,
            SerializedDagModel.id,
            SerializedDagModel.dag_hash,
            SerializedDagModel.created_at,
            DagVersion.version_number,
        )
        .outerjoin(latest, latest.c.dag_id == DagModel.dag_id)
        .outerjoin(
            SerializedDagModel,
            (SerializedDagModel.dag_id == latest.c.dag_id) & (SerializedDagModel.created_at == latest.c.created_at),
        )
        .outerjoin(DagVersion, DagVersion.id == SerializedDagModel.dag_version_id)
        .order_by(DagModel.dag_id, DagVersion.version_number.desc())
    )
    if one is not None:
        stmt = stmt.where(DagModel.dag_id == one)
    elif dag_ids is not None:
        stmt = stmt.where(DagModel.dag_id.in_(dag_ids))
    seen: dict[str, DagRecord] = {}
    for row in session.execute(stmt):
        seen.setdefault(
            row.dag_id,
            DagRecord(
                row.dag_id,
                row.id,
                row.dag_hash,
                row.version_number,
                row.created_at,
                bool(row.is_stale),
            ),
        )
    return list(seen.values())


def find_dag(dag_id: str, session: Any) -> DagRecord | None:
    found = _records(session, one=dag_id)
    return found[0] if found else None


def list_dags(session: Any, dag_ids: set[str]) -> list[DagRecord]:
    """The DAGs among ``dag_ids`` that a DAG file still defines (not stale), by id."""
    return [r for r in _records(session, dag_ids=dag_ids) if not r.is_stale]


class ChangedMeanwhile(Exception):
    """The stored DAG changed between the look-up and the read (the DAG processor stored a new one)."""


def stored_dag(record: DagRecord) -> dict[str, Any] | None:
    """The serialized DAG JSON of ``record``'s version, read in a short session of its own."""
    if record.serialized_id is None:
        return None
    with create_session(scoped=False) as session:
        row = session.get(SerializedDagModel, record.serialized_id)
        if row is None:
            return None
        if row.dag_hash != record.dag_hash:  # updated in place since the look-up: never cache it under the old hash
            raise ChangedMeanwhile(record.dag_id)
        return row.data


@dataclass
class ExportView:
    """Everything the view shows for one DAG (built once per cache key)."""

    dag_id: str
    key: tuple[Any, ...]
    version: str  # the Airflow DAG version exported ("version 3, stored ...")
    load_error: str | None = None
    headline: str | None = None  # the CLI's "cannot export DAG ..." line
    problems: list[str] = field(default_factory=list)  # str(Problem): exactly what the CLI prints
    invalid: list[str] = field(default_factory=list)  # validate_definition() problems (exporter bug if any)
    warnings: list[str] = field(default_factory=list)
    integrations: list[str] = field(default_factory=list)
    definition: dict[str, Any] | None = None
    definition_json: str | None = None  # byte-for-byte what `python -m exporters export` writes
    task_ids: list[str] = field(default_factory=list)
    dag: Any = None
    result: Any = None
    template_warnings: list[str] = field(default_factory=list)
    aws_conn_id: str | None = None  # the AWS connection its stages use (the deployed comparison's)
    build_ms: float = 0.0
    transient: bool = False  # a failure worth retrying (not cached)
    retry_at: float | None = None  # time.monotonic() after which a failed build is tried again
    api_json: bytes | None = None  # the JSON route's body, encoded once
    page: tuple[Any, str] | None = None  # (what it depends on, the rendered HTML page): rendered once
    _svg: tuple[str | None, str | None] | None = None
    _template: tuple[str | None, str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def exportable(self) -> bool:
        return self.definition_json is not None and not self.invalid

    @property
    def status(self) -> str:
        if self.load_error:
            return "load-error"
        return "exportable" if self.exportable else "not-exportable"

    @property
    def state_count(self) -> int:
        return len((self.definition or {}).get("States", {}))

    def stages(self) -> list[tuple[str, list[str]]]:
        """Each DAG task with the top-level states it became (state names are the task id, or ``task_id: step``)."""
        states = list((self.definition or {}).get("States", {}))
        rows = []
        claimed: set[str] = set()
        for task_id in self.task_ids:
            mine = [s for s in states if s == task_id or s.startswith(f"{task_id}: ")]
            claimed.update(mine)
            rows.append((task_id, mine))
        extra = [s for s in states if s not in claimed]
        if extra:
            rows.append((EXPORTER_ADDED, extra))
        return rows

    def svg(self) -> tuple[str | None, str | None]:
        """(inline SVG, None) or (None, why there is no graph). Rendered with Graphviz once per entry."""
        if self._svg is None:
            with self._lock:
                if self._svg is None:
                    self._svg = self._render_svg()
        return self._svg

    def _render_svg(self) -> tuple[str | None, str | None]:
        if self.definition is None:
            return None, "no graph: the DAG cannot be exported"
        try:
            data = render(self.definition, "svg", title=self.dag_id).decode("utf-8")
        except RuntimeError as err:  # Graphviz missing
            return None, str(err)
        except Exception as err:  # noqa: BLE001 - never a stack trace on the page
            log.exception("Rendering the graph of %s failed", self.dag_id)
            return None, f"the graph could not be rendered ({type(err).__name__}: {err})"
        return inline_svg(data), None

    def template(self) -> tuple[str | None, str]:
        """(template JSON, note) or (None, why not)."""
        if self._template is None:
            with self._lock:
                if self._template is None:
                    self._template = self._build_template()
        return self._template

    def _build_template(self) -> tuple[str | None, str]:
        if not self.exportable:
            return None, "CloudFormation template: none, the DAG cannot be exported"
        try:
            # build_template appends its warnings (schedule caveats) to the result: give it a copy.
            result = replace(self.result, warnings=list(self.result.warnings))
            template = cloudformation.build_template(result, self.dag)
            self.template_warnings = result.warnings[len(self.result.warnings) :]
            return cloudformation.template_json(
                template
            ), "CloudFormation template (state machine, its role, the schedule)"
        except Exception as err:  # noqa: BLE001
            log.exception("Building the CloudFormation template of %s failed", self.dag_id)
            return None, f"CloudFormation template: could not be built ({type(err).__name__}: {err})"


_SVG_STRIP = [
    re.compile(r"<\?xml.*?\?>", re.S),
    re.compile(r"<!DOCTYPE.*?>", re.S),
    re.compile(r"<!--.*?-->", re.S),
    # Defence in depth (Graphviz escapes labels, and the exporter sets no URLs): no scripts, no handlers.
    re.compile(r"<script\b.*?</script\s*>", re.S | re.I),
    re.compile(r"\son[a-z]+\s*=\s*(\"[^\"]*\"|'[^']*')", re.I),
    re.compile(r"\s(?:xlink:)?href\s*=\s*(\"[^\"]*\"|'[^']*')", re.I),
]


def inline_svg(document: str) -> str:
    """Graphviz's SVG document as an element to put inside HTML (prolog, doctype, comments removed)."""
    for pattern in _SVG_STRIP:
        document = pattern.sub("", document)
    start = document.find("<svg")
    return document[start:].strip() if start >= 0 else ""


def build_view(record: DagRecord, load: Callable[[DagRecord], dict[str, Any] | None] = stored_dag) -> ExportView:
    started = time.perf_counter()
    view = ExportView(dag_id=record.dag_id, key=record.key, version=record.version_label)
    try:
        _fill(view, record, load)
    finally:
        view.build_ms = (time.perf_counter() - started) * 1000
    return view


def _fill(view: ExportView, record: DagRecord, load: Callable[[DagRecord], dict[str, Any] | None]) -> None:
    dag_id = view.dag_id
    try:
        data = load(record)
    except ChangedMeanwhile:
        view.load_error = f"DAG {dag_id!r} was stored again while it was being read: reload the page"
        view.transient = True
        return
    except Exception as err:  # noqa: BLE001 - the metadata DB failed us: say so, and build again next time
        log.exception("Reading the serialized DAG %s failed", dag_id)
        view.load_error = f"DAG {dag_id!r}: its stored version could not be read ({type(err).__name__})"
        view.transient = True
        return
    if data is None:
        view.load_error = f"DAG {dag_id!r}: Airflow has no serialized version of it yet (the DAG processor stores it)"
        return
    try:
        view.dag = from_serialized(data)
        view.task_ids = list(view.dag.task_ids)
        view.aws_conn_id = aws_conn_id_of(view.dag)
        result = export_view(view.dag)
    except DagLoadError as err:
        view.load_error = str(err)
        return
    except ExportError as err:
        view.headline = str(err).splitlines()[0]
        view.problems = [str(p) for p in err.problems]
        return
    except Exception as err:  # noqa: BLE001 - an exporter bug: say so, never a stack trace
        log.exception("Exporting %s failed", dag_id)
        view.headline = f"the exporter failed on DAG {dag_id!r}: {type(err).__name__}: {err}"
        return
    view.result = result
    view.definition = result.definition
    view.invalid = validate_definition(view.definition)
    view.warnings = [*result.warnings, *view.dag.assumed_notes()]
    view.integrations = list(result.integrations)
    if not view.invalid:
        view.definition_json = result.to_json()
        view.template()  # built here, in the build's child process, not by a request


class StillBuilding(Exception):
    """The build of a DAG version did not finish within the wait bound; it goes on in the background."""

    def __init__(self, record: DagRecord, waited: float):
        super().__init__(
            f"The export of DAG {record.dag_id!r} ({record.version_label}) is still being built "
            f"after {waited:.0f} s; reload the page in a few seconds."
        )


class ChildFailed(Exception):
    """A build process gave no answer: killed at its time bound, or it died."""


def _send(fd: int, value: Any) -> None:
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    payload = memoryview(len(body).to_bytes(8, "big") + body)
    while payload:
        payload = payload[os.write(fd, payload) :]


def _read_exactly(fd: int, size: int) -> bytes | None:
    """``size`` bytes from ``fd`` (blocking), or None at end of file."""
    data = bytearray()
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _serve(jobs: int, answers: int) -> None:
    """A build process's loop: (function, args) in, (ok, result or error text) out, until ``jobs`` closes."""
    while (header := _read_exactly(jobs, 8)) is not None:
        body = _read_exactly(jobs, int.from_bytes(header, "big"))
        if body is None:
            return
        work, args = pickle.loads(body)
        try:
            answer = (True, work(*args))
        except BaseException as err:  # noqa: BLE001 - sent back as text, the server reports it
            answer = (False, f"{type(err).__name__}: {err}")
        _send(answers, answer)


def _let_go_of_sockets() -> None:
    """In a build process: every socket inherited from the server now points at /dev/null.

    The server's listener, its clients' connections and its database connections stay the server's
    alone: a connection the server closes really closes (a copy here would keep it open for the
    client), and nothing here can write to them. The descriptor numbers stay taken, so objects that
    still hold them close or write to /dev/null, never to a socket this process opens later.
    """
    devnull = os.open(os.devnull, os.O_RDWR)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if fd != devnull and stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.dup2(devnull, fd)
        except OSError:  # the listing's own descriptor, closed since
            pass
    os.close(devnull)


class BuildProcess:
    """A child process forked from the API server that runs builds one after another, at a lower CPU priority.

    Forked, not spawned: it starts at once with Airflow and the exporter already imported (a fresh
    interpreter needs seconds), and it is reused, so the fork (its page-table copy holds the GIL)
    and the copy-on-write faults that follow are paid once per ``JOBS_PER_PROCESS`` builds, not per
    build. A build that overruns its bound is stopped by killing the process (SIGKILL); the next
    build forks a new one. Its exit is watched through a pidfd, and answers are length-prefixed:
    processes forked meanwhile hold copies of its pipes, so their end-of-file would come late.
    """

    JOBS_PER_PROCESS = 100  # then it is replaced: its private copies of the server's memory are given back

    def __init__(self) -> None:
        self.pid: int | None = None
        self.jobs = self.answers = self.exited = -1
        self.done = 0

    def _start(self) -> None:
        jobs_read, jobs_write = os.pipe()
        answers_read, answers_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the build process: never returns into the server's code
            try:
                # The server's signal handling is not ours: no wake-ups of its event loop, default deaths.
                signal.set_wakeup_fd(-1)
                for signum in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(signum, signal.SIG_DFL)
                os.close(jobs_write)
                os.close(answers_read)
                _let_go_of_sockets()
                os.nice(BUILD_NICENESS)
                gc.freeze()  # the collector leaves the server's objects alone: fewer copied pages
                _serve(jobs_read, answers_write)
            finally:
                os._exit(0)
        os.close(jobs_read)
        os.close(answers_write)
        self.pid, self.jobs, self.answers, self.exited = pid, jobs_write, answers_read, os.pidfd_open(pid)
        self.done = 0

    def run(self, work: Callable[..., Any], *args: Any, timeout: float, cpu_limit: float | None = None) -> Any:
        """``work(*args)`` in the build process (both go by pickle).

        Raises ``ChildFailed`` once the work has run ``timeout`` seconds or used ``cpu_limit`` seconds of CPU
        (default ``BUILD_CPU_SECONDS``).
        """
        cpu_limit = BUILD_CPU_SECONDS if cpu_limit is None else cpu_limit
        if self.pid is not None and select_fd.select([self.exited], [], [], 0)[0]:
            self.stop()  # it ended while idle (killed from outside): a new one takes the build
        if self.pid is None:
            self._start()
        try:
            try:
                cpu_before = self._cpu_seconds()
                _send(self.jobs, (work, args))
            except BrokenPipeError:  # it ended just now
                self.stop()
                self._start()
                cpu_before = self._cpu_seconds()
                _send(self.jobs, (work, args))
            answer = self._answer(time.monotonic() + timeout, timeout, cpu_before + cpu_limit, cpu_limit)
            ok, value = pickle.loads(answer)
        except BaseException:
            self.stop()
            raise
        self.done += 1
        if self.done >= self.JOBS_PER_PROCESS:
            self.stop()
        if not ok:
            raise ChildFailed(value)
        return value

    CPU_CHECK_SECONDS = 0.5

    def _cpu_seconds(self) -> float:
        """CPU time the build process and its waited-for children (Graphviz) have used; 0 once it is gone."""
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as stat_file:
                # Fields after the command name: utime, stime, cutime, cstime are the 14th-17th of the line.
                after_name = stat_file.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            return 0.0
        return sum(int(ticks) for ticks in after_name[11:15]) / _CLOCK_TICKS

    def _answer(self, deadline: float, timeout: float, cpu_deadline: float, cpu_limit: float) -> bytes:
        received = bytearray()
        while len(received) < 8 or len(received) < 8 + int.from_bytes(received[:8], "big"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChildFailed(f"stopped after {timeout:g} s")
            if self._cpu_seconds() >= cpu_deadline:
                raise ChildFailed(f"stopped after using {cpu_limit:g} s of CPU")
            ready = select_fd.select([self.answers, self.exited], [], [], min(left, self.CPU_CHECK_SECONDS))[0]
            chunk = os.read(self.answers, 1 << 20) if self.answers in ready else b""
            if chunk:
                received += chunk
            elif ready:  # end of file, or the process exited with nothing more to read
                raise ChildFailed("the build process ended without an answer")
        return bytes(received[8:])

    def stop(self) -> None:
        if self.pid is None:
            return
        for fd in (self.jobs, self.answers, self.exited):
            os.close(fd)
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        self.pid = None


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_SHIPPED = [f.name for f in fields(ExportView) if f.name not in ("dag", "result", "_lock", "api_json", "page")]


def built_in_build_process(record: DagRecord) -> dict[str, Any]:
    """In the build process: the view's data, graph included, without the live DAG objects."""
    view = build_view(record)
    view.svg()  # rendered here too: Graphviz and the SVG clean-up are CPU work as well
    return {name: getattr(view, name) for name in _SHIPPED}


class ExportCache:
    """(DAG id, serialized hash) → ExportView; single flight per key; waits are async and bounded."""

    def __init__(self, max_entries: int = 256, processes: int = BUILD_PROCESSES):
        self._entries: OrderedDict[tuple[str, str | None], ExportView] = OrderedDict()
        self._building: dict[tuple[Any, ...], concurrent.futures.Future] = {}
        self._max_entries = max_entries
        self._lock = threading.Lock()
        # Each thread hands a build to a build process and waits on its pipe (no GIL held while it waits).
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=processes, thread_name_prefix="sfn-export")
        self._processes: queue.SimpleQueue[BuildProcess] = queue.SimpleQueue()
        self._process_count = processes
        for _ in range(processes):
            self._processes.put(BuildProcess())
        self.builds = 0

    def cached(self, record: DagRecord) -> ExportView | None:
        with self._lock:
            view = self._entries.get(record.key)
            if view is None:
                return None
            if view.retry_at is not None and time.monotonic() >= view.retry_at:
                del self._entries[record.key]
                return None
            self._entries.move_to_end(record.key)
            return view

    def start(self, record: DagRecord) -> concurrent.futures.Future:
        """The build of ``record``'s version: the one under way, or a new one (single flight)."""
        view = self.cached(record)
        with self._lock:
            if view is not None:
                done: concurrent.futures.Future = concurrent.futures.Future()
                done.set_result(view)
                return done
            future = self._building.get(record.key)
            if future is None:
                future = self._pool.submit(self._build, record)
                self._building[record.key] = future
            return future

    def _build(self, record: DagRecord) -> ExportView:
        try:
            view = self._build_in_process(record)
            with self._lock:
                self.builds += 1
                if view.transient:
                    return view
                self._entries[record.key] = view
                self._entries.move_to_end(record.key)
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)
            return view
        finally:
            with self._lock:
                self._building.pop(record.key, None)

    def _build_in_process(self, record: DagRecord) -> ExportView:
        """``build_view`` in a build process, within its CPU and time bounds; the view says why when stopped."""
        started = time.perf_counter()
        process = self._processes.get()  # one per pool thread: never waits
        try:
            built = process.run(built_in_build_process, record, timeout=BUILD_SECONDS, cpu_limit=BUILD_CPU_SECONDS)
            return ExportView(**built)
        except ChildFailed as err:
            log.warning("Building the export of %s (%s) failed: %s", record.dag_id, record.version_label, err)
            return ExportView(
                dag_id=record.dag_id,
                key=record.key,
                version=record.version_label,
                load_error=f"The export of DAG {record.dag_id!r} ({record.version_label}) could not be built: "
                f"{err}. It is tried again in {FAILED_RETRY_SECONDS / 60:.0f} minutes or when the DAG changes.",
                build_ms=(time.perf_counter() - started) * 1000,
                retry_at=time.monotonic() + FAILED_RETRY_SECONDS,
            )
        finally:
            self._processes.put(process)

    async def get(self, record: DagRecord, timeout: float | None = None) -> ExportView:
        """The view of ``record``'s version; raises ``StillBuilding`` after ``timeout`` s (no thread held)."""
        view = self.cached(record)
        if view is not None:
            return view
        return await self.wait(self.start(record), record, timeout)

    async def wait(self, future: concurrent.futures.Future, record: DagRecord, timeout: float | None = None) -> Any:
        limit = WAIT_SECONDS if timeout is None else timeout
        started = time.monotonic()
        try:
            async with stepped_aside():  # the request's admission place goes to others meanwhile
                # shield: a request that stops waiting never cancels the build others wait for.
                return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), limit)
        except TimeoutError:
            raise StillBuilding(record, time.monotonic() - started) from None

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def stop(self) -> None:
        """Stop the build processes (a new build starts new ones)."""
        for _ in range(self._process_count):
            process = self._processes.get()
            process.stop()
            self._processes.put(process)


CACHE = ExportCache()
