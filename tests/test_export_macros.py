"""Schedule-time values (``{{ ds }}``, ``{{ ts }}``, ``{{ logical_date }}``, ``{{ run_id }}``, ``LogicalDate``...).

For each timetable of ``tests/export_dags/good/schedule_macros.py`` (cron trigger in UTC, cron trigger in
Europe/Paris on a summer night, whose UTC date is the day before the local one, delta trigger, hourly cron
data interval), a scheduled run due at T (T taken from Airflow's own timetable) renders its templates in
Airflow (``dag.test()`` against the moto server: the objects written hold the rendered text) and in the
exported machine in moto's ASL interpreter (input: T as EventBridge passes it). Both buckets must hold the
same objects. ``dag.test()`` makes a manual run: its run id is ``manual__T`` where the scheduled run's is
``scheduled__T`` (Airflow's ``DagRun.generate_run_id``), the one difference allowed. A manual start renders
its start time; a malformed scheduled time fails the execution before any task; what a timetable defines one
period before T is refused.
"""

from __future__ import annotations

import datetime as dt
import functools
import json

import pendulum
import pytest

from tests.export14_harness import Interpreter, export_checked, load
from tests.test_export_14_s3 import _objects

TASKS = ["make_bucket", "stamp", "own_refs"]
SCHEDULED_TIME_KEY = "__scheduled_time__"
# (DAG, the moment from which Airflow's next scheduled run is taken)
CASES = [
    ("macros_cron_utc", pendulum.datetime(2026, 2, 28, 7)),  # 2026-03-01 06:00 UTC
    ("macros_cron_paris", pendulum.datetime(2026, 7, 14, 12)),  # 01:30 CEST on the 15th = 23:30 UTC on the 14th
    ("macros_delta", pendulum.datetime(2026, 12, 31, 20, 15)),
    ("macros_data_interval", pendulum.datetime(2026, 6, 30, 23, 5)),  # runs at 2026-07-01 01:00 for 00:00-01:00
]


@functools.cache
def _checked(dag_id: str) -> dict:
    """The DAG's definition after AWS's ASL validator and cfn-lint on its template (once per DAG and session)."""
    return export_checked(load(dag_id, _good()))


def _scheduled_run(dag, after: pendulum.DateTime):
    """Airflow's first scheduled run at or after ``after`` (its timetable, as the scheduler asks it)."""
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    timetable = coerce_to_core_timetable(dag.timetable)
    restriction = TimeRestriction(earliest=after, latest=None, catchup=True)
    return timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)


def _airflow_objects(aws, dag, info) -> dict:
    from airflow.models.dagrun import DagRun
    from airflow.utils.state import DagRunState

    from tests.export14_harness import _serialize_to_db

    _serialize_to_db(dag)
    # dag.test() makes a manual run: at the scheduled run's logical date, due at its time, it gets the same
    # data interval (asserted) — for a data-interval timetable, given T, the interval ending at T.
    data_interval_timetable = "DataInterval" in type(dag.timetable).__name__
    logical = info.run_after if data_interval_timetable else info.logical_date
    run = dag.test(logical_date=logical, run_after=info.run_after)
    assert run.state == DagRunState.SUCCESS
    assert (run.data_interval_end, run.run_after) == (info.data_interval.end, info.run_after)
    if not data_interval_timetable:
        assert (run.logical_date, run.data_interval_start) == (info.logical_date, info.data_interval.start)
    assert run.run_id == DagRun.generate_run_id(run_type="manual", logical_date=logical, run_after=info.run_after)
    return _objects(aws.client)


@pytest.mark.parametrize(("dag_id", "after"), CASES, ids=[f"{d}-{a.date()}" for d, a in CASES])
def test_scheduled_run_renders_as_airflow(aws, airflow_db, dag_id, after):
    from airflow.models.dagrun import DagRun

    dag = load(dag_id, _good())
    definition = _checked(dag_id)
    info = _scheduled_run(dag, after)
    airflow = _airflow_objects(aws, dag, info)

    due = info.run_after.in_timezone("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")  # EventBridge's form
    with Interpreter() as sfn:
        run = sfn.run(sfn.create(definition), TASKS, {SCHEDULED_TIME_KEY: due})
        exported = _objects(sfn.client)

    assert run.state == "success", run.error
    scheduled_id = DagRun.generate_run_id(
        run_type="scheduled", logical_date=info.logical_date, run_after=info.run_after
    )
    manual_id = DagRun.generate_run_id(run_type="manual", logical_date=info.logical_date, run_after=info.run_after)
    assert scheduled_id == "scheduled__" + info.run_after.isoformat()
    exported_as_manual = json.loads(json.dumps(exported).replace(scheduled_id, manual_id))
    assert exported_as_manual == airflow
    assert scheduled_id in json.dumps(exported)
    objects = airflow["macros-demo"]
    assert len(objects) == 2  # the stock operator's object and our references' object
    end = info.data_interval.end.in_timezone("UTC")
    assert f"end={end}" in objects[f"stock/{end:%Y%m%dT%H%M%S}"]


