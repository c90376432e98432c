"""Two runs of one DAG to compare: Airflow's ``dag.test()`` against the moto server, and its export in moto's
ASL interpreter (the doubles of ``tests/sfn_doubles.py``), each ending in the same kind of record.

``airflow_run`` and ``Interpreter.run`` both return a :class:`Run`: the run state, each task's final
state (``success`` / ``failed`` / ``skipped`` / ``not run``) and its number of attempts, so a test
compares them with one ``==``. A task's states in the machine are the states named after it
(``task`` or ``task: step``).
"""

from __future__ import annotations

import datetime
import itertools
import json
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests import sfn_doubles
from tests.asl_check import assert_valid

GOOD = Path(__file__).resolve().parent / "export_dags" / "good"
REGION = "us-east-1"
ACCOUNT = "123456789012"
DEADLINE = 20.0
SERVICE_ERROR_NAMES = {"s3": "S3", "glue": "Glue", "sfn": "Sfn"}


@dataclass
class Run:
    state: str  # "success" / "failed", Airflow's words
    tasks: dict[str, str]  # task id -> success / failed / skipped / not run
    attempts: dict[str, int] = field(default_factory=dict, compare=False)
    results: dict[str, Any] = field(default_factory=dict, compare=False)
    error: str | None = field(default=None, compare=False)


@cache
def load(dag_id: str, folder: Path = GOOD) -> Any:
    from exporters.loader import load_dag

    return load_dag(dag_id, dags_folder=folder)


def export_checked(dag: Any) -> dict[str, Any]:
    """The definition, after both validators, and its CloudFormation template through cfn-lint."""
    from exporters.api import export_dag_object
    from exporters.cloudformation import build_template
    from tests.test_export_cloudformation import cfn_lint

    result = export_dag_object(dag)
    assert_valid(result.definition)
    template = build_template(result, dag, now=datetime.datetime(2026, 11, 25, tzinfo=datetime.UTC))
    assert cfn_lint(template) == []
    return result.definition


def template_policy(dag: Any) -> dict[str, Any]:
    from exporters.api import export_dag_object
    from exporters.cloudformation import build_template

    template = build_template(export_dag_object(dag), dag, now=datetime.datetime(2026, 11, 25, tzinfo=datetime.UTC))
    role = template["Resources"]["StateMachineRole"]["Properties"]
    return role["Policies"][0]["PolicyDocument"]


# --------------------------------------------------------------------------------------------
# Airflow
# --------------------------------------------------------------------------------------------


def airflow_run(dag: Any, conf: dict[str, Any] | None = None) -> Run:
    """``dag.test()`` of ``dag`` with retries that wait 0 s (their number is kept; the delays are restored)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    saved = {t.task_id: (t.retry_delay, getattr(t, "poll_interval", None)) for t in dag.tasks}
    for task in dag.tasks:
        task.retry_delay = datetime.timedelta(0)
        if hasattr(task, "poll_interval"):
            task.poll_interval = 0.05
    _serialize_to_db(dag)
    try:
        run = dag.test(run_conf=conf or {})
    finally:
        for task in dag.tasks:
            task.retry_delay, poll = saved[task.task_id]
            if poll is not None:
                task.poll_interval = poll
    tasks, attempts, results = {}, {}, {}
    with create_session() as session:
        for ti in run.get_task_instances(session=session):
            state = str(ti.state) if ti.state else "not run"
            tasks[ti.task_id] = {"upstream_failed": "not run", "None": "not run"}.get(state, state)
            attempts[ti.task_id] = ti.try_number if state in ("success", "failed") else 0
            row = session.execute(
                XComModel.get_many(
                    run_id=run.run_id, dag_ids=run.dag_id, task_ids=ti.task_id, key="return_value"
                ).with_only_columns(XComModel.value)
            ).first()
            if row is not None:
                results[ti.task_id] = XComModel.deserialize_value(row)
    return Run(str(run.state), tasks, attempts, results)


def _serialize_to_db(dag: Any) -> None:
    """Store the DAG's file as the DAG processor would: ``dag.test()`` only syncs the configured dags folder."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.session import create_session

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    bag = BundleDagBag(dag_folder=dag.fileloc, bundle_path=Path(dag.fileloc).parent, bundle_name="dags-folder")
    sync_bag_to_db(bag, "dags-folder", None)


# --------------------------------------------------------------------------------------------
# The interpreter
# --------------------------------------------------------------------------------------------


