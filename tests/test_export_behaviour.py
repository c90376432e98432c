"""Behaviour, not just shape: the exported ``model_retraining`` state machine, executed.

The definition ``exporters.api.export("model_retraining")`` returns is run,
unmodified, by a real ASL interpreter: moto's Step Functions execution mode
(LocalStack's interpreter). Service calls are answered by moto's own Glue,
SageMaker and Lambda backends, extended where moto falls short by
``tests/sfn_doubles.py`` at the service boundary (see there what and why). The
Lambda is the real ``lambda/query_training_status.py`` handler, run in-process;
it reads the training job's metrics from moto like it reads them from SageMaker.

Timing: nothing in the definition is rewritten. The doubles' virtual clock
records retry back-off and Wait states instead of sleeping, so the 60 s retry
intervals and the 30 s endpoint poll run as exported, instantly, and the tests
assert the delays the interpreter asked for.

Assertions use the doubles' record of every Task attempt (state, resource,
parameters as evaluated, output or error), the execution history, and what
moto's backends hold afterwards. Exporter bugs found this way stay as
regression tests at the end of the file.
"""

from __future__ import annotations

import copy
import hashlib
import io
import itertools
import json
import time
import zipfile
from dataclasses import dataclass
from typing import Any

import pytest

from exporters import concurrency
from tests import sfn_doubles

REGION = "us-east-1"
ACCOUNT = "123456789012"
DEADLINE = 15.0  # real seconds an execution may take before the test gives up on it

DEPLOY_ACTIONS = {
    "sagemaker:createModel",
    "sagemaker:createEndpointConfig",
    "aws-sdk:sagemaker:describeEndpoint",
    "sagemaker:createEndpoint",
    "sagemaker:updateEndpoint",
}


# --------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dag():
    from exporters.loader import load_dag

    return load_dag("model_retraining", sfn_doubles.ROOT / "dags")


@pytest.fixture(scope="module")
def exported(dag) -> dict[str, Any]:
    """What ``exporters.api.export("model_retraining")`` returns (it is this call on the loaded DAG)."""
    from exporters.api import export_dag_object

    return export_dag_object(dag).definition


@pytest.fixture(scope="module")
def defaults(dag) -> dict[str, Any]:
    return {name: param.value for name, param in dag.params.items()}


@dataclass
class Outcome:
    name: str
    status: str
    error: str | None
    cause: str | None
    output: dict[str, Any] | None
    events: list[dict[str, Any]]

    @property
    def suffix(self) -> str:
        """The per-run part of the SageMaker names: md5 of the execution name."""
        return hashlib.md5(self.name.encode()).hexdigest()

    def entered(self) -> list[str]:
        """Names of the states entered, in order."""
        return [e["stateEnteredEventDetails"]["name"] for e in self.events if "stateEnteredEventDetails" in e]

    def exited_output(self, state: str) -> dict[str, Any]:
        outputs = [
            json.loads(e["stateExitedEventDetails"]["output"])
            for e in self.events
            if e.get("stateExitedEventDetails", {}).get("name") == state
        ]
        assert outputs, f"state {state!r} never exited"
        return outputs[-1]

    def scheduled(self, resource: str) -> list[dict[str, Any]]:
        """TaskScheduled events of one resource (``startJobRun.sync``)."""
        return [
            e
            for e in self.events
            if e["type"] == "TaskScheduled" and e["taskScheduledEventDetails"]["resource"] == resource
        ]


