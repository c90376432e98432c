"""Export time of ``exporters.api.export_dag_object`` against DAG size (10 to 5,000 tasks), two shapes.

Method: for each shape, one DAG per size is built in memory (not timed: no
DagBag, no file) and exported once untimed (warm-up); then ``--runs`` rounds each
time one export of every size in turn (sizes interleaved, so a load change on a
shared machine hits all sizes alike), in its three phases, the calls
``export_dag_object`` makes: Airflow's serialization of the parsed DAG (what the
DAG processor does at every parse), reading it back (Airflow's deserialization and
our task views), and the compile. "From stored" is read back + compile (what the
UI view does with the DAG processor's JSON); end to end is all three (the CLI).
Also ``json.dumps`` of each definition (``indent=2``, what the CLI writes). Medians.
Sizes: states per task at every level, bytes per task of the compact definition
(what deploy sends; Step Functions' definition quota is 1 MB).

Shapes, built from our operators with references so converters and the
reference translator do real work:

* ``chain``: one sequence; every task a ``GlueJobRunOperator`` whose job name is
  a ``ParamRef`` and whose arguments read the previous task's run id (``ResultRef``).
* ``fanout``: repeated width-10 fan-out/fan-in stages: a hub (``LambdaInvokeOperator``
  reading a ``ResultRef`` of the previous stage; ``EmptyOperator`` for the first)
  then 10 ``GlueJobRunOperator`` workers side by side; the next hub joins them.
  Each stage becomes a Parallel state with 10 branches and a JsonMerge of their outputs.

Mapping is data, not states: a DAG with one ``SageMakerTrainingJobOperator`` mapped over 1,000
literal hyperparameter sets (and a Lambda reading the candidates' names) is exported and timed
the same way against a 10-task chain; target: within 1.5x of it.

Targets: 1,000 tasks in at most 1 s; linear growth (5,000 tasks at most 5.5x the
1,000-task time), per shape, reported for compile, from stored and end to end.
Exit status is non-zero only when an export fails, never because a target is missed.

    .venv/bin/python bench/export_scaling.py [--runs 7] [--sizes 10,100,1000,5000] [--json out.json]
        [--profile SHAPE:SIZE]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = (10, 100, 1000, 5000)
SHAPES = ("chain", "fanout")
WIDTH = 10
TARGET_1000_MS = 1000.0
TARGET_GROWTH = 5.5
MAX_DEFINITION_BYTES = 1024 * 1024  # Step Functions' definition size quota


def prepare() -> None:
    """Our operators importable; Airflow's home in a temp dir (the bench writes nothing in the repo)."""
    for extra in (ROOT,):
        if str(extra) not in sys.path:
            sys.path.insert(0, str(extra))
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="export-bench-airflow-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")


def build_dag(shape: str, size: int):
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, Param

    from retraining import GlueJobRunOperator, LambdaInvokeOperator, ParamRef, ResultRef

    params = {"job": Param("etl", type="string"), "fn": Param("check", type="string")}
    dag = DAG(dag_id=f"bench_{shape}_{size}", schedule=None, params=params)
    with dag:
        if shape == "chain":
            previous = None
            for i in range(size):
                args = {"--STEP": str(i)}
                if previous is not None:
                    args["--PREVIOUS_RUN"] = ResultRef(previous.task_id, "JobRunId")
                task = GlueJobRunOperator(task_id=f"t{i:05d}", job_name=ParamRef("job"), script_arguments=args)
                if previous is not None:
                    previous >> task
                previous = task
        elif shape == "fanout":
            made = 0
            workers: list = []
            stage = 0
            while made < size:
                if stage == 0:
                    new_hub = EmptyOperator(task_id=f"s{stage:04d}_hub")
                else:
                    new_hub = LambdaInvokeOperator(
                        task_id=f"s{stage:04d}_hub",
                        function_name=ParamRef("fn"),
                        payload={"first_run": ResultRef(workers[0].task_id, "JobRunId")},
                    )
                if workers:
                    workers >> new_hub
                hub = new_hub
                made += 1
                width = min(WIDTH, size - made)
                if width == 1:  # a fan-out needs two branches: end on a plain successor
                    width = 0
                    tail = EmptyOperator(task_id=f"s{stage:04d}_tail")
                    hub >> tail
                    made += 1
                workers = [
                    GlueJobRunOperator(
                        task_id=f"s{stage:04d}_w{j}", job_name=ParamRef("job"), script_arguments={"--W": str(j)}
                    )
                    for j in range(width)
                ]
                if workers:
                    hub >> workers
                made += width
                stage += 1
            # The last stage's workers fan in to nothing: they end the run side by side.
        else:
            raise ValueError(shape)
    assert len(dag.tasks) == size, (shape, size, len(dag.tasks))
    return dag


