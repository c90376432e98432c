"""Free-form Jinja in stock operator fields: a template variable and a filter."""

from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.providers.amazon.aws.operators.lambda_function import LambdaInvokeFunctionOperator
from airflow.sdk import DAG, Param

with DAG(dag_id="bad_free_jinja", schedule=None, params={"fn": Param("check", type="string")}) as dag:
    etl = GlueJobOperator(task_id="etl_for_day", job_name="etl-{{ macros.ds_add(ds, 1) }}")
    check = LambdaInvokeFunctionOperator(
        task_id="check_filtered", function_name="{{ params.fn | upper }}", payload="{}"
    )
    etl >> check
