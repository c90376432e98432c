"""The candidates DAG's refusals, with ``dag.test()`` against the moto server (instant training jobs).

The deploy path runs for real on the local backend (``test_candidates_local.py``); here, cheaply, what
must stop it: the best candidate not beating the threshold, and a candidate that reported no metric.
"""

from __future__ import annotations

import io
import zipfile

import pytest
from airflow.dag_processing.dagbag import DagBag

from tests.conftest import ROOT

DAG_ID = "model_retraining_candidates"
FUNCTION = "select-best-candidate"
DEPLOY_TASKS = ("create_model", "create_endpoint_config", "update_endpoint")


@pytest.fixture
def candidates_dag(airflow_db):
    """The DAG as the DagBag loads it, made fast; each task's failure is recorded on ``dag.failures``."""
    bag = DagBag(str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[DAG_ID]
    failures: dict[str, BaseException] = {}

    def record_failure(context):
        failures[context["ti"].task_id] = context["exception"]

    for task in dag.tasks:
        task.retries = 0
        if getattr(task, "is_mapped", False):
            task.partial_kwargs["poll_interval"] = 0.05
            task.partial_kwargs["on_failure_callback"] = [record_failure]
        else:
            if hasattr(task, "poll_interval"):
                task.poll_interval = 0.05
            task.on_failure_callback = [record_failure]
    dag.failures = failures
    return dag


def _prepare(aws) -> str:
    """The Glue job, the selection Lambda (the real handler from lambda/), the bucket; the SageMaker role."""
    aws.create_glue_job("churn-etl")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(ROOT / "lambda" / "select_best_candidate.py", "select_best_candidate.py")
    aws.client("lambda").create_function(
        FunctionName=FUNCTION,
        Runtime="python3.11",
        Role=aws.create_role("LambdaRole"),
        Handler="select_best_candidate.lambda_handler",
        Code={"ZipFile": archive.getvalue()},
        Environment={"Variables": {"AWS_ENDPOINT_URL": aws.endpoint_url}},
    )
    aws.client("s3").create_bucket(Bucket="retraining-demo")
    return aws.create_role()


def _states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances() if ti.map_index in (-1, 0)}


def test_best_candidate_above_the_threshold_is_not_deployed(aws, candidates_dag):
    role = _prepare(aws)
    aws.outcomes.training_metrics = {"validation:error": 0.2}
    run = candidates_dag.test(run_conf={"sagemaker_role_arn": role})

    states = _states(run)
    assert run.state == "failed"
    assert states["select_best"] == states["accuracy_check"] == "success"
    assert states["model_accuracy_too_low"] == "failed"
    assert all(states[task] == "skipped" for task in DEPLOY_TASKS), states
    assert set(candidates_dag.failures) == {"model_accuracy_too_low"}
    assert "ModelAccuracyTooLow" in str(candidates_dag.failures["model_accuracy_too_low"])
    sm = aws.client("sagemaker")
    # Every candidate trained; nothing was deployed.
    assert len(sm.list_training_jobs()["TrainingJobSummaries"]) == 3
    assert sm.list_models()["Models"] == [] and sm.list_endpoints()["Endpoints"] == []


def test_a_candidate_without_the_metric_fails_the_selection_naming_it(aws, candidates_dag):
    role = _prepare(aws)
    aws.outcomes.training_metrics = {"train:error": 0.01}
    run = candidates_dag.test(run_conf={"sagemaker_role_arn": role})

    states = _states(run)
    assert run.state == "failed"
    assert states["select_best"] == "failed"
    assert states["accuracy_check"] == "upstream_failed"
    message = str(candidates_dag.failures["select_best"])
    assert "MetricNotReported" in message and "-0' reported no numeric 'validation:error'" in message
    assert aws.client("sagemaker").list_models()["Models"] == []
