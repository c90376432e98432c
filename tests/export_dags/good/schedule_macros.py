"""Schedule-time values: Airflow's time macros in stock operators and LogicalDate/RunId in ours, per timetable.

Each DAG writes what its run renders into S3: the stock ``S3CreateObjectOperator`` the macros as text (its
key dated by the run), ``AwsSdkCallOperator`` the same values through our references.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.amazon.aws.operators.s3 import S3CreateBucketOperator, S3CreateObjectOperator
from airflow.sdk import DAG, Param
from airflow.timetables.interval import CronDataIntervalTimetable
from airflow.timetables.trigger import CronTriggerTimetable, DeltaTriggerTimetable

from retraining.aws_sdk import AwsSdkCallOperator
from retraining.refs import Format, LogicalDate, ParamRef, RunId

EVERY_MACRO = (
    "ds={{ ds }}|ds_nodash={{ ds_nodash }}|ts={{ ts }}|ts_nodash={{ ts_nodash }}|tz={{ ts_nodash_with_tz }}"
    "|logical_date={{ logical_date }}|start={{ data_interval_start }}|end={{ data_interval_end }}"
    "|run_id={{ run_id }}|compact={{ logical_date.strftime('%Y%m%d%H%M%S') }}"
)
# A data-interval timetable: its logical date is one period before the run; what the run was due at is exact.
INTERVAL_END_MACROS = "end={{ data_interval_end }}|day={{ data_interval_end.strftime('%Y-%m-%d') }}|run_id={{ run_id }}"


def _macros_dag(dag_id: str, schedule, text: str, own: dict) -> DAG:
    with DAG(
        dag_id=dag_id,
        schedule=schedule,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        params={"bucket": Param("macros-demo", type="string")},
    ) as dag:
        make_bucket = S3CreateBucketOperator(task_id="make_bucket", bucket_name="{{ params.bucket }}")
        stamp = S3CreateObjectOperator(
            task_id="stamp",
            s3_bucket="{{ params.bucket }}",
            s3_key="stock/{{ data_interval_end.strftime('%Y%m%dT%H%M%S') }}",
            data=text,
        )
        own_refs = AwsSdkCallOperator(
            task_id="own_refs",
            service="s3",
            action="PutObject",
            request={"Bucket": ParamRef("bucket"), **own},
            result_fields=("ETag",),
        )
        make_bucket >> stamp >> own_refs
    return dag


EVERY_REF = {
    "Key": Format("own/{}", LogicalDate("%Y%m%d%H%M%S")),
    "Body": Format(
        "{}|{}|{}|{}|{}",
        LogicalDate(),
        LogicalDate("iso"),
        LogicalDate("%Y-%m-%dT%H:%M:%S", of="data_interval_start"),
        LogicalDate("str", of="data_interval_end"),
        RunId(),
    ),
}

macros_cron_utc = _macros_dag("macros_cron_utc", "0 6 * * *", EVERY_MACRO, EVERY_REF)
macros_cron_paris = _macros_dag(
    "macros_cron_paris", CronTriggerTimetable("30 1 * * 1-5", timezone="Europe/Paris"), EVERY_MACRO, EVERY_REF
)
macros_delta = _macros_dag("macros_delta", DeltaTriggerTimetable(timedelta(hours=6)), EVERY_MACRO, EVERY_REF)
macros_data_interval = _macros_dag(
    "macros_data_interval",
    CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    INTERVAL_END_MACROS,
    {
        "Key": Format("own/{}", LogicalDate("%Y%m%dT%H%M%S", of="data_interval_end")),
        "Body": Format("{}|{}", LogicalDate("iso", of="data_interval_end"), RunId()),
    },
)
