"""A branch whose join keeps the default trigger rule (all_success).

Airflow skips the join whenever a branch is skipped.
"""

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param

from retraining import LambdaInvokeOperator, MetricChoiceOperator, MetricRule, ParamRef, ResultRef

with DAG(dag_id="bad_branch_default_join", schedule=None, params={"fn": Param("check", type="string")}) as dag:
    check = LambdaInvokeOperator(task_id="check", function_name=ParamRef("fn"), payload={})
    choose = MetricChoiceOperator(
        task_id="choose",
        rule=MetricRule(
            metrics=ResultRef("check", "metrics"),
            metric="auc",
            comparison=">",
            threshold=0.8,
            if_true="deploy",
            if_false="skip",
        ),
    )
    deploy = EmptyOperator(task_id="deploy")
    skip = EmptyOperator(task_id="skip")
    join = EmptyOperator(task_id="join")  # default trigger_rule: all_success
    check >> choose >> [deploy, skip] >> join
