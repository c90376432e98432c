"""A branch task whose failure lets the run go on (no AWS needed to export it).

The metric check may fail (the choice is then upstream_failed) or the metric may be
missing (the choice fails): no target runs; Airflow marks both targets
upstream_failed, the ``none_failed`` report is upstream_failed, and the ``all_done``
wrap-up still runs the final job.
"""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param

from retraining import GlueJobRunOperator, LambdaInvokeOperator, MetricChoiceOperator, MetricRule, ParamRef, ResultRef

PARAMS = {
    "job": Param("etl", type="string"),
    "function": Param("check-fn", type="string"),
    "threshold": Param(0.5, type="number"),
}


def glue(task_id: str) -> GlueJobRunOperator:
    return GlueJobRunOperator(task_id=task_id, job_name=ParamRef("job"), script_arguments={"--RUN": task_id})


with DAG(dag_id="branch_failure", schedule=None, params=PARAMS) as branch_failure:
    check = LambdaInvokeOperator(task_id="check", function_name=ParamRef("function"), payload={"run": "x"})
    choose = MetricChoiceOperator(
        task_id="choose",
        rule=MetricRule(
            metrics=ResultRef("check", "trainingMetrics"),
            metric="validation:error",
            comparison="<",
            threshold=ParamRef("threshold"),
            if_true="publish",
            if_false="retrain",
        ),
    )
    report = EmptyOperator(task_id="report", trigger_rule="none_failed")
    check >> choose >> [glue("publish"), glue("retrain")] >> report
    report >> EmptyOperator(task_id="wrap_up", trigger_rule="all_done") >> glue("archive")
