"""The Step Functions view never runs DAG-author code in Airflow's API server (a real ``airflow api-server``).

Set-up (as the browser test): a fresh Airflow home (SQLite), a dags folder of our own, ``airflow db
migrate``, ``airflow dags reserialize`` (the DAG processor's parse-and-store, in its own process),
then ``airflow api-server`` (1 worker, 127.0.0.1, a free port) with this repo's plugin, and the
Simple auth manager's four roles (admin, op, user, viewer) plus requests without a token.

Every DAG file in the folder records each process that imports it: one JSON line with the pid,
the process group and the command line. The API server runs in its own process group.

- opening every route of the plugin, for every DAG, as each kind of user adds no record at all
  (and none from the API server's process group): the view compiled what the DAG processor stored;
- a DAG file changed after it was parsed: the view shows the stored version until the DAG
  processor re-parses it (``airflow dags reserialize`` again), then the new one;
- load: with a deliberately slow DAG file in the folder, 50 concurrent viewer requests across the
  DAGs (cold cache) all answer with the export, and Airflow's own ``/api/v2/version`` keeps
  answering throughout (its latency is measured by ``bench/ui_view.py``, not asserted here).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_ui_browser import _free_port, _http_ok, _stop_group

VIEW = "/stepfunctions"
USERS = {"admin": "admin", "op": "op", "user": "user", "viewer": "viewer"}  # name: Simple auth manager role
SLOW_SECONDS = 8
SMALL_DAGS = 8
SERVER_START_SECONDS = 120

RECORDER = """
import json, os, sys
with open({record!r}, "a") as _log:
    _log.write(json.dumps({{"pid": os.getpid(), "pgid": os.getpgid(0), "file": __file__,
                            "cmdline": " ".join(sys.argv)}}) + "\\n")
"""

DAG_TEMPLATE = """
import datetime
import time
from airflow.sdk import DAG
from retraining import FailRunOperator, GlueJobRunOperator, LambdaInvokeOperator, ParamRef, ResultRef

time.sleep({sleep})
with DAG("{dag_id}", schedule=None, start_date=datetime.datetime(2026, 1, 1), params={{"fn": "check"}}):
    etl = GlueJobRunOperator(task_id="etl", job_name="{job}")
    check = LambdaInvokeOperator(task_id="check", function_name=ParamRef("fn"),
                                 payload={{"run": ResultRef("etl", "JobRunId")}})
    stop = FailRunOperator(task_id="stop", error="{error}", cause="recorded")
    etl >> check >> stop
