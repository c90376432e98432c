"""The provider's sensors as retraining DAGs use them: wait for data in S3, for a training job, for an endpoint."""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.amazon.aws.operators.s3 import S3CreateObjectOperator
from airflow.providers.amazon.aws.sensors.glue import GlueJobSensor
from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.providers.amazon.aws.sensors.sagemaker import SageMakerEndpointSensor, SageMakerTrainingSensor
from airflow.sdk import DAG, Param

with DAG(
    dag_id="s3_key_sensor",
    schedule=None,
    params={"bucket": Param("sensor-demo", type="string"), "day": Param("2026-11-29", type="string")},
    default_args={"retries": 1, "retry_delay": timedelta(seconds=10)},
) as s3_key_sensor:
    wait_for_schema = S3KeySensor(
        task_id="wait_for_schema",
        bucket_name="{{ params.bucket }}",
        bucket_key=["schema/churn.json", "schema/features.json"],
        poke_interval=1,
        timeout=4,
    )
    wait_for_data = S3KeySensor(
        task_id="wait_for_data",
        bucket_key="s3://sensor-demo/incoming/{{ params.day }}/*",
        wildcard_match=True,
        poke_interval=1,
        timeout=4,
        exponential_backoff=True,
        max_wait=timedelta(seconds=2),
    )
    write_marker = S3CreateObjectOperator(
        task_id="write_marker",
        s3_bucket="{{ params.bucket }}",
        s3_key="ready/{{ params.day }}",
        data="ready",
        replace=True,
    )
    wait_for_schema >> wait_for_data >> write_marker

with DAG(
    dag_id="job_sensors",
    schedule=None,
    params={
        "job": Param("churn-xgb-7", type="string"),
        "endpoint": Param("churn-endpoint", type="string"),
        "glue_job": Param("churn-etl", type="string"),
        "glue_run": Param("jr_0", type="string"),
    },
    default_args={"retries": 1, "retry_delay": timedelta(seconds=10)},
) as job_sensors:
    wait_for_training = SageMakerTrainingSensor(
        task_id="wait_for_training", job_name="{{ params.job }}", poke_interval=1, timeout=4, print_log=False
    )
    wait_for_endpoint = SageMakerEndpointSensor(
        task_id="wait_for_endpoint", endpoint_name="{{ params.endpoint }}", poke_interval=30, timeout=3600
    )
    wait_for_etl = GlueJobSensor(
        task_id="wait_for_etl", job_name="{{ params.glue_job }}", run_id="{{ params.glue_run }}", poke_interval=60
    )
    wait_for_training >> wait_for_endpoint >> wait_for_etl
