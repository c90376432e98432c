"""``model_retraining`` end to end on the local backend, both ways: Airflow and its exported state machine.

    .venv/bin/python bench/local_e2e.py [--rows 5000] [--only airflow|sfn]

Real parts throughout, one local backend process and one seeded dataset for both paths:

- Airflow: ``dag.test()`` of the real DAG (fresh SQLite DB) against the backend (Spark ETL, XGBoost
  training, the Lambda handler, the endpoint); the operators' poll interval 1 s instead of up to 30 s.
- State machine: ``python -m exporters run model_retraining --local`` (export, then moto's ASL interpreter
  with every integration answered by the same backend over HTTP), ``--time-scale 0.0333`` so the exported
  30 s endpoint poll waits 1 s, like the Airflow operator's first poll here.

Per stage: wall time and peak memory. Memory is the resident set of this process, the ``exporters run``
process and the backend with all its children (Spark's JVM, the training worker), sampled every 50 ms; a
stage's peak is the highest sample inside its window. Overhead of the state-machine path: execution time
minus the time inside the DAG's stages (the states of each task), over the latter (target <= 10 %).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]
DAG_ID = "model_retraining"
SFN_TIME_SCALE = "0.0333"


class Sampler:
    """Resident memory of this process tree plus the backend's, every 50 ms."""

    def __init__(self, backend_pid: int):
        import psutil  # a bench-only dependency, loaded with the bench

        self.psutil = psutil
        self.me = psutil.Process()
        self.server = psutil.Process(backend_pid)
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            processes = [self.me, *self.me.children(recursive=True), self.server]
            processes += self.server.children(recursive=True)
            for process in {p.pid: p for p in processes}.values():
                try:
                    total += process.memory_info().rss
                except self.psutil.Error:
                    pass
            self.samples.append((time.time(), total))
            time.sleep(0.05)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mib(self, start: float, end: float) -> float:
        window = [rss for t, rss in self.samples if start <= t <= end]
        if not window:  # a stage shorter than the sampling interval: the sample nearest to it
            window = [min(self.samples, key=lambda sample: abs(sample[0] - start))[1]]
        return max(window) / 2**20


def airflow_path(dag, sampler_factory) -> dict:
    for task in dag.tasks:
        if hasattr(task, "poll_interval"):
            task.poll_interval = 1
    with sampler_factory() as sampler:
        started = time.time()
        run = dag.test()
        ended = time.time()
    stages = []
    for ti in sorted(run.get_task_instances(), key=lambda t: t.start_date or run.start_date):
        if ti.start_date is None or ti.end_date is None or ti.state in ("skipped", "upstream_failed"):
            continue
        start, end = ti.start_date.timestamp(), ti.end_date.timestamp()
        stages.append((ti.task_id, end - start, sampler.peak_mib(start, end)))
    return {
        "state": run.state,
        "stages": stages,
        "total": ended - started,
        "peak": sampler.peak_mib(started, ended),
        "inside_stages": sum(s for _, s, _ in stages),
    }