def measure_shape(shape: str, sizes: list[int], runs: int) -> list[dict]:
    """Time every size of one shape, sizes interleaved within each repetition (load drifts hit all sizes alike).

    One export is timed in its three phases, exactly the calls ``export_dag_object`` makes:
    Airflow's serialization of the parsed DAG (``serialized.serialize``: what the DAG processor
    does at every parse), reading it back (``serialized.from_serialized``: Airflow's
    deserialization and our task views) and the compile (``api.export_view``). End to end is
    their sum; "from stored" (read back + compile) is what the UI view and ``export_serialized`` do.
    """
    from exporters import serialized
    from exporters.api import export_dag_object, export_view
    from exporters.quotas import compact_json

    dags = {size: build_dag(shape, size) for size in sizes}
    results = {size: export_dag_object(dag) for size, dag in dags.items()}  # warm-up, untimed
    definitions = {size: result.definition for size, result in results.items()}
    phases = ("serialize", "read_back", "compile", "dumps")
    times: dict[str, dict[int, list[float]]] = {phase: {size: [] for size in sizes} for phase in phases}
    texts: dict[int, str] = {}

    def timed(phase: str, size: int, call, *args, **kwargs):
        gc.collect()
        start = time.perf_counter()
        value = call(*args, **kwargs)
        times[phase][size].append((time.perf_counter() - start) * 1000)
        return value

    for _ in range(runs):
        for size in sizes:
            data = timed("serialize", size, serialized.serialize, dags[size])
            view = timed("read_back", size, serialized.from_serialized, data, live=dags[size])
            results[size] = timed("compile", size, export_view, view)
        for size in sizes:
            texts[size] = timed("dumps", size, json.dumps, definitions[size], indent=2, ensure_ascii=False)
    rows = []
    for size in sizes:
        median = {phase: statistics.median(times[phase][size]) for phase in phases}
        end_to_end = [sum(times[p][size][i] for p in ("serialize", "read_back", "compile")) for i in range(runs)]
        from_stored = [sum(times[p][size][i] for p in ("read_back", "compile")) for i in range(runs)]
        definition = definitions[size]
        rows.append(
            {
                "tasks": size,
                "shape": shape,
                "serialize_ms": median["serialize"],
                "read_back_ms": median["read_back"],
                "compile_ms": median["compile"],
                "compile_min_ms": min(times["compile"][size]),
                "from_stored_ms": statistics.median(from_stored),
                "from_stored_min_ms": min(from_stored),
                "export_ms": statistics.median(end_to_end),
                "export_min_ms": min(end_to_end),
                "dumps_ms": median["dumps"],
                "top_states": len(definition["States"]),
                "all_states": count_states(definition),
                "compact_bytes": len(compact_json(definition).encode()),
                "json_kb": len(texts[size]) / 1024,
                "warnings": len(results[size].warnings),
                "times_ms": {phase: times[phase][size] for phase in phases},
            }
        )
    return rows


# -- mapping is data, not states: a 1,000-item mapped task against a 10-task DAG -------------------------
MAPPED_ITEMS = 1000
MAPPED_BASELINE_TASKS = 10
TARGET_MAPPED_RATIO = 1.5  # "as fast as a 10-task DAG": within 1.5x of its export time


def build_mapped_dag(items: int):
    """One ``SageMakerTrainingJobOperator`` mapped over ``items`` hyperparameter sets, then a Lambda reading
    the candidates' job names (a list) — a Map state whatever ``items`` is."""
    from airflow.sdk import DAG

    from retraining import LambdaInvokeOperator, ResultRef, RunUniqueName, SageMakerTrainingJobOperator
    from retraining.sagemaker import xgboost_training_request

    request = xgboost_training_request(
        training_job_name=RunUniqueName("cand"),
        role_arn="arn:aws:iam::123456789012:role/SageMaker",
        image_uri="xgboost:1.7-1",
        train_s3_uri="s3://bench/train/",
        validation_s3_uri="s3://bench/validation/",
        output_s3_uri="s3://bench/models/",
    )
    with DAG(dag_id=f"bench_mapped_{items}", schedule=None) as dag:
        train = SageMakerTrainingJobOperator.partial(task_id="train_candidate", request=request).expand(
            hyperparameters=[{"eta": f"0.{i:04d}"} for i in range(items)]
        )
        pick = LambdaInvokeOperator(
            task_id="pick_best",
            function_name="select-best",
            payload={"jobs": ResultRef("train_candidate", "TrainingJobName")},
        )
        train >> pick
    return dag


def measure_mapping(runs: int) -> list[dict]:
    """Export time of the mapped DAG and of a 10-task chain, interleaved, median and min."""
    from exporters.api import export_dag_object

    dags = {
        f"chain, {MAPPED_BASELINE_TASKS} tasks": build_dag("chain", MAPPED_BASELINE_TASKS),
        f"1 task mapped over {MAPPED_ITEMS:,} items (+1 reader)": build_mapped_dag(MAPPED_ITEMS),
    }
    results = {label: export_dag_object(dag) for label, dag in dags.items()}  # warm-up, untimed
    times: dict[str, list[float]] = {label: [] for label in dags}
    for _ in range(runs):
        for label, dag in dags.items():
            gc.collect()
            start = time.perf_counter()
            results[label] = export_dag_object(dag)
            times[label].append((time.perf_counter() - start) * 1000)
    rows = []
    for label in dags:
        definition = results[label].definition
        rows.append(
            {
                "dag": label,
                "export_ms": statistics.median(times[label]),
                "export_min_ms": min(times[label]),
                "states": sum(1 for _ in _walk(definition)),
                "json_kb": len(json.dumps(definition, indent=2)) / 1024,
            }
        )
    return rows


