"""Response times of the Step Functions view on a real ``airflow api-server``: cold, warm, and under load.

Method: a fresh Airflow home (SQLite), a dags folder with a copy of ``dags/`` (the retraining
DAG), a 500-task DAG, ten small DAGs and a deliberately slow DAG file (it sleeps 8 s at import),
``airflow db migrate`` and ``airflow dags reserialize`` (the DAG processor's parse and store),
then ``airflow api-server`` (1 worker, 127.0.0.1, a free port) with this repo's ``plugins/``. A
Simple auth manager user gets a token from ``POST /auth/token``; every request carries it, so each
timing includes authentication, the per-DAG authorisation check, the DB look-up and the rendering,
over HTTP on the loopback. The view never reads a DAG file: it compiles the serialized DAG.

Rows:

- ``cold``: the first request for a DAG version after the server started (the stored JSON read,
  deserialized, compiled; for the page also the graph rendered with Graphviz and the
  CloudFormation template built). The plugin's app is built before (one icon request);
- ``warm``: ``--runs`` sequential requests of each route (the cache hit path);
- ``reference``: Airflow's own ``GET /api/v2/dags/{dag_id}`` on the same server, for scale;
- ``load``: 50 concurrent viewer requests across the DAGs (the small ones cold) while a separate
  sampler process sends Airflow's ``GET /api/v2/version`` at a fixed rate (one every
  ``--sample-ms``, each on its own thread, so a slow answer never delays the next sample, and in
  its own process, so the burst's 50 client threads do not slow the sampler's clock or GIL): the
  latency of the samples sent while the burst ran; then the same burst on Airflow's own
  ``GET /api/v2/dags/{dag_id}``, for scale.

Targets: retraining DAG view warm <= 50 ms and cold <= 500 ms; ``/api/v2/version`` p95 < 100 ms
under the load.

    .venv/bin/python bench/ui_view.py [--runs 50] [--sample-ms 10] [--json FILE]      # = make bench-ui

Exit status: non-zero only when the server does not start or a request fails, never because
a target is missed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "model_retraining"
BIG_DAG = "bench_500_tasks"
SMALL_DAGS = 10
USER, PASSWORD = "admin", "bench-password"
TARGETS = {"warm": 50.0, "cold": 500.0, "version_p95": 100.0}

BIG = """
import datetime
from airflow.sdk import DAG
from retraining import GlueJobRunOperator, LambdaInvokeOperator, ParamRef, ResultRef

with DAG("{dag_id}", schedule=None, start_date=datetime.datetime(2026, 1, 1), params={{"fn": "check"}}):
    previous = None
    for i in range(250):
        etl = GlueJobRunOperator(task_id=f"etl_{{i:03d}}", job_name=f"job-{{i}}")
        check = LambdaInvokeOperator(task_id=f"check_{{i:03d}}", function_name=ParamRef("fn"),
                                     payload={{"run": ResultRef(f"etl_{{i:03d}}", "JobRunId")}})
        etl >> check
        if previous is not None:
            previous >> etl
        previous = check
"""
SMALL = """
import datetime
from airflow.sdk import DAG
from retraining import FailRunOperator, GlueJobRunOperator

with DAG("{dag_id}", schedule=None, start_date=datetime.datetime(2026, 1, 1)):
    GlueJobRunOperator(task_id="etl", job_name="etl") >> FailRunOperator(task_id="stop", error="E", cause="c")
