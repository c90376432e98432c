"""A branch target whose trigger rule fires when the branch task fails: Airflow runs it then, not only when chosen."""

from __future__ import annotations

from airflow.sdk import DAG, Param

from retraining import GlueJobRunOperator, LambdaInvokeOperator, MetricChoiceOperator, MetricRule, ParamRef, ResultRef

with DAG(
    dag_id="bad_branch_target_runs_on_failure",
    schedule=None,
    params={"job": Param("etl", type="string"), "function": Param("check-fn", type="string")},
) as dag:
    check = LambdaInvokeOperator(task_id="check", function_name=ParamRef("function"), payload={})
    choose = MetricChoiceOperator(
        task_id="choose",
        rule=MetricRule(
            metrics=ResultRef("check", "trainingMetrics"),
            metric="validation:error",
            comparison="<",
            threshold=0.1,
            if_true="publish",
            if_false="cleanup",
        ),
    )
    publish = GlueJobRunOperator(task_id="publish", job_name=ParamRef("job"))
    cleanup = GlueJobRunOperator(task_id="cleanup", job_name=ParamRef("job"), trigger_rule="all_done")
    check >> choose >> [publish, cleanup]
