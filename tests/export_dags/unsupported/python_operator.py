"""Arbitrary Python: a PythonOperator with a callable."""

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG


def _score():
    return 0.9


with DAG(dag_id="bad_python_operator", schedule=None) as dag:
    PythonOperator(task_id="score_in_python", python_callable=_score)