"""
SLOW = "import time\ntime.sleep(8)\n" + SMALL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url: str, token: str | None = None, body: dict | None = None) -> tuple[float, int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=120) as answer:
            payload, status = answer.read(), answer.status
    except urllib.error.HTTPError as err:
        payload, status = err.read(), err.code
    return (time.perf_counter() - started) * 1000, status, payload


def _stat_times(pid: int) -> tuple[float, float]:
    """(CPU s of process ``pid``, CPU s of the children it has waited for), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime) / ticks, (cutime + cstime) / ticks


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(CPU s of the API server process, CPU s of its child processes: ended ones, and live ones with theirs)."""
    own, ended = _stat_times(pid)
    live = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                live += sum(_stat_times(int(child)))
            except FileNotFoundError:  # it ended meanwhile (then it is counted in ``ended`` next time)
                pass
    return own, ended + live


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def sample_version(url: str, every_ms: float) -> None:
    """The sampler process: GET ``url`` every ``every_ms`` until stdin closes; prints [[sent, ms, status], ...]."""
    samples: list[list[float]] = []
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()

    def one() -> None:
        sent = time.time()
        ms, status, _ = request(url)
        samples.append([sent, ms, status])

    print("sampling", flush=True)
    senders = []
    due = time.perf_counter()
    while not stop.is_set():
        senders.append(threading.Thread(target=one))
        senders[-1].start()
        due += every_ms / 1000
        time.sleep(max(0.0, due - time.perf_counter()))
    for sender in senders:
        sender.join()
    print(json.dumps(samples))


class VersionSampler:
    """``sample_version`` in its own process, for the duration of a ``with`` block."""

    def __init__(self, url: str, every_ms: float):
        command = [sys.executable, __file__, "--sample-version", url, "--sample-ms", str(every_ms)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.process.stdout.readline()  # "sampling"

    def between(self, started: float, ended: float) -> list[float]:
        """Latencies (ms) of the samples sent from ``started`` to ``ended`` (time.time()); all must have answered."""
        out, _ = self.process.communicate("", timeout=300)  # closing its stdin stops it
        samples = [row for row in json.loads(out) if started <= row[0] <= ended]
        failed = [row for row in samples if row[2] != 200]
        if failed:
            raise RuntimeError(f"/api/v2/version failed during the burst: {failed[:5]}")
        return [row[1] for row in samples]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="warm requests per route")
    parser.add_argument("--sample-ms", type=float, default=10.0, help="/api/v2/version sample interval under load")
    parser.add_argument("--json", help="write the raw samples here")
    parser.add_argument("--sample-version", metavar="URL", help=argparse.SUPPRESS)  # the sampler process
    args = parser.parse_args(argv)
    if args.sample_version:
        sample_version(args.sample_version, args.sample_ms)
        return 0

    work = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    dags = work / "dags"
    shutil.copytree(ROOT / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
    (dags / f"{BIG_DAG}.py").write_text(BIG.format(dag_id=BIG_DAG))
    (dags / "bench_slow.py").write_text(SLOW.format(dag_id="bench_slow"))
    for i in range(SMALL_DAGS):
        (dags / f"bench_small_{i}.py").write_text(SMALL.format(dag_id=f"bench_small_{i}"))
    (work / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(work / "home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(work / "passwords.json"),
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__API_AUTH__JWT_SECRET": "bench-jwt-secret-" + "x" * 48,
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join([str(ROOT)]),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
    )
    airflow = [sys.executable, "-m", "airflow"]
    for step in (["db", "migrate"], ["dags", "reserialize"]):
        subprocess.run([*airflow, *step], env=env, cwd=ROOT, check=True, capture_output=True, timeout=600)

    log = open(work / "api-server.log", "wb")
    server = subprocess.Popen(
        [*airflow, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    samples: dict[str, list[float]] = {}
    bursts: list[tuple[str, float, float, float]] = []  # label, wall s, server CPU s, its children's CPU s
    load_before = os.getloadavg()[0]
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                request(f"{base}/api/v2/monitor/health")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    print(f"api-server did not start; log: {work / 'api-server.log'}", file=sys.stderr)
                    return 1
                time.sleep(0.5)
        _, _, raw = request(f"{base}/auth/token", body={"username": USER, "password": PASSWORD})
        token = json.loads(raw)["access_token"]

        def get(url: str) -> tuple[float, bytes]:
            ms, status, body = request(url, token)
            if status != 200 or not body:
                raise RuntimeError(f"{url}: HTTP {status}: {body[:300]!r}")
            return ms, body

        get(f"{base}/stepfunctions/static/icon.svg")  # builds the plugin's app (once per server)
        for dag_id in (DAG_ID, BIG_DAG):
            view = f"{base}/stepfunctions/dags/{dag_id}"
            samples[f"{dag_id} view: cold"] = [get(view)[0]]
            routes = {
                f"{dag_id} view (HTML page)": view,
                f"{dag_id} JSON export (api/dags/{{id}})": f"{base}/stepfunctions/api/dags/{dag_id}",
                f"{dag_id} definition.json": f"{view}/definition.json",
                f"reference: Airflow's GET /api/v2/dags/{dag_id}": f"{base}/api/v2/dags/{dag_id}",
            }
            for name, url in routes.items():
                get(url)
                samples[f"{name}: warm"] = [get(url)[0] for _ in range(args.runs)]

        # Load: 50 concurrent viewer requests across the DAGs while /api/v2/version is sampled; then the same
        # burst on Airflow's own GET /api/v2/dags/{id}, for scale (the server's capacity, not the plugin's).
        names = [f"bench_small_{i}" for i in range(SMALL_DAGS)] + [DAG_ID, BIG_DAG, "bench_slow"]
        views = [f"{base}/stepfunctions/dags/{n}" for n in names[:SMALL_DAGS]]
        views += [f"{base}/stepfunctions/api/dags/{n}" for n in names[SMALL_DAGS:]]
        for _ in range(10):  # the endpoint alone, for scale
            request(f"{base}/api/v2/version")
        samples["reference: /api/v2/version, idle"] = [request(f"{base}/api/v2/version")[0] for _ in range(20)]
        for label, targets in (
            ("load: 50 concurrent Step Functions view requests across 13 DAGs", views),
            (
                "reference load: 50 concurrent Airflow GET /api/v2/dags/{id} across 13 DAGs",
                [f"{base}/api/v2/dags/{n}" for n in names],
            ),
        ):
            burst = [targets[i % len(targets)] for i in range(50)]
            sampler = VersionSampler(f"{base}/api/v2/version", args.sample_ms)
            try:
                with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
                    cpu_before = cpu_seconds(server.pid)
                    started = time.time()
                    samples[label] = [ms for ms, _ in pool.map(get, burst)]
                    ended = time.time()
                    cpu_after = cpu_seconds(server.pid)
                bursts.append((label, ended - started, cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1]))
            except BaseException:
                sampler.process.kill()
                raise
            samples[f"{label}: /api/v2/version meanwhile"] = sampler.between(started, ended)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
        log.close()
    load_after = os.getloadavg()[0]

    import airflow as airflow_pkg

    print(
        f"Step Functions view over HTTP, airflow api-server (1 worker), Airflow {airflow_pkg.__version__}, "
        f"Python {platform.python_version()}, {args.runs} warm requests per route"
    )
    print(f"1-min load average {load_before:.2f} before, {load_after:.2f} after, {os.cpu_count()} CPUs\n")
    print("| request | n | median ms | p90 ms | p95 ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, values in samples.items():
        print(
            f"| {name} | {len(values)} | {statistics.median(values):.1f} | {percentile(values, 0.9):.1f} | "
            f"{percentile(values, 0.95):.1f} | {max(values):.1f} |"
        )
    print("\n| burst | wall s | API server process CPU s | its child processes' CPU s |")
    print("|---|---:|---:|---:|")
    for label, wall, server_cpu, children_cpu in bursts:
        print(f"| {label} | {wall:.2f} | {server_cpu:.2f} | {children_cpu:.2f} |")
    print()
    warm = percentile(samples[f"{DAG_ID} view (HTML page): warm"], 0.9)
    cold = samples[f"{DAG_ID} view: cold"][0]
    version = percentile(
        samples["load: 50 concurrent Step Functions view requests across 13 DAGs: /api/v2/version meanwhile"], 0.95
    )
    for label, value, target in (
        ("retraining view warm p90", warm, TARGETS["warm"]),
        ("retraining view cold", cold, TARGETS["cold"]),
        ("/api/v2/version p95 under load", version, TARGETS["version_p95"]),
    ):
        verdict = "met" if value <= target else "MISSED"
        print(f"Target {label} <= {target:.0f} ms: {verdict} ({value:.1f} ms)")
    if args.json:
        Path(args.json).write_text(json.dumps(samples, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
