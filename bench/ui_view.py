"""Response times of the Step Functions view on a real ``airflow api-server`` (the retraining DAG).

Method: a fresh Airflow home (SQLite), a copy of ``dags/`` (so the benchmark can edit the DAG
file), ``airflow db migrate`` and ``airflow dags reserialize``, then ``airflow api-server``
(1 worker, 127.0.0.1, a free port) with this repo's ``plugins/``. A Simple auth manager user
gets a token from ``POST /auth/token``; every request carries it (``Authorization: Bearer``),
so each timing includes authentication, the per-DAG authorisation check, the DB look-ups, the
cache check (hashing the DAG file) and the HTML rendering, over HTTP on the loopback.

Rows:

- ``cold``: the first request to the view after the server started (the DAG file parsed, the
  export compiled, the graph rendered with Graphviz, the CloudFormation template built);
- ``warm``: ``--runs`` sequential requests of each route (the cache hit path);
- ``reference``: Airflow's own ``GET /api/v2/dags/{dag_id}`` on the same server, for scale;
- ``after edit``: the DAG file copy changed (a comment appended) before each of 5 requests: the
  cache key (file hash) changes, so the view rebuilds (parse, export, graph, template).

Target: the view of the retraining DAG answers in <= 300 ms warm (p90).

    .venv/bin/python bench/ui_view.py [--runs 50] [--json FILE]      # = make bench-ui

Exit status: non-zero only when the server does not start or a request fails, never because
the target is missed.
"""

from __future__ import annotations

import argparse
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
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "model_retraining"
TARGET_MS = 300.0
USER, PASSWORD = "admin", "bench-password"


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
    with urllib.request.urlopen(req, timeout=60) as answer:
        payload = answer.read()
        status = answer.status
    return (time.perf_counter() - started) * 1000, status, payload


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="warm requests per route")
    parser.add_argument("--json", help="write the raw samples here")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    dags = work / "dags"
    shutil.copytree(ROOT / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
    dag_file = dags / "model_retraining.py"
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
        subprocess.run([*airflow, *step], env=env, cwd=ROOT, check=True, capture_output=True, timeout=300)

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
        view = f"{base}/stepfunctions/dags/{DAG_ID}"

        ms, status, body = request(view, token)
        assert status == 200 and b'data-status="exportable"' in body, body[:300]
        samples["view: cold (first request)"] = [ms]

        routes = {
            "view (HTML page)": view,
            "definition.json download": f"{view}/definition.json",
            "graph.svg": f"{view}/graph.svg",
            "JSON export (api/dags/{id})": f"{base}/stepfunctions/api/dags/{DAG_ID}",
            "deployed comparison (not connected)": f"{view}/deployed",
            "overview (all DAGs)": f"{base}/stepfunctions/",
            "reference: Airflow's GET /api/v2/dags/{id}": f"{base}/api/v2/dags/{DAG_ID}",
        }
        for url in routes.values():
            request(url, token)  # first call of each route (route-specific work, e.g. the comparison)
        # Interleaved rounds, so every route sees the same server state.
        for name in routes:
            samples[f"{name}: warm"] = []
        for _ in range(args.runs):
            for name, url in routes.items():
                ms, status, body = request(url, token)
                if status != 200 or not body:
                    raise RuntimeError(f"{url}: HTTP {status}")
                samples[f"{name}: warm"].append(ms)

        original = dag_file.read_text()
        rebuilds = []
        for i in range(5):
            dag_file.write_text(original + f"\n# bench edit {i}\n")
            rebuilds.append(request(view, token)[0])
        dag_file.write_text(original)
        samples["view: after a DAG file edit (rebuild)"] = rebuilds
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
    print("| request | n | median ms | p90 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for name, values in samples.items():
        print(
            f"| {name} | {len(values)} | {statistics.median(values):.1f} | "
            f"{percentile(values, 0.9):.1f} | {max(values):.1f} |"
        )
    warm = samples["view (HTML page): warm"]
    verdict = "met" if percentile(warm, 0.9) <= TARGET_MS else "MISSED"
    print(f"\nTarget (view warm p90 <= {TARGET_MS:.0f} ms): {verdict} ({percentile(warm, 0.9):.1f} ms)")
    if args.json:
        Path(args.json).write_text(json.dumps(samples, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
