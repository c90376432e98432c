"""A sensor that may time out, with and without soft_fail: skipped (and its downstream decided by trigger rules)
or failed."""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.amazon.aws.operators.s3 import S3CreateObjectOperator
from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.sdk import DAG, Param

for dag_id, soft_fail in (("soft_fail_sensor", True), ("hard_fail_sensor", False)):
    with DAG(
        dag_id=dag_id,
        schedule=None,
        params={"bucket": Param("soft-fail-demo", type="string")},
        default_args={"retries": 1, "retry_delay": timedelta(seconds=10)},
    ) as dag:
        wait_for_data = S3KeySensor(
            task_id="wait_for_data",
            bucket_name="{{ params.bucket }}",
            bucket_key="incoming/data.csv",
            poke_interval=1,
            timeout=2,
            soft_fail=soft_fail,
        )
        # all_success: skipped with the sensor, and so is what follows it.
        process = S3CreateObjectOperator(
            task_id="process", s3_bucket="{{ params.bucket }}", s3_key="out/processed", data="x", replace=True
        )
        publish = S3CreateObjectOperator(
            task_id="publish", s3_bucket="{{ params.bucket }}", s3_key="out/published", data="x", replace=True
        )
        # none_failed: runs after a skip, not after a failure.
        audit = S3CreateObjectOperator(
            task_id="audit",
            s3_bucket="{{ params.bucket }}",
            s3_key="out/audited",
            data="x",
            replace=True,
            trigger_rule="none_failed",
        )
        wait_for_data >> process >> publish
        wait_for_data >> audit
    globals()[dag_id] = dag
