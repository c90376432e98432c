"""Wait for the day's partition of a Glue Data Catalog table, then for yesterday's in another table.

``GlueCatalogPartitionSensor`` both ways Airflow accepts the table: ``"database.table"`` in ``table_name``,
and ``database_name`` with ``table_name``; the expression templated from a param and literal.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.amazon.aws.sensors.glue_catalog_partition import GlueCatalogPartitionSensor
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param

with DAG(
    dag_id="partition_sensor",
    schedule=None,
    params={"day": Param("2026-11-29", type="string", pattern="^[0-9]{4}-[0-9]{2}-[0-9]{2}$")},
    default_args={"retries": 1, "retry_delay": timedelta(seconds=10)},
) as partition_sensor:
    wait_for_orders = GlueCatalogPartitionSensor(
        task_id="wait_for_orders",
        table_name="sales.orders",
        expression="ds='{{ params.day }}'",
        poke_interval=1,
        timeout=3,
    )
    wait_for_returns = GlueCatalogPartitionSensor(
        task_id="wait_for_returns",
        database_name="sales",
        table_name="returns",
        expression="ds='2026-11-28' AND region='eu'",
        poke_interval=1,
        timeout=2,
    )
    build_features = EmptyOperator(task_id="build_features")
    wait_for_orders >> wait_for_returns >> build_features
