"""DAGs that show exporter defects found while writing the export tests (used by tests/test_export_structure.py).

Every DAG here is valid Airflow; the exporter exported it unfaithfully or produced a
definition Step Functions would reject. Each is pinned by an xfail(strict) test, except
``gap_sibling_result_ref``, fixed since (refused now; a regular test checks the message).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.providers.amazon.aws.operators.lambda_function import LambdaInvokeFunctionOperator
from airflow.providers.amazon.aws.operators.sagemaker import SageMakerEndpointOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param

from retraining import GlueJobRunOperator, LambdaInvokeOperator, ParamRef, ResultRef, SageMakerDeployEndpointOperator

PARAMS = {
    "job": Param("etl", type="string"),
    "fn": Param("check", type="string"),
    "endpoint_a": Param("endpoint-a", type="string"),
    "endpoint_b": Param("endpoint-b", type="string"),
}

# Two endpoints deployed side by side: each Parallel branch ends on a Choice rule,
# so each branch gets its own Succeed state named "Done".
with DAG(dag_id="gap_parallel_deploys", schedule=None, params=PARAMS) as gap_parallel_deploys:
    start = EmptyOperator(task_id="start")
    deploy_a = SageMakerDeployEndpointOperator(
        task_id="deploy_a", request={"EndpointName": ParamRef("endpoint_a"), "EndpointConfigName": "config-a"}
    )
    deploy_b = SageMakerDeployEndpointOperator(
        task_id="deploy_b", request={"EndpointName": ParamRef("endpoint_b"), "EndpointConfigName": "config-b"}
    )
    start >> [deploy_a, deploy_b]

# A failure handler whose task id is "Done" while the main flow ends on a Choice rule.
with DAG(dag_id="gap_handler_named_done", schedule=None, params=PARAMS) as gap_handler_named_done:
    h_work = GlueJobRunOperator(task_id="work", job_name=ParamRef("job"))
    h_deploy = SageMakerDeployEndpointOperator(
        task_id="deploy", request={"EndpointName": ParamRef("endpoint_a"), "EndpointConfigName": "config-a"}
    )
    on_failure = EmptyOperator(task_id="Done", trigger_rule="one_failed")
    h_work >> h_deploy
    h_work >> on_failure

# consumer reads producer's result but does not depend on it (they run side by side).
with DAG(dag_id="gap_sibling_result_ref", schedule=None, params=PARAMS) as gap_sibling_result_ref:
    s_start = EmptyOperator(task_id="start")
    producer = GlueJobRunOperator(task_id="producer", job_name=ParamRef("job"))
    consumer = LambdaInvokeOperator(
        task_id="consumer", function_name=ParamRef("fn"), payload={"run": ResultRef("producer", "JobRunId")}
    )
    s_start >> [producer, consumer]

# on_failure watches work; when prepare fails, work is upstream_failed and Airflow runs on_failure.
with DAG(dag_id="gap_handler_upstream_failure", schedule=None, params=PARAMS) as gap_handler_upstream_failure:
    prepare = GlueJobRunOperator(task_id="prepare", job_name=ParamRef("job"))
    u_work = GlueJobRunOperator(task_id="work", job_name=ParamRef("job"))
    u_handler = EmptyOperator(task_id="on_failure", trigger_rule="one_failed")
    prepare >> u_work >> u_handler

# Airflow 3 takes retry_exponential_backoff as the multiplier (delay x3 per retry here).
with DAG(dag_id="gap_backoff_multiplier", schedule=None, params=PARAMS) as gap_backoff_multiplier:
    GlueJobRunOperator(
        task_id="etl",
        job_name=ParamRef("job"),
        retries=3,
        retry_delay=timedelta(seconds=10),
        retry_exponential_backoff=3.0,
        max_retry_delay=timedelta(minutes=10),
    )

# Stock operator fields the converters neither translate nor refuse.
with DAG(dag_id="gap_stock_fields", schedule=None, params=PARAMS) as gap_stock_fields:
    # operation="create": Airflow updates the endpoint instead when it already exists.
    create_or_update = SageMakerEndpointOperator(
        task_id="create_endpoint",
        config={"EndpointName": "{{ params.endpoint_a }}", "EndpointConfigName": "config-a"},
        operation="create",
    )
    # run_job_kwargs go to StartJobRun in Airflow.
    sized_etl = GlueJobOperator(
        task_id="sized_etl", job_name="{{ params.job }}", run_job_kwargs={"NumberOfWorkers": 10, "WorkerType": "G.1X"}
    )
    # qualifier selects the alias/version Airflow invokes.
    aliased = LambdaInvokeFunctionOperator(
        task_id="aliased_check", function_name="{{ params.fn }}", qualifier="live", payload="{}"
    )
    sized_etl >> aliased >> create_or_update

# The same sibling read written with a stock operator's Jinja XCom pull.
with DAG(dag_id="gap_sibling_xcom_pull_stock", schedule=None, params=PARAMS) as gap_sibling_xcom_pull_stock:
    x_start = EmptyOperator(task_id="start")
    x_producer = GlueJobRunOperator(task_id="producer", job_name=ParamRef("job"))
    x_consumer = LambdaInvokeFunctionOperator(
        task_id="consumer",
        function_name="{{ params.fn }}",
        payload="{\"run\": \"{{ ti.xcom_pull(task_ids='producer')['JobRunId'] }}\"}",
    )
    x_start >> [x_producer, x_consumer]
