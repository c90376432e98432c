"""Task groups: state names keep the group path, the graph draws a cluster per group, and a DAG with a nested
``TaskGroup`` and a ``@task_group``-built group runs the same in Airflow and in the exported machine.

Differential: ``tests/export_dags/good/task_groups.py`` runs with ``dag.test()`` against the moto server and
its export in moto's ASL interpreter, once with every task succeeding and once with ``publish.copy`` failing
(its source key missing): same run state, task states, attempts and bucket contents.
"""

from __future__ import annotations

import json
import re
import time

from tests.export14_harness import Interpreter, airflow_run, export_checked, load, owner
from tests.test_export_14_s3 import _objects

TASKS = [
    "prepare.create_bucket",
    "prepare.stage.raw",
    "prepare.stage.meta",
    "publish.copy",
    "publish.marker",
    "publish.cleanup",
]
MISSING = {"source_key": "raw/missing.csv"}


def test_nested_groups_run_as_in_airflow_one_task_failing(aws, airflow_db):
    dag = load("task_groups")
    assert sorted(dag.task_group_dict) == ["prepare", "prepare.stage", "publish"]
    definition = export_checked(dag)
    airflow = [airflow_run(dag), airflow_run(dag, MISSING)]
    airflow_data = _objects(aws.client)
    with Interpreter() as sfn:
        machine = sfn.create(definition)
        exported = [_run(sfn, machine, {}), _run(sfn, machine, MISSING)]
        exported_data = _objects(sfn.client)

    assert exported == [(r.state, r.tasks) for r in airflow]
    assert all(n == 1 for r in airflow for t, n in r.attempts.items() if r.tasks[t] != "not run")  # no retries
    assert (
        exported_data == airflow_data == {"groups-demo": {"published/data.csv": "a,b\n1,2", "published/_SUCCESS": "ok"}}
    )
    assert airflow[0].state == "success" and set(airflow[0].tasks.values()) == {"success"}
    assert airflow[1].state == "failed"
    assert airflow[1].tasks == {
        "prepare.create_bucket": "success",
        "prepare.stage.raw": "success",
        "prepare.stage.meta": "success",
        "publish.copy": "failed",
        "publish.marker": "not run",  # upstream_failed
        "publish.cleanup": "success",  # all_done
    }
    # State names keep the group path.
    assert {"prepare.create_bucket", "prepare.stage.raw", "publish.copy", "publish.cleanup"} <= _names(definition)


def _run(sfn: Interpreter, machine: str, execution_input: dict) -> tuple[str, dict[str, str]]:
    """The execution's run state and each task's state, read from its history.

    Branches of a Parallel run concurrently, so their events interleave: each Task event is attributed to
    the state it belongs to through ``previousEventId``. A task whose ``<task>: upstream_failed`` mark was
    entered did not run; one whose last Task event (in event order) failed, failed.
    """
    arn = sfn.sfn.start_execution(
        stateMachineArn=machine, name=f"groups-{len(execution_input)}", input=json.dumps(execution_input)
    )["executionArn"]
    deadline = time.monotonic() + 60
    while (described := sfn.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    events = {e["id"]: e for e in sfn.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]}

    def state_of(event: dict) -> str | None:
        while event is not None and "stateEnteredEventDetails" not in event:
            event = events.get(event.get("previousEventId"))
        return event["stateEnteredEventDetails"]["name"] if event else None

    tasks = {t: "not run" for t in TASKS}
    for event in events.values():
        name = state_of(event)
        task = owner(name, TASKS) if name else None
        if task is None or name == f"{task}: upstream_failed":
            continue
        if event["type"] == "TaskFailed":  # the last call decides (a stock task may probe, e.g. HeadBucket)
            tasks[task] = "failed"
        elif event["type"] == "TaskSucceeded" or (event["type"] == "PassStateExited" and tasks[task] == "not run"):
            tasks[task] = "success"
    return ("success" if described["status"] == "SUCCEEDED" else "failed"), tasks


def _names(machine: dict) -> set[str]:
    names = set(machine["States"])
    for state in machine["States"].values():
        for branch in [*state.get("Branches", []), *([state["ItemProcessor"]] if "ItemProcessor" in state else [])]:
            names |= _names(branch)
    return names


def test_long_group_paths_are_shortened_predictably_keeping_the_task_and_unique():
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, TaskGroup

    from exporters.api import export_dag_object
    from exporters.converters import state_name
    from tests.asl_check import assert_valid

    outer = "feature_engineering_for_the_quarterly_churn_model"
    inner = "per_customer_segment_checks_of_the_raw_tables"
    with DAG(dag_id="long_groups", schedule=None) as dag:
        with TaskGroup(outer):
            with TaskGroup(inner):
                first = EmptyOperator(task_id="row_count_is_positive")
                second = EmptyOperator(task_id="row_count_is_positive_too")
            with TaskGroup(inner + "_again"):
                third = EmptyOperator(task_id="row_count_is_positive")
        first >> second >> third
    definition = export_dag_object(dag).definition
    assert_valid(definition)
    names = [n for n in definition["States"] if "row_count" in n]
    assert len(names) == len(set(names)) == 3
    for name in names:
        assert len(name) <= 80 and re.fullmatch(
            r"feature_engineering[a-z_.]*~[0-9a-f]{8}\.row_count_is_positive(_too)?", name
        )
    # The same id always gives the same name; a suffix is kept whole too.
    task_id = f"{outer}.{inner}.row_count_is_positive"
    assert state_name(task_id) == state_name(task_id) == names[0]
    assert state_name(task_id, "run failed").endswith(".row_count_is_positive: run failed")
    assert state_name("short.task", "run failed") == "short.task: run failed"


def test_the_graph_draws_a_cluster_per_group_nested():
    from exporters.api import export_dag_object
    from exporters.rendering import group_path, to_graphviz

    assert group_path("prepare.stage.raw: all_success?") == ("prepare", "prepare.stage")
    assert group_path("Parallel: prepare.stage.meta, prepare.stage.raw") == ()
    assert group_path("Run time: parts") == () and group_path("plain_task") == ()
    source = to_graphviz(export_dag_object(load("task_groups")).definition, "task_groups").source
    assert _clusters_around(source, "prepare.stage.raw") == [
        "task group prepare.stage",
        "task group prepare",
        "Parallel: prepare.stage.meta, prepare.stage.raw",
    ]
    assert _clusters_around(source, "prepare.create_bucket") == ["task group prepare"]
    assert _clusters_around(source, "publish.copy") == ["task group publish"]
    assert _clusters_around(source, "publish.marker") == [
        "task group publish",
        "Parallel: publish.cleanup, publish.marker",
    ]
    assert _clusters_around(source, "Apply params") == []  # states outside groups stay at the top level


def _clusters_around(source: str, state: str) -> list[str]:
    """The labels of the clusters holding the node of ``state``, innermost first (Graphviz's source nests a
    subgraph's body one tab deeper than its parent's; a cluster's label line opens its body)."""
    lines = source.splitlines()

    def depth(line: str) -> int:
        return len(line) - len(line.lstrip("\t"))

    at = next(i for i, line in enumerate(lines) if line.endswith(f'[label="{state}'))
    want, found = depth(lines[at]), []
    for line in reversed(lines[:at]):
        if not line.startswith("\t"):  # the second line of a two-line label
            continue
        if depth(line) < want:
            if line.strip().startswith("subgraph"):
                want -= 1
            else:
                return found
        elif depth(line) == want and line.strip().startswith(("color=", "label=")) and 'label="' in line:
            found.append(line.split('label="', 1)[1].split('"', 1)[0])
    return found
