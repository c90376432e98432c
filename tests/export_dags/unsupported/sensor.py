"""A sensor with no converter."""

from datetime import timedelta

from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import DAG

with DAG(dag_id="bad_sensor", schedule=None) as dag:
    TimeDeltaSensor(task_id="wait_an_hour", delta=timedelta(hours=1))
