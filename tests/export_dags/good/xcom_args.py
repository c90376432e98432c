"""XComArgs wiring results the Task SDK way: ``task.output`` and ``task.output["key"]`` in operator fields.

The Glue run's id reaches the sensor (``run_etl.output``: the operator returns it) and our SDK call
(``run_etl.output["glue_job_run_id"]``: the operator pushes it under that key too); the SDK call's
``multiple_outputs=True`` makes its ``ETag`` field an XCom of its own, which the stock S3 operator writes.
"""

from __future__ import annotations

from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.providers.amazon.aws.operators.s3 import S3CreateObjectOperator
from airflow.providers.amazon.aws.sensors.glue import GlueJobSensor
from airflow.sdk import DAG

from retraining.aws_sdk import AwsSdkCallOperator

with DAG(dag_id="xcom_args", schedule=None) as xcom_args:
    run_etl = GlueJobOperator(
        task_id="run_etl",
        job_name="churn-etl-xcom",
        script_location="s3://xcom-demo/scripts/churn_etl.py",
        iam_role_name="GlueRole",
        create_job_kwargs={"GlueVersion": "5.0", "WorkerType": "G.1X", "NumberOfWorkers": 2},
        wait_for_completion=False,
    )
    wait_for_etl = GlueJobSensor(
        task_id="wait_for_etl", job_name="churn-etl-xcom", run_id=run_etl.output, poke_interval=1, timeout=30
    )
    mark_run = AwsSdkCallOperator(
        task_id="mark_run",
        service="s3",
        action="PutObject",
        request={"Bucket": "xcom-demo", "Key": run_etl.output["glue_job_run_id"], "Body": "done"},
        result_fields=("ETag",),
        multiple_outputs=True,
    )
    record_etag = S3CreateObjectOperator(
        task_id="record_etag", s3_bucket="xcom-demo", s3_key="etags/latest", data=mark_run.output["ETag"], replace=True
    )
    wait_for_etl >> mark_run
