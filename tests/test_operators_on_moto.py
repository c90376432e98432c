"""Each AWS-facing stage operator on its own, against the moto server over HTTP (``aws_default``).

The operator's request is resolved by Airflow's own templating
(``render_template_fields``) from a minimal run context; only that context is
hand-made (a ``ti`` whose ``xcom_pull`` returns upstream results). Every AWS call
goes through the Amazon provider hooks to moto.
"""

from __future__ import annotations

import importlib
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from retraining import (
    GlueJobRunOperator,
    LambdaInvokeOperator,
    ParamRef,
    ResultRef,
    RunUniqueName,
    SageMakerCreateEndpointConfigOperator,
    SageMakerCreateModelOperator,
    SageMakerDeployEndpointOperator,
    SageMakerTrainingJobOperator,
    StageFailed,
    xgboost_training_request,
)

FAST = 0.05
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
RUN_ID = "manual__2026-03-01T10:00:00+00:00"
LOGICAL_DATE = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)


class _Ti:
    """The part of a task instance a request reads: upstream results by task id."""

    def __init__(self, results: dict[str, Any]):
        self.results = results

    def xcom_pull(self, task_ids: str, **_: Any) -> Any:
        return self.results.get(task_ids)


def _context(params: dict[str, Any] | None = None, results: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "params": dict(params or {}),
        "run_id": RUN_ID,
        "logical_date": LOGICAL_DATE,
        "ti": _Ti(results or {}),
    }


def _run(op, context: dict[str, Any]) -> Any:
    op.render_template_fields(context)
    return op.execute(context)


def _training_request(name: Any, role: str, **overrides: Any) -> dict[str, Any]:
    args = dict(
        training_job_name=name,
        role_arn=role,
        image_uri=IMAGE,
        train_s3_uri="s3://retraining-demo/processed/train/",
        validation_s3_uri="s3://retraining-demo/processed/validation/",
        output_s3_uri="s3://retraining-demo/output/",
    )
    args.update(overrides)
    return xgboost_training_request(**args)


def _create_endpoint_config(aws, name: str, role: str) -> str:
    sm = aws.client("sagemaker")
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=role,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://retraining-demo/output/{name}/model.tar.gz"},
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m4.xlarge"}
        ],
    )
    return name


# --- Glue ---------------------------------------------------------------------------------------


def _glue_op() -> GlueJobRunOperator:
    return GlueJobRunOperator(
        task_id="extract_transform_load",
        job_name=ParamRef("glue_job_name"),
        script_arguments={"--S3_SOURCE": ParamRef("s3_source"), "--TRAIN_KEY": "train/"},
        poll_interval=FAST,
    )


GLUE_PARAMS = {"glue_job_name": "churn-etl", "s3_source": "s3://retraining-demo/raw/churn.csv"}


def test_glue_success_returns_run_and_passes_arguments(aws):
    aws.create_glue_job("churn-etl")
    result = _run(_glue_op(), _context(GLUE_PARAMS))

    assert set(result) == {"JobName", "JobRunId", "JobRunState"}
    assert result["JobName"] == "churn-etl"
    assert result["JobRunState"] == "SUCCEEDED"
    run = aws.client("glue").get_job_run(JobName="churn-etl", RunId=result["JobRunId"])["JobRun"]
    assert run["Arguments"] == {"--S3_SOURCE": "s3://retraining-demo/raw/churn.csv", "--TRAIN_KEY": "train/"}
    assert run["JobRunState"] == "SUCCEEDED"
    json.dumps(result)


@pytest.mark.parametrize("state", ["FAILED", "STOPPED", "TIMEOUT"])
def test_glue_unsuccessful_end_raises_with_glue_message(aws, state):
    aws.create_glue_job("churn-etl")
    aws.outcomes.glue_state = state
    aws.outcomes.glue_error_message = (
        f"AnalysisException: Path does not exist: s3://retraining-demo/raw/churn.csv ({state})"
    )

    with pytest.raises(StageFailed) as caught:
        _run(_glue_op(), _context(GLUE_PARAMS))

    message = str(caught.value)
    assert f"ended {state}" in message
    assert aws.outcomes.glue_error_message in message
    assert "churn-etl" in message
    runs = aws.client("glue").get_job_runs(JobName="churn-etl")["JobRuns"]
    assert [r["JobRunState"] for r in runs] == [state]
    assert runs[0]["Id"] in message


