"""Differential test: Airflow's ``dag.test()`` vs the exported state machine in moto's ASL interpreter.

For every DAG of ``tests/export_dags/differential/corpus.py`` (and the real
``model_retraining``) and every scenario (all succeed; each AWS task fails on every
attempt; fails once, when it has retries; times out, when it has an
``execution_timeout``; the metric below, at, above the threshold and missing), both
sides run the same DAG with the same service answers (fail-once and timeout: for the first two tasks
of each DAG that retry / have one, to keep the run to a few minutes) and must agree on the run's
state, the set of tasks that ran, and the attempts of each AWS task.

What is replaced, and nothing else:

- Airflow: the ``execute`` of each AWS operator (ours and the provider's), i.e. its
  AWS calls, answers from the scenario (a result, or an ``AirflowException`` /
  ``AirflowTaskTimeout`` per attempt). Trigger rules, retries (delays set to 0 after
  export), branching, ``MetricRule`` and ``FailRunOperator`` run for real.
- Step Functions: the answers of Task states, through moto's Step Functions Local
  mock-config mechanism (``Environment.get_current_mocked_response``), fed from the
  scenario per invocation, so Retry and Catch act on real Task states. Everything
  else (Choice gates, Pass records, Parallel, Wait loops on sfn_doubles' virtual
  clock) is the interpreter running the exported definition unmodified.

Run time: each scenario is one ``dag.test()`` (the slow side) and one execution. The
scenario list is every case above; it is printed as a table (``-s`` to see it).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from exporters import concurrency
from tests import sfn_doubles

CORPUS = sfn_doubles.ROOT / "tests" / "export_dags" / "differential"
DAG_IDS = (
    "diff_linear",
    "diff_fan",
    "diff_nested",
    "diff_branch_join",
    "diff_branch_failure",
    "diff_handlers",
    "diff_handler_leaf",
    "diff_handler_on_fail",
    "diff_diamond",
    "diff_rules",
    "diff_timeouts",
    "diff_stock",
    "model_retraining",
)
REGION = "us-east-1"
ACCOUNT = "123456789012"
DEADLINE = 60.0
SAMPLED = 2  # fail-once and timeout scenarios per DAG (each dag.test() takes seconds)
RETRY_DELAY = re.compile(r"""(retry_delay["']?\s*[=:]\s*)timedelta\([^)]*\)""")
THRESHOLD = 0.1
METRICS = {"below": 0.05, "at": THRESHOLD, "above": 0.25, "missing": None}
# Step Functions error names of a failed call, per integration (what a real failure raises there).
SERVICE_ERRORS = {
    "glue": "Glue.AWSGlueException",
    "lambda": "Lambda.ServiceException",
    "sagemaker": "SageMaker.AmazonSageMakerException",
}


@dataclass(frozen=True)
class Scenario:
    name: str
    task: str | None = None  # the AWS task the failure applies to
    failure: str | None = None  # "fail" (every attempt), "once", "timeout"
    metric: float | None = 0.05  # validation:error the metric check reports (None: missing)

    def failing(self, task_id: str, attempt: int) -> str | None:
        """The failure of ``task_id``'s attempt (1-based), if any."""
        if task_id != self.task:
            return None
        if self.failure == "once":
            return "fail" if attempt == 1 else None
        return self.failure


@dataclass
class Observed:
    state: str
    ran: frozenset[str]
    attempts: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# The DAGs and their scenarios
# --------------------------------------------------------------------------------------------


def _aws_tasks(dag) -> list[Any]:
    from retraining.base import AwsStageOperator

    return [
        t
        for t in dag.tasks
        if isinstance(t, AwsStageOperator) or type(t).__module__.startswith("airflow.providers.amazon")
    ]


def scenarios(dag) -> list[Scenario]:
    """Every AWS task failing; failing once / timing out for the first two tasks that retry / have a timeout."""
    from retraining import MetricChoiceOperator

    out = [Scenario("all succeed")]
    tasks = sorted(_aws_tasks(dag), key=lambda t: t.task_id)
    out += [Scenario(f"{t.task_id} fails", t.task_id, "fail") for t in tasks]
    out += [Scenario(f"{t.task_id} fails once", t.task_id, "once") for t in tasks if t.retries][:SAMPLED]
    out += [Scenario(f"{t.task_id} times out", t.task_id, "timeout") for t in tasks if t.execution_timeout is not None][
        :SAMPLED
    ]
    if any(isinstance(t, MetricChoiceOperator) for t in dag.tasks):
        out += [Scenario(f"metric {side}", metric=value) for side, value in METRICS.items() if side != "below"]
    return out


@pytest.fixture(scope="module")
def exported():
    """The definitions, exported from the DAG files as they are."""
    from airflow.dag_processing.dagbag import DagBag

    from exporters.api import export_dag_object

    bag = DagBag(str(CORPUS))
    assert not bag.import_errors, bag.import_errors
    originals = {**bag.dags, **DagBag(str(sfn_doubles.ROOT / "dags")).dags}
    return {dag_id: export_dag_object(originals[dag_id]) for dag_id in DAG_IDS}


@pytest.fixture(scope="module")
def dags(airflow_db, tmp_path_factory):
    """The same DAGs for dag.test(), from a DAGs folder of copies whose retry delays are 0 (timing only)."""
    from airflow import settings
    from airflow.dag_processing.dagbag import DagBag

    folder = tmp_path_factory.mktemp("differential-dags")
    for source in (CORPUS / "corpus.py", sfn_doubles.ROOT / "dags" / "model_retraining.py"):
        text = RETRY_DELAY.sub(r"\1timedelta(0)", source.read_text())
        (folder / source.name).write_text(text)
    with pytest.MonkeyPatch.context() as mp:
        # dag.test() serializes the DAG from the "dags-folder" bundle, whose path is settings.DAGS_FOLDER.
        mp.setattr(settings, "DAGS_FOLDER", str(folder))
        bag = DagBag(str(folder))
        assert not bag.import_errors, bag.import_errors
        yield bag.dags


# --------------------------------------------------------------------------------------------
# Airflow side
# --------------------------------------------------------------------------------------------


def _canned_result(task, scenario: Scenario) -> Any:
    from retraining import LambdaInvokeOperator

    if isinstance(task, LambdaInvokeOperator) or "Lambda" in type(task).__name__:
        metrics = [{"MetricName": "train:error", "Value": 0.01}]
        if scenario.metric is not None:
            metrics.append({"MetricName": "validation:error", "Value": scenario.metric})
        return {"trainingMetrics": metrics}
    out: dict[str, Any] = {}
    for dotted in getattr(task, "result_fields", ()) or ():
        target = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = f"{task.task_id}-{dotted}"
    return out or None


def run_airflow(dag, scenario: Scenario, monkeypatch) -> Observed:
    from airflow.sdk.exceptions import AirflowException, AirflowTaskTimeout

    attempts: Counter = Counter()
    classes = {type(t) for t in _aws_tasks(dag)}

    def execute(self, context):
        attempts[self.task_id] += 1
        failure = scenario.failing(self.task_id, attempts[self.task_id])
        if failure == "timeout":
            raise AirflowTaskTimeout(f"{self.task_id}: scripted timeout")
        if failure:
            raise AirflowException(f"{self.task_id}: scripted failure")
        return _canned_result(self, scenario)

    with monkeypatch.context() as mp:
        for cls in classes:
            mp.setattr(cls, "execute", execute)
        run = dag.test(run_conf={})
    tis = {ti.task_id: ti.state for ti in run.get_task_instances()}
    ran = frozenset(tid for tid, state in tis.items() if state in ("success", "failed"))
    return Observed(str(run.state), ran, {tid: attempts[tid] for tid in sorted(attempts)})


# --------------------------------------------------------------------------------------------
# Step Functions side
# --------------------------------------------------------------------------------------------


class MockedServices:
    """Answers every Task state from the current scenario, counting invocations per state."""

    def __init__(self):
        self.scenario: Scenario = Scenario("none")
        self.owner: dict[str, str] = {}  # state name -> task id
        self.entry_calls: dict[str, str] = {}  # task id -> the state whose invocations are its attempts
        self.states: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, str] = {}
        self.invocations: Counter = Counter()
        self.lock = threading.Lock()
        self.dynamodb: Any = None  # moto's DynamoDB, holding the run slots of DAGs with max_active_runs

    def load(self, result, dag, scenario: Scenario) -> None:
        from exporters.converters import result_key

        self.scenario = scenario
        self.invocations = Counter()
        self.owner, self.entry_calls, self.states = {}, {}, {}
        self.keys = {t.task_id: result_key(t.task_id) for t in dag.tasks}
        task_ids = sorted((t.task_id for t in dag.tasks), key=len, reverse=True)
        for _, name, state in _walk(result.definition):
            self.states[name] = state
            owner = next((t for t in task_ids if name == t or name.startswith(f"{t}: ")), None)
            if owner is not None:
                self.owner[name] = owner
                if state.get("Type") == "Task" and owner not in self.entry_calls:
                    self.entry_calls[owner] = name

    def attempts(self) -> dict[str, int]:
        return {tid: self.invocations[name] for tid, name in self.entry_calls.items() if self.invocations[name]}

    def respond(self, env) -> Any:
        from moto.stepfunctions.parser.mocking.mock_config import MockedResponseReturn, MockedResponseThrow

        name = env.next_state_name
        state = self.states[name]
        task_id = self.owner[name]
        with self.lock:
            self.invocations[name] += 1
            attempt = self.invocations[self.entry_calls[task_id]]
        resource = state["Resource"].split(":::", 1)[-1]
        service = resource.split(":")[1] if resource.startswith("aws-sdk:") else resource.split(":")[0]
        failure = self.scenario.failing(task_id, attempt)
        is_entry = name == self.entry_calls[task_id]
        if "describeEndpoint" in resource and not is_entry:
            data = env.states.get_input()
            wanted = data[self.keys[task_id]]["EndpointConfigName"]
            status = "Creating" if failure == "timeout" else "InService"
            return MockedResponseReturn(
                0, 0, {"EndpointStatus": status, "EndpointConfigName": wanted, "EndpointArn": "arn"}
            )
        if failure == "timeout" and "Endpoint" not in name:
            raise _timeout(env, task_id)
        if failure == "fail" and is_entry:
            return MockedResponseThrow(0, 0, SERVICE_ERRORS[service], f"{task_id}: scripted failure")
        if resource.startswith("lambda:"):
            payload = _canned_result(_LambdaLike(task_id), self.scenario)
            return MockedResponseReturn(0, 0, {"StatusCode": 200, "Payload": payload})
        return MockedResponseReturn(0, 0, _answer_for(state, name))