class World:
    """One mocked account: the exported state machine, the Glue job and the metric function it calls.

    Module-scoped (parsing and the first execution warm up slowly); :meth:`reset`
    gives every test a clean SageMaker, Glue job and doubles.
    """

    def __init__(self, doubles: sfn_doubles.Doubles, definition: dict[str, Any], defaults: dict[str, Any]):
        import boto3

        self.doubles = doubles
        self.definition = definition
        self.defaults = defaults
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.sagemaker = boto3.client("sagemaker", region_name=REGION)
        self.glue = boto3.client("glue", region_name=REGION)
        self.iam = boto3.client("iam", region_name=REGION)
        self.awslambda = boto3.client("lambda", region_name=REGION)
        self.dynamodb = boto3.client("dynamodb", region_name=REGION)
        self.role = self.iam.create_role(RoleName="retraining", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        self._runs = itertools.count(1)
        self.machine = self.sfn.create_state_machine(
            name="model_retraining",
            definition=json.dumps(definition),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/StepFunctionsRetraining",
        )["stateMachineArn"]
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zf:
            zf.write(sfn_doubles.ROOT / "lambda" / "query_training_status.py", "query_training_status.py")
        self.awslambda.create_function(
            FunctionName=defaults["metric_function_name"],
            Runtime="python3.11",
            Role=self.role,
            Handler="query_training_status.lambda_handler",
            Code={"ZipFile": archive.getvalue()},
        )
        self._create_glue_job()

    def _create_glue_job(self) -> None:
        self.glue.create_job(
            Name=self.defaults["glue_job_name"],
            Role=self.role,
            Command={"Name": "glueetl", "ScriptLocation": "s3://scripts/churn_etl.py", "PythonVersion": "3"},
            GlueVersion="5.0",
        )

    def reset(self) -> None:
        self.doubles.reset()
        # A run the test stopped keeps its max_active_runs slot (on AWS the template's cleanup rule frees it).
        slot = {concurrency.LOCK_KEY: {"S": "model_retraining"}}
        self.dynamodb.delete_item(TableName=concurrency.DEFAULT_TABLE, Key=slot)
        for endpoint in self.sagemaker.list_endpoints()["Endpoints"]:
            self.sagemaker.delete_endpoint(EndpointName=endpoint["EndpointName"])
        for config in self.sagemaker.list_endpoint_configs()["EndpointConfigs"]:
            self.sagemaker.delete_endpoint_config(EndpointConfigName=config["EndpointConfigName"])
        for model in self.sagemaker.list_models()["Models"]:
            self.sagemaker.delete_model(ModelName=model["ModelName"])
        self.glue.delete_job(JobName=self.defaults["glue_job_name"])  # and its runs
        self._create_glue_job()

    def glue_run_states(self) -> list[str]:
        return sorted(
            r["JobRunState"] for r in self.glue.get_job_runs(JobName=self.defaults["glue_job_name"])["JobRuns"]
        )

    def run(
        self, execution_input: dict[str, Any] | None = None, name: str | None = None, until=None, deadline=DEADLINE
    ) -> Outcome:
        """Start an execution and wait for its end (or until ``until(doubles)`` holds: then stop it)."""
        name = name or f"retrain-{next(self._runs):03d}"
        arn = self.sfn.start_execution(
            stateMachineArn=self.machine,
            name=name,
            input=json.dumps(execution_input if execution_input is not None else {}),
        )["executionArn"]
        give_up = time.monotonic() + deadline
        while True:
            described = self.sfn.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING":
                break
            if until is not None and until(self.doubles):
                described = self._stop(arn, "TestStopped", "the test's condition was met first")
                break
            if time.monotonic() > give_up:
                self._stop(arn, "TestTimeout", f"still running after {deadline}s")
                pytest.fail(f"execution still running after {deadline}s; calls so far: {self.doubles.actions()}")
            time.sleep(0.05)  # the interpreter shares the GIL with this loop: poll gently
        events = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        return Outcome(
            name=name,
            status=described["status"],
            error=described.get("error"),
            cause=described.get("cause"),
            output=json.loads(described["output"]) if described.get("output") else None,
            events=events,
        )

    def _stop(self, arn: str, error: str, cause: str) -> dict[str, Any]:
        """Stop an execution and wait until the interpreter has (so it cannot reach the next test's doubles)."""
        self.sfn.stop_execution(executionArn=arn, error=error, cause=cause)
        deadline = time.monotonic() + 5
        while (described := self.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the execution did not stop"
            time.sleep(0.02)
        return described

    def existing_endpoint(self, name: str, config: str = "churn-model-previous") -> None:
        """An endpoint already serving an older model (what every run after the first finds)."""
        self.sagemaker.create_model(
            ModelName=config,
            ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/SageMakerExecutionRole",
            PrimaryContainer={"Image": "xgboost:old", "ModelDataUrl": "s3://retraining-demo/output/old/model.tar.gz"},
        )
        self.sagemaker.create_endpoint_config(
            EndpointConfigName=config,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": config,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m4.xlarge",
                }
            ],
        )
        self.sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=config)


