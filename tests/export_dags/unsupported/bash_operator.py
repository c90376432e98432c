"""A shell command."""

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(dag_id="bad_bash_operator", schedule=None) as dag:
    BashOperator(task_id="copy_files", bash_command="aws s3 sync s3://a s3://b")