def _timeout(env, task_id: str):
    """What the interpreter raises when a Task state's TimeoutSeconds pass (States.Timeout is no custom name)."""
    from moto.stepfunctions.parser.api import HistoryEventType, TaskTimedOutEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    return FailureEventException(
        FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=StatesErrorNameType.StatesTimeout),
            event_type=HistoryEventType.TaskTimedOut,
            event_details=EventDetails(
                taskTimedOutEventDetails=TaskTimedOutEventDetails(
                    error="States.Timeout", cause=f"{task_id}: scripted timeout"
                )
            ),
        )
    )


class _LambdaLike:
    result_fields = ()

    def __init__(self, task_id: str):
        self.task_id = task_id


def _answer_for(state: dict[str, Any], name: str) -> dict[str, Any]:
    """An answer with every field the state's ResultSelector reads."""
    out: dict[str, Any] = {}
    for value in _selector_paths(state.get("ResultSelector") or {}):
        parts = value[2:].split(".")
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = f"{name}-{value}"
    return out


def _selector_paths(selector: Any):
    if isinstance(selector, dict):
        for key, value in selector.items():
            if key.endswith(".$") and isinstance(value, str) and value.startswith("$."):
                yield value
            else:
                yield from _selector_paths(value)


def _walk(definition: dict[str, Any]):
    from exporters.asl import walk_definition

    return walk_definition(definition)


