"""Arbitrary Python: a TaskFlow @task function."""

from airflow.sdk import DAG, task

with DAG(dag_id="bad_task_decorator", schedule=None) as dag:

    @task
    def summarize():
        return {"rows": 1}

    summarize()
