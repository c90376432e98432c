"""Step Functions quotas checked at export: each warning names the limit and AWS's quota page."""

from __future__ import annotations

from datetime import timedelta

from exporters.quotas import MAX_HISTORY_EVENTS, QUOTAS_DOC


def _export(dag):
    from exporters.api import export_dag_object

    return export_dag_object(dag)


def test_a_definition_over_1_mb_is_reported_with_the_quota():
    from airflow.sdk import DAG, Param

    from retraining import GlueJobRunOperator, ParamRef

    with DAG(dag_id="big", schedule=None, params={"job": Param("etl", type="string")}) as dag:
        previous = None
        for i in range(4000):  # about 320 bytes each, minified
            task = GlueJobRunOperator(task_id=f"t{i:04d}", job_name=ParamRef("job"), script_arguments={"--I": str(i)})
            if previous is not None:
                previous >> task
            previous = task
    warnings = _export(dag).warnings
    assert any("1 MB definition size quota" in w and QUOTAS_DOC in w for w in warnings), warnings


def test_large_param_defaults_are_reported_with_the_payload_quota():
    from airflow.sdk import DAG, Param

    from retraining import GlueJobRunOperator, ParamRef

    with DAG(dag_id="big_params", schedule=None, params={"blob": Param("x" * 200_000, type="string")}) as dag:
        GlueJobRunOperator(task_id="etl", job_name=ParamRef("blob"))
    warnings = _export(dag).warnings
    assert any("256 KiB payload quota" in w and QUOTAS_DOC in w for w in warnings), warnings


def test_a_run_that_can_exceed_the_history_quota_is_reported():
    from airflow.sdk import DAG

    from retraining import SageMakerDeployEndpointOperator

    with DAG(dag_id="long_wait", schedule=None) as dag:
        # 24 h of 5 s polls, 3 attempts: far beyond 25,000 history events.
        SageMakerDeployEndpointOperator(
            task_id="deploy",
            request={"EndpointName": "e", "EndpointConfigName": "c"},
            poll_interval=5,
            execution_timeout=timedelta(hours=24),
            retries=2,
        )
    warnings = _export(dag).warnings
    assert any(f"{MAX_HISTORY_EVENTS:,}-event execution history quota" in w for w in warnings), warnings


def test_the_retraining_dag_is_within_every_quota():
    from exporters.loader import load_dag
    from tests.conftest import ROOT

    warnings = _export(load_dag("model_retraining", ROOT / "dags")).warnings
    assert not [w for w in warnings if QUOTAS_DOC in w], warnings