@pytest.fixture(scope="module")
def machine_account():
    from moto import mock_aws
    from moto.stepfunctions.parser.asl.eval import environment

    services = MockedServices()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}), sfn_doubles.installed():
        with pytest.MonkeyPatch.context() as mp:
            # Step Functions Local's mocked responses for every Task state, from the scenario.
            mp.setattr(
                environment.Environment,
                "is_mocked_mode",
                lambda self: (
                    self.states.context_object.context_object_data.get("State") is not None
                    and services.states.get(self.next_state_name, {}).get("Type") == "Task"
                    # The max_active_runs guard talks to moto's DynamoDB for real: it must not change outcomes.
                    and services.states[self.next_state_name].get("Resource") != concurrency.UPDATE_ITEM
                ),
            )
            mp.setattr(environment.Environment, "get_current_mocked_response", lambda self: services.respond(self))
            import boto3

            services.dynamodb = boto3.client("dynamodb", region_name=REGION)
            yield services, boto3.client("stepfunctions", region_name=REGION)


def run_machine(account, result, dag, scenario: Scenario, run_name: str) -> Observed:
    services, sfn = account
    services.load(result, dag, scenario)
    arn = sfn.create_state_machine(
        name=f"{dag.dag_id}-{run_name}"[:80],
        definition=json.dumps(result.definition),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/StepFunctions",
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, name=run_name, input="{}")["executionArn"]
    give_up = time.monotonic() + DEADLINE
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        if time.monotonic() > give_up:
            sfn.stop_execution(executionArn=execution)
            pytest.fail(f"{dag.dag_id} / {scenario.name}: execution still running after {DEADLINE}s")
        time.sleep(0.05)
    events = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    entered = {e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e}
    runtime = [e for e in events if "States.Runtime" in json.dumps(e.get("executionFailedEventDetails", {}))]
    assert not runtime, f"{dag.dag_id} / {scenario.name}: uncatchable States.Runtime: {runtime}"
    ran = frozenset(tid for tid, entry in result.task_entries.items() if entry in entered)
    if concurrency.has_guard(result.definition):  # max_active_runs: the run gave its slot back, however it ended
        item = services.dynamodb.get_item(
            TableName=concurrency.DEFAULT_TABLE, Key={concurrency.LOCK_KEY: {"S": dag.dag_id}}, ConsistentRead=True
        )["Item"]
        assert item[concurrency.COUNT] == {"N": "0"}, f"{dag.dag_id} / {scenario.name}: run slot kept: {item}"
    state = {"SUCCEEDED": "success", "FAILED": "failed"}.get(described["status"], described["status"])
    return Observed(state, ran, services.attempts())


