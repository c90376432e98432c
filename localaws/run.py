"""``make run``: the whole retraining pipeline for real on this machine, in Airflow.

Starts the local backend (AWS APIs + endpoints on 127.0.0.1) and Airflow's
components (SQLite; the API server on 127.0.0.1, no log servers: everything is
on this machine), seeds the raw data on first use, triggers one
``model_retraining`` run (``--dag model_retraining_candidates``: the DAG that trains
one candidate per hyperparameter set and deploys the best) through Airflow's REST API (the call the UI's Trigger
button makes), prints each stage as it finishes, the validation error, the
decision and a sample prediction, then keeps everything up (hourly schedule
active) until Ctrl-C. ``--once``: exit after the run, 0 if it succeeded.

Secrets stay private to the user: everything runs under umask 077 (logs, the
SQLite DB, airflow.cfg with its generated keys), and the admin password is
generated here into a 0600 file that is never printed or logged.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from localaws.paths import DEFAULT_PORT, LOCAL_CONN_ID, REPO, data_dir, endpoint_url, s3_to_local

DAG_ID = "model_retraining"
CANDIDATES_DAG_ID = "model_retraining_candidates"
DAG_IDS = (DAG_ID, CANDIDATES_DAG_ID)  # the DAGs in dags/ this runner knows how to report on
LOCALHOST = "127.0.0.1"
ADMIN_USER = "admin"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"  # Airflow's default name in AIRFLOW_HOME
PRIVATE_UMASK = 0o077  # files and folders created from here on: owner only
RAW_DATA = "s3://retraining-demo/raw/churn.csv"
# Each DAG's default validation split and endpoint: where the sample prediction comes from and goes to.
SERVING = {
    DAG_ID: ("s3://retraining-demo/processed/validation/", "churn-endpoint"),
    CANDIDATES_DAG_ID: ("s3://retraining-demo/candidates/processed/validation/", "churn-candidates"),
}
FINISHED = {"success", "failed", "skipped", "upstream_failed", "removed"}
SYMBOL = {"success": "ok", "failed": "FAILED", "skipped": "skipped", "upstream_failed": "not run (upstream failed)"}


class RunError(Exception):
    pass


def private_log(path: Path):
    """``path`` opened for appending, readable by its owner only (also when an older run left it 0644)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab")


def admin_password_file(home: Path) -> Path:
    """The Simple auth manager's passwords file with a generated admin password, 0600.

    Written here rather than by Airflow, which would print the password into its log.
    """
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = home / PASSWORDS_FILE
    passwords: dict[str, str] = {}
    if path.exists():
        os.chmod(path, 0o600)
        try:
            passwords = json.loads(path.read_text() or "{}")
        except ValueError:
            raise RunError(f"{path} is not JSON: delete it to generate a new admin password") from None
    if not isinstance(passwords, dict) or not isinstance(passwords.get(ADMIN_USER), str):
        passwords = {ADMIN_USER: secrets.token_urlsafe(18)}
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(passwords) + "\n")
        os.replace(tmp, path)
    return path


def make_private(home: Path, logs: Path) -> None:
    """Owner-only modes for what earlier runs (before umask 077) may have left readable."""
    for folder in (home, logs):
        if folder.is_dir():
            os.chmod(folder, 0o700)
    for pattern in ("airflow.cfg", "*.db", PASSWORDS_FILE):
        for path in home.glob(pattern):
            os.chmod(path, 0o600)
    for path in logs.glob("*.log"):
        os.chmod(path, 0o600)


def airflow_components(api_port: int) -> dict[str, list[str]]:
    """What `airflow standalone` runs, minus what listens on every interface.

    The API server is bound to 127.0.0.1; the scheduler and triggerer start no log servers
    (they bind 0.0.0.0 unconditionally and are not needed: the API server reads the task logs
    from this machine's disk).
    """
    airflow = [sys.executable, "-m", "airflow"]
    return {
        "api-server": [*airflow, "api-server", "--host", LOCALHOST, "--port", str(api_port)],
        "scheduler": [*airflow, "scheduler", "--skip-serve-logs"],
        "dag-processor": [*airflow, "dag-processor"],
        "triggerer": [*airflow, "triggerer", "--skip-serve-logs"],
    }


def start_airflow(processes: Processes, env: dict[str, str], api_port: int, logs: Path) -> None:
    """Migrate the metadata DB, then start each component in its own process group with a private log."""
    with private_log(logs / "airflow-db-migrate.log") as handle:
        migrated = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=env,
            cwd=REPO,
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if migrated.returncode != 0:
        raise RunError(f"airflow db migrate failed; see {logs / 'airflow-db-migrate.log'}")
    for name, argv in airflow_components(api_port).items():
        processes.start(name, argv, env, logs / f"airflow-{name}.log")


