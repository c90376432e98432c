"""The best-candidate handler called as the Lambda runtime would, against the moto server."""

from __future__ import annotations

import importlib.util

import pytest

from retraining import xgboost_training_request
from retraining.choice import metric_value
from tests.conftest import ROOT

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
METRIC = "validation:error"


@pytest.fixture
def handler_module(aws, monkeypatch):
    """The handler file loaded like the runtime loads it, its SageMaker client pointed at moto."""
    spec = importlib.util.spec_from_file_location(
        "select_best_candidate_under_test", ROOT / "lambda" / "select_best_candidate.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint_url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setattr(module, "_sagemaker", None)
    return module


def _train(aws, names_and_metrics: dict[str, dict[str, float]], status: str = "Completed") -> list[str]:
    """One moto training job per name, each ending ``status`` with its own final metrics."""
    role = aws.create_role()
    for name, metrics in names_and_metrics.items():
        aws.outcomes.training_status = status
        aws.outcomes.training_metrics = metrics
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
    return list(names_and_metrics)


def test_lowest_metric_wins_and_answer_has_the_rule_shape(aws, handler_module):
    names = _train(
        aws,
        {
            "cand-0": {METRIC: 0.12, "train:error": 0.01},
            "cand-1": {METRIC: 0.07, "train:error": 0.05},
            "cand-2": {METRIC: 0.09, "train:error": 0.02},
        },
    )
    answer = handler_module.lambda_handler({"TrainingJobNames": names, "MetricName": METRIC}, None)

    described = aws.client("sagemaker").describe_training_job(TrainingJobName="cand-1")
    assert answer["TrainingJobName"] == "cand-1" and answer["BestIndex"] == 1
    assert answer["ModelArtifacts"] == described["ModelArtifacts"]["S3ModelArtifacts"]
    assert answer["TrainingImage"] == IMAGE
    # The list of {MetricName, Value} the metric rule looks the metric up in.
    assert metric_value(answer["metrics"], METRIC) == 0.07
    assert {m["MetricName"]: m["Value"] for m in answer["metrics"]} == {METRIC: 0.07, "train:error": 0.05}
    assert answer["Candidates"] == [
        {"TrainingJobName": "cand-0", "Value": 0.12},
        {"TrainingJobName": "cand-1", "Value": 0.07},
        {"TrainingJobName": "cand-2", "Value": 0.09},
    ]


def test_tie_goes_to_the_lowest_index(aws, handler_module):
    names = _train(aws, {"tie-a": {METRIC: 0.2}, "tie-b": {METRIC: 0.05}, "tie-c": {METRIC: 0.05}})
    answer = handler_module.lambda_handler({"TrainingJobNames": names, "MetricName": METRIC}, None)
    assert (answer["TrainingJobName"], answer["BestIndex"]) == ("tie-b", 1)
    # Order is the caller's (map-index order), not alphabetical.
    answer = handler_module.lambda_handler({"TrainingJobNames": ["tie-c", "tie-b"], "MetricName": METRIC}, None)
    assert (answer["TrainingJobName"], answer["BestIndex"]) == ("tie-c", 0)


def test_a_job_without_the_metric_is_named(aws, handler_module):
    names = _train(aws, {"has-it": {METRIC: 0.05}, "lacks-it": {"train:error": 0.01}})
    with pytest.raises(handler_module.MetricNotReported) as caught:
        handler_module.lambda_handler({"TrainingJobNames": names, "MetricName": METRIC}, None)
    assert (
        str(caught.value)
        == "training job 'lacks-it' reported no numeric 'validation:error'; it reported: ['train:error']"
    )


def test_a_failed_candidate_and_an_unknown_one_are_named(aws, handler_module):
    names = _train(aws, {"broken": {}}, status="Failed")
    with pytest.raises(handler_module.CandidateNotCompleted, match="'broken' is Failed, not Completed"):
        handler_module.lambda_handler({"TrainingJobNames": names, "MetricName": METRIC}, None)
    with pytest.raises(handler_module.TrainingJobNotFound) as caught:
        handler_module.lambda_handler({"TrainingJobNames": ["nobody-0"], "MetricName": METRIC}, None)
    assert str(caught.value) == "training job 'nobody-0' not found in us-east-1"
    assert caught.value.__cause__ is None


@pytest.mark.parametrize(
    ("event", "says"),
    [
        ({"MetricName": METRIC}, "non-empty list"),
        ({"TrainingJobNames": [], "MetricName": METRIC}, "non-empty list"),
        ({"TrainingJobNames": "cand-0", "MetricName": METRIC}, "non-empty list"),
        ({"TrainingJobNames": [f"c-{i}" for i in range(101)], "MetricName": METRIC}, "has 101 jobs; at most 100"),
        (
            {"TrainingJobNames": ["ok-0", "../etc/passwd"], "MetricName": METRIC},
            "TrainingJobNames[1] = '../etc/passwd'",
        ),
        ({"TrainingJobNames": ["ok-0", "-lead"], "MetricName": METRIC}, "TrainingJobNames[1]"),
        ({"TrainingJobNames": ["x" * 64], "MetricName": METRIC}, "TrainingJobNames[0]"),
        ({"TrainingJobNames": [7], "MetricName": METRIC}, "TrainingJobNames[0] = 7"),
        ({"TrainingJobNames": ["a-0", "a-0"], "MetricName": METRIC}, "more than once"),
        ({"TrainingJobNames": ["a-0"]}, "'MetricName'"),
        ({"TrainingJobNames": ["a-0"], "MetricName": ""}, "'MetricName'"),
        (["a-0"], "JSON object, not list"),
    ],
)
def test_hostile_events_are_refused_before_any_aws_call(handler_module, event, says):
    with pytest.raises(handler_module.InvalidCandidates) as caught:
        handler_module.lambda_handler(event, None)
    assert says in str(caught.value)
    assert handler_module._sagemaker is None