"""


def dag_file(record: Path, dag_id: str, *, sleep: float = 0, error: str = "Stopped", job: str = "etl") -> str:
    return RECORDER.format(record=str(record)) + DAG_TEMPLATE.format(dag_id=dag_id, sleep=sleep, error=error, job=job)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class Server:
    def __init__(self, base: str, env: dict[str, str], process: subprocess.Popen, dags: Path, record: Path):
        self.base, self.env, self.process, self.dags, self.record = base, env, process, dags, record
        self.tokens: dict[str, str] = {}

    def get(self, path: str, user: str | None = None, timeout: float = 60) -> tuple[int, bytes]:
        request = urllib.request.Request(self.base + path)
        if user:
            request.add_header("Authorization", f"Bearer {self.tokens[user]}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def reserialize(self) -> None:
        """What the DAG processor does: parse every file in the folder and store the DAGs (its own process)."""
        airflow = [sys.executable, "-m", "airflow", "dags", "reserialize"]
        done = subprocess.run(airflow, env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("isolation-home")
    dags = tmp_path_factory.mktemp("isolation-dags")
    record = home / "imports.jsonl"
    (dags / "ui_recorder.py").write_text(dag_file(record, "ui_recorder"))
    (dags / "ui_slow.py").write_text(dag_file(record, "ui_slow", sleep=SLOW_SECONDS))
    (dags / "ui_changing.py").write_text(dag_file(record, "ui_changing", error="FirstVersion"))
    for i in range(SMALL_DAGS):
        (dags / f"ui_small_{i}.py").write_text(dag_file(record, f"ui_small_{i}", job=f"job-{i}"))
    (dags / "model_retraining.py").write_text(
        "from __future__ import annotations\n"
        + RECORDER.format(record=str(record))
        + (ROOT / "dags" / "model_retraining.py").read_text().replace("from __future__ import annotations\n", "")
    )
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({name: f"{name}-pw" for name in USERS}))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "60",
            # Store a re-parsed DAG at once (Airflow's default skips writes within 30 s of the last one).
            "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "0",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{n}:{r}" for n, r in USERS.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": "isolation-test-jwt-secret-" + "x" * 40,
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    log_path = home / "api-server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--port", str(port), "--host", "127.0.0.1"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: its records are told apart by pgid
        )
    running = Server(base, env, process, dags, record)
    try:
        running.reserialize()
        parsed = {r["file"].rsplit("/", 1)[-1] for r in records(record)}
        assert parsed >= {"ui_recorder.py", "ui_slow.py", "model_retraining.py"}, parsed
        deadline = time.monotonic() + SERVER_START_SECONDS
        while not _http_ok(f"{base}/api/v2/monitor/health"):
            assert process.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, f"api-server not up after {SERVER_START_SECONDS} s"
            time.sleep(0.5)
        for name in USERS:
            body = json.dumps({"username": name, "password": f"{name}-pw"}).encode()
            request = urllib.request.Request(
                f"{base}/auth/token", data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=30) as answer:
                running.tokens[name] = json.loads(answer.read())["access_token"]
        yield running
    finally:
        _stop_group(process)


def dag_ids(server: Server) -> list[str]:
    return ["model_retraining", "ui_recorder", "ui_slow", "ui_changing", *(f"ui_small_{i}" for i in range(SMALL_DAGS))]


def routes(dag_id: str) -> list[str]:
    return [
        f"{VIEW}/dags/{dag_id}",
        f"{VIEW}/api/dags/{dag_id}",
        f"{VIEW}/dags/{dag_id}/definition.json",
        f"{VIEW}/dags/{dag_id}/template.json",
        f"{VIEW}/dags/{dag_id}/graph.svg",
        f"{VIEW}/dags/{dag_id}/deployed",
        f"{VIEW}/api/dags/{dag_id}/deployed",
        f"{VIEW}/api/dags/{dag_id}/executions",
    ]


def answered(server: Server, path: str, user: str, deadline: float) -> tuple[int, bytes]:
    """The answer once the export is built (a 503 "still building" is retried until ``deadline``)."""
    while True:
        status, body = server.get(path, user)
        if status != 503 or time.monotonic() > deadline:
            return status, body
        time.sleep(0.5)


def test_50_concurrent_viewers_across_dags_all_get_the_export_and_airflow_keeps_answering(server):
    targets = [f"{VIEW}/{kind}dags/{dag_id}" for dag_id in dag_ids(server) for kind in ("", "api/")]
    requests = [targets[i % len(targets)] for i in range(50)]
    version_answers: list[int] = []
    stop = threading.Event()

    def poll_version() -> None:
        while not stop.is_set():
            version_answers.append(server.get("/api/v2/version", timeout=30)[0])
            time.sleep(0.05)

    poller = threading.Thread(target=poll_version)
    poller.start()
    deadline = time.monotonic() + 300  # builds are niced: on a loaded machine they wait long for the CPU
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
            answers = list(pool.map(lambda path: (path, answered(server, path, "viewer", deadline)), requests))
    finally:
        stop.set()
        poller.join()
    for path, (status, body) in answers:
        assert status == 200, (path, status, body[:300])
        if "/api/" in path:
            assert json.loads(body)["exportable"] is True, path
        else:
            assert b'data-status="exportable"' in body, path
    assert len(version_answers) >= 3 and set(version_answers) == {200}, version_answers


def test_no_route_as_any_user_imports_a_dag_file_in_the_api_server(server):
    before = records(server.record)
    everything = [f"{VIEW}/", f"{VIEW}/api/dags", f"{VIEW}/static/icon.svg"]
    for dag_id in dag_ids(server):
        everything += routes(dag_id)
    deadline = time.monotonic() + 300
    for user in (None, *USERS):
        for path in everything:
            status, body = answered(server, path, user, deadline) if user else server.get(path)
            if user is None:
                assert status == 401, (path, status)
            else:
                assert status == 200, (user, path, status, body[:300])
    after = records(server.record)
    assert after == before, [r for r in after if r not in before]
    assert not [r for r in after if r["pgid"] == server.process.pid]


def test_a_changed_dag_file_shows_the_stored_version_until_the_dag_processor_reparses(server):
    path = server.dags / "ui_changing.py"

    def export() -> dict:
        status, body = answered(server, f"{VIEW}/api/dags/ui_changing", "viewer", time.monotonic() + 60)
        assert status == 200, body[:300]
        return json.loads(body)

    first = export()
    assert first["definition"]["States"]["stop"]["Error"] == "FirstVersion"
    path.write_text(dag_file(server.record, "ui_changing", error="SecondVersion"))
    unchanged = export()
    assert unchanged["definition"] == first["definition"] and unchanged["dag_hash"] == first["dag_hash"]
    page = server.get(f"{VIEW}/dags/ui_changing", "viewer")[1].decode()
    assert "FirstVersion" in page and "SecondVersion" not in page
    assert f"Exported from DAG version {first['version']}" in page

    server.reserialize()
    second = export()
    assert second["definition"]["States"]["stop"]["Error"] == "SecondVersion"
    assert second["dag_hash"] != first["dag_hash"] and second["version"] >= first["version"]
    assert not [r for r in records(server.record) if r["pgid"] == server.process.pid]