def airflow_environment(api_port: int, backend_port: int, home: Path | None = None) -> dict[str, str]:
    home = home or REPO / ".local" / "airflow"
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / PASSWORDS_FILE),
            "AIRFLOW__API__HOST": LOCALHOST,
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": f"http://{LOCALHOST}:{api_port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{LOCALHOST}:{api_port}/execution/",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",  # no health-check server on 0.0.0.0:8974
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
            "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
            "RETRAINING_LOCAL_DATA": str(data_dir()),
            # The embedded default: stages talk to the local backend unless told otherwise.
            "RETRAINING_BACKEND": env.get("RETRAINING_BACKEND", "local"),
            f"AIRFLOW_CONN_{LOCAL_CONN_ID.upper()}": json.dumps(
                {
                    "conn_type": "aws",
                    "login": "local",
                    "password": "local",
                    "extra": {"endpoint_url": endpoint_url(backend_port), "region_name": "us-east-1"},
                }
            ),
        }
    )
    return env


def seed_raw_data() -> Path:
    raw = s3_to_local(RAW_DATA)
    if not raw.exists():
        from localaws.churn_data import write_batch

        write_batch(raw, rows=5000, seed=1)
        print(f"Seeded {RAW_DATA} ({raw}) with 5000 generated customers")
    return raw


