"""A pipeline that runs another as a step (TriggerDagRunOperator), waiting for it or not."""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.amazon.aws.operators.s3 import S3CreateObjectOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Param

with DAG(
    dag_id="nested_child",
    schedule=None,
    params={"bucket": Param("nested-demo", type="string"), "label": Param("default", type="string")},
) as nested_child:
    S3CreateObjectOperator(
        task_id="write_features",
        s3_bucket="{{ params.bucket }}",
        s3_key="features/{{ params.label }}.csv",
        data="f1,f2",
        replace=True,
    )

with DAG(
    dag_id="nested_parent",
    schedule=None,
    params={"bucket": Param("nested-demo", type="string"), "label": Param("weekly", type="string")},
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
) as nested_parent:
    build_features = TriggerDagRunOperator(
        task_id="build_features",
        trigger_dag_id="nested_child",
        conf={"bucket": "{{ params.bucket }}", "label": "{{ params.label }}"},
        wait_for_completion=True,
        poke_interval=5,
    )
    notify = TriggerDagRunOperator(
        task_id="notify",
        trigger_dag_id="nested_child",
        conf={"bucket": "{{ params.bucket }}", "label": "notified"},
    )
    build_features >> notify
