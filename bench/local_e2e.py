"""One local run of ``model_retraining`` end to end: wall time per stage and peak memory per stage.

    .venv/bin/python bench/local_e2e.py [--rows 5000]

Real parts throughout: ``dag.test()`` of the real DAG (Airflow on a fresh
SQLite DB) against the real local backend (Spark ETL, XGBoost training,
endpoint). Memory is the resident set of this process plus the backend and all
its children (Spark's JVM, the training worker), sampled every 50 ms; each
stage's peak is the highest sample inside its start/end window.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
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

    import psutil

    from localaws.churn_data import write_batch
    from tests.aws_doubles import free_port
    from tests.local_backend import LocalBackend

    backend = LocalBackend(work / "data", free_port()).start()
    os.environ["AIRFLOW_CONN_RETRAINING_LOCAL"] = backend.connection_json()
    write_batch(backend.s3_path("s3://retraining-demo/raw/churn.csv"), rows=args.rows, seed=1)
    raw_size = backend.s3_path("s3://retraining-demo/raw/churn.csv").stat().st_size

    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    me = psutil.Process()
    server = psutil.Process(backend.process.pid)

    def sample() -> None:
        while not stop.is_set():
            total = 0
            for proc in [me, server, *server.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            samples.append((time.time(), total))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(str(ROOT / "dags")).dags["model_retraining"]
        for task in dag.tasks:
            if hasattr(task, "poll_interval"):
                task.poll_interval = 1
        started = time.time()
        run = dag.test()
        total = time.time() - started
    finally:
        stop.set()
        sampler.join()
        backend.stop()

    print(f"dataset: {args.rows} customers, {raw_size / 1024:.0f} KiB raw CSV; run state: {run.state}")
    print(f"{'stage':<26} {'seconds':>8} {'peak MiB':>9}")
    for ti in sorted(run.get_task_instances(), key=lambda t: t.start_date or run.start_date):
        if ti.start_date is None or ti.end_date is None or ti.state == "skipped":
            print(f"{ti.task_id:<26} {'-':>8} {'-':>9}  ({ti.state})")
            continue
        start, end = ti.start_date.timestamp(), ti.end_date.timestamp()
        window = [rss for t, rss in samples if start <= t <= end] or [0]
        print(f"{ti.task_id:<26} {end - start:8.1f} {max(window) / 2**20:9.0f}")
    print(f"{'whole run (dag.test)':<26} {total:8.1f} {max(r for _, r in samples) / 2**20:9.0f}")
    print(f"\ntarget: whole run <= 120 s on this {os.cpu_count()}-core machine")
    return 0 if run.state == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