@pytest.fixture(scope="module")
def account(exported, defaults):
    """moto in execution mode with the doubles, for the whole module."""
    from moto import mock_aws

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}), sfn_doubles.installed() as doubles:
        yield World(doubles, copy.deepcopy(exported), defaults)


@pytest.fixture
def world(account):
    account.reset()
    return account


def metrics(**values: float) -> dict[str, float]:
    """Final metrics of the next training jobs, in this order (``validation_error`` -> ``validation:error``)."""
    return {name.replace("_", ":", 1): value for name, value in values.items()}


def only(calls: list[sfn_doubles.ServiceCall]) -> sfn_doubles.ServiceCall:
    assert len(calls) == 1, calls
    return calls[0]


# --------------------------------------------------------------------------------------------
# Metric below the threshold: the model is deployed
# --------------------------------------------------------------------------------------------


def test_good_model_is_deployed_to_a_new_endpoint_with_the_param_defaults(world, exported, defaults):
    world.doubles.training_metrics = metrics(train_error=0.03, validation_error=0.05)

    outcome = world.run({})  # no input: every param takes its DAG default

    assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
    d = world.doubles
    assert d.actions() == [
        "glue:startJobRun.sync",
        "sagemaker:createTrainingJob.sync",
        "lambda:invoke",
        "sagemaker:createModel",
        "sagemaker:createEndpointConfig",
        "aws-sdk:sagemaker:describeEndpoint",  # endpoint missing: caught ...
        "sagemaker:createEndpoint",  # ... so it is created
        "aws-sdk:sagemaker:describeEndpoint",  # the poll after the Wait
    ]
    assert all(c.error is None for c in d.calls if c.state != "update_endpoint: endpoint exists?")

    glue = only(d.calls_to("glue:startJobRun.sync"))
    assert glue.parameters == {
        "JobName": defaults["glue_job_name"],
        "Arguments": {
            "--S3_SOURCE": defaults["s3_source"],
            "--S3_DEST": defaults["s3_dest"],
            "--TRAIN_KEY": "train/",
            "--VAL_KEY": "validation/",
        },
    }
    assert world.glue_run_states() == ["SUCCEEDED"]

    training = only(d.calls_to("sagemaker:createTrainingJob.sync"))
    job_name = f"{defaults['training_job_prefix']}-{outcome.suffix}"
    assert training.parameters["TrainingJobName"] == job_name
    assert training.parameters["RoleArn"] == defaults["sagemaker_role_arn"]
    assert training.parameters["AlgorithmSpecification"]["TrainingImage"] == defaults["training_image"]
    assert training.parameters["HyperParameters"] == defaults["hyperparameters"]
    assert training.parameters["ResourceConfig"]["InstanceType"] == defaults["training_instance_type"]
    assert training.parameters["ResourceConfig"]["InstanceCount"] == defaults["training_instance_count"]
    assert training.parameters["OutputDataConfig"] == {"S3OutputPath": defaults["training_output"]}
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in training.parameters["InputDataConfig"]
    }
    assert channels == {"train": f"{defaults['s3_dest']}train/", "validation": f"{defaults['s3_dest']}validation/"}
    assert world.sagemaker.describe_training_job(TrainingJobName=job_name)["TrainingJobStatus"] == "Completed"

    check = only(d.calls_to("lambda:invoke"))
    assert check.parameters == {
        "FunctionName": defaults["metric_function_name"],
        "Payload": {"TrainingJobName": job_name},
    }
    assert check.output["Payload"]["trainingMetrics"] == [
        {"MetricName": "train:error", "Value": 0.03},
        {"MetricName": "validation:error", "Value": 0.05},
    ]

    read = outcome.exited_output("accuracy_check: read validation:error")
    assert read["accuracy_check"] == {"metric": "validation:error", "value": 0.05}
    assert read["params"]["threshold"] == defaults["threshold"]
    assert "model_accuracy_too_low" not in outcome.entered()

    model_name = f"{defaults['model_prefix']}-{outcome.suffix}"
    model = only(d.calls_to("sagemaker:createModel"))
    assert model.parameters == {
        "ModelName": model_name,
        "ExecutionRoleArn": defaults["sagemaker_role_arn"],
        "PrimaryContainer": {
            "Image": defaults["training_image"],
            "ModelDataUrl": f"{defaults['training_output']}{job_name}/output/model.tar.gz",
        },
    }
    config = only(d.calls_to("sagemaker:createEndpointConfig"))
    assert config.parameters == {
        "EndpointConfigName": model_name,
        "ProductionVariants": [
            {
                "VariantName": "AllTraffic",
                "ModelName": model_name,
                "InitialInstanceCount": defaults["endpoint_instance_count"],
                "InstanceType": defaults["endpoint_instance_type"],
                "InitialVariantWeight": 1.0,
            }
        ],
    }
    probe = d.calls_to("aws-sdk:sagemaker:describeEndpoint")[0]
    assert probe.parameters == {"EndpointName": defaults["endpoint_name"]}
    assert probe.error == "SageMaker.SageMakerException"  # what the Catch routes to CreateEndpoint
    create = only(d.calls_to("sagemaker:createEndpoint"))
    assert create.parameters == {"EndpointName": defaults["endpoint_name"], "EndpointConfigName": model_name}
    assert d.calls_to("sagemaker:updateEndpoint") == []
    assert d.waits == [
        (
            "update_endpoint: wait",
            exported["States"]["update_endpoint"]["Branches"][0]["States"]["update_endpoint: wait"]["Seconds"],
        )
    ]

    endpoint = world.sagemaker.describe_endpoint(EndpointName=defaults["endpoint_name"])
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == ("InService", model_name)
    assert outcome.output["update_endpoint"]["Endpoint"] == {
        "EndpointStatus": "InService",
        "EndpointConfigName": model_name,
        "EndpointArn": endpoint["EndpointArn"],
    }
    # max_active_runs=1: the run gives its slot back, then ends.
    assert outcome.entered()[-3:] == ["update_endpoint: deployed", "Release run slot", "Done"]


