"""DAGs with max_active_runs=1 for the run-slot guard tests: each run waits for its own S3 key."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.sdk import DAG, Param

BUCKET = "run-slots-demo"


def _guarded(dag_id: str, dagrun_timeout: timedelta, sensor_timeout: int) -> DAG:
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=dagrun_timeout,
        params={"key": Param("go", type="string")},
    ) as dag:
        S3KeySensor(
            task_id="wait_for_go",
            bucket_name=BUCKET,
            bucket_key="{{ params.key }}*",
            wildcard_match=True,  # ListObjectsV2: a missing key is an answer, not an error
            poke_interval=1,
            timeout=sensor_timeout,
        )
    return dag


# Runs until its key appears (or its sensor gives up after 60 s).
one_at_a_time = _guarded("one_at_a_time", timedelta(seconds=120), sensor_timeout=60)
# Its sensor gives up after 2 s: the run fails.
fails_fast = _guarded("fails_fast", timedelta(seconds=120), sensor_timeout=2)
# The whole run may take 8 s (Step Functions: the execution's TimeoutSeconds), queue included.
times_out = _guarded("times_out", timedelta(seconds=8), sensor_timeout=600)
