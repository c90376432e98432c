"""The metric-check handler called directly (as the Lambda runtime would), against the moto server."""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import ROOT

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


@pytest.fixture
def handler_module(aws, monkeypatch):
    """The handler file loaded like the runtime loads it, its SageMaker client pointed at moto."""
    spec = importlib.util.spec_from_file_location(
        "query_training_status_under_test", ROOT / "lambda" / "query_training_status.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint_url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setattr(module, "_sagemaker", None)
    return module


def _create_training_job(aws, name: str) -> None:
    from retraining import xgboost_training_request

    role = aws.create_role()
    aws.client("sagemaker").create_training_job(
        **xgboost_training_request(
            training_job_name=name,
            role_arn=role,
            image_uri=IMAGE,
            train_s3_uri="s3://retraining-demo/processed/train/",
            validation_s3_uri="s3://retraining-demo/processed/validation/",
            output_s3_uri="s3://retraining-demo/output/",
        )
    )


def test_known_job_returns_its_metrics_by_name(aws, handler_module):
    aws.outcomes.training_metrics = {"train:error": 0.031, "validation:error": 0.094}
    _create_training_job(aws, "churn-xgb-20260301100000-0a1b2c")

    answer = handler_module.lambda_handler({"TrainingJobName": "churn-xgb-20260301100000-0a1b2c"}, None)

    assert answer["statusCode"] == 200
    assert answer["TrainingJobStatus"] == "Completed"
    assert {m["MetricName"]: m["Value"] for m in answer["trainingMetrics"]} == {
        "train:error": 0.031,
        "validation:error": 0.094,
    }
    # Only name and value per metric (no timestamps): the answer is plain JSON.
    assert all(set(m) == {"MetricName", "Value"} and isinstance(m["Value"], float) for m in answer["trainingMetrics"])


def test_status_of_a_failed_job_is_reported(aws, handler_module):
    aws.outcomes.training_status = "Failed"
    aws.outcomes.training_failure_reason = "AlgorithmError: boom"
    aws.outcomes.training_metrics = {}
    _create_training_job(aws, "churn-xgb-failed")

    answer = handler_module.lambda_handler({"TrainingJobName": "churn-xgb-failed"}, None)

    assert answer == {"statusCode": 200, "trainingMetrics": [], "TrainingJobStatus": "Failed"}


def test_client_is_reused_across_warm_invocations(aws, handler_module):
    _create_training_job(aws, "churn-xgb-warm")
    handler_module.lambda_handler({"TrainingJobName": "churn-xgb-warm"}, None)
    client = handler_module._sagemaker
    assert client is not None
    handler_module.lambda_handler({"TrainingJobName": "churn-xgb-warm"}, None)
    assert handler_module._sagemaker is client


@pytest.mark.parametrize(
    ("event", "got"),
    [
        ({}, "got []"),
        ({"JobName": "churn-xgb-1"}, "got ['JobName']"),
        ({"TrainingJobName": ""}, "got ['TrainingJobName']"),
        ({"TrainingJobName": "   "}, "got ['TrainingJobName']"),
        ({"TrainingJobName": 42}, "got ['TrainingJobName']"),
        (["churn-xgb-1"], "got list"),
        ("churn-xgb-1", "got str"),
        (None, "got NoneType"),
    ],
)
def test_missing_or_unusable_name_is_rejected(handler_module, event, got):
    with pytest.raises(handler_module.MissingTrainingJobName) as caught:
        handler_module.lambda_handler(event, None)
    message = str(caught.value)
    assert "'TrainingJobName'" in message
    assert got in message
    # Rejected before any AWS call: no client was created.
    assert handler_module._sagemaker is None


def test_unknown_job_is_not_found(aws, handler_module):
    with pytest.raises(handler_module.TrainingJobNotFound) as caught:
        handler_module.lambda_handler({"TrainingJobName": "churn-xgb-missing"}, None)
    assert str(caught.value) == "training job 'churn-xgb-missing' not found in us-east-1"
    assert isinstance(caught.value, LookupError)
    # The boto error is not chained into what Lambda would report.
    assert caught.value.__cause__ is None


def test_sagemaker_unreachable_is_its_own_error(aws, handler_module, monkeypatch):
    from tests.aws_doubles import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(handler_module.SageMakerUnavailable) as caught:
        handler_module.lambda_handler({"TrainingJobName": "churn-xgb-1"}, None)
    assert "DescribeTrainingJob('churn-xgb-1') failed" in str(caught.value)