def _walk(definition: dict):
    from exporters.asl import walk_definition

    return walk_definition(definition)


def print_mapping(rows: list[dict]) -> None:
    print()
    print("| DAG | export ms (median) | export ms (min) | states (nested included) | JSON KiB |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['dag']} | {r['export_ms']:.1f} | {r['export_min_ms']:.1f} | {r['states']} | {r['json_kb']:.0f} |")
    base, mapped = rows
    ratio = mapped["export_ms"] / base["export_ms"]
    print(
        f"target mapped: {MAPPED_ITEMS:,}-item mapped task <= {TARGET_MAPPED_RATIO}x a {MAPPED_BASELINE_TASKS}-task "
        f"DAG: {'met' if ratio <= TARGET_MAPPED_RATIO else 'MISSED'} ({ratio:.2f}x median)"
    )


def count_states(definition: dict) -> int:
    """States at every level (Parallel branches included)."""
    total = 0
    for state in definition["States"].values():
        total += 1
        for branch in state.get("Branches", ()):
            total += count_states(branch)
        if "Iterator" in state or "ItemProcessor" in state:
            total += count_states(state.get("ItemProcessor") or state["Iterator"])
    return total


def profile(shape: str, size: int) -> None:
    import cProfile
    import pstats

    from exporters.api import export_dag_object

    dag = build_dag(shape, size)
    export_dag_object(dag)
    profiler = cProfile.Profile()
    profiler.enable()
    export_dag_object(dag)
    profiler.disable()
    stats = pstats.Stats(profiler).strip_dirs().sort_stats("cumulative")
    stats.print_stats(25)
    stats.sort_stats("tottime").print_stats(15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=7, help="timed exports per size and shape (median reported; default 7)"
    )
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated task counts")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--profile", metavar="SHAPE:SIZE", help="print a cProfile of one export instead of the table")
    args = parser.parse_args(argv)
    prepare()

    if args.profile:
        shape, size = args.profile.split(":")
        profile(shape, int(size))
        return 0

    sizes = [int(s) for s in args.sizes.split(",")]
    import airflow

    load_before = os.getloadavg()[0]
    rows = []
    try:
        for shape in SHAPES:
            rows.extend(measure_shape(shape, sizes, args.runs))
        mapping_rows = measure_mapping(args.runs)
    except Exception as err:  # noqa: BLE001 - an export failing is a bug to report, not a timing
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    load = f"1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, {os.cpu_count()} CPUs"

    by = {(r["shape"], r["tasks"]): r for r in rows}
    print(
        f"Export time (DAG built in memory, not timed), median of {args.runs} runs, sizes interleaved; "
        f"Airflow {airflow.__version__}, Python {platform.python_version()}, {platform.machine()}"
    )
    print(load)
    print()
    print(
        "| tasks | shape | serialize ms (Airflow) | read back ms | compile ms | from stored ms "
        "| end to end ms | compile µs/task | end to end µs/task | states/task (all levels) | bytes/task (compact) "
        "| JSON KiB (indent 2) |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        n = r["tasks"]
        print(
            f"| {n:,} | {r['shape']} | {r['serialize_ms']:.1f} | {r['read_back_ms']:.1f} | {r['compile_ms']:.1f} "
            f"| {r['from_stored_ms']:.1f} | {r['export_ms']:.1f} | {r['compile_ms'] * 1000 / n:.0f} "
            f"| {r['export_ms'] * 1000 / n:.0f} | {r['all_states'] / n:.2f} | {r['compact_bytes'] / n:.0f} "
            f"| {r['json_kb']:.0f} |"
        )
    print()
    for shape in SHAPES:
        if (shape, 1000) not in by:
            continue
        base = by[(shape, 1000)]
        big = by.get((shape, 5000))
        for label, key in (("compile", "compile_ms"), ("from stored", "from_stored_ms"), ("end to end", "export_ms")):
            line = (
                f"target {shape} {label}: 1,000 tasks <= {TARGET_1000_MS:.0f} ms: "
                f"{'met' if base[key] <= TARGET_1000_MS else 'MISSED'} ({base[key]:.0f} ms)"
            )
            if big is not None:
                ratio = big[key] / base[key]
                line += (
                    f"; 5,000 <= {TARGET_GROWTH}x 1,000: {'met' if ratio <= TARGET_GROWTH else 'MISSED'} ({ratio:.2f}x)"
                )
            print(line)
        size = base["compact_bytes"]
        print(
            f"definition {shape} 1,000 tasks: {size:,} bytes compact, "
            f"{'within' if size <= MAX_DEFINITION_BYTES else 'OVER'} the 1 MB definition quota"
        )
    print_mapping(mapping_rows)

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "airflow_version": airflow.__version__,
                    "runs": args.runs,
                    "load": load,
                    "rows": rows,
                    "mapping": mapping_rows,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
