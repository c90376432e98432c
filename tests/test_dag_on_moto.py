"""The real retraining DAG, run with ``dag.test()`` against a moto server over HTTP."""

from __future__ import annotations

import hashlib
import re

import pytest

FAST = 0.05  # poll interval for tests: moto answers at once
DOWNSTREAM_OF_CHECK = ("create_model", "create_endpoint_config", "update_endpoint")
NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


@pytest.fixture
def retraining_dag(airflow_db):
    """The DAG as the DagBag loads it, made fast; each task's failure is recorded on ``dag.failures``.

    The failure message comes from Airflow's own ``on_failure_callback`` context
    (``context["exception"]``): what a task raised, as Airflow saw it.
    """
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(__import__("tests.conftest").conftest.ROOT / "dags"))
    assert not bag.import_errors
    dag = bag.dags["model_retraining"]
    failures: dict[str, BaseException] = {}

    def record_failure(context):
        failures[context["ti"].task_id] = context["exception"]

    for task in dag.tasks:
        if hasattr(task, "poll_interval"):
            task.poll_interval = FAST
        task.retries = 0
        task.on_failure_callback = [record_failure]
    dag.failures = failures
    return dag


def _prepare(aws):
    aws.create_glue_job("churn-etl")
    aws.create_metric_function("query-training-status")
    aws.client("s3").create_bucket(Bucket="retraining-demo")
    return aws.create_role()


def _states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def _xcom(run, task_id: str):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(
                run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id, key="return_value"
            ).with_only_columns(XComModel.value)
        ).first()
    return None if row is None else XComModel.deserialize_value(row)