def _epoch(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


def sfn_path(backend, task_ids: list[str], sampler_factory, work: Path) -> dict:
    out = work / "exports"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "exporters", "run", DAG_ID, "--local", "--out", str(out)]
    argv += ["--backend-port", str(backend.port), "--time-scale", SFN_TIME_SCALE]
    with sampler_factory() as sampler:
        started = time.time()
        completed = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
        ended = time.time()
    if completed.returncode not in (0, 1):
        raise SystemExit(f"exporters run failed:\n{completed.stdout}\n{completed.stderr}")
    [history_file] = sorted((out / DAG_ID / "executions").glob("local-*.json"))
    history = json.loads(history_file.read_text())
    windows: dict[str, list[float]] = {}
    entered: dict[str, float] = {}
    for event in history["events"]:
        if "stateEnteredEventDetails" in event:
            entered[event["stateEnteredEventDetails"]["name"]] = _epoch(event["timestamp"])
        elif "stateExitedEventDetails" in event:
            name = event["stateExitedEventDetails"]["name"]
            stage = name.split(": ", 1)[0]
            if stage in task_ids and name in entered:
                window = windows.setdefault(stage, [entered[name], 0.0, 0.0])
                window[1] = _epoch(event["timestamp"])
                window[2] += window[1] - entered[name]
    stages = [(stage, seconds, sampler.peak_mib(start, end)) for stage, (start, end, seconds) in windows.items()]
    execution = history["durationSeconds"]
    inside = sum(s for _, s, _ in stages)
    return {
        "state": history["status"],
        "stages": stages,
        "total": execution,
        "command": ended - started,
        "peak": sampler.peak_mib(started, ended),
        "inside_stages": inside,
        "overhead": (execution - inside) / inside,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--only", choices=("airflow", "sfn"), default=None)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    os.environ.update(
        {
            "AIRFLOW_HOME": str(work / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "RETRAINING_BACKEND": "local",
            "RETRAINING_LOCAL_DATA": str(work / "data"),
        }
    )
    (work / "data").mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)

    from localaws.churn_data import write_batch
    from tests.aws_doubles import free_port
    from tests.local_backend import LocalBackend

    backend = LocalBackend(work / "data", free_port()).start()
    os.environ["AIRFLOW_CONN_RETRAINING_LOCAL"] = backend.connection_json()
    write_batch(backend.s3_path("s3://retraining-demo/raw/churn.csv"), rows=args.rows, seed=1)
    raw_size = backend.s3_path("s3://retraining-demo/raw/churn.csv").stat().st_size
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(str(ROOT / "dags")).dags[DAG_ID]
    task_ids = [task.task_id for task in dag.topological_sort()]
    results = {}
    try:
        if args.only in (None, "airflow"):
            results["airflow"] = airflow_path(dag, lambda: Sampler(backend.process.pid))
        if args.only in (None, "sfn"):
            results["sfn"] = sfn_path(backend, task_ids, lambda: Sampler(backend.process.pid), work)
    finally:
        backend.stop()

    print(f"dataset: {args.rows} customers, {raw_size / 1024:.0f} KiB raw CSV; {os.cpu_count()} cores")
    print("  ".join(f"{name}: {result['state']}" for name, result in results.items()))
    header = f"{'stage':<26}"
    for name in results:
        header += f" {name + ' s':>10} {name + ' MiB':>10}"
    print(header)
    for task_id in task_ids:
        line = f"{task_id:<26}"
        for result in results.values():
            found = [(s, m) for t, s, m in result["stages"] if t == task_id]
            line += f" {found[0][0]:10.1f} {found[0][1]:10.0f}" if found else f" {'-':>10} {'-':>10}"
        print(line)
    for label, key in (("sum of stages", "inside_stages"), ("whole run", "total")):
        line = f"{label:<26}"
        for result in results.values():
            peak = f"{result['peak']:10.0f}" if key == "total" else f"{'':>10}"
            line += f" {result[key]:10.1f} {peak}"
        print(line)
    if "sfn" in results:
        sfn = results["sfn"]
        print(
            f"\nstate machine: execution {sfn['total']:.1f} s, inside the DAG's stages {sfn['inside_stages']:.1f} s: "
            f"overhead {sfn['overhead'] * 100:.1f} % (target <= 10 %); the command (DAG load, export, interpreter "
            f"start, execution) took {sfn['command']:.1f} s"
        )
    if "airflow" in results:
        airflow = results["airflow"]
        gaps = (airflow["total"] - airflow["inside_stages"]) / airflow["inside_stages"]
        print(f"airflow dag.test: {airflow['total']:.1f} s, {gaps * 100:.1f} % outside its tasks")
    ok = all(r["state"] in ("success", "SUCCEEDED") for r in results.values())
    return 0 if ok and ("sfn" not in results or results["sfn"]["overhead"] <= 0.10) else 1


if __name__ == "__main__":
    sys.exit(main())