def test_glue_failure_without_message_says_so(aws):
    aws.create_glue_job("churn-etl")
    aws.outcomes.glue_state = "FAILED"

    with pytest.raises(StageFailed, match="ended FAILED: Glue gave no error message"):
        _run(_glue_op(), _context(GLUE_PARAMS))


def test_glue_unknown_job_is_an_aws_error(aws):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="EntityNotFoundException"):
        _run(_glue_op(), _context({**GLUE_PARAMS, "glue_job_name": "no-such-job"}))


# --- SageMaker training -------------------------------------------------------------------------


def _training_op(role: str, **kw: Any) -> SageMakerTrainingJobOperator:
    return SageMakerTrainingJobOperator(
        task_id="train_model",
        request=_training_request(RunUniqueName(ParamRef("training_job_prefix")), ParamRef("role"), **kw),
        poll_interval=FAST,
    )


def test_training_success_returns_exactly_the_result_fields(aws):
    role = aws.create_role()
    aws.outcomes.training_metrics = {"train:error": 0.03, "validation:error": 0.07}
    op = _training_op(role)
    result = _run(op, _context({"training_job_prefix": "churn-xgb", "role": role}))

    name = result["TrainingJobName"]
    assert re.fullmatch(r"churn-xgb-20260301100000-[0-9a-f]{6}", name)
    assert set(result) == {
        "TrainingJobName",
        "TrainingJobStatus",
        "FinalMetricDataList",
        "ModelArtifacts",
        "AlgorithmSpecification",
    }
    assert result["TrainingJobStatus"] == "Completed"
    assert result["AlgorithmSpecification"] == {"TrainingImage": IMAGE}
    job = aws.client("sagemaker").describe_training_job(TrainingJobName=name)
    assert result["ModelArtifacts"] == {"S3ModelArtifacts": job["ModelArtifacts"]["S3ModelArtifacts"]}
    assert result["FinalMetricDataList"] == [
        {"MetricName": "train:error", "Value": 0.03},
        {"MetricName": "validation:error", "Value": 0.07},
    ]
    # Exactly these records, no timestamps: the value round-trips through JSON unchanged.
    assert json.loads(json.dumps(result)) == result
    # The request that reached SageMaker is the resolved one.
    assert job["RoleArn"] == role
    assert job["AlgorithmSpecification"]["TrainingImage"] == IMAGE


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (
            "Failed",
            "AlgorithmError: framework error: Missing label column",
            "AlgorithmError: framework error: Missing label column",
        ),
        ("Stopped", None, "SageMaker gave no FailureReason"),
    ],
)
def test_training_that_does_not_complete_raises_with_reason(aws, status, reason, expected):
    role = aws.create_role()
    aws.outcomes.training_status = status
    aws.outcomes.training_failure_reason = reason

    with pytest.raises(StageFailed) as caught:
        _run(_training_op(role), _context({"training_job_prefix": "churn-xgb", "role": role}))

    message = str(caught.value)
    assert f"ended {status}" in message
    assert expected in message
    [summary] = aws.client("sagemaker").list_training_jobs()["TrainingJobSummaries"]
    assert summary["TrainingJobName"] in message


def test_training_retry_adopts_the_job_of_the_same_name(aws):
    """A retry of the task finds the job its first try started: it waits for it instead of failing."""
    role = aws.create_role()
    sm = aws.client("sagemaker")
    first_try = _training_request("churn-xgb-20260301100000-abcdef", role, hyperparameters={"num_round": "7"})
    sm.create_training_job(**first_try)
    # SageMaker (and the test double) refuses a second job of that name.
    with pytest.raises(sm.exceptions.ResourceInUse, match="must be unique"):
        sm.create_training_job(**first_try)

    retry = SageMakerTrainingJobOperator(
        task_id="train_model",
        request=_training_request("churn-xgb-20260301100000-abcdef", role),
        poll_interval=FAST,
    )
    result = _run(retry, _context())

    assert result["TrainingJobName"] == "churn-xgb-20260301100000-abcdef"
    assert result["TrainingJobStatus"] == "Completed"
    jobs = sm.list_training_jobs()["TrainingJobSummaries"]
    assert [j["TrainingJobName"] for j in jobs] == ["churn-xgb-20260301100000-abcdef"]
    # The adopted job is the first try's, not replaced by the retry's request.
    assert sm.describe_training_job(TrainingJobName="churn-xgb-20260301100000-abcdef")["HyperParameters"] == {
        "num_round": "7"
    }


