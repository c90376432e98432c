"""The provider's S3 operators as an existing DAG uses them (templated with params only)."""

from __future__ import annotations

from airflow.providers.amazon.aws.operators.s3 import (
    S3CopyObjectOperator,
    S3CreateBucketOperator,
    S3CreateObjectOperator,
    S3DeleteBucketOperator,
    S3DeleteObjectsOperator,
)
from airflow.sdk import DAG, Param

BUCKET = "{{ params.bucket }}"

with DAG(
    dag_id="s3_operators",
    schedule=None,
    params={"bucket": Param("s3-ops-demo", type="string"), "label": Param("first", type="string")},
) as s3_operators:
    create_bucket = S3CreateBucketOperator(task_id="create_bucket", bucket_name=BUCKET)
    write_report = S3CreateObjectOperator(
        task_id="write_report",
        s3_bucket=BUCKET,
        s3_key="reports/{{ params.label }}.csv",
        data="metric,value\nvalidation:error,0.05\n",
    )
    stage_raw = S3CreateObjectOperator(
        task_id="stage_raw",
        s3_key="s3://s3-ops-demo/raw/{{ params.label }}.csv",
        data="a,b\n1,2\n",
        replace=True,
        encrypt=True,
    )
    archive = S3CopyObjectOperator(
        task_id="archive",
        source_bucket_name=BUCKET,
        source_bucket_key="raw/{{ params.label }}.csv",
        dest_bucket_name=BUCKET,
        dest_bucket_key="archive/{{ params.label }}.csv",
    )
    clean_raw = S3DeleteObjectsOperator(task_id="clean_raw", bucket=BUCKET, prefix="raw/")
    drop_markers = S3DeleteObjectsOperator(
        task_id="drop_markers", bucket=BUCKET, keys=["markers/{{ params.label }}", "markers/latest"]
    )
    create_bucket >> write_report >> stage_raw >> archive >> clean_raw >> drop_markers

with DAG(
    dag_id="s3_teardown",
    schedule=None,
    params={"bucket": Param("s3-ops-demo", type="string")},
) as s3_teardown:
    S3DeleteBucketOperator(task_id="delete_bucket", bucket_name=BUCKET, force_delete=True)