def test_exact_values_for_one_run(aws, airflow_db):
    """The texts themselves, for a Paris summer run (01:30 CEST = 23:30 UTC the day before: UTC dates)."""
    dag = load("macros_cron_paris", _good())
    info = _scheduled_run(dag, pendulum.datetime(2026, 7, 14, 12))
    assert info.run_after == pendulum.datetime(2026, 7, 14, 23, 30)
    with Interpreter() as sfn:
        run = sfn.run(sfn.create(_checked("macros_cron_paris")), TASKS, {SCHEDULED_TIME_KEY: "2026-07-14T23:30:00Z"})
        objects = _objects(sfn.client)["macros-demo"]
    assert run.state == "success"
    assert objects["stock/20260714T233000"] == (
        "ds=2026-07-14|ds_nodash=20260714|ts=2026-07-14T23:30:00+00:00|ts_nodash=20260714T233000"
        "|tz=20260714T233000+0000|logical_date=2026-07-14 23:30:00+00:00|start=2026-07-14 23:30:00+00:00"
        "|end=2026-07-14 23:30:00+00:00|run_id=scheduled__2026-07-14T23:30:00+00:00|compact=20260714233000"
    )
    assert objects["own/20260714233000"] == (
        "2026-07-14|2026-07-14T23:30:00+00:00|2026-07-14T23:30:00|2026-07-14 23:30:00+00:00"
        "|scheduled__2026-07-14T23:30:00+00:00"
    )


def test_manual_start_renders_its_start_time():
    """The interpreter gets ``$$.Execution.StartTime`` in AWS's form (``local_run_interpreter.aws_start_time``)."""
    from retraining.refs import format_run_time

    with Interpreter() as sfn:
        machine = sfn.create(_checked("macros_cron_utc"))
        run = sfn.run(machine, TASKS)
        started = sfn.sfn.list_executions(stateMachineArn=machine)["executions"][0]["startDate"]
        objects = _objects(sfn.client)["macros-demo"]
    assert run.state == "success", run.error
    start = started.astimezone(dt.UTC).replace(microsecond=0)
    own = objects[f"own/{start:%Y%m%d%H%M%S}"]
    assert own == "|".join(
        [
            format_run_time(start, "%Y-%m-%d"),
            format_run_time(start, "iso"),
            format_run_time(start, "%Y-%m-%dT%H:%M:%S"),
            format_run_time(start, "str"),
            "manual__" + start.isoformat(),
        ]
    )


@pytest.mark.parametrize("bad", ["yesterday", "2026-07-14T23:30:00+02:00", 17])
def test_malformed_scheduled_time_fails_before_any_task(bad):
    with Interpreter() as sfn:
        run = sfn.run(sfn.create(_checked("macros_cron_utc")), TASKS, {SCHEDULED_TIME_KEY: bad})
        assert sfn.doubles.calls == [] and _objects(sfn.client) == {}
    assert run.state == "failed" and run.error == "InvalidScheduledTime"
    assert set(run.tasks.values()) == {"not run"}


def test_schedules_pass_the_time_they_were_due():
    from exporters.api import export_dag_object
    from exporters.cloudformation import build_template
    from tests.test_export_cloudformation import cfn_lint

    now = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
    dag = load("macros_cron_utc", _good())
    result = export_dag_object(dag)
    scheduler = build_template(result, dag, now=now)["Resources"]["Schedule"]["Properties"]["Target"]
    assert scheduler["Input"] == {
        "Fn::Sub": json.dumps({SCHEDULED_TIME_KEY: "<aws.scheduler.scheduled-time>", "bucket": "${Bucket}"})
    }
    rule_template = build_template(result, dag, schedule_kind="events-rule", now=now)
    assert cfn_lint(rule_template) == []
    target = rule_template["Resources"]["ScheduleRule"]["Properties"]["Targets"][0]
    assert "Input" not in target
    assert target["InputTransformer"] == {
        "InputPathsMap": {"time": "$.time"},
        "InputTemplate": {"Fn::Sub": json.dumps({SCHEDULED_TIME_KEY: "<time>", "bucket": "${Bucket}"})},
    }
    # A DAG that reads no schedule-time value keeps its input as it was.
    plain = load("s3_operators")
    assert SCHEDULED_TIME_KEY not in json.dumps(build_template(export_dag_object(plain), plain, now=now))