# --- Lambda metric check -------------------------------------------------------------------------


def _check_op() -> LambdaInvokeOperator:
    return LambdaInvokeOperator(
        task_id="check_metrics",
        function_name=ParamRef("metric_function_name"),
        payload={"TrainingJobName": ResultRef("train_model", "TrainingJobName")},
    )


def _create_training_job(aws, name: str) -> str:
    role = aws.create_role("TrainingRole")
    aws.client("sagemaker").create_training_job(**_training_request(name, role))
    return name


def test_lambda_success_returns_the_function_answer(aws):
    function = aws.create_metric_function("query-training-status")
    aws.outcomes.training_metrics = {"train:error": 0.02, "validation:error": 0.08}
    name = _create_training_job(aws, "churn-xgb-20260301100000-0a1b2c")

    answer = _run(
        _check_op(),
        _context({"metric_function_name": function}, {"train_model": {"TrainingJobName": name}}),
    )

    assert answer["statusCode"] == 200
    assert answer["TrainingJobStatus"] == "Completed"
    assert {m["MetricName"]: m["Value"] for m in answer["trainingMetrics"]} == {
        "train:error": 0.02,
        "validation:error": 0.08,
    }


def test_lambda_unknown_training_job_fails_with_its_error_type_and_no_stack_trace(aws):
    function = aws.create_metric_function("query-training-status")

    with pytest.raises(StageFailed) as caught:
        _run(
            _check_op(),
            _context({"metric_function_name": function}, {"train_model": {"TrainingJobName": "churn-xgb-missing"}}),
        )

    message = str(caught.value)
    assert "query-training-status" in message
    assert "TrainingJobNotFound" in message
    assert "churn-xgb-missing" in message
    # The function's error payload carries a stack trace; the task message must not.
    assert "Traceback" not in message
    assert "File " not in message
    assert "stackTrace" not in message
    assert "query_training_status.py" not in message
    assert "\n" not in message


def test_lambda_missing_training_job_name(aws):
    function = aws.create_metric_function("query-training-status")
    op = LambdaInvokeOperator(
        task_id="check_metrics",
        function_name=ParamRef("metric_function_name"),
        payload={"JobName": "churn-xgb-1"},
    )

    with pytest.raises(StageFailed) as caught:
        _run(op, _context({"metric_function_name": function}))

    message = str(caught.value)
    assert "MissingTrainingJobName" in message
    assert "TrainingJobName" in message
    assert "File " not in message


def test_lambda_request_with_missing_upstream_field_names_it(aws):
    from retraining.refs import UnresolvedReferenceError

    aws.create_metric_function("query-training-status")
    with pytest.raises(UnresolvedReferenceError) as caught:
        _run(
            _check_op(),
            _context({"metric_function_name": "query-training-status"}, {"train_model": {"JobName": "x"}}),
        )
    assert "'train_model'" in str(caught.value)
    assert "'TrainingJobName'" in str(caught.value)
    assert "JobName" in str(caught.value)


# --- Model and endpoint config --------------------------------------------------------------------


def test_create_model_uses_the_training_result(aws):
    role = aws.create_role()
    op = SageMakerCreateModelOperator(
        task_id="create_model",
        request={
            "ModelName": RunUniqueName(ParamRef("model_prefix")),
            "ExecutionRoleArn": ParamRef("role"),
            "PrimaryContainer": {
                "Image": ResultRef("train_model", "AlgorithmSpecification", "TrainingImage"),
                "ModelDataUrl": ResultRef("train_model", "ModelArtifacts", "S3ModelArtifacts"),
            },
        },
    )
    upstream = {
        "train_model": {
            "TrainingJobName": "churn-xgb-1",
            "AlgorithmSpecification": {"TrainingImage": IMAGE},
            "ModelArtifacts": {"S3ModelArtifacts": "s3://retraining-demo/output/churn-xgb-1/output/model.tar.gz"},
        }
    }

    result = _run(op, _context({"model_prefix": "churn-model", "role": role}, upstream))

    assert set(result) == {"ModelName", "ModelArn"}
    assert re.fullmatch(r"churn-model-20260301100000-[0-9a-f]{6}", result["ModelName"])
    model = aws.client("sagemaker").describe_model(ModelName=result["ModelName"])
    assert result["ModelArn"] == model["ModelArn"]
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"] == "s3://retraining-demo/output/churn-xgb-1/output/model.tar.gz"
    assert model["ExecutionRoleArn"] == role