def test_good_model_updates_the_existing_endpoint(world, defaults):
    world.existing_endpoint(defaults["endpoint_name"])

    outcome = world.run({})

    assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
    model_name = f"{defaults['model_prefix']}-{outcome.suffix}"
    update = only(world.doubles.calls_to("sagemaker:updateEndpoint"))
    assert update.parameters == {"EndpointName": defaults["endpoint_name"], "EndpointConfigName": model_name}
    assert world.doubles.calls_to("sagemaker:createEndpoint") == []
    probe = world.doubles.calls_to("aws-sdk:sagemaker:describeEndpoint")[0]
    assert probe.error is None
    assert world.sagemaker.describe_endpoint(EndpointName=defaults["endpoint_name"])["EndpointConfigName"] == model_name


def test_a_failed_endpoint_update_fails_the_run_and_the_old_config_keeps_serving(world, defaults):
    world.existing_endpoint(defaults["endpoint_name"], config="churn-model-previous")
    world.doubles.endpoint_update_failure = "Insufficient capacity for ml.m4.xlarge"

    outcome = world.run({})

    assert outcome.status == "FAILED"
    assert outcome.error == "EndpointDeployFailed"
    assert "update_endpoint: failed" in outcome.entered()  # then the run slot is given back (max_active_runs=1)
    assert outcome.entered()[-3:] == [
        "Release run slot after failure",
        "Step Functions error?",
        "Run failed, slot released",
    ]
    endpoint = world.sagemaker.describe_endpoint(EndpointName=defaults["endpoint_name"])
    assert endpoint["EndpointConfigName"] == "churn-model-previous"


# --------------------------------------------------------------------------------------------
# Metric at or above the threshold: the Fail state, nothing deployed
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("validation_error", [0.25, 0.10], ids=["above", "equal"])
def test_poor_model_fails_the_run_and_deploys_nothing(world, dag, defaults, validation_error):
    assert defaults["threshold"] == 0.10  # "equal" is the boundary: the rule is a strict <
    world.doubles.training_metrics = metrics(validation_error=validation_error)

    outcome = world.run({})

    fail = dag.get_task("model_accuracy_too_low")
    assert outcome.status == "FAILED"
    assert (outcome.error, outcome.cause) == (fail.error, fail.cause)
    assert outcome.entered()[-5:] == [
        "accuracy_check",
        "model_accuracy_too_low",
        "Release run slot after failure",  # max_active_runs=1
        "Step Functions error?",
        "Run failed, slot released",
    ]
    assert world.doubles.actions() == ["glue:startJobRun.sync", "sagemaker:createTrainingJob.sync", "lambda:invoke"]
    assert not DEPLOY_ACTIONS & set(world.doubles.actions())
    assert world.sagemaker.list_models()["Models"] == []
    assert world.sagemaker.list_endpoints()["Endpoints"] == []


