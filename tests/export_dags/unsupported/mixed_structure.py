"""An untranslatable task AND a structural problem (branch joined with the default trigger rule)."""

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param

from retraining import LambdaInvokeOperator, MetricChoiceOperator, MetricRule, ParamRef, ResultRef

with DAG(dag_id="mixed_structure", schedule=None, params={"fn": Param("check", type="string")}) as dag:
    shell = BashOperator(task_id="shell_step", bash_command="echo hi")
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
    join = EmptyOperator(task_id="join")  # default trigger_rule: the join is skipped with a branch
    shell >> check >> choose >> [deploy, skip] >> join