def test_create_endpoint_config_uses_the_model_name(aws):
    role = aws.create_role()
    aws.client("sagemaker").create_model(
        ModelName="churn-model-1",
        ExecutionRoleArn=role,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://b/m.tar.gz"},
    )
    op = SageMakerCreateEndpointConfigOperator(
        task_id="create_endpoint_config",
        request={
            "EndpointConfigName": ResultRef("create_model", "ModelName"),
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": ResultRef("create_model", "ModelName"),
                    "InitialInstanceCount": ParamRef("count"),
                    "InstanceType": ParamRef("type"),
                    "InitialVariantWeight": 1.0,
                }
            ],
        },
    )

    result = _run(op, _context({"count": 2, "type": "ml.m5.large"}, {"create_model": {"ModelName": "churn-model-1"}}))

    assert set(result) == {"EndpointConfigName", "EndpointConfigArn"}
    assert result["EndpointConfigName"] == "churn-model-1"
    config = aws.client("sagemaker").describe_endpoint_config(EndpointConfigName="churn-model-1")
    assert result["EndpointConfigArn"] == config["EndpointConfigArn"]
    [variant] = config["ProductionVariants"]
    assert variant["ModelName"] == "churn-model-1"
    assert variant["InitialInstanceCount"] == 2
    assert variant["InstanceType"] == "ml.m5.large"


# --- Retries of the create stages ------------------------------------------------------------------


@pytest.fixture
def sagemaker_rejects_existing_names(aws, monkeypatch):
    """CreateModel / CreateEndpointConfig refuse a name in use, with SageMaker's own error (moto overwrites)."""
    from moto.sagemaker import models
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.utils import arn_formatter

    backend = models.SageMakerModelBackend
    create_model, create_config = backend.create_model, backend.create_endpoint_config

    def guarded_model(self, model_name, *args, **kwargs):
        if model_name in self._models:
            arn = arn_formatter("model", model_name, self.account_id, self.region_name)
            raise ValidationError(message=f'Cannot create already existing model "{arn}".')
        return create_model(self, model_name, *args, **kwargs)

    def guarded_config(self, endpoint_config_name, *args, **kwargs):
        if endpoint_config_name in self.endpoint_configs:
            arn = arn_formatter("endpoint-config", endpoint_config_name, self.account_id, self.region_name)
            raise ValidationError(message=f'Cannot create already existing endpoint configuration "{arn}".')
        return create_config(self, endpoint_config_name, *args, **kwargs)

    monkeypatch.setattr(backend, "create_model", guarded_model)
    monkeypatch.setattr(backend, "create_endpoint_config", guarded_config)
    return aws


# A retry finds what its first try created (worker lost after the call): it adopts it.


def test_create_model_retry_after_the_model_was_created(sagemaker_rejects_existing_names):
    aws = sagemaker_rejects_existing_names
    role = aws.create_role()
    request = {
        "ModelName": "churn-model-20260301100000-abcdef",
        "ExecutionRoleArn": role,
        "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": "s3://retraining-demo/output/j/output/model.tar.gz"},
    }
    sm = aws.client("sagemaker")
    first_try = sm.create_model(**request)
    with pytest.raises(sm.exceptions.ClientError, match="Cannot create already existing model"):
        sm.create_model(**request)

    result = _run(SageMakerCreateModelOperator(task_id="create_model", request=dict(request)), _context())

    assert result == {"ModelName": "churn-model-20260301100000-abcdef", "ModelArn": first_try["ModelArn"]}


def test_create_endpoint_config_retry_after_the_config_was_created(sagemaker_rejects_existing_names):
    aws = sagemaker_rejects_existing_names
    role = aws.create_role()
    sm = aws.client("sagemaker")
    sm.create_model(
        ModelName="churn-model-1",
        ExecutionRoleArn=role,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://b/m.tar.gz"},
    )
    request = {
        "EndpointConfigName": "churn-model-1",
        "ProductionVariants": [
            {
                "VariantName": "AllTraffic",
                "ModelName": "churn-model-1",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m4.xlarge",
            }
        ],
    }
    first_try = sm.create_endpoint_config(**request)

    op = SageMakerCreateEndpointConfigOperator(task_id="create_endpoint_config", request=request)
    result = _run(op, _context())

    assert result == {"EndpointConfigName": "churn-model-1", "EndpointConfigArn": first_try["EndpointConfigArn"]}


