"""Dynamic task mapping → a Map state: Airflow's ``dag.test()`` vs the exported machine in moto's interpreter.

The DAG is ``tests/export_dags/good/mapped_tasks.py``: ``train_candidate`` mapped over a literal
list of three hyperparameter sets (``retries=1``, ``max_active_tis_per_dagrun=2``), ``pick_best``
reading its job names and metrics as lists; ``train_listed`` mapped over ``list_sets``' result (a
Lambda returning a list), ``report`` (``all_done``) reading its job names.

Both sides run with the same answers per (task, map index, attempt): Airflow with the AWS
operators' ``execute`` answering (the training operator's own ``effective_request`` builds the
name and hyperparameters), the machine with moto's mocked responses on its Task states. They
must agree on the run's state, the attempts of every map index, what each Lambda received
(the candidates' names, by their map-index suffix, and metrics, in map-index order) and which
Lambdas ran.
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

from tests import sfn_doubles

GOOD = sfn_doubles.ROOT / "tests" / "export_dags" / "good"
DAG_ID = "mapped_tasks"
REGION = "us-east-1"
ACCOUNT = "123456789012"
DEADLINE = 60.0
RETRY_DELAY = re.compile(r"""(retry_delay\s*=\s*)timedelta\([^)]*\)""")
LISTED_SETS = ({"eta": "0.5"}, {"eta": "0.6"})


@dataclass(frozen=True)
class Scenario:
    name: str
    # (task id, map index) -> "fail" (every attempt) or "once" (the first attempt only)
    failures: tuple[tuple[str, int, str], ...] = ()
    listed: tuple[dict[str, str], ...] = tuple(LISTED_SETS)  # what list_sets returns

    def fails(self, task_id: str, index: int, attempt: int) -> bool:
        for tid, idx, how in self.failures:
            if (tid, idx) == (task_id, index):
                return how == "fail" or attempt == 1
        return False


SCENARIOS = (
    Scenario("all succeed"),
    # One candidate fails every attempt, another fails once and succeeds on its retry; every listed candidate
    # fails: report (all_done) reads an empty list of names.
    Scenario(
        "one index fails, one fails once",
        (
            ("train_candidate", 1, "fail"),
            ("train_candidate", 2, "once"),
            ("train_listed", 0, "fail"),
            ("train_listed", 1, "fail"),
        ),
    ),
    # A listed candidate fails (no retries): the task fails, report (all_done) reads the other's name.
    Scenario("listed index fails", (("train_listed", 0, "fail"),)),
    # list_sets returns no set: Airflow skips train_listed; report (all_done) reads an empty list.
    Scenario("nothing listed", listed=()),
)


@dataclass
class Observed:
    state: str
    attempts: dict[str, int] = field(default_factory=dict)  # "task[index]" -> attempts
    lambdas: dict[str, Any] = field(default_factory=dict)  # task id -> its payload (names as suffixes)


def metric_for(index: int) -> float:
    return round(0.1 * (index + 1), 3)


def training_answer(name: str, index: int) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "TrainingJobStatus": "Completed",
        "FinalMetricDataList": [{"MetricName": "validation:error", "Value": metric_for(index)}],
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://mapped-demo/models/{name}/model.tar.gz"},
        "AlgorithmSpecification": {"TrainingImage": "xgboost"},
    }


def comparable(payload: Any) -> Any:
    """A Lambda's payload with each job name reduced to its map-index suffix (the run-unique part differs)."""
    if not isinstance(payload, dict):
        return payload
    out = dict(payload)
    if isinstance(out.get("jobs"), list):
        names = out["jobs"]
        prefixes = {name.rsplit("-", 1)[0] for name in names}
        assert len(prefixes) <= 1, f"candidates of one run with different name prefixes: {names}"
        out["jobs"] = [name.rsplit("-", 1)[1] for name in names]
    return out