def test_good_model_is_deployed(aws, retraining_dag):
    role = _prepare(aws)
    run = retraining_dag.test(run_conf={"sagemaker_role_arn": role})
    states = _states(run)
    assert run.state == "success", (states, retraining_dag.failures)
    assert states == {
        "extract_transform_load": "success",
        "train_model": "success",
        "check_metrics": "success",
        "accuracy_check": "success",
        "model_accuracy_too_low": "skipped",
        "create_model": "success",
        "create_endpoint_config": "success",
        "update_endpoint": "success",
    }
    assert retraining_dag.failures == {}
    defaults = {k: retraining_dag.params.get_param(k).value for k in retraining_dag.params}

    # Glue ran with the arguments built from the params.
    glue = aws.client("glue")
    [glue_run] = glue.get_job_runs(JobName="churn-etl")["JobRuns"]
    assert glue_run["Arguments"] == {
        "--S3_SOURCE": defaults["s3_source"],
        "--S3_DEST": defaults["s3_dest"],
        "--TRAIN_KEY": "train/",
        "--VAL_KEY": "validation/",
    }
    assert _xcom(run, "extract_transform_load") == {
        "JobName": "churn-etl",
        "JobRunId": glue_run["Id"],
        "JobRunState": "SUCCEEDED",
    }

    # The training job SageMaker received.
    sm = aws.client("sagemaker")
    [summary] = sm.list_training_jobs()["TrainingJobSummaries"]
    name = summary["TrainingJobName"]
    stamp = run.logical_date.strftime("%Y%m%d%H%M%S")
    assert name == f"churn-xgb-{stamp}-{hashlib.sha1(run.run_id.encode()).hexdigest()[:6]}"
    assert re.fullmatch(r"churn-xgb-\d{14}-[0-9a-f]{6}", name)
    assert len(name) <= 63 and NAME_RE.match(name)
    job = sm.describe_training_job(TrainingJobName=name)
    assert job["AlgorithmSpecification"]["TrainingImage"] == defaults["training_image"]
    assert job["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    assert job["RoleArn"] == role
    assert job["HyperParameters"] == defaults["hyperparameters"]
    assert job["HyperParameters"]["objective"] == "binary:logistic"
    channels = {c["ChannelName"]: c for c in job["InputDataConfig"]}
    assert set(channels) == {"train", "validation"}
    for channel, key in (("train", "train/"), ("validation", "validation/")):
        assert channels[channel]["DataSource"]["S3DataSource"]["S3Uri"] == defaults["s3_dest"] + key
        assert channels[channel]["ContentType"] == "text/csv"
    assert job["OutputDataConfig"]["S3OutputPath"] == defaults["training_output"]
    assert job["ResourceConfig"]["InstanceType"] == defaults["training_instance_type"] == "ml.m4.xlarge"
    assert job["ResourceConfig"]["InstanceCount"] == defaults["training_instance_count"] == 1

    # The metric check answered with the job's metrics.
    check = _xcom(run, "check_metrics")
    assert check["statusCode"] == 200
    assert {m["MetricName"]: m["Value"] for m in check["trainingMetrics"]} == aws.outcomes.training_metrics

    # Model from the training job's artifacts and image; config of the same name; endpoint on it.
    [model_summary] = sm.list_models()["Models"]
    model = sm.describe_model(ModelName=model_summary["ModelName"])
    assert re.fullmatch(rf"churn-model-{stamp}-[0-9a-f]{{6}}", model["ModelName"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == job["ModelArtifacts"]["S3ModelArtifacts"]
    assert model["PrimaryContainer"]["Image"] == job["AlgorithmSpecification"]["TrainingImage"]
    assert model["ExecutionRoleArn"] == role
    [config_summary] = sm.list_endpoint_configs()["EndpointConfigs"]
    assert config_summary["EndpointConfigName"] == model["ModelName"]
    config = sm.describe_endpoint_config(EndpointConfigName=model["ModelName"])
    [variant] = config["ProductionVariants"]
    assert variant["ModelName"] == model["ModelName"]
    assert variant["InstanceType"] == defaults["endpoint_instance_type"]
    assert variant["InitialInstanceCount"] == defaults["endpoint_instance_count"]
    endpoint = sm.describe_endpoint(EndpointName="churn-endpoint")
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == model["ModelName"]
    assert _xcom(run, "update_endpoint")["Action"] == "created"


def test_second_run_updates_the_endpoint_to_the_new_model(aws, retraining_dag):
    role = _prepare(aws)
    first = retraining_dag.test(run_conf={"sagemaker_role_arn": role})
    assert first.state == "success", (_states(first), retraining_dag.failures)
    second = retraining_dag.test(run_conf={"sagemaker_role_arn": role})
    assert second.state == "success", (_states(second), retraining_dag.failures)

    first_model = _xcom(first, "create_model")["ModelName"]
    second_model = _xcom(second, "create_model")["ModelName"]
    assert first_model != second_model
    assert _xcom(first, "update_endpoint")["Action"] == "created"
    deployed = _xcom(second, "update_endpoint")
    assert deployed["Action"] == "updated"
    assert deployed["EndpointConfigName"] == second_model

    sm = aws.client("sagemaker")
    endpoint = sm.describe_endpoint(EndpointName="churn-endpoint")
    assert endpoint["EndpointConfigName"] == second_model
    assert endpoint["EndpointStatus"] == "InService"
    assert [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]] == ["churn-endpoint"]
    assert len(sm.list_training_jobs()["TrainingJobSummaries"]) == 2
    assert sorted(m["ModelName"] for m in sm.list_models()["Models"]) == sorted([first_model, second_model])


def _assert_rejected_by_accuracy_check(aws, dag, run):
    states = _states(run)
    assert run.state == "failed", states
    assert states["accuracy_check"] == "success"
    assert states["model_accuracy_too_low"] == "failed"
    for task_id in DOWNSTREAM_OF_CHECK:
        assert states[task_id] == "skipped", states
    assert set(dag.failures) == {"model_accuracy_too_low"}
    message = str(dag.failures["model_accuracy_too_low"])
    assert "ModelAccuracyTooLow" in message
    assert "Model accuracy too low" in message
    sm = aws.client("sagemaker")
    assert sm.list_models()["Models"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert sm.list_endpoints()["Endpoints"] == []
    # The model was trained and checked; only deployment was refused.
    assert len(sm.list_training_jobs()["TrainingJobSummaries"]) == 1


def test_metric_above_threshold_is_not_deployed(aws, retraining_dag):
    role = _prepare(aws)
    aws.outcomes.training_metrics = {"validation:error": 0.2}
    run = retraining_dag.test(run_conf={"sagemaker_role_arn": role})
    _assert_rejected_by_accuracy_check(aws, retraining_dag, run)
    assert _xcom(run, "check_metrics")["trainingMetrics"] == [{"MetricName": "validation:error", "Value": 0.2}]


def test_strict_threshold_from_run_conf_rejects_a_good_model(aws, retraining_dag):
    role = _prepare(aws)
    aws.outcomes.training_metrics = {"train:error": 0.01, "validation:error": 0.05}
    run = retraining_dag.test(run_conf={"sagemaker_role_arn": role, "threshold": 0.01})
    _assert_rejected_by_accuracy_check(aws, retraining_dag, run)
    assert run.conf["threshold"] == 0.01


def test_glue_failure_stops_the_run_before_training(aws, retraining_dag):
    role = _prepare(aws)
    aws.outcomes.glue_state = "FAILED"
    aws.outcomes.glue_error_message = "AnalysisException: Path does not exist: s3://retraining-demo/raw/churn.csv"
    run = retraining_dag.test(run_conf={"sagemaker_role_arn": role})

    states = _states(run)
    assert run.state == "failed", states
    assert states["extract_transform_load"] == "failed"
    for task_id, state in states.items():
        if task_id != "extract_transform_load":
            assert state == "upstream_failed", states
    assert set(retraining_dag.failures) == {"extract_transform_load"}
    message = str(retraining_dag.failures["extract_transform_load"])
    assert "ended FAILED" in message
    assert "AnalysisException: Path does not exist: s3://retraining-demo/raw/churn.csv" in message
    assert _xcom(run, "extract_transform_load") is None
    sm = aws.client("sagemaker")
    assert sm.list_training_jobs()["TrainingJobSummaries"] == []
    assert sm.list_models()["Models"] == []
    assert sm.list_endpoints()["Endpoints"] == []
