"""``make run``'s Airflow (localaws/run.py): nothing listens beyond 127.0.0.1, secrets stay owner-only.

The components are started by run.py's own code, in a private Airflow home, as real processes;
their listening sockets are read from the OS.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time

import psutil
import pytest

from localaws import run

LOOPBACK = {"127.0.0.1", "::1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(processes: run.Processes) -> set[tuple[str, int, str]]:
    """(address, port, process name) of every listening TCP socket of the started process groups."""
    found = set()
    for _name, process in processes.started:
        try:
            family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for member in family:
            try:
                for conn in member.net_connections(kind="tcp"):
                    if conn.status == psutil.CONN_LISTEN:
                        found.add((conn.laddr.ip, conn.laddr.port, " ".join(member.cmdline()[:4])))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    return found


def group_readable(root) -> list[str]:
    return sorted(
        f"{path} {stat.filemode(path.stat().st_mode)}"
        for path in [root, *root.rglob("*")]
        if not path.is_symlink() and path.stat().st_mode & 0o077
    )


@pytest.fixture
def private_umask():
    previous = os.umask(run.PRIVATE_UMASK)  # what run.main() sets for the whole of `make run`
    yield
    os.umask(previous)


def test_airflow_listens_on_loopback_only_and_keeps_its_secrets_private(tmp_path, private_umask):
    home, logs = tmp_path / "airflow", tmp_path / "logs"
    api_port = free_port()
    env = run.airflow_environment(api_port, free_port(), home=home)
    passwords = run.admin_password_file(home)
    password = json.loads(passwords.read_text())[run.ADMIN_USER]
    processes = run.Processes()
    try:
        run.start_airflow(processes, env, api_port, logs)
        airflow = run.Airflow(f"http://127.0.0.1:{api_port}")
        assert airflow.login(passwords) == run.ADMIN_USER  # the generated password is the one Airflow uses

        # Once the scheduler and triggerer heartbeat, any log or health server they start is up too.
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            health = run._http("GET", f"http://127.0.0.1:{api_port}/api/v2/monitor/health")
            if all(health[c]["status"] == "healthy" for c in ("scheduler", "triggerer", "dag_processor")):
                break
            time.sleep(2)
        else:
            pytest.fail(f"Airflow's components did not become healthy: {health}")
        time.sleep(3)

        sockets = listening(processes)
        assert ("127.0.0.1", api_port) in {(ip, port) for ip, port, _ in sockets}, sockets
        beyond_loopback = sorted(s for s in sockets if s[0] not in LOOPBACK)
        assert not beyond_loopback, f"listening beyond 127.0.0.1: {beyond_loopback}"
    finally:
        processes.stop()

    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
    assert {p.name for p in logs.iterdir()} >= {f"airflow-{c}.log" for c in run.airflow_components(api_port)}
    assert not group_readable(home) and not group_readable(logs), group_readable(home) + group_readable(logs)
    for log in logs.iterdir():
        assert password not in log.read_text(errors="replace"), f"the admin password is in {log.name}"


def test_files_left_readable_by_an_earlier_run_are_made_private(tmp_path):
    home, logs = tmp_path / "airflow", tmp_path / "logs"
    home.mkdir(mode=0o755)
    logs.mkdir(mode=0o755)
    for path in (home / "airflow.cfg", home / "airflow.db", home / run.PASSWORDS_FILE, logs / "backend.log"):
        path.write_text(json.dumps({run.ADMIN_USER: "kept"}) if path.name == run.PASSWORDS_FILE else "x")
        path.chmod(0o644)
    run.make_private(home, logs)
    assert run.admin_password_file(home).read_text().strip() == '{"admin": "kept"}'
    with run.private_log(logs / "backend.log") as handle:
        handle.write(b"more")
    assert not group_readable(home) and not group_readable(logs)


def test_a_corrupt_password_file_is_an_error_naming_it(tmp_path):
    (tmp_path / run.PASSWORDS_FILE).write_text("not json")
    with pytest.raises(run.RunError, match=rf"{run.PASSWORDS_FILE} is not JSON: delete it"):
        run.admin_password_file(tmp_path)