# --------------------------------------------------------------------------------------------
# Fixtures: the export, the DAG for dag.test(), the interpreter
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported():
    from airflow.dag_processing.dagbag import DagBag

    from exporters.api import export_dag_object

    bag = DagBag(str(GOOD / "mapped_tasks.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[DAG_ID]
    return dag, export_dag_object(dag)


@pytest.fixture(scope="module")
def airflow_dag(airflow_db, tmp_path_factory):
    """The DAG from a copy whose retry delays are 0 (timing only), for dag.test()."""
    from airflow import settings
    from airflow.dag_processing.dagbag import DagBag

    folder = tmp_path_factory.mktemp("mapped-dags")
    text = RETRY_DELAY.sub(r"\1timedelta(0)", (GOOD / "mapped_tasks.py").read_text())
    (folder / "mapped_tasks.py").write_text(text)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(settings, "DAGS_FOLDER", str(folder))  # dag.test() serializes from the dags-folder bundle
        bag = DagBag(str(folder))
        assert not bag.import_errors, bag.import_errors
        yield bag.dags[DAG_ID]


class Services:
    """Answers the machine's Task states from the scenario, per (task, map index, attempt)."""

    def __init__(self):
        self.scenario = Scenario("none")
        self.owner: dict[str, str] = {}
        self.attempts: Counter = Counter()
        self.lambdas: dict[str, Any] = {}
        self.lock = threading.Lock()

    def load(self, definition: dict[str, Any], task_ids: list[str], scenario: Scenario) -> None:
        from exporters.asl import walk_definition

        self.scenario, self.attempts, self.lambdas = scenario, Counter(), {}
        by_length = sorted(task_ids, key=len, reverse=True)
        self.owner = {}
        for _, name, state in walk_definition(definition):
            if state.get("Type") == "Task":
                self.owner[name] = next(t for t in by_length if name == t or name.startswith(f"{t}: "))

    def respond(self, env) -> Any:
        from moto.stepfunctions.parser.mocking.mock_config import MockedResponseReturn, MockedResponseThrow

        task_id = self.owner[env.next_state_name]
        parameters = env.h14_parameters
        data = env.states.get_input()
        index = data["map"]["index"] if isinstance(data, dict) and "map" in data else -1
        with self.lock:
            self.attempts[f"{task_id}[{index}]"] += 1
            attempt = self.attempts[f"{task_id}[{index}]"]
        if self.scenario.fails(task_id, index, attempt):
            return MockedResponseThrow(0, 0, "SageMaker.AmazonSageMakerException", f"{task_id}[{index}]: scripted")
        if "TrainingJobName" in parameters:
            return MockedResponseReturn(0, 0, training_answer(parameters["TrainingJobName"], index))
        payload = parameters.get("Payload")
        self.lambdas[task_id] = comparable(payload)
        answer = list(self.scenario.listed) if task_id == "list_sets" else {}
        return MockedResponseReturn(0, 0, {"StatusCode": 200, "Payload": answer})


@pytest.fixture(scope="module")
def machine():
    from moto import mock_aws
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )
    from moto.stepfunctions.parser.asl.eval import environment

    services = Services()

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}), sfn_doubles.installed():
        before = StateTaskService._before_eval_execution

        def recorded(self, env, resource_runtime_part, raw_parameters, state_credentials):
            before(self, env, resource_runtime_part, raw_parameters, state_credentials)
            env.h14_parameters = raw_parameters  # what the mocked answer reads: the request as sent

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(StateTaskService, "_before_eval_execution", recorded)
            mp.setattr(
                environment.Environment,
                "is_mocked_mode",
                lambda self: (
                    self.states.context_object.context_object_data.get("State") is not None
                    and self.next_state_name in services.owner
                ),
            )
            mp.setattr(environment.Environment, "get_current_mocked_response", lambda self: services.respond(self))
            import boto3

            yield services, boto3.client("stepfunctions", region_name=REGION)


# --------------------------------------------------------------------------------------------
# The two sides
# --------------------------------------------------------------------------------------------


