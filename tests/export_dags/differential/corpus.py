"""DAGs for the differential test (tests/test_export_differential.py): Airflow's dag.test() vs the exported machine.

Each shape the failure model must get right: chains, fan-out/fan-in, nested fan-out,
branches that join, a branch task that fails while the run goes on, several
handlers on one task, a handler as the only leaf, a handler on a FailRunOperator,
graphs that are not series-parallel, every trigger rule, retries and timeouts,
stock provider operators. Glue job runs stand for any AWS call; the metric check
is a Lambda returning ``trainingMetrics``.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.providers.amazon.aws.operators.lambda_function import LambdaInvokeFunctionOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param

from retraining import (
    FailRunOperator,
    GlueJobRunOperator,
    LambdaInvokeOperator,
    MetricChoiceOperator,
    MetricRule,
    ParamRef,
    ResultRef,
    SageMakerDeployEndpointOperator,
)

PARAMS = {"job": Param("etl", type="string"), "fn": Param("check", type="string"), "threshold": Param(0.1)}
RETRY = {"retries": 1, "retry_delay": timedelta(seconds=30)}


def glue(task_id: str, **kwargs):
    return GlueJobRunOperator(task_id=task_id, job_name=ParamRef("job"), **kwargs)


def metric_check(task_id: str = "check"):
    return LambdaInvokeOperator(task_id=task_id, function_name=ParamRef("fn"), payload={"run": "x"})


def metric_choice(task_id: str, if_true: str, if_false: str, check: str = "check"):
    return MetricChoiceOperator(
        task_id=task_id,
        rule=MetricRule(
            metrics=ResultRef(check, "trainingMetrics"),
            metric="validation:error",
            comparison="<",
            threshold=ParamRef("threshold"),
            if_true=if_true,
            if_false=if_false,
        ),
    )


with DAG(dag_id="diff_linear", schedule=None, params=PARAMS) as diff_linear:
    glue("a") >> glue("b", **RETRY) >> glue("c")

with DAG(dag_id="diff_fan", schedule=None, params=PARAMS) as diff_fan:
    glue("a") >> [glue("b", **RETRY), glue("c")] >> glue("d")

with DAG(dag_id="diff_nested", schedule=None, params=PARAMS) as diff_nested:
    n_b, n_e = glue("b"), EmptyOperator(task_id="e")
    glue("a") >> [n_b, glue("f")]
    n_b >> [glue("c"), glue("d")] >> n_e
    [n_e, diff_nested.get_task("f")] >> glue("g")

with DAG(dag_id="diff_branch_join", schedule=None, params=PARAMS) as diff_branch_join:
    j_join = EmptyOperator(task_id="join", trigger_rule="none_failed_min_one_success")
    metric_check() >> metric_choice("choose", "good", "bad") >> [glue("good"), glue("bad")] >> j_join
    j_join >> glue("after")

with DAG(dag_id="diff_branch_failure", schedule=None, params=PARAMS) as diff_branch_failure:
    # The choice fails (metric missing) or is upstream_failed (the check fails): no target runs, the run goes on.
    bf_report = EmptyOperator(task_id="report", trigger_rule="none_failed")
    metric_check() >> metric_choice("choose", "good", "bad") >> [glue("good"), glue("bad", **RETRY)] >> bf_report
    bf_report >> EmptyOperator(task_id="wrap_up", trigger_rule="all_done") >> glue("after")

with DAG(dag_id="diff_handlers", schedule=None, params=PARAMS) as diff_handlers:
    h_b = glue("b", **RETRY)
    glue("a") >> h_b
    h_b >> [
        EmptyOperator(task_id="alert", trigger_rule="one_failed"),
        glue("cleanup", trigger_rule="all_failed"),
        glue("c"),
        EmptyOperator(task_id="audit", trigger_rule="all_done"),
    ]

with DAG(dag_id="diff_handler_leaf", schedule=None, params=PARAMS) as diff_handler_leaf:
    glue("work") >> glue("on_failure", trigger_rule="one_failed")

with DAG(dag_id="diff_handler_on_fail", schedule=None, params=PARAMS) as diff_handler_on_fail:
    stop = FailRunOperator(task_id="stop", error="Stopped", cause="stopped on purpose")
    glue("a") >> stop >> glue("notify", trigger_rule="one_failed")

with DAG(dag_id="diff_diamond", schedule=None, params=PARAMS) as diff_diamond:
    d_a, d_b, d_c, d_d = glue("a"), glue("b"), glue("c"), glue("d")
    d_a >> [d_b, d_c]
    d_b >> d_d
    d_c >> [d_d, glue("e")]

with DAG(dag_id="diff_rules", schedule=None, params=PARAMS) as diff_rules:
    r_x, r_y = glue("x"), glue("y")
    for rule in (
        "all_success",
        "all_failed",
        "all_done",
        "all_skipped",
        "one_success",
        "one_failed",
        "one_done",
        "none_failed",
        "none_failed_min_one_success",
        "none_skipped",
        "always",
    ):
        [r_x, r_y] >> EmptyOperator(task_id=f"r_{rule}", trigger_rule=rule)

with DAG(dag_id="diff_timeouts", schedule=None, params=PARAMS) as diff_timeouts:
    t_deploy = SageMakerDeployEndpointOperator(
        task_id="deploy",
        request={"EndpointName": "endpoint-a", "EndpointConfigName": "config-a"},
        execution_timeout=timedelta(minutes=2),
        poll_interval=30,
        retries=2,
        retry_delay=timedelta(seconds=30),
    )
    glue("etl", execution_timeout=timedelta(minutes=10), retries=2, retry_delay=timedelta(seconds=5)) >> t_deploy

with DAG(dag_id="diff_stock", schedule=None, params=PARAMS) as diff_stock:
    s_start = EmptyOperator(task_id="start")
    s_glue = GlueJobOperator(task_id="glue", job_name="{{ params.job }}", wait_for_completion=True)
    s_fn = LambdaInvokeFunctionOperator(task_id="invoke", function_name="{{ params.fn }}", payload='{"a": 1}')
    s_start >> [s_glue, s_fn] >> EmptyOperator(task_id="end")
