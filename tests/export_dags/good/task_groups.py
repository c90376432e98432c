"""Task groups: a nested ``TaskGroup`` and a ``@task_group``-built group of exportable (stock S3) tasks.

State names keep the group path (``prepare.stage.raw``); the graph draws a cluster per group.
"""

from __future__ import annotations

from airflow.providers.amazon.aws.operators.s3 import (
    S3CopyObjectOperator,
    S3CreateBucketOperator,
    S3CreateObjectOperator,
    S3DeleteObjectsOperator,
)
from airflow.sdk import DAG, Param, TaskGroup, task_group

BUCKET = "{{ params.bucket }}"

with DAG(
    dag_id="task_groups",
    schedule=None,
    params={"bucket": Param("groups-demo", type="string"), "source_key": Param("raw/data.csv", type="string")},
) as task_groups:
    with TaskGroup("prepare") as prepare:
        create_bucket = S3CreateBucketOperator(task_id="create_bucket", bucket_name=BUCKET)
        with TaskGroup("stage") as stage:
            S3CreateObjectOperator(
                task_id="raw", s3_bucket=BUCKET, s3_key="raw/data.csv", data="a,b\n1,2\n", replace=True
            )
            S3CreateObjectOperator(
                task_id="meta", s3_bucket=BUCKET, s3_key="raw/meta.json", data='{"rows": 1}', replace=True
            )
        create_bucket >> stage

    @task_group(group_id="publish")
    def publish(source_key: str) -> None:
        copy = S3CopyObjectOperator(
            task_id="copy",
            source_bucket_name=BUCKET,
            source_bucket_key=source_key,
            dest_bucket_name=BUCKET,
            dest_bucket_key="published/data.csv",
        )
        marker = S3CreateObjectOperator(
            task_id="marker", s3_bucket=BUCKET, s3_key="published/_SUCCESS", data="ok", replace=True
        )
        # Runs whatever the copy did (all_done); the run still fails when the marker is not written.
        cleanup = S3DeleteObjectsOperator(
            task_id="cleanup", bucket=BUCKET, keys=["raw/data.csv", "raw/meta.json"], trigger_rule="all_done"
        )
        copy >> [marker, cleanup]

    prepare >> publish("{{ params.source_key }}")
