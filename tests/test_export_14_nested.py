"""Nested pipelines: ``TriggerDagRunOperator`` → ``states:startExecution[.sync:2]`` of the child's state machine.

Airflow's ``dag.test()`` runs no scheduler, so a run it triggers never starts and a parent with
``wait_for_completion=True`` waits forever: the Airflow side here is the child DAG's own ``dag.test()``
with the parent's conf (what the triggered run does), and the parent's outcome follows the operator's
rule (the task fails when the child run fails; its retries trigger a new run). The export runs whole:
parent and child machines in moto's interpreter, the child started by the parent.
"""

from __future__ import annotations

import time

import pytest

from tests.export14_harness import Interpreter, airflow_run, export_checked, load, template_policy

PARENT_TASKS = ["build_features", "notify"]


def _objects(client) -> list[str]:
    s3 = client("s3")
    if not s3.list_buckets()["Buckets"]:
        return []
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket="nested-demo").get("Contents", []))


def _wait_for_children(sfn, machine: str) -> list[str]:
    deadline = time.monotonic() + 15
    while True:
        executions = sfn.sfn.list_executions(stateMachineArn=machine)["executions"]
        if all(e["status"] != "RUNNING" for e in executions) or time.monotonic() > deadline:
            return sorted(e["status"] for e in executions)
        time.sleep(0.05)


@pytest.mark.parametrize("bucket_exists", [True, False], ids=["child-succeeds", "child-fails"])
def test_the_child_runs_with_the_conf_and_its_outcome_is_the_tasks(aws, airflow_db, bucket_exists):
    parent, child = load("nested_parent"), load("nested_child")
    parent_definition, child_definition = export_checked(parent), export_checked(child)
    if bucket_exists:
        aws.client("s3").create_bucket(Bucket="nested-demo")
    child_in_airflow = airflow_run(child, {"bucket": "nested-demo", "label": "weekly"})
    airflow_objects = _objects(aws.client)  # before the interpreter's mock_aws resets moto's backends

    with Interpreter() as sfn:
        if bucket_exists:
            sfn.client("s3").create_bucket(Bucket="nested-demo")
        child_machine = sfn.create(child_definition, name="nested_child")
        exported = sfn.run(sfn.create(parent_definition, name="nested_parent"), PARENT_TASKS)
        child_runs = _wait_for_children(sfn, child_machine)
        exported_objects = _objects(sfn.client)

    if bucket_exists:
        assert child_in_airflow.state == "success"
        assert exported.state == "success" and exported.tasks == {"build_features": "success", "notify": "success"}
        assert child_runs == ["SUCCEEDED", "SUCCEEDED"]  # the waited-for run and the fire-and-forget one
        # The waited-for child wrote what the Airflow child run writes with the same conf.
        assert airflow_objects == ["features/weekly.csv"]
        assert exported_objects == ["features/notified.csv", "features/weekly.csv"]
    else:
        assert child_in_airflow.state == "failed"
        # The operator fails on a failed child run; retries=1 triggers a second run, which fails too.
        assert exported.state == "failed"
        assert exported.tasks == {"build_features": "failed", "notify": "not run"}
        assert exported.attempts["build_features"] == 2
        assert child_runs == ["FAILED", "FAILED"]


def test_iam_is_scoped_to_the_child_state_machine(aws):
    statements = {s["Sid"]: s for s in template_policy(load("nested_parent"))["Statement"]}
    head = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}"
    assert statements["StartChildExecution"]["Resource"] == [{"Fn::Sub": f"{head}:stateMachine:nested_child"}]
    assert statements["FollowChildExecution"]["Action"] == ["states:DescribeExecution", "states:StopExecution"]
    assert statements["FollowChildExecution"]["Resource"] == [{"Fn::Sub": f"{head}:execution:nested_child:*"}]


def test_a_child_that_cannot_be_exported_or_found_fails_the_parents_export(tmp_path):
    from exporters.errors import ExportError
    from exporters.loader import load_dag

    (tmp_path / "pipelines.py").write_text(
        "from airflow.providers.standard.operators.bash import BashOperator\n"
        "from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator\n"
        "from airflow.sdk import DAG\n"
        "with DAG('shell_child', schedule=None):\n"
        "    BashOperator(task_id='run_script', bash_command='echo hi')\n"
        "with DAG('parent_of_shell', schedule=None):\n"
        "    TriggerDagRunOperator(task_id='run_shell', trigger_dag_id='shell_child', wait_for_completion=True)\n"
        "with DAG('parent_of_nothing', schedule=None):\n"
        "    TriggerDagRunOperator(task_id='run_missing', trigger_dag_id='no_such_dag')\n"
        "with DAG('loop_a', schedule=None):\n"
        "    TriggerDagRunOperator(task_id='run_b', trigger_dag_id='loop_b')\n"
        "with DAG('loop_b', schedule=None):\n"
        "    TriggerDagRunOperator(task_id='run_a', trigger_dag_id='loop_a')\n"
    )
    from exporters.compiler import compile_dag

    for dag_id, task_id, reason in (
        ("parent_of_shell", "run_shell", "cannot be exported: task 'run_script': BashOperator"),
        ("parent_of_nothing", "run_missing", "cannot be loaded"),
        ("loop_a", "run_b", "cycle"),
    ):
        with pytest.raises(ExportError) as raised:
            compile_dag(load_dag(dag_id, tmp_path))
        (problem,) = raised.value.problems
        assert problem.task_id == task_id and reason in problem.reason, problem