def test_deploy_creates_the_schedule_with_the_time_placeholder():
    from exporters.deploy import desired_schedule, export_for_deploy

    export = export_for_deploy(load("macros_cron_utc", _good()))
    assert export.payload == {"bucket": "macros-demo", SCHEDULED_TIME_KEY: "<aws.scheduler.scheduled-time>"}
    request = desired_schedule(
        export.schedule,
        name="macros",
        dag_id="macros_cron_utc",
        alias_arn="arn:aws:states:us-east-1:123456789012:stateMachine:macros:live",
        role_arn="arn:aws:iam::123456789012:role/scheduler",
        payload=export.payload,
        now=dt.datetime(2026, 11, 25, tzinfo=dt.UTC),
    )
    assert json.loads(request["Target"]["Input"])[SCHEDULED_TIME_KEY] == "<aws.scheduler.scheduled-time>"
    assert export_for_deploy(load("s3_operators")).payload == {"bucket": "s3-ops-demo", "label": "first"}


def _export_errors(schedule, template: str) -> str:
    from airflow.providers.amazon.aws.operators.s3 import S3CreateObjectOperator
    from airflow.sdk import DAG

    from exporters.compiler import compile_dag
    from exporters.errors import ExportError

    with DAG(dag_id="refused_macros", schedule=schedule, start_date=dt.datetime(2026, 1, 1)) as dag:
        S3CreateObjectOperator(task_id="write", s3_bucket="b", s3_key="k", data=template)
    with pytest.raises(ExportError) as err:
        compile_dag(dag)
    return str(err.value)


def test_what_is_one_period_before_the_run_is_refused_with_the_reason():
    from airflow.timetables.interval import CronDataIntervalTimetable, DeltaDataIntervalTimetable
    from airflow.timetables.trigger import CronTriggerTimetable

    for schedule in (
        CronDataIntervalTimetable("0 0 1 * *", timezone="UTC"),
        DeltaDataIntervalTimetable(dt.timedelta(hours=1)),
        CronTriggerTimetable("0 6 * * *", timezone="UTC", interval=dt.timedelta(days=1)),
    ):
        message = _export_errors(schedule, "{{ ds }}")
        assert "task 'write'" in message and "logical_date of a " in message
        assert "one period before the time the run is due" in message and "no date arithmetic" in message
        assert "data_interval_end" in message  # the fix names what is exact
    assert "data_interval_start of a CronDataIntervalTimetable" in _export_errors(
        CronDataIntervalTimetable("0 * * * *", timezone="UTC"), "{{ data_interval_start }}"
    )
    message = _export_errors("0 6 * * *", "{{ logical_date.strftime('%d/%m/%Y') }}")
    assert "format '%d/%m/%Y' is not one Step Functions builds" in message
    assert "cannot be translated" in _export_errors("0 6 * * *", "{{ prev_ds }}")


def test_logical_date_reference_round_trips_and_renders_in_airflow_context():
    from retraining.refs import LogicalDate, RunId, TaggedValueError, from_tagged, to_tagged

    for ref in (LogicalDate(), LogicalDate("iso", of="data_interval_end"), RunId()):
        assert from_tagged(json.loads(json.dumps(to_tagged(ref)))) == ref
    with pytest.raises(ValueError, match="format '%d' is not one of"):
        LogicalDate("%d")
    with pytest.raises(TaggedValueError, match="LogicalDate: of='tomorrow'"):
        from_tagged({"__retraining__": "LogicalDate", "format": "iso", "of": "tomorrow"})
    when = pendulum.datetime(2026, 3, 1, 6, tz="Europe/Paris")  # rendered in UTC, as Airflow does
    assert LogicalDate("iso").resolve({"logical_date": when}) == "2026-03-01T05:00:00+00:00"


def _good():
    from tests.export14_harness import GOOD

    return GOOD