def run_airflow(dag, scenario: Scenario, monkeypatch) -> Observed:
    from airflow.sdk.exceptions import AirflowException

    from retraining import LambdaInvokeOperator, SageMakerTrainingJobOperator
    from retraining.mapping import map_index_of

    attempts: Counter = Counter()
    lambdas: dict[str, Any] = {}

    def train(self, context):
        index = map_index_of(context)
        attempts[f"{self.task_id}[{index}]"] += 1
        request = self.effective_request(index)  # the operator's own name suffix and hyperparameter merge
        if scenario.fails(self.task_id, index, attempts[f"{self.task_id}[{index}]"]):
            raise AirflowException(f"{self.task_id}[{index}]: scripted")
        return training_answer(request["TrainingJobName"], index)

    def invoke(self, context):
        attempts[f"{self.task_id}[-1]"] += 1
        lambdas[self.task_id] = comparable(self.request["Payload"])
        return list(scenario.listed) if self.task_id == "list_sets" else {}

    with monkeypatch.context() as mp:
        mp.setattr(SageMakerTrainingJobOperator, "execute", train)
        mp.setattr(LambdaInvokeOperator, "execute", invoke)
        run = dag.test(run_conf={})
    return Observed(str(run.state), dict(sorted(attempts.items())), lambdas)


def run_machine(account, dag, result, scenario: Scenario, run_name: str) -> Observed:
    services, sfn = account
    services.load(result.definition, list(dag.task_ids), scenario)
    arn = sfn.create_state_machine(
        name=f"{DAG_ID}-{run_name}",
        definition=json.dumps(result.definition),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/StepFunctions",
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, name=run_name, input="{}")["executionArn"]
    give_up = time.monotonic() + DEADLINE
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < give_up, f"{scenario.name}: execution still running after {DEADLINE}s"
        time.sleep(0.05)
    events = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    runtime = [e for e in events if "States.Runtime" in json.dumps(e, default=str)]
    assert not runtime, f"{scenario.name}: uncatchable States.Runtime: {runtime}"
    state = {"SUCCEEDED": "success", "FAILED": "failed"}.get(described["status"], described["status"])
    return Observed(state, dict(sorted(services.attempts.items())), dict(services.lambdas))


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def test_mapped_tasks_behave_as_in_airflow(exported, airflow_dag, machine, monkeypatch):
    dag, result = exported
    rows = []
    for i, scenario in enumerate(SCENARIOS):
        airflow = run_airflow(airflow_dag, scenario, monkeypatch)
        exported_run = run_machine(machine, dag, result, scenario, f"map-{i}")
        rows.append((scenario, airflow, exported_run))
    for scenario, airflow, exported_run in rows:
        print(f"\n{scenario.name}\n  airflow: {airflow}\n  machine: {exported_run}")
    assert [(s.name, a) for s, a, _ in rows] == [(s.name, m) for s, _, m in rows]
    # What the scenarios are about, stated on the Airflow side (the machine equals it above).
    all_ok, one_fails, listed_fails, nothing_listed = (a for _, a, _ in rows)
    assert all_ok.state == "success"
    assert all_ok.lambdas["pick_best"] == {
        "metric": "validation:error",
        "jobs": ["0", "1", "2"],
        "metrics": [[{"MetricName": "validation:error", "Value": metric_for(i)}] for i in range(3)],
    }
    assert all_ok.lambdas["report"] == {"jobs": ["0", "1"]}
    assert all_ok.lambdas["report_single"] == {"jobs": ["0"]}
    assert one_fails.state == "failed" and "pick_best" not in one_fails.lambdas
    assert one_fails.attempts["train_candidate[1]"] == 2 and one_fails.attempts["train_candidate[2]"] == 2
    assert one_fails.attempts["train_candidate[0]"] == 1
    assert one_fails.lambdas["report"] == {"jobs": []}
    assert listed_fails.state == "success" and listed_fails.lambdas["report"] == {"jobs": ["1"]}
    assert nothing_listed.state == "success" and nothing_listed.lambdas["report"] == {"jobs": []}
    assert not any(key.startswith("train_listed") for key in nothing_listed.attempts)