# --------------------------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_exported_machine_follows_airflow_under_every_scenario(dag_id, dags, exported, machine_account, monkeypatch):
    dag = dags[dag_id]
    result = exported[dag_id]
    rows = []
    for i, scenario in enumerate(scenarios(dag)):
        airflow = run_airflow(dag, scenario, monkeypatch)
        machine = run_machine(machine_account, result, dag, scenario, f"run-{i:03d}")
        same = airflow == machine
        rows.append((scenario.name, airflow, machine, same))
    print(f"\n{dag_id}")
    print(f"  {'scenario':<34} {'airflow':<8} {'machine':<8} {'ran':<5} {'attempts':<8} match")
    for name, a, m, same in rows:
        print(
            f"  {name:<34} {a.state:<8} {m.state:<8} {'=' if a.ran == m.ran else 'DIFF':<5} "
            f"{'=' if a.attempts == m.attempts else 'DIFF':<8} {'yes' if same else 'NO'}"
        )
    mismatches = [f"{name}: airflow {a} != machine {m}" for name, a, m, same in rows if not same]
    assert not mismatches, "\n".join(mismatches)


def test_every_exported_definition_passes_aws_asl_validator_cfn_lint_and_ours(exported):
    from exporters.validation import validate_definition
    from tests.asl_check import aws_asl_problems, cfn_lint_state_machine

    definitions = {dag_id: result.definition for dag_id, result in exported.items()}
    problems = {
        dag_id: [*found, *validate_definition(definitions[dag_id]), *cfn_lint_state_machine(definitions[dag_id])]
        for dag_id, found in aws_asl_problems(definitions).items()
    }
    assert problems == {dag_id: [] for dag_id in definitions}