# --------------------------------------------------------------------------------------------
# Execution input overrides params, like a trigger's conf
# --------------------------------------------------------------------------------------------


def test_a_stricter_threshold_from_the_input_rejects_a_model_the_default_would_deploy(world, dag):
    world.doubles.training_metrics = metrics(validation_error=0.05)  # < default 0.10

    outcome = world.run({"threshold": 0.01})

    assert outcome.status == "FAILED"
    assert outcome.error == dag.get_task("model_accuracy_too_low").error
    assert outcome.exited_output("accuracy_check: read validation:error")["params"]["threshold"] == 0.01
    assert not DEPLOY_ACTIONS & set(world.doubles.actions())


def test_a_looser_threshold_and_other_names_from_the_input_are_used(world, defaults):
    world.doubles.training_metrics = metrics(validation_error=0.25)  # > default 0.10
    overrides = {"threshold": 0.5, "endpoint_name": "churn-canary", "model_prefix": "canary"}

    outcome = world.run(overrides)

    assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
    d = world.doubles
    assert only(d.calls_to("sagemaker:createModel")).parameters["ModelName"] == f"canary-{outcome.suffix}"
    assert only(d.calls_to("sagemaker:createEndpoint")).parameters == {
        "EndpointName": "churn-canary",
        "EndpointConfigName": f"canary-{outcome.suffix}",
    }
    # Params not in the input keep their defaults.
    assert only(d.calls_to("glue:startJobRun.sync")).parameters["JobName"] == defaults["glue_job_name"]
    training = only(d.calls_to("sagemaker:createTrainingJob.sync"))
    assert training.parameters["TrainingJobName"] == f"{defaults['training_job_prefix']}-{outcome.suffix}"
    params = outcome.exited_output("Apply params")["params"]
    assert params == {**defaults, **overrides}


def test_names_are_unique_per_execution(world, defaults):
    first = world.run({}, name="run-a")
    second = world.run({}, name="run-b")

    assert (first.status, second.status) == ("SUCCEEDED", "SUCCEEDED")
    jobs = [c.parameters["TrainingJobName"] for c in world.doubles.calls_to("sagemaker:createTrainingJob.sync")]
    assert jobs == [
        f"{defaults['training_job_prefix']}-{hashlib.md5(n.encode()).hexdigest()}" for n in ("run-a", "run-b")
    ]
    # The second run finds the endpoint the first created, and updates it.
    assert len(world.doubles.calls_to("sagemaker:createEndpoint")) == 1
    assert len(world.doubles.calls_to("sagemaker:updateEndpoint")) == 1


# --------------------------------------------------------------------------------------------
# A failing stage is retried as configured
# --------------------------------------------------------------------------------------------


def _retrier(exported: dict[str, Any], state: str) -> dict[str, Any]:
    (retrier,) = exported["States"][state]["Retry"]
    return retrier


def test_retry_policy_is_the_dags(exported, dag):
    task = dag.get_task("extract_transform_load")
    retrier = _retrier(exported, "extract_transform_load")
    assert retrier["MaxAttempts"] == task.retries == 2
    assert retrier["IntervalSeconds"] == task.retry_delay.total_seconds() == 60
    assert retrier["BackoffRate"] == 2.0  # retry_exponential_backoff
    assert retrier["MaxDelaySeconds"] == task.max_retry_delay.total_seconds()