def test_mapped_export_passes_aws_asl_validator_and_cfn_lint(exported):
    from exporters.cloudformation import build_template
    from tests.asl_check import assert_valid
    from tests.test_export_cloudformation import cfn_lint

    dag, result = exported
    assert_valid(result.definition)
    assert cfn_lint(build_template(result, dag, schedule_kind="none")) == []


def test_mapped_task_is_one_map_state_with_its_concurrency_and_items(exported):
    _, result = exported
    states = result.definition["States"]
    flat = {name: state for branch in _branches(states) for name, state in branch.items()}
    candidate = flat["train_candidate: map"]
    assert candidate["Type"] == "Map" and candidate["MaxConcurrency"] == 2
    assert candidate["ItemProcessor"]["ProcessorConfig"] == {"Mode": "INLINE"}
    assert flat["train_candidate: items"]["Result"] == [
        {"hyperparameters": {"eta": "0.1"}},
        {"hyperparameters": {"eta": "0.2", "max_depth": "3"}},
        {"hyperparameters": {"eta": "0.3"}},
    ]
    assert flat["train_listed: map"]["ItemsPath"] == "$.list_sets.Payload"
    task = candidate["ItemProcessor"]["States"]["train_candidate"]
    assert task["Parameters"]["TrainingJobName.$"].endswith(", $.map.index)")
    assert task["Parameters"]["HyperParameters.$"] == (
        "States.JsonMerge($.map.const.HyperParameters, $.map.item.hyperparameters, false)"
    )


def _branches(states: dict[str, Any]):
    yield states
    for state in states.values():
        for branch in state.get("Branches", []):
            yield from _branches(branch["States"])


# --------------------------------------------------------------------------------------------
# Large fan-outs, refusals (in-memory DAGs, exported through Airflow's serialization)
# --------------------------------------------------------------------------------------------


def _request():
    from retraining import RunUniqueName
    from retraining.sagemaker import xgboost_training_request

    return xgboost_training_request(
        training_job_name=RunUniqueName("cand"),
        role_arn="arn:aws:iam::123456789012:role/SageMakerExecutionRole",
        image_uri="xgboost:1.7-1",
        train_s3_uri="s3://mapped-demo/train/",
        validation_s3_uri="s3://mapped-demo/validation/",
        output_s3_uri="s3://mapped-demo/models/",
    )


def _map_state(result, task_id: str) -> dict[str, Any]:
    from exporters.asl import walk_definition

    return next(s for _, name, s in walk_definition(result.definition) if name == f"{task_id}: map")


def test_large_or_chosen_fan_outs_are_distributed_maps_with_the_iam_they_need():
    from airflow.sdk import DAG

    from exporters.api import export_dag_object
    from exporters.cloudformation import build_template
    from retraining import SageMakerTrainingJobOperator
    from tests.asl_check import assert_valid
    from tests.test_export_cloudformation import cfn_lint

    with DAG(dag_id="mapped_large", schedule=None) as dag:
        SageMakerTrainingJobOperator.partial(task_id="big", request=_request(), retries=2).expand(
            hyperparameters=[{"eta": str(i)} for i in range(400)]  # 400 x 3 attempts x ~10 events > 10,000
        )
        SageMakerTrainingJobOperator.partial(
            task_id="chosen", request=_request(), executor_config={"step_functions": {"map_mode": "distributed"}}
        ).expand(hyperparameters=[{"eta": "0.1"}, {"eta": "0.2"}])
        SageMakerTrainingJobOperator.partial(task_id="small", request=_request(), max_active_tis_per_dag=3).expand(
            hyperparameters=[{"eta": str(i)} for i in range(400)]
        )
    result = export_dag_object(dag)
    modes = {tid: _map_state(result, tid)["ItemProcessor"]["ProcessorConfig"] for tid in ("big", "chosen", "small")}
    distributed = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert modes == {"big": distributed, "chosen": distributed, "small": {"Mode": "INLINE"}}
    assert any("'big'" in w and "Distributed Map" in w for w in result.warnings)
    # max_active_tis_per_dag limits tries across runs in Airflow: per execution here, and the export says so.
    assert _map_state(result, "small")["MaxConcurrency"] == 3
    assert any("'small'" in w and "max_active_tis_per_dag=3" in w for w in result.warnings)
    assert_valid(result.definition)
    template = build_template(result, dag, schedule_kind="none")
    assert cfn_lint(template) == []
    statements = template["Resources"]["StateMachineDistributedMapPolicy"]["Properties"]["PolicyDocument"]
    assert [s["Action"] for s in statements["Statement"]] == [
        ["states:StartExecution"],
        ["states:DescribeExecution", "states:StopExecution"],
    ]
    assert statements["Statement"][0]["Resource"] == [{"Ref": "StateMachine"}]


