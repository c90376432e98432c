"""Stock operators' own behaviour: ``SageMakerTrainingOperator`` with a fixed ``TrainingJobName``, run twice.

Airflow (``check_if_job_exists=True, action_if_job_exists="timestamp"``, the defaults) finds the job of
the first run and trains the second under ``<name>-<epoch seconds>``; the export finds it too and trains
under ``<name>-<md5 of the execution name>``. Both runs succeed on both sides, with two jobs.
"""

from __future__ import annotations

import re

import pytest

from tests.export14_harness import Interpreter, load, run_on_both_sides


def _jobs(client) -> list[str]:
    return sorted(j["TrainingJobName"] for j in client("sagemaker").list_training_jobs()["TrainingJobSummaries"])


def test_a_fixed_training_job_name_works_run_after_run(aws, airflow_db):
    both = run_on_both_sides(aws, load("stock_training"), ["train_model"], [None, None], _jobs)
    airflow, exported, airflow_jobs, exported_jobs = both.airflow, both.exported, both.airflow_seen, both.exported_seen

    assert exported == airflow
    assert [r.state for r in airflow] == ["success", "success"]
    assert airflow_jobs[0] == exported_jobs[0] == "churn-xgb-fixed"
    assert re.fullmatch(r"churn-xgb-fixed-\d{10}", airflow_jobs[1])
    assert re.fullmatch(r"churn-xgb-fixed-[0-9a-f]{32}", exported_jobs[1])
    # The result keeps the stock shape: {"Training": DescribeTrainingJob}.
    assert airflow[1].results["train_model"]["Training"]["TrainingJobName"] == airflow_jobs[1]
    assert exported[1].results["train_model"]["Training"]["TrainingJobName"] == exported_jobs[1]


@pytest.mark.parametrize("action", ["fail"])
def test_action_if_job_exists_fail_fails_the_second_run(aws, airflow_db, action):
    from exporters.api import export_dag_object

    dag = load("stock_training")
    task = dag.get_task("train_model")
    task.action_if_job_exists = action
    try:
        definition = export_dag_object(dag).definition
    finally:
        task.action_if_job_exists = "timestamp"
    with Interpreter() as sfn:
        machine = sfn.create(definition)
        runs = [sfn.run(machine, ["train_model"]), sfn.run(machine, ["train_model"])]
    assert [r.state for r in runs] == ["success", "failed"]
    assert runs[1].error == "TrainingJobExists"
    # Airflow: AirflowException("A SageMaker job with name ... already exists.")


@pytest.mark.parametrize("keep_trailing_newline", [False, True])
def test_stock_fields_are_exported_as_airflows_jinja_renders_them(keep_trailing_newline):
    """Every string of a template field goes through Airflow's Jinja (one trailing newline dropped, CRLF → LF)."""
    from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
    from airflow.providers.amazon.aws.operators.lambda_function import LambdaInvokeFunctionOperator
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerModelOperator
    from airflow.sdk import DAG

    from exporters.api import export_dag_object

    with DAG(
        "stock_rendering", schedule=None, jinja_environment_kwargs={"keep_trailing_newline": keep_trailing_newline}
    ) as dag:
        glue = GlueJobOperator(task_id="etl", job_name="churn-etl\n", script_args={"--label": "weekly\r\nrun\n"})
        model = SageMakerModelOperator(
            task_id="model",
            config={"ModelName": "churn-model\n", "ExecutionRoleArn": "arn:aws:iam::123456789012:role/R"},
        )
        invoke = LambdaInvokeFunctionOperator(task_id="check", function_name="check\n", payload='{"a": "x"}\n')
        glue >> model >> invoke
    env = dag.get_template_env()

    def rendered(task, value):  # Airflow's own rendering of the field's value
        return task.render_template(value, {}, jinja_env=env)

    states = export_dag_object(dag).definition["States"]
    assert states["etl"]["Parameters"]["JobName"] == rendered(glue, "churn-etl\n")
    assert states["etl"]["Parameters"]["Arguments"] == rendered(glue, {"--label": "weekly\r\nrun\n"})
    assert states["model"]["Parameters"]["ModelName"] == rendered(model, "churn-model\n")
    assert states["check"]["Parameters"]["FunctionName"] == rendered(invoke, "check\n")
    assert states["check"]["Parameters"]["Payload"] == {"a": "x"}
    assert (states["etl"]["Parameters"]["JobName"] == "churn-etl\n") is keep_trailing_newline
