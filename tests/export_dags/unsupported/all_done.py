"""trigger_rule all_done (runs whatever happened upstream): no Step Functions equivalent."""

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG(dag_id="bad_all_done", schedule=None) as dag:
    work = EmptyOperator(task_id="work")
    cleanup = EmptyOperator(task_id="cleanup", trigger_rule="all_done")
    work >> cleanup