@pytest.mark.parametrize(
    "case, reason",
    [
        ("kwargs_from_result", "expand_kwargs over an upstream result"),
        ("cross_product_with_result", "together with other mapped arguments"),
        ("record_result", "a record of fields (Airflow would map over its keys)"),
        ("empty_list", "maps over an empty list"),
        ("bad_mode", "is not a Map mode"),
    ],
)
def test_what_cannot_be_mapped_exactly_is_refused_naming_the_task(case, reason):
    from airflow.sdk import DAG

    from exporters.api import export_dag_object
    from exporters.errors import ExportError
    from retraining import LambdaInvokeOperator, SageMakerTrainingJobOperator

    with DAG(dag_id=f"mapped_{case}", schedule=None) as dag:
        source = LambdaInvokeOperator(task_id="source", function_name="f", payload={})
        partial = SageMakerTrainingJobOperator.partial(
            task_id="mapped",
            request=_request(),
            executor_config={"step_functions": {"map_mode": "sideways"}} if case == "bad_mode" else None,
        )
        if case == "kwargs_from_result":
            mapped = partial.expand_kwargs(source.output)
        elif case == "cross_product_with_result":
            mapped = partial.expand(hyperparameters=source.output, poll_interval=[1, 2])
        elif case == "record_result":
            trained = SageMakerTrainingJobOperator(task_id="trained", request=_request())
            source >> trained
            mapped = partial.expand(hyperparameters=trained.output)
            trained >> mapped
        else:
            mapped = partial.expand(hyperparameters=[] if case == "empty_list" else [{"eta": "0.1"}])
        source >> mapped
    with pytest.raises(ExportError) as raised:
        export_dag_object(dag)
    assert [p.task_id for p in raised.value.problems] == ["mapped"]
    assert reason in raised.value.problems[0].reason
    assert raised.value.problems[0].fix


def test_mapped_job_names_over_sagemakers_limit_are_refused_when_the_dag_is_parsed():
    from airflow.sdk import DAG

    from retraining import RunUniqueName, SageMakerTrainingJobOperator

    with DAG(dag_id="mapped_names", schedule=None):
        # A 29-character prefix + the export's 33-character run suffix + "-9" is 64 characters.
        with pytest.raises(ValueError, match=r"task 'long'.*'TrainingJobName'.*63"):
            SageMakerTrainingJobOperator.partial(
                task_id="long", request={**_request(), "TrainingJobName": RunUniqueName("a" * 29)}
            ).expand(hyperparameters=[{"eta": "0.1"}] * 10)
        with pytest.raises(ValueError, match=r"task 'numbers'.*hyperparameters\['eta'\]"):
            SageMakerTrainingJobOperator.partial(task_id="numbers", request=_request()).expand(
                hyperparameters=[{"eta": 0.1}]
            )