def _http(method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 30) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def _wait(check, what: str, timeout: float, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (urllib.error.URLError, OSError, ValueError) as err:
            last = err
        time.sleep(interval)
    raise RunError(f"timed out after {int(timeout)} s waiting for {what}" + (f" (last error: {last})" if last else ""))


class Processes:
    """Children started here; all stopped together (their whole process groups)."""

    def __init__(self) -> None:
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        with private_log(log) as handle:
            process = subprocess.Popen(
                argv, env=env, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started.append((name, process))
        return process

    def stop(self) -> None:
        for _name, process in reversed(self.started):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for _name, process in reversed(self.started):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.started.clear()


class Airflow:
    def __init__(self, base: str, dag_id: str = DAG_ID):
        self.base = base
        self.dag_id = dag_id
        self.token: str | None = None

    def login(self, passwords: Path) -> str:
        """Log in as the admin user with the password in ``passwords``; returns the user name."""
        password = json.loads(passwords.read_text())[ADMIN_USER]
        answer = _wait(
            lambda: _http("POST", f"{self.base}/auth/token", {"username": ADMIN_USER, "password": password}),
            "Airflow's API server",
            240,
            2,
        )
        self.token = answer["access_token"]
        return ADMIN_USER

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return _http(method, f"{self.base}/api/v2{path}", body, self.token)

    def active_run(self) -> dict[str, Any] | None:
        runs = self.api("GET", f"/dags/{self.dag_id}/dagRuns?state=running&state=queued&order_by=-start_date&limit=1")
        return runs["dag_runs"][0] if runs["dag_runs"] else None


def current_schedule_point() -> str:
    """The latest hourly cron point (UTC): the logical date the scheduler gives this hour's run."""
    now = time.gmtime()
    return time.strftime("%Y-%m-%dT%H:00:00Z", now)


def trigger_or_reuse(airflow: Airflow) -> str:
    """Trigger this hour's run, or reuse it when it exists (left by an earlier `make run` or the schedule).

    Triggering with the current schedule point as logical date means the
    scheduler, which creates a run for that point when the DAG is unpaused
    (catchup=False runs the latest interval), finds it taken: one run, not two.
    """
    active = airflow.active_run()
    if active:
        print(f"Following run {active['dag_run_id']} that is already in progress")
        return active["dag_run_id"]
    logical_date = current_schedule_point()
    dag_id = airflow.dag_id
    try:
        run_id = airflow.api("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": logical_date, "conf": {}})[
            "dag_run_id"
        ]
        print(f"Triggered {dag_id} run {run_id}")
        return run_id
    except urllib.error.HTTPError as err:
        if err.code != 409:
            raise
    runs = airflow.api(
        "GET", f"/dags/{dag_id}/dagRuns?logical_date_gte={logical_date}&logical_date_lte={logical_date}"
    )["dag_runs"]
    if not runs:
        raise RunError(f"Airflow refused a run for {logical_date} but shows none")
    run = runs[0]
    print(
        f"This hour's run {run['dag_run_id']} already exists ({run['state']}): showing it. Trigger another from the UI."
    )
    return run["dag_run_id"]


def follow(airflow: Airflow, run_id: str, timeout: float) -> tuple[str, dict[str, str]]:
    """Print each stage as it finishes; return the run's final state and each task's state.

    A mapped task's instances are printed one by one (``train_candidate[1]``); its state in the
    returned map is that of its last instance printed.
    """
    printed: dict[tuple[str, int], str] = {}
    started = time.monotonic()
    runs = f"/dags/{airflow.dag_id}/dagRuns/{run_id}"
    while time.monotonic() - started < timeout:
        try:
            instances = airflow.api("GET", f"{runs}/taskInstances")["task_instances"]
            run = airflow.api("GET", runs)
        except (TimeoutError, ConnectionError) as err:  # a busy SQLite-backed API server: ask again
            print(f"  (Airflow API slow: {err}; retrying)", flush=True)
            time.sleep(2)
            continue
        for ti in sorted(instances, key=lambda t: (t.get("start_date") or "~", t["task_id"], t.get("map_index", -1))):
            state = ti.get("state")
            index = ti.get("map_index", -1)
            if state in FINISHED and printed.get((ti["task_id"], index)) != state:
                printed[(ti["task_id"], index)] = state
                took = f" in {ti['duration']:.1f} s" if ti.get("duration") else ""
                label = ti["task_id"] if index < 0 else f"{ti['task_id']}[{index}]"
                print(f"  {label:<24} {SYMBOL.get(state, state)}{took}", flush=True)
        if run["state"] in ("success", "failed"):
            return run["state"], {ti["task_id"]: ti.get("state") for ti in instances}
        time.sleep(2)
    raise RunError(f"run {run_id} did not finish within {int(timeout)} s")


def report(airflow: Airflow, run_id: str, task_states: dict[str, str], backend_port: int) -> None:
    def xcom(task_id: str) -> Any:
        try:
            entry = airflow.api(
                "GET", f"/dags/{airflow.dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
            )
        except urllib.error.HTTPError:
            return None
        value = entry.get("value")
        return json.loads(value) if isinstance(value, str) and value[:1] in "{[" else value

    if airflow.dag_id == CANDIDATES_DAG_ID:
        best = xcom("select_best") or {}
        for index, candidate in enumerate(best.get("Candidates", [])):
            picked = "  <- best" if index == best.get("BestIndex") else ""
            print(
                f"Candidate {index} {candidate['TrainingJobName']}: validation error {candidate['Value']:.4f}{picked}"
            )
    metrics = xcom("check_metrics") or {}
    for metric in metrics.get("trainingMetrics", []):
        if metric["MetricName"] == "validation:error":
            print(f"Validation error: {metric['Value']:.4f}")
    if task_states.get("create_model") not in (None, "skipped", "upstream_failed"):
        print("Decision: deploy (validation error below the threshold)")
    elif task_states.get("model_accuracy_too_low") == "failed":
        print("Decision: do not deploy: model accuracy too low (the previous model keeps serving)")
    endpoint = xcom("update_endpoint")
    if endpoint:
        print(f"Endpoint {endpoint['EndpointName']} {endpoint['Action']}: now serving {endpoint['EndpointConfigName']}")
    sample = _sample_row(airflow.dag_id)
    if sample:
        _print_prediction(backend_port, *sample, airflow.dag_id)


def _sample_row(dag_id: str) -> tuple[str, str] | None:
    folder = s3_to_local(SERVING[dag_id][0])
    for file in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
        with open(file) as fh:
            line = fh.readline().strip()
        if line:
            label, _, features = line.partition(",")
            return label, features
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m localaws.run", description="Run the retraining pipeline locally in Airflow."
    )
    parser.add_argument("--dag", choices=DAG_IDS, default=DAG_ID, help="the DAG to run (default %(default)s)")
    parser.add_argument("--once", action="store_true", help="exit after one run: 0 if it succeeded")
    parser.add_argument("--api-port", type=int, default=int(os.environ.get("AIRFLOW_PORT", 8080)))
    parser.add_argument("--backend-port", type=int, default=int(os.environ.get("RETRAINING_LOCAL_PORT", DEFAULT_PORT)))
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the run")
    parser.add_argument(
        "--state-machine",
        action="store_true",
        help="run the DAG's exported Step Functions state machine (moto's ASL interpreter) instead of Airflow",
    )
    args = parser.parse_args(argv)
    os.umask(PRIVATE_UMASK)
    if args.state_machine:
        return run_state_machine(args.backend_port, args.once, args.dag)
    env = airflow_environment(args.api_port, args.backend_port)
    home = Path(env["AIRFLOW_HOME"])
    logs = REPO / ".local" / "logs"
    make_private(home, logs)
    processes = Processes()

    def stop(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        seed_raw_data()
        if not _up(f"{endpoint_url(args.backend_port)}/ping"):
            processes.start(
                "backend",
                [sys.executable, "-m", "localaws.server", "--port", str(args.backend_port)],
                env,
                logs / "backend.log",
            )
            _wait(lambda: _up(f"{endpoint_url(args.backend_port)}/ping"), "the local backend", 60, 0.5)
        print(f"Local backend (AWS APIs, endpoints): {endpoint_url(args.backend_port)}   log: {logs / 'backend.log'}")
        passwords = admin_password_file(home)
        print("Starting Airflow (first start migrates its SQLite DB)...", flush=True)
        start_airflow(processes, env, args.api_port, logs)
        airflow = Airflow(f"http://{LOCALHOST}:{args.api_port}", args.dag)
        username = airflow.login(passwords)
        _wait(lambda: airflow.api("GET", f"/dags/{args.dag}"), f"DAG {args.dag} to be parsed", 180, 2)
        run_id = trigger_or_reuse(airflow)
        airflow.api("PATCH", f"/dags/{args.dag}", {"is_paused": False})
        state, task_states = follow(airflow, run_id, args.timeout)
        print(f"Run {run_id}: {state}")
        report(airflow, run_id, task_states, args.backend_port)
        if args.once:
            return 0 if state == "success" else 1
        print(f"\nAirflow UI: http://{LOCALHOST}:{args.api_port}  (user {username}; password in {passwords}, 0600)")
        print("Hourly schedule active. Trigger again from the UI. Ctrl-C stops everything.", flush=True)
        while all(p.poll() is None for _, p in processes.started):
            time.sleep(1)
        print("A process stopped; see the logs in .local/logs", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping...", file=sys.stderr)
        return 130
    except (RunError, urllib.error.HTTPError) as err:
        print(f"error: {err}; logs in {logs}", file=sys.stderr)
        return 1
    finally:
        processes.stop()


def run_state_machine(backend_port: int, once: bool, dag_id: str = DAG_ID) -> int:
    """``make run SFN=1``: the same pipeline on the same local data, as the exported state machine.

    The exporter runs as its own process (``python -m exporters run DAG_ID --local``); it reuses the
    backend started here, so the endpoint keeps serving after the run until Ctrl-C.
    """
    logs = REPO / ".local" / "logs"
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
            "RETRAINING_LOCAL_DATA": str(data_dir()),
            "AIRFLOW_HOME": env.get("AIRFLOW_HOME", str(REPO / ".local" / "airflow")),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        }
    )
    processes = Processes()

    def stop(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        seed_raw_data()
        if not _up(f"{endpoint_url(backend_port)}/ping"):
            processes.start(
                "backend",
                [sys.executable, "-m", "localaws.server", "--port", str(backend_port)],
                env,
                logs / "backend.log",
            )
            _wait(lambda: _up(f"{endpoint_url(backend_port)}/ping"), "the local backend", 60, 0.5)
        print(f"Local backend (AWS APIs, endpoints): {endpoint_url(backend_port)}   log: {logs / 'backend.log'}")
        argv = [sys.executable, "-m", "exporters", "run", dag_id, "--local", "--backend-port", str(backend_port)]
        code = subprocess.run(argv, env=env, cwd=REPO).returncode
        sample = _sample_row(dag_id)
        if sample:
            _print_prediction(backend_port, *sample, dag_id)
        if once or not processes.started:
            return code
        print("\nThe endpoint keeps serving. Ctrl-C stops the local backend.", flush=True)
        while all(p.poll() is None for _, p in processes.started):
            time.sleep(1)
        return 1
    except KeyboardInterrupt:
        print("\nStopping...", file=sys.stderr)
        return 130
    except RunError as err:
        print(f"error: {err}; logs in {logs}", file=sys.stderr)
        return 1
    finally:
        processes.stop()


def _print_prediction(backend_port: int, label: str, features: str, dag_id: str) -> None:
    request = urllib.request.Request(
        f"{endpoint_url(backend_port)}/endpoints/{SERVING[dag_id][1]}/invocations",
        data=features.encode(),
        method="POST",
        headers={"Content-Type": "text/csv"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            prediction = response.read().decode().strip()
        print(f"Sample prediction (a validation customer, churned={label}): churn probability {prediction}")
    except urllib.error.HTTPError as err:
        print(f"Sample prediction: endpoint answered {err.code}: {err.read().decode()[:200]}")
    except urllib.error.URLError as err:
        print(f"Sample prediction: endpoint unreachable: {err.reason}")


def _up(url: str) -> bool:
    try:
        _http("GET", url, timeout=2)
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


if __name__ == "__main__":
    sys.exit(main())
