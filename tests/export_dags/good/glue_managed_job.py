"""A stock GlueJobOperator that owns its job definition (script_location, create_job_kwargs, iam_role_name)."""

from __future__ import annotations

from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.sdk import DAG

with DAG(dag_id="glue_managed_job", schedule=None) as glue_managed_job:
    GlueJobOperator(
        task_id="run_etl",
        job_name="churn-etl-managed",
        script_location="s3://glue-demo/scripts/churn_etl.py",
        iam_role_name="GlueRole",
        s3_bucket="glue-demo",
        create_job_kwargs={"GlueVersion": "5.0", "WorkerType": "G.1X", "NumberOfWorkers": 2},
        script_args={"--S3_DEST": "s3://glue-demo/processed/"},
        job_poll_interval=1,
    )
