"""Small DAGs (no AWS needed to export them) covering each shape the exporter handles.

Loaded by tests/test_export_structure.py with ``exporters.loader.load_dag(dag_id, dags_folder=<this file>)``.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param

from retraining import (
    FailRunOperator,
    Format,
    GlueJobRunOperator,
    LambdaInvokeOperator,
    MetricChoiceOperator,
    MetricRule,
    ParamRef,
    ResultRef,
)

PARAMS = {
    "job_a": Param("etl-a", type="string"),
    "job_b": Param("etl-b", type="string"),
    "function": Param("check-fn", type="string"),
    "threshold": Param(0.5, type="number"),
}


def glue(task_id: str, job_param: str, **kwargs) -> GlueJobRunOperator:
    return GlueJobRunOperator(
        task_id=task_id, job_name=ParamRef(job_param), script_arguments={"--RUN": task_id}, **kwargs
    )


def metrics_lambda(task_id: str, **payload) -> LambdaInvokeOperator:
    return LambdaInvokeOperator(task_id=task_id, function_name=ParamRef("function"), payload=payload)


# start → [glue_a, glue_b, check] → join → report (reads glue_a's run id: the merge keeps every branch's result)
with DAG(dag_id="fan_out_fan_in", schedule=None, params=PARAMS) as fan_out_fan_in:
    start = EmptyOperator(task_id="start")
    glue_a = glue("glue_a", "job_a")
    glue_b = glue("glue_b", "job_b")
    check = metrics_lambda("check", source="fan-out")
    join = EmptyOperator(task_id="join")
    report = metrics_lambda(
        "report",
        run_a=ResultRef("glue_a", "JobRunId"),
        run_b=ResultRef("glue_b", "JobRunId"),
        label=Format("runs {} and {}", ResultRef("glue_a", "JobName"), ResultRef("glue_b", "JobName")),
    )
    start >> [glue_a, glue_b, check] >> join >> report


# two roots that meet at one task
with DAG(dag_id="two_roots", schedule=None, params=PARAMS) as two_roots:
    root_a = glue("root_a", "job_a")
    root_b = glue("root_b", "job_b")
    meet = EmptyOperator(task_id="meet")
    finish = EmptyOperator(task_id="finish")
    [root_a, root_b] >> meet >> finish


# start → [a → [a1, a2] → a_join, b] → end
with DAG(dag_id="nested_fan_out", schedule=None, params=PARAMS) as nested_fan_out:
    n_start = EmptyOperator(task_id="start")
    a = EmptyOperator(task_id="a")
    a1 = glue("a1", "job_a")
    a2 = glue("a2", "job_b")
    a_join = EmptyOperator(task_id="a_join")
    b = EmptyOperator(task_id="b")
    n_end = EmptyOperator(task_id="end")
    n_start >> [a, b]
    a >> [a1, a2] >> a_join
    [a_join, b] >> n_end


# check → choose → (deploy → announce | skip) → join (none_failed_min_one_success) → after
with DAG(dag_id="branch_join", schedule=None, params=PARAMS) as branch_join:
    b_check = metrics_lambda("check", job="x")
    choose = MetricChoiceOperator(
        task_id="choose",
        rule=MetricRule(
            metrics=ResultRef("check", "metrics"),
            metric="validation:auc",
            comparison=">=",
            threshold=ParamRef("threshold"),
            if_true="deploy",
            if_false="skip",
        ),
    )
    deploy = glue("deploy", "job_a")
    announce = EmptyOperator(task_id="announce")
    skip = EmptyOperator(task_id="skip")
    b_join = EmptyOperator(task_id="join", trigger_rule="none_failed_min_one_success")
    after = EmptyOperator(task_id="after")
    b_check >> choose >> [deploy, skip]
    deploy >> announce >> b_join
    skip >> b_join
    b_join >> after


# A branch straight to the join (Airflow's "skip the optional step" idiom), with a literal threshold.
with DAG(dag_id="branch_to_join", schedule=None, params=PARAMS) as branch_to_join:
    t_check = metrics_lambda("check", job="x")
    gate = MetricChoiceOperator(
        task_id="gate",
        rule=MetricRule(
            metrics=ResultRef("check", "metrics"),
            metric="drift",
            comparison=">",
            threshold=0.2,
            if_true="retrain",
            if_false="join",
        ),
    )
    retrain = glue("retrain", "job_a")
    t_join = EmptyOperator(task_id="join", trigger_rule="none_failed_min_one_success")
    t_check >> gate >> [retrain, t_join]
    retrain >> t_join


# The 'N' shape: a → c, a → d, b → d (not series-parallel)
with DAG(dag_id="n_shape", schedule=None, params=PARAMS) as n_shape:
    na = glue("a", "job_a")
    nb = glue("b", "job_b")
    nc = EmptyOperator(task_id="c")
    nd = EmptyOperator(task_id="d")
    na >> [nc, nd]
    nb >> nd


# work fails → notify (one_failed) runs, then the run fails; work succeeds → done
with DAG(dag_id="failure_handler", schedule=None, params=PARAMS) as failure_handler:
    f_start = EmptyOperator(task_id="start")
    work = glue("work", "job_a", retries=1, retry_delay=timedelta(seconds=30))
    done = EmptyOperator(task_id="done")
    notify = metrics_lambda("notify", event="work failed")
    f_start >> work >> done
    work >> notify
    notify.trigger_rule = "one_failed"


with DAG(dag_id="empty_only", schedule=None) as empty_only:
    EmptyOperator(task_id="nothing_to_do")


# Retries, timeouts and a dagrun timeout on a two-stage chain (exponential and linear backoff).
with DAG(
    dag_id="retries_timeouts", schedule=None, params=PARAMS, dagrun_timeout=timedelta(minutes=45)
) as retries_timeouts:
    exp = glue(
        "exponential",
        "job_a",
        retries=4,
        retry_delay=timedelta(seconds=20),
        retry_exponential_backoff=2.0,
        max_retry_delay=timedelta(minutes=5),
        execution_timeout=timedelta(minutes=30),
    )
    lin = glue("linear", "job_b", retries=3, retry_delay=timedelta(seconds=45), max_retry_delay=timedelta(minutes=5))
    none = glue("no_retries", "job_b", retries=0)
    stop = FailRunOperator(task_id="never_reached_in_practice", error="Stop", cause="end of the chain")
    exp >> lin >> none >> stop