def test_stock_operators_map_over_what_their_converter_passes_through_and_refuse_the_rest():
    from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
    from airflow.providers.amazon.aws.operators.lambda_function import LambdaInvokeFunctionOperator
    from airflow.sdk import DAG

    from exporters.api import export_dag_object
    from exporters.errors import ExportError
    from tests.asl_check import assert_valid

    with DAG(dag_id="mapped_stock", schedule=None) as dag:
        GlueJobOperator.partial(task_id="etl", script_args={"--day": "1"}).expand(job_name=["etl-a", "etl-b"])
    result = export_dag_object(dag)
    state = _map_state(result, "etl")
    task = state["ItemProcessor"]["States"]["etl"]
    assert task["Parameters"]["JobName.$"] == "$.map.item.job_name"
    assert task["Parameters"]["Arguments"] == {"--day": "1"}
    assert_valid(result.definition)

    with DAG(dag_id="mapped_stock_payload", schedule=None) as refused:
        LambdaInvokeFunctionOperator.partial(task_id="invoke", function_name="f").expand(payload=['{"a": 1}'])
    with pytest.raises(ExportError) as raised:
        export_dag_object(refused)
    problem = raised.value.problems[0]
    assert problem.task_id == "invoke" and "mapped over payload" in problem.reason
    assert "function_name" in problem.fix


def test_a_mapped_training_try_sends_its_suffixed_name_and_merged_hyperparameters_to_sagemaker(aws):
    """The operator itself against the moto server: map index 2 of a candidate with its own eta."""
    from retraining import ParamRef, RunUniqueName, SageMakerTrainingJobOperator
    from tests.test_operators_on_moto import FAST, _context, _run, _training_request

    role = aws.create_role()
    op = SageMakerTrainingJobOperator(
        task_id="train_candidate",
        request=_training_request(RunUniqueName(ParamRef("training_job_prefix")), ParamRef("role")),
        hyperparameters={"eta": "0.3", "num_round": "10"},
        poll_interval=FAST,
    )
    context = _context({"training_job_prefix": "churn-xgb", "role": role})
    context["ti"].map_index = 2
    result = _run(op, context)
    name = result["TrainingJobName"]
    assert re.fullmatch(r"churn-xgb-20260301100000-[0-9a-f]{6}-2", name)
    job = aws.client("sagemaker").describe_training_job(TrainingJobName=name)
    assert job["HyperParameters"]["eta"] == "0.3" and job["HyperParameters"]["num_round"] == "10"
    assert job["HyperParameters"]["max_depth"] == "5"  # the request's own, kept


def test_a_distributed_map_runs_every_index_and_fails_the_task_in_the_interpreter(machine):
    """The same iteration as a Distributed Map (child executions): one index failing every attempt."""
    from airflow.sdk import DAG

    from exporters.api import export_dag_object
    from retraining import LambdaInvokeOperator, ResultRef, SageMakerTrainingJobOperator

    with DAG(dag_id="mapped_distributed", schedule=None) as dag:
        train = SageMakerTrainingJobOperator.partial(
            task_id="train_candidate",
            request=_request(),
            executor_config={"step_functions": {"map_mode": "DISTRIBUTED"}},
        ).expand(hyperparameters=[{"eta": "0.1"}, {"eta": "0.2"}, {"eta": "0.3"}])
        report = LambdaInvokeOperator(
            task_id="report",
            function_name="report-candidates",
            payload={"jobs": ResultRef("train_candidate", "TrainingJobName")},
            trigger_rule="all_done",
        )
        train >> report
    result = export_dag_object(dag)
    assert _map_state(result, "train_candidate")["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    observed = run_machine(
        machine, dag, result, Scenario("distributed", (("train_candidate", 1, "fail"),)), "distributed-0"
    )
    assert observed.attempts == {"report[-1]": 1, **{f"train_candidate[{i}]": 1 for i in range(3)}}
    assert observed.lambdas["report"] == {"jobs": ["0", "2"]}
    assert observed.state == "success"  # report (all_done) is the only leaf and succeeded, as in Airflow