def test_a_model_of_another_run_is_not_adopted(sagemaker_rejects_existing_names):
    aws = sagemaker_rejects_existing_names
    role = aws.create_role()
    request = {
        "ModelName": "churn-model-20260301100000-abcdef",
        "ExecutionRoleArn": role,
        "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": "s3://retraining-demo/output/j/output/model.tar.gz"},
    }
    aws.client("sagemaker").create_model(**request)
    other = dict(request, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://retraining-demo/other.tar.gz"})

    with pytest.raises(StageFailed, match="already exists with other model data; choose another model_prefix"):
        _run(SageMakerCreateModelOperator(task_id="create_model", request=other), _context())


# --- Each stage reaches AWS through its provider hook --------------------------------------------


@pytest.mark.parametrize(
    ("build", "hook_path"),
    [
        (lambda: GlueJobRunOperator(task_id="t", job_name="j"), "glue.GlueJobHook"),
        (lambda: SageMakerTrainingJobOperator(task_id="t", request={}), "sagemaker.SageMakerHook"),
        (lambda: SageMakerCreateModelOperator(task_id="t", request={}), "sagemaker.SageMakerHook"),
        (lambda: SageMakerCreateEndpointConfigOperator(task_id="t", request={}), "sagemaker.SageMakerHook"),
        (lambda: SageMakerDeployEndpointOperator(task_id="t", request={}), "sagemaker.SageMakerHook"),
        (lambda: LambdaInvokeOperator(task_id="t", function_name="f", payload={}), "lambda_function.LambdaHook"),
    ],
)
def test_each_stage_declares_its_provider_hook_and_caches_it(monkeypatch, build, hook_path):
    module, name = hook_path.rsplit(".", 1)
    provider_hook = getattr(importlib.import_module(f"airflow.providers.amazon.aws.hooks.{module}"), name)
    monkeypatch.setenv("RETRAINING_BACKEND", "aws")
    op = build()
    op.aws_conn_id, op.region_name = "team_aws", "eu-west-1"
    assert type(op).aws_hook_class is provider_hook
    hook = op.hook
    assert type(hook) is provider_hook and op.hook is hook
    assert (hook.aws_conn_id, hook.region_name) == ("team_aws", "eu-west-1")


def test_the_local_backend_choice_reaches_the_hook(monkeypatch):
    monkeypatch.setenv("RETRAINING_BACKEND", "local")
    monkeypatch.setenv("RETRAINING_LOCAL_CONN_ID", "my_local_aws")
    assert GlueJobRunOperator(task_id="t", job_name="j").hook.aws_conn_id == "my_local_aws"


# --- Deploy endpoint ----------------------------------------------------------------------------


def _deploy_op() -> SageMakerDeployEndpointOperator:
    return SageMakerDeployEndpointOperator(
        task_id="update_endpoint",
        request={
            "EndpointName": ParamRef("endpoint_name"),
            "EndpointConfigName": ResultRef("create_endpoint_config", "EndpointConfigName"),
        },
        poll_interval=FAST,
    )


def _deploy_context(config: str) -> dict[str, Any]:
    return _context({"endpoint_name": "churn-endpoint"}, {"create_endpoint_config": {"EndpointConfigName": config}})


def test_deploy_creates_a_missing_endpoint(aws):
    role = aws.create_role()
    config = _create_endpoint_config(aws, "churn-model-a", role)

    result = _run(_deploy_op(), _deploy_context(config))

    endpoint = aws.client("sagemaker").describe_endpoint(EndpointName="churn-endpoint")
    assert result == {
        "EndpointName": "churn-endpoint",
        "EndpointArn": endpoint["EndpointArn"],
        "EndpointStatus": "InService",
        "EndpointConfigName": "churn-model-a",
        "Action": "created",
    }
    assert endpoint["EndpointConfigName"] == "churn-model-a"
    assert endpoint["EndpointStatus"] == "InService"


def test_deploy_updates_an_existing_endpoint(aws):
    role = aws.create_role()
    sm = aws.client("sagemaker")
    sm.create_endpoint(
        EndpointName="churn-endpoint", EndpointConfigName=_create_endpoint_config(aws, "churn-model-a", role)
    )
    new = _create_endpoint_config(aws, "churn-model-b", role)

    result = _run(_deploy_op(), _deploy_context(new))

    assert result["Action"] == "updated"
    assert result["EndpointConfigName"] == "churn-model-b"
    endpoint = sm.describe_endpoint(EndpointName="churn-endpoint")
    assert endpoint["EndpointConfigName"] == "churn-model-b"
    assert endpoint["EndpointStatus"] == "InService"
    assert [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]] == ["churn-endpoint"]