@pytest.mark.parametrize("failures", [1, 2])
def test_a_failing_glue_run_is_retried_then_the_run_goes_on(world, exported, failures):
    retrier = _retrier(exported, "extract_transform_load")
    assert failures <= retrier["MaxAttempts"]
    world.doubles.glue_runs_to_fail = failures

    outcome = world.run({})

    assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
    attempts = world.doubles.calls_to("glue:startJobRun.sync")
    assert len(attempts) == failures + 1 <= retrier["MaxAttempts"] + 1
    assert [a.error for a in attempts] == ["States.TaskFailed"] * failures + [None]
    assert json.loads(attempts[0].cause)["JobRunState"] == "FAILED"
    assert world.glue_run_states() == sorted(["FAILED"] * failures + ["SUCCEEDED"])
    # Back-off as configured: IntervalSeconds, then x BackoffRate.
    expected = [retrier["IntervalSeconds"] * retrier["BackoffRate"] ** i for i in range(failures)]
    assert world.doubles.retry_delays == [("extract_transform_load", s) for s in expected]
    scheduled = outcome.scheduled("startJobRun.sync")
    assert len(scheduled) == failures + 1
    assert len(world.doubles.calls_to("sagemaker:createModel")) == 1


def test_a_glue_stage_failing_more_than_max_attempts_fails_the_run(world, exported):
    retrier = _retrier(exported, "extract_transform_load")
    world.doubles.glue_runs_to_fail = retrier["MaxAttempts"] + 5
    world.doubles.glue_error_message = "AnalysisException: Path does not exist: s3://retraining-demo/raw/churn.csv"

    outcome = world.run({})

    assert outcome.status == "FAILED"
    # max_active_runs=1: the failure gives the run slot back first; a Fail state may not raise a States.* name.
    assert outcome.error == "StepFunctionsError" and outcome.cause.startswith("States.TaskFailed: ")
    assert (
        json.loads(outcome.cause.removeprefix("States.TaskFailed: "))["ErrorMessage"]
        == world.doubles.glue_error_message
    )
    assert len(world.doubles.calls_to("glue:startJobRun.sync")) == retrier["MaxAttempts"] + 1
    assert [s for _, s in world.doubles.retry_delays] == [
        retrier["IntervalSeconds"] * retrier["BackoffRate"] ** i for i in range(retrier["MaxAttempts"])
    ]
    assert world.doubles.actions() == ["glue:startJobRun.sync"] * (retrier["MaxAttempts"] + 1)


def test_a_throttled_sagemaker_call_is_retried(world, exported):
    world.doubles.fail_calls("sagemaker:createModel", times=1, code="ThrottlingException", message="Rate exceeded")

    outcome = world.run({})

    assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
    attempts = world.doubles.calls_to("sagemaker:createModel")
    assert [a.error for a in attempts] == ["SageMaker.AmazonSageMakerException", None]
    assert "ThrottlingException" in attempts[0].cause
    assert attempts[0].parameters == attempts[1].parameters
    assert world.doubles.retry_delays == [("create_model", _retrier(exported, "create_model")["IntervalSeconds"])]


def test_a_failing_metric_function_is_retried_then_fails_the_run(world, exported):
    world.doubles.fail_calls("lambda:invoke", times=10, code="ServiceException", message="Lambda is unavailable")

    outcome = world.run({})

    assert outcome.status == "FAILED"
    assert outcome.error == "Lambda.ServiceException"
    assert len(world.doubles.calls_to("lambda:invoke")) == _retrier(exported, "check_metrics")["MaxAttempts"] + 1
    assert not DEPLOY_ACTIONS & set(world.doubles.actions())


# --------------------------------------------------------------------------------------------
# The metric is looked up by name, never by position
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reported, deployed",
    [
        (metrics(train_error=0.5, validation_auc=0.9, validation_error=0.05), True),
        (metrics(validation_error=0.05, train_error=0.5), True),
        (metrics(train_error=0.01, validation_error=0.3, validation_auc=0.02), False),
        (metrics(validation_auc=0.01, train_error=0.01, validation_error=0.11), False),
    ],
    ids=["last-good", "first-good", "middle-poor", "last-poor-others-good"],
)
def test_the_metric_is_found_by_name(world, reported, deployed):
    world.doubles.training_metrics = reported

    outcome = world.run({})

    payload = only(world.doubles.calls_to("lambda:invoke")).output["Payload"]
    assert [m["MetricName"] for m in payload["trainingMetrics"]] == list(reported)  # the order the job reported
    value = outcome.exited_output("accuracy_check: read validation:error")["accuracy_check"]["value"]
    assert value == reported["validation:error"]
    assert outcome.status == ("SUCCEEDED" if deployed else "FAILED")
    assert bool(world.doubles.calls_to("sagemaker:createModel")) is deployed


