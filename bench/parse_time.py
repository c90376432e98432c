"""DagBag parse time of dags/model_retraining.py against the same pipeline on the provider's stock operators.

Method: for each DAG file, ``--runs`` fresh Python processes (runs of the two
files interleaved, after one untimed warm-up each). Every process imports
Airflow and ``DagBag`` first (not timed), then times ``DagBag(dag_folder=<file>)``
and reports, after the parse, whether any heavy module (pandas, pyspark,
xgboost, sagemaker, exporters) is in ``sys.modules``.

Environment of each process: ``AIRFLOW_HOME`` a fresh temp dir,
``AIRFLOW__CORE__LOAD_EXAMPLES=False``, ``PYTHONPATH`` = ``plugins/`` and the
project root (as ``make`` sets it), an empty plugins folder so Airflow's plugin
loading cannot pre-import anything for either file.

    .venv/bin/python bench/parse_time.py [--runs 15] [--json out.json]

Exit status: non-zero only when a parse fails (import errors, no DAG found, a
child process crashing), never because a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = ROOT / "dags" / "model_retraining.py"
STOCK = ROOT / "bench" / "stock_dag" / "model_retraining_stock.py"
HEAVY_MODULES = ("pandas", "pyspark", "xgboost", "sagemaker", "exporters")
TARGET_RATIO = 1.1

# Runs in the child process: everything before ``t0`` is not timed.
CHILD = r"""
import json, sys, time
import airflow
from airflow.dag_processing.dagbag import DagBag

path, heavy = sys.argv[1], sys.argv[2].split(",")
before = set(sys.modules)
t0, c0 = time.perf_counter(), time.process_time()
bag = DagBag(dag_folder=path)
elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(heavy))
new = set(sys.modules) - before
print(json.dumps({
    "ms": elapsed * 1000,
    "cpu_ms": cpu * 1000,
    "dags": sorted(bag.dag_ids),
    "tasks": sum(len(d.tasks) for d in bag.dags.values()),
    "import_errors": {str(k): str(v)[-2000:] for k, v in bag.import_errors.items()},
    "heavy": loaded,
    "new_modules": len(new),
    "botocore": any(m == "botocore" or m.startswith("botocore.") for m in new),
    "airflow_version": airflow.__version__,
}))
"""


def child_env(airflow_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    plugins_dir = airflow_home / "empty-plugins"
    plugins_dir.mkdir(exist_ok=True)
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_dir),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "PYTHONPATH": os.pathsep.join([str(ROOT)]),
        }
    )
    return env


def parse_once(path: Path, env: dict[str, str]) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), ",".join(HEAVY_MODULES)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"parsing {path} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(lines[-1])
    if result["import_errors"]:
        raise RuntimeError(f"import errors in {path}:\n" + "\n".join(result["import_errors"].values()))
    if not result["dags"]:
        raise RuntimeError(f"no DAG found in {path}")
    return result


def p90(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh processes per DAG file (default 15)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    files = {"ours": OURS, "stock": STOCK}
    load_before = os.getloadavg()[0]
    samples: dict[str, list[dict]] = {name: [] for name in files}
    with tempfile.TemporaryDirectory(prefix="parse-bench-") as home:
        env = child_env(Path(home))
        try:
            for path in files.values():  # warm-up: config file, bytecode caches
                parse_once(path, env)
            for i in range(args.runs):
                order = list(files.items()) if i % 2 == 0 else list(reversed(files.items()))
                for name, path in order:
                    samples[name].append(parse_once(path, env))
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1

    stock_median = statistics.median(s["ms"] for s in samples["stock"])
    rows = []
    for name, path in files.items():
        times = [s["ms"] for s in samples[name]]
        heavy = sorted({m for s in samples[name] for m in s["heavy"]})
        median = statistics.median(times)
        rows.append(
            {
                "dag": f"{name}: {path.relative_to(ROOT)}",
                "dag_id": samples[name][0]["dags"][0],
                "tasks": samples[name][0]["tasks"],
                "median_ms": median,
                "p90_ms": p90(times),
                "cpu_median_ms": statistics.median(s["cpu_ms"] for s in samples[name]),
                "ratio": median / stock_median,
                "heavy": heavy,
                "botocore": any(s["botocore"] for s in samples[name]),
                "new_modules": statistics.median(s["new_modules"] for s in samples[name]),
                "times_ms": times,
            }
        )

    version = samples["ours"][0]["airflow_version"]
    load = f"1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, {os.cpu_count()} CPUs"
    print(
        f"DagBag parse time, {args.runs} fresh processes per file, Airflow {version}, Python {sys.version.split()[0]}"
    )
    print(load)
    print()
    print(
        "| dag | tasks | median ms | p90 ms | ratio vs stock | median CPU ms "
        "| heavy modules imported | botocore imported | modules imported by parse |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---|---:|")
    for r in rows:
        print(
            f"| {r['dag']} | {r['tasks']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | {r['ratio']:.2f}x "
            f"| {r['cpu_median_ms']:.1f} "
            f"| {', '.join(r['heavy']) or 'none'} | {'yes' if r['botocore'] else 'no'} | {r['new_modules']:.0f} |"
        )
    ours = rows[0]
    print()
    ratio_ok = ours["ratio"] <= TARGET_RATIO
    heavy_ok = not ours["heavy"]
    print(f"target ours <= {TARGET_RATIO}x stock: {'met' if ratio_ok else 'MISSED'} ({ours['ratio']:.2f}x)")
    print(
        f"target no heavy module imported by ours: {'met' if heavy_ok else 'MISSED'} "
        f"({', '.join(ours['heavy']) or 'none'})"
    )

    if args.json:
        args.json.write_text(
            json.dumps({"airflow_version": version, "runs": args.runs, "load": load, "rows": rows}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