def test_deploy_failed_update_names_the_config_still_serving(aws):
    role = aws.create_role()
    sm = aws.client("sagemaker")
    sm.create_endpoint(
        EndpointName="churn-endpoint", EndpointConfigName=_create_endpoint_config(aws, "churn-model-a", role)
    )
    new = _create_endpoint_config(aws, "churn-model-b", role)
    aws.outcomes.endpoint_update_failure = "Insufficient capacity for ml.m4.xlarge in us-east-1a"

    with pytest.raises(StageFailed) as caught:
        _run(_deploy_op(), _deploy_context(new))

    message = str(caught.value)
    assert "'churn-endpoint'" in message
    assert "'churn-model-b'" in message  # what was asked
    assert "still serving config 'churn-model-a'" in message
    assert "Insufficient capacity for ml.m4.xlarge in us-east-1a" in message
    assert sm.describe_endpoint(EndpointName="churn-endpoint")["EndpointConfigName"] == "churn-model-a"


def test_deploy_refuses_to_update_a_failed_endpoint(aws):
    role = aws.create_role()
    sm = aws.client("sagemaker")
    aws.outcomes.endpoint_create_failure = "Model container failed to pass the ping health check"
    sm.create_endpoint(
        EndpointName="churn-endpoint", EndpointConfigName=_create_endpoint_config(aws, "churn-model-a", role)
    )
    aws.outcomes.endpoint_create_failure = None
    new = _create_endpoint_config(aws, "churn-model-b", role)

    with pytest.raises(StageFailed) as caught:
        _run(_deploy_op(), _deploy_context(new))

    message = str(caught.value)
    assert "'churn-endpoint'" in message
    assert "status Failed" in message
    assert "Model container failed to pass the ping health check" in message
    assert "cannot be updated" in message
    # Nothing was sent: the endpoint still points at its old config.
    assert sm.describe_endpoint(EndpointName="churn-endpoint")["EndpointConfigName"] == "churn-model-a"


def test_deploy_new_endpoint_that_fails_to_create(aws):
    role = aws.create_role()
    config = _create_endpoint_config(aws, "churn-model-a", role)
    aws.outcomes.endpoint_create_failure = "Model container failed to pass the ping health check"

    with pytest.raises(StageFailed) as caught:
        _run(_deploy_op(), _deploy_context(config))

    message = str(caught.value)
    assert "was not created to config 'churn-model-a'" in message
    assert "status Failed" in message
    assert "Model container failed to pass the ping health check" in message


# --- Requests are data, not Jinja -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "task_id", "path"),
    [
        (lambda: GlueJobRunOperator(task_id="etl", job_name="{{ params.x }}"), "etl", "JobName"),
        (
            lambda: GlueJobRunOperator(
                task_id="etl2", job_name="churn-etl", script_arguments={"--S3_DEST": "s3://b/{{ ds }}/"}
            ),
            "etl2",
            "Arguments.--S3_DEST",
        ),
        (
            lambda: SageMakerCreateEndpointConfigOperator(
                task_id="cfg",
                request={"EndpointConfigName": "c", "ProductionVariants": [{"ModelName": "{% if x %}a{% endif %}"}]},
            ),
            "cfg",
            "ProductionVariants[0].ModelName",
        ),
        (
            lambda: LambdaInvokeOperator(task_id="chk", function_name="f", payload={"TrainingJobName": "{# c #}x"}),
            "chk",
            "Payload.TrainingJobName",
        ),
    ],
)
def test_jinja_in_a_request_is_rejected_at_construction(build, task_id, path):
    with pytest.raises(ValueError) as caught:
        build()
    message = str(caught.value)
    assert f"task {task_id!r}" in message
    assert path in message
    assert "Jinja" in message