def test_a_missing_metric_fails_the_run_and_deploys_nothing(world):
    world.doubles.training_metrics = metrics(train_error=0.01)  # no validation:error at all

    outcome = world.run({})

    # Airflow fails the branch task (AirflowFailException); here a Fail state, never an uncatchable runtime error.
    assert (outcome.status, outcome.error) == ("FAILED", "MetricRuleNotEvaluable")
    assert outcome.entered()[-4:] == [
        "accuracy_check: failed: MetricRuleNotEvaluable",
        "Release run slot after failure",  # max_active_runs=1
        "Step Functions error?",
        "Run failed, slot released",
    ]
    assert not any("States.Runtime" in json.dumps(e.get("executionFailedEventDetails", {})) for e in outcome.events)
    assert not DEPLOY_ACTIONS & set(world.doubles.actions())


def test_a_failed_training_job_fails_the_run_and_deploys_nothing(world):
    reason = "AlgorithmError: framework error: out of memory"
    world.doubles.training_status = "Failed"
    world.doubles.training_failure_reason = reason

    outcome = world.run({})

    assert outcome.status == "FAILED"
    first = world.doubles.calls_to("sagemaker:createTrainingJob.sync")[0]
    assert first.error == "States.TaskFailed"
    assert json.loads(first.cause)["FailureReason"] == reason
    assert world.doubles.actions()[:2] == ["glue:startJobRun.sync", "sagemaker:createTrainingJob.sync"]
    assert "lambda:invoke" not in world.doubles.actions()
    assert not DEPLOY_ACTIONS & set(world.doubles.actions())


# --------------------------------------------------------------------------------------------
# Exporter bugs found by executing the definition (fixed; kept as regression tests)
# --------------------------------------------------------------------------------------------


def test_a_failed_training_job_is_reported_with_its_failure_reason(world):
    reason = "AlgorithmError: framework error: out of memory"
    world.doubles.training_status = "Failed"
    world.doubles.training_failure_reason = reason

    outcome = world.run({})

    assert outcome.status == "FAILED"
    # max_active_runs=1: the failure gives the run slot back first; a Fail state may not raise a States.* name.
    assert outcome.error == "StepFunctionsError" and outcome.cause.startswith("States.TaskFailed: ")
    assert json.loads(outcome.cause.removeprefix("States.TaskFailed: "))["FailureReason"] == reason


def test_a_transient_describe_endpoint_error_does_not_recreate_an_existing_endpoint(world, defaults):
    world.existing_endpoint(defaults["endpoint_name"])
    world.doubles.fail_calls(
        "aws-sdk:sagemaker:describeEndpoint", times=1, code="ThrottlingException", message="Rate exceeded"
    )

    outcome = world.run({})

    assert world.doubles.calls_to("sagemaker:createEndpoint") == []
    assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
    assert only(world.doubles.calls_to("sagemaker:updateEndpoint")).error is None


def test_the_deploy_stage_gives_up_after_its_execution_timeout_on_every_attempt(world, dag):
    task = dag.get_task("update_endpoint")
    timeout = task.execution_timeout.total_seconds()
    world.doubles.endpoint_status = "Creating"  # SageMaker never finishes creating it

    outcome = world.run({}, deadline=120)  # 3 attempts of 120 polls each

    # Like Airflow: each try is bounded by execution_timeout, a timed-out try is retried, then the run fails.
    assert (outcome.status, outcome.error) == ("FAILED", "EndpointDeployTimeout")
    probes = world.doubles.calls_to("aws-sdk:sagemaker:describeEndpoint")
    attempts = [c for c in probes if c.state == "update_endpoint: endpoint exists?"]
    assert len(attempts) == task.retries + 1
    polls = [w for w in world.doubles.waits if w[0] == "update_endpoint: wait"]
    assert len(polls) * task.poll_interval <= (task.retries + 1) * (timeout + task.poll_interval)
    assert len(polls) * task.poll_interval >= (task.retries + 1) * timeout
