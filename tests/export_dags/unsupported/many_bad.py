"""Several untranslatable tasks in one DAG: the export error must list every one of them at once."""

from datetime import timedelta

from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import DAG, task

from retraining import GlueJobRunOperator, ParamRef


def _notify():
    print("done")


with DAG(dag_id="many_bad", schedule=None, params={"job": "etl"}) as dag:
    fine = GlueJobRunOperator(task_id="fine_glue", job_name=ParamRef("job"))
    wait = TimeDeltaSensor(task_id="wait_a_bit", delta=timedelta(minutes=5))
    shell = BashOperator(task_id="shell_step", bash_command="echo hi")
    jinja = GlueJobOperator(task_id="dated_etl", job_name="etl-{{ macros.ds_add(ds, 1) }}")
    py = PythonOperator(task_id="python_step", python_callable=_notify)
    always = EmptyOperator(task_id="always_cleanup", trigger_rule="all_done")

    @task
    def taskflow_step():
        return 1

    fine >> wait >> shell >> jinja >> py >> taskflow_step() >> always
