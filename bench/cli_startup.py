"""Start-up of the exporter CLI: wall time of ``python -m exporters ... --help`` and what it imports.

Method: for each command line, ``--runs`` fresh Python processes (after one untimed warm-up), each
timed from spawn to exit; the child reports which heavy packages its argument parsing imported.
``--root`` measures another checkout (e.g. ``git worktree add /tmp/before <rev>``) with this venv.

    .venv/bin/python bench/cli_startup.py [--runs 7] [--root DIR]

Exit status: non-zero only when a command fails, never because a target is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (["--help"], ["export", "--help"], ["deploy", "--help"], ["run", "--help"])
HEAVY = ("airflow", "retraining", "sqlalchemy", "boto3", "pendulum")

# Runs the CLI's __main__ in this process, then lists the heavy packages it imported.
CHILD = """
import runpy, sys
sys.argv = ["exporters", *sys.argv[2:]]
try:
    runpy.run_module("exporters", run_name="__main__")
except SystemExit:
    pass
heavy = {heavy!r}
sys.stderr.write(",".join(sorted({{m.split(".")[0] for m in sys.modules}} & set(heavy))) + "\\n")
"""


def run_once(root: Path, argv: list[str]) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(heavy=HEAVY), "-", *argv],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or "usage:" not in done.stdout:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return elapsed, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to measure (default: this one)")
    args = parser.parse_args()
    print(f"python -m exporters ... in {args.root}: median of {args.runs} fresh processes")
    print(f"{'command':<28} {'median s':>9} {'min s':>7}  heavy packages imported")
    for argv in COMMANDS:
        run_once(args.root, argv)  # warm-up: file-system caches
        samples = [run_once(args.root, argv) for _ in range(args.runs)]
        times = [t for t, _ in samples]
        heavy = samples[-1][1] or "none"
        print(f"{' '.join(argv):<28} {statistics.median(times):>9.2f} {min(times):>7.2f}  {heavy}")
    print("target: argument parsing imports none of airflow, retraining, sqlalchemy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