class Interpreter:
    """moto's ASL interpreter with the doubles; use as a context manager (one mocked account)."""

    def __enter__(self) -> Interpreter:
        import boto3
        from moto import mock_aws

        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.__enter__()
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
            state_task_service_aws_sdk,
        )

        self._doubles_cm = sfn_doubles.installed()
        self.doubles = self._doubles_cm.__enter__()
        # Step Functions names aws-sdk errors "<Service>.<Name>Exception" with these service spellings.
        self._error_names = pytest.MonkeyPatch()
        for service, spelling in SERVICE_ERROR_NAMES.items():
            self._error_names.setitem(state_task_service_aws_sdk._SERVICE_ERROR_NAMES, service, spelling)
        _fix_start_execution(self._error_names)
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self._names = itertools.count(1)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._error_names.undo()
        self._doubles_cm.__exit__(*exc)
        self._mock.__exit__(*exc)

    def client(self, service: str):
        import boto3

        return boto3.client(service, region_name=REGION)

    def create(self, definition: dict[str, Any], name: str = "exported") -> str:
        return self.sfn.create_state_machine(
            name=name,
            definition=json.dumps(definition),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/StepFunctions",
        )["stateMachineArn"]

    def run(self, machine: str, tasks: list[str], execution_input: dict[str, Any] | None = None) -> Run:
        self.doubles.calls.clear()
        arn = self.sfn.start_execution(
            stateMachineArn=machine, name=f"run-{next(self._names):03d}", input=json.dumps(execution_input or {})
        )["executionArn"]
        deadline = time.monotonic() + DEADLINE
        while (described := self.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, f"still running; calls so far: {self.doubles.actions()}"
            time.sleep(0.05)
        events = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        return run_of(described, events, tasks)


def _fix_start_execution(mp: pytest.MonkeyPatch) -> None:
    """moto 5.2.5 bug: ``states:startExecution`` passes the documented ``StateMachineArn``/``Input``/``Name``
    to boto3 as they are, and boto3 wants ``stateMachineArn``/``input``/``name`` (the call fails with
    ``States.Runtime`` "'Input'"); its answer keeps boto3's ``executionArn`` where ``.sync:2`` reads
    ``ExecutionArn``. Rename both ways around moto's own normalisation (which serialises Input)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_sfn

    service = state_task_service_sfn.StateTaskServiceSfn
    original = service._normalise_parameters

    def normalise(self, parameters, boto_service_name=None, service_action_name=None):
        original(self, parameters, boto_service_name, service_action_name)
        if service_action_name is None and self._get_boto_service_action() == "start_execution":
            for key in ("StateMachineArn", "Input", "Name"):
                if key in parameters:
                    parameters[key[0].lower() + key[1:]] = parameters.pop(key)

    mp.setattr(service, "_normalise_parameters", normalise)
    original_call = service._eval_service_task

    def call(self, env, resource_runtime_part, normalised_parameters, state_credentials):
        original_call(self, env, resource_runtime_part, normalised_parameters, state_credentials)
        if self._get_boto_service_action() == "start_execution":  # the answer's keys as Step Functions names them
            env.stack[-1] = {k[0].upper() + k[1:]: v for k, v in env.stack[-1].items()}

    mp.setattr(service, "_eval_service_task", call)


def owner(state_name: str, tasks: list[str]) -> str | None:
    for task in sorted(tasks, key=len, reverse=True):
        if state_name == task or state_name.startswith(f"{task}: "):
            return task
    return None


def run_of(described: dict[str, Any], events: list[dict[str, Any]], tasks: list[str]) -> Run:
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    status = {t: "not run" for t in tasks}
    for name in entered:
        task = owner(name, tasks)
        if task is not None and status[task] != "skipped":
            # "<task>: skipped" marks the task skipped (by its trigger rule, or by itself: a soft_fail sensor).
            status[task] = "skipped" if name == f"{task}: skipped" else "success"
    failed = described["status"] != "SUCCEEDED"
    if failed and entered:
        last = owner(entered[-1], tasks)
        if last is not None:
            status[last] = "failed"
    # Attempts of a task: the TaskScheduled events within the first entry of its first Task state (Retry
    # repeats them there), plus the restarts through its own "<task>: retry" state (sensors' retries).
    attempts = {t: 1 if status[t] in ("success", "failed") else 0 for t in tasks}
    first_entry: dict[str, int] = {}
    entry_index, current = -1, None
    scheduled: dict[int, int] = {}
    for event in events:
        if "stateEnteredEventDetails" in event:
            entry_index += 1
            current = event["stateEnteredEventDetails"]["name"]
            task = owner(current, tasks)
            if task is not None and current == f"{task}: retry":
                attempts[task] += 1
        elif event["type"] == "TaskScheduled" and current is not None:
            task = owner(current, tasks)
            if task is not None:
                first_entry.setdefault(task, entry_index)
                scheduled[entry_index] = scheduled.get(entry_index, 0) + 1
    for task, index in first_entry.items():
        attempts[task] += scheduled[index] - 1
    output = json.loads(described["output"]) if described.get("output") else {}
    results = {t: output[t] for t in tasks if isinstance(output, dict) and t in output}
    return Run("failed" if failed else "success", status, attempts, results, described.get("error"))


# --------------------------------------------------------------------------------------------
# Both sides, run after run
# --------------------------------------------------------------------------------------------


@dataclass
class BothSides:
    airflow: list[Run]
    exported: list[Run]
    airflow_seen: Any  # ``observe`` on the moto server after Airflow's runs
    exported_seen: Any  # ``observe`` in the interpreter's account after the machine's runs
    exported_calls: list[Any]  # the service calls of the machine's last run


def run_on_both_sides(aws: Any, dag: Any, tasks: list[str], confs: list[dict[str, Any] | None], observe) -> BothSides:
    """``dag`` run once per conf, one run after the other, in Airflow and as its checked export in the interpreter."""
    definition = export_checked(dag)
    airflow = [airflow_run(dag, conf) for conf in confs]
    airflow_seen = observe(aws.client)
    with Interpreter() as sfn:
        machine = sfn.create(definition)
        exported = [sfn.run(machine, tasks, conf) for conf in confs]
        return BothSides(airflow, exported, airflow_seen, observe(sfn.client), list(sfn.doubles.calls))
