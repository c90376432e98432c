"""The real retraining DAG, run with ``dag.test()`` against a moto server over HTTP."""

from __future__ import annotations

import pytest

FAST = 0.05  # poll interval for tests: moto answers at once


@pytest.fixture
def retraining_dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(__import__("tests.conftest").conftest.ROOT / "dags"))
    assert not bag.import_errors
    dag = bag.dags["model_retraining"]
    for task in dag.tasks:
        if hasattr(task, "poll_interval"):
            task.poll_interval = FAST
        task.retries = 0
    return dag


def _prepare(aws):
    aws.create_glue_job("churn-etl")
    aws.create_metric_function("query-training-status")
    aws.client("s3").create_bucket(Bucket="retraining-demo")
    return aws.create_role()


def test_good_model_is_deployed(aws, retraining_dag):
    role = _prepare(aws)
    run = retraining_dag.test(run_conf={"sagemaker_role_arn": role})
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    print(states)
    assert run.state == "success", states
