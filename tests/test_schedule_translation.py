"""Airflow schedules → EventBridge schedule expressions (exporters.schedule).

The cron table is checked two ways: the exact expected text, and semantically: an
independent evaluator of AWS cron expressions (written here from the EventBridge
documentation) must fire at exactly the instants croniter (Airflow's scheduler
library) fires for the original expression, over a whole leap year.
"""

from __future__ import annotations

import calendar
import datetime as dt

import pendulum
import pytest
from airflow.sdk import DAG
from dateutil.relativedelta import relativedelta

from exporters.schedule import (
    ScheduleError,
    ScheduleSpec,
    cron_to_aws,
    delta_to_rate,
    events_rule_expression,
    translate_schedule,
)

UTC = dt.UTC
_counter = iter(range(10**6))


def make_dag(schedule, *, tz="UTC", start=(2026, 1, 1), end=None, **kwargs) -> DAG:
    start_date = pendulum.datetime(*start, tz=tz) if start is not None else None
    end_date = pendulum.datetime(*end, tz=tz) if end is not None else None
    return DAG(f"sched_{next(_counter)}", schedule=schedule, start_date=start_date, end_date=end_date, **kwargs)


# ---------------------------------------------------------------------------
# An independent AWS cron evaluator (EventBridge "Cron expressions reference")
# ---------------------------------------------------------------------------

AWS_MONTHS = {
    name: i + 1
    for i, name in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"])
}
AWS_DAYS = {name: i + 1 for i, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}  # SUN = 1
WILDCARDS = {0: set(",-*/"), 1: set(",-*/"), 2: set(",-*?/LW"), 3: set(",-*/"), 4: set(",-*?L#"), 5: set(",-*/")}


def _aws_values(text: str, lo: int, hi: int, names: dict[str, int]) -> set[int]:
    out: set[int] = set()
    for item in text.split(","):

        def number(token: str) -> int:
            return names[token.upper()] if token.upper() in names else int(token)

        if item == "*":
            out |= set(range(lo, hi + 1))
        elif "/" in item:
            start, step = item.split("/")
            first = lo if start == "*" else number(start)
            out |= set(range(first, hi + 1, int(step)))
        elif "-" in item:
            a, b = (number(t) for t in item.split("-"))
            assert a <= b, f"AWS ranges do not wrap: {item}"
            out |= set(range(a, b + 1))
        else:
            out.add(number(item))
    assert out and min(out) >= lo and max(out) <= hi, (text, out)
    return out


def aws_fires(expression: str, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Every minute in [start, end) an AWS ``cron(...)`` expression matches (naive wall-clock times)."""
    assert expression.startswith("cron(") and expression.endswith(")")
    fields = expression[5:-1].split(" ")
    assert len(fields) == 6, expression
    for index, text in enumerate(fields):
        used = {c for c in text if not c.isalnum()}
        assert used <= WILDCARDS[index], f"field {index} of {expression} uses {used - WILDCARDS[index]}"
    minute, hour, dom, month, dow, year = fields
    assert year == "*"
    assert (dom == "?") != (dow == "?"), f"exactly one day field must be '?': {expression}"
    minutes = _aws_values(minute, 0, 59, {})
    hours = _aws_values(hour, 0, 23, {})
    months = _aws_values(month, 1, 12, AWS_MONTHS)

    def day_matches(day: dt.date) -> bool:
        if dom != "?":
            if dom == "L":
                return day.day == calendar.monthrange(day.year, day.month)[1]
            return day.day in _aws_values(dom, 1, 31, {})
        aws_weekday = (day.isoweekday() % 7) + 1  # Sunday 1 ... Saturday 7
        if "#" in dow:
            weekday, nth = dow.split("#")
            return aws_weekday == int(weekday) and (day.day - 1) // 7 + 1 == int(nth)
        return aws_weekday in _aws_values(dow, 1, 7, AWS_DAYS)

    out = []
    day = start.date()
    while day < end.date():
        if day.month in months and day_matches(day):
            out += [dt.datetime(day.year, day.month, day.day, h, m) for h in sorted(hours) for m in sorted(minutes)]
        day += dt.timedelta(days=1)
    return [t for t in out if start <= t < end]


def croniter_fires(expression: str, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    from croniter import croniter

    it = croniter(expression, start - dt.timedelta(minutes=1))
    out = []
    while True:
        t = it.get_next(dt.datetime)
        if t >= end:
            return out
        out.append(t)


# ---------------------------------------------------------------------------
# Cron table
# ---------------------------------------------------------------------------

CRON_TABLE = [
    # (Airflow cron, AWS expression, days to compare over)
    ("0 * * * *", "cron(0 * * * ? *)", 366),
    ("30 2 * * 1-5", "cron(30 2 ? * 2-6 *)", 366),
    ("0 0 * * 0", "cron(0 0 ? * 1 *)", 366),  # Sunday: cron 0 → AWS 1
    ("0 0 * * 7", "cron(0 0 ? * 1 *)", 366),  # 7 is Sunday too
    ("0 0 * * MON-FRI", "cron(0 0 ? * 2-6 *)", 366),
    ("0 0 * * mon,wed,fri", "cron(0 0 ? * 2,4,6 *)", 366),
    ("0 0 * * SAT,SUN", "cron(0 0 ? * 1,7 *)", 366),
    # Steps in day-of-week: AWS has no '/' there; the exact days are listed.
    ("0 0 * * */2", "cron(0 0 ? * 1,3,5,7 *)", 366),  # Sun, Tue, Thu, Sat
    ("0 0 * * 1-5/2", "cron(0 0 ? * 2,4,6 *)", 366),  # Mon, Wed, Fri
    ("0 0 * * 5-1", "cron(0 0 ? * 1,2,6,7 *)", 366),  # croniter wraps Fri..Mon
    ("0 0 * * 1-7", "cron(0 0 * * ? *)", 366),  # Monday..Sunday: every day
    ("0 0 * * 1-1", "cron(0 0 * * ? *)", 366),  # croniter reads an equal range as the whole week; so does the export
    ("0 0 1 * *", "cron(0 0 1 * ? *)", 366),
    ("0 0 ? * 1", "cron(0 0 ? * 2 *)", 366),
    ("*/15 * * * *", "cron(0/15 * * * ? *)", 14),
    ("5,35 */6 * * *", "cron(5,35 0/6 * * ? *)", 366),
    ("0 9-17 * * *", "cron(0 9-17 * * ? *)", 366),
    ("0 8-10,14 * * *", "cron(0 8-10,14 * * ? *)", 366),
    ("0 0 */10 * *", "cron(0 0 1/10 * ? *)", 366),
    ("0 0 1 */3 *", "cron(0 0 1 1/3 ? *)", 366),
    ("0 0 1 JAN,JUL *", "cron(0 0 1 1,7 ? *)", 366),
    ("0 12 29 2 *", "cron(0 12 29 2 ? *)", 366),
    ("0 0 L * *", "cron(0 0 L * ? *)", 366),  # last day of the month
    ("0 9 * * 5#3", "cron(0 9 ? * 6#3 *)", 366),  # third Friday
    ("0 9 * * sun#1", "cron(0 9 ? * 1#1 *)", 366),
]


@pytest.mark.parametrize(("cron", "aws", "days"), CRON_TABLE, ids=[c[0] for c in CRON_TABLE])
def test_cron_translates_to_the_expected_aws_expression(cron, aws, days):
    assert cron_to_aws(cron) == aws


@pytest.mark.parametrize(("cron", "aws", "days"), CRON_TABLE, ids=[c[0] for c in CRON_TABLE])
def test_aws_expression_fires_exactly_when_croniter_does(cron, aws, days):
    start = dt.datetime(2028, 1, 1)  # a leap year starting on a Saturday
    end = start + dt.timedelta(days=days)
    expected = croniter_fires(cron, start, end)
    assert expected, "the comparison window must contain fires"
    assert aws_fires(cron_to_aws(cron), start, end) == expected


PRESETS = [
    ("@hourly", "cron(0 * * * ? *)"),
    ("@daily", "cron(0 0 * * ? *)"),
    ("@midnight", "cron(0 0 * * ? *)"),
    ("@weekly", "cron(0 0 ? * 1 *)"),
    ("@monthly", "cron(0 0 1 * ? *)"),
    ("@quarterly", "cron(0 0 1 1/3 ? *)"),
    ("@yearly", "cron(0 0 1 1 ? *)"),
    ("@annually", "cron(0 0 1 1 ? *)"),
]


@pytest.mark.parametrize(("preset", "aws"), PRESETS)
def test_every_preset_translates(preset, aws):
    spec = translate_schedule(make_dag(preset))
    assert spec is not None and spec.kind == "cron"
    assert spec.expression == aws
    assert spec.timezone == "UTC"
    assert preset in spec.source


@pytest.mark.parametrize("schedule", [None, "@once"])
def test_no_schedule_for_none_and_once(schedule):
    warnings: list[str] = []
    assert translate_schedule(make_dag(schedule), warnings=warnings) is None
    if schedule == "@once":
        assert len(warnings) == 1 and "@once" in warnings[0] and "once" in warnings[0]
    else:
        assert warnings == []


UNSUPPORTED_CRON = [
    ("0 0 1 * 1", "both restricted"),
    ("0 0 1-15 * MON", "both restricted"),
    ("0 0 L * 5", "both restricted"),
    ("0 0 15W * *", "'W'"),
    ("0 0 * * 5L", "last weekday of the month"),
    ("0 0 L,15 * *", "'L'"),
    ("0 0 * * 1#2,3#1", "single 'day#n'"),
    ("H * * * *", "hashed/random"),
    ("0 0 0 * * * *", "7 fields"),
    ("0 0 * * * 30", "6 fields"),
]


@pytest.mark.parametrize(("cron", "why"), UNSUPPORTED_CRON, ids=[c[0] for c in UNSUPPORTED_CRON])
def test_cron_features_aws_lacks_are_refused(cron, why):
    with pytest.raises(ValueError) as caught:
        cron_to_aws(cron)
    assert why in str(caught.value)


def test_both_day_fields_restricted_is_a_schedule_error_naming_dag_and_schedule():
    dag = make_dag("0 6 1 * MON")
    with pytest.raises(ScheduleError) as caught:
        translate_schedule(dag)
    err = caught.value
    assert isinstance(err, ValueError)
    assert err.dag_id == dag.dag_id and dag.dag_id in str(err)
    assert "'0 6 1 * MON'" in str(err)
    assert "EITHER" in str(err) and "'?'" in str(err)


def test_allow_unsupported_drops_the_schedule_with_a_warning():
    warnings: list[str] = []
    assert translate_schedule(make_dag("0 6 1 * MON"), allow_unsupported=True, warnings=warnings) is None
    assert len(warnings) == 1 and "WITHOUT a schedule" in warnings[0] and "0 6 1 * MON" in warnings[0]


# ---------------------------------------------------------------------------
# Timetables that are not a plain cron or timedelta
# ---------------------------------------------------------------------------


def test_asset_triggered_schedule_is_refused():
    from airflow.sdk import Asset

    dag = make_dag([Asset("s3://bucket/ready")])
    with pytest.raises(ScheduleError, match="asset-triggered"):
        translate_schedule(dag)


def test_continuous_and_multiple_cron_and_events_timetables_are_refused():
    from airflow.sdk.definitions.timetables.events import EventsTimetable
    from airflow.sdk.definitions.timetables.trigger import MultipleCronTriggerTimetable

    cases = [
        (make_dag("@continuous", max_active_runs=1), "@continuous"),
        (make_dag(MultipleCronTriggerTimetable("0 1 * * *", "0 2 * * *", timezone="UTC")), "several cron"),
        (make_dag(EventsTimetable([pendulum.datetime(2026, 5, 1)])), "explicit list of dates"),
    ]
    for dag, why in cases:
        with pytest.raises(ScheduleError, match=why):
            translate_schedule(dag)


def test_custom_timetable_is_refused():
    from airflow.sdk.bases.timetable import BaseTimetable

    class EveryFullMoon(BaseTimetable):
        pass

    with pytest.raises(ScheduleError, match="custom timetable") as caught:
        translate_schedule(make_dag(EveryFullMoon()))
    assert "EveryFullMoon" in str(caught.value)


# ---------------------------------------------------------------------------
# timedelta → rate
# ---------------------------------------------------------------------------

RATES = [
    (dt.timedelta(hours=1), "rate(1 hour)"),
    (dt.timedelta(minutes=90), "rate(90 minutes)"),
    (dt.timedelta(minutes=1), "rate(1 minute)"),
    (dt.timedelta(minutes=120), "rate(2 hours)"),
    (dt.timedelta(days=1), "rate(1 day)"),
    (dt.timedelta(hours=48), "rate(2 days)"),
    (dt.timedelta(days=1, minutes=1), "rate(1441 minutes)"),
    (relativedelta(hours=2), "rate(2 hours)"),
    (relativedelta(weeks=1), "rate(7 days)"),
]


@pytest.mark.parametrize(("delta", "rate"), RATES, ids=[r[1] for r in RATES])
def test_timedelta_becomes_a_rate(delta, rate):
    assert delta_to_rate(delta) == rate
    spec = translate_schedule(make_dag(delta))
    assert spec.kind == "rate" and spec.expression == rate
    assert spec.timezone is None  # a rate has no timezone: Airflow adds deltas in UTC, as EventBridge counts


@pytest.mark.parametrize(
    ("delta", "why"),
    [
        (dt.timedelta(seconds=30), "whole number of minutes"),
        (dt.timedelta(seconds=90), "whole number of minutes"),
        (dt.timedelta(minutes=5, microseconds=1), "whole number of minutes"),
        (relativedelta(months=1), "calendar fields"),
        (relativedelta(hours=1, day=3), "calendar fields"),
    ],
)
def test_deltas_eventbridge_cannot_express_are_refused(delta, why):
    with pytest.raises(ScheduleError, match=why) as caught:
        translate_schedule(make_dag(delta))
    assert caught.value.dag_id in str(caught.value)


# ---------------------------------------------------------------------------
# Timezones
# ---------------------------------------------------------------------------


def test_dag_timezone_becomes_schedule_expression_timezone():
    spec = translate_schedule(make_dag("30 2 * * 1-5", tz="Europe/Paris"))
    assert spec.expression == "cron(30 2 ? * 2-6 *)"  # local wall-clock time, as in Airflow
    assert spec.timezone == "Europe/Paris"
    assert "Europe/Paris" in spec.source
    # 02:30 is skipped once a year in Paris: Airflow and EventBridge Scheduler differ there, and the export says so.
    assert any("skips 02:30" in note for note in spec.notes)


def test_no_dst_note_when_the_cron_avoids_the_transition_hours():
    assert translate_schedule(make_dag("0 12 * * *", tz="Europe/Paris")).notes == ()
    assert translate_schedule(make_dag("30 2 * * *")).notes == ()  # UTC has no DST


def test_every_hour_cron_in_a_dst_zone_notes_the_repeated_hour_only():
    notes = translate_schedule(make_dag("0 * * * *", tz="Europe/Paris")).notes
    assert len(notes) == 1 and "both instants" in notes[0]


def test_whole_hour_fixed_offset_uses_etc_gmt_name():
    spec = translate_schedule(make_dag("0 9 * * *", tz=pendulum.FixedTimezone(3 * 3600)))
    assert spec.timezone == "Etc/GMT-3"  # POSIX sign: UTC+3
    assert spec.expression == "cron(0 9 * * ? *)"


def test_fixed_offset_with_minutes_is_shifted_to_utc_exactly():
    tz = pendulum.FixedTimezone(5 * 3600 + 30 * 60)  # UTC+05:30
    spec = translate_schedule(make_dag("30 2 * * 1-5", tz=tz))
    assert spec.timezone == "UTC"
    assert spec.expression == "cron(0 21 ? * 1-5 *)"  # 02:30 Mon-Fri at +05:30 = 21:00 Sun-Thu UTC
    _assert_same_instants("30 2 * * 1-5", dt.timedelta(hours=5, minutes=30), spec.expression)


# ---------------------------------------------------------------------------
# Start and end dates
# ---------------------------------------------------------------------------


def test_start_and_end_dates_become_iso_start_date_and_end_date():
    spec = translate_schedule(make_dag("0 6 * * *", tz="Europe/Paris", start=(2026, 3, 1), end=(2026, 6, 30)))
    assert ScheduleSpec.iso(spec.start_date) == "2026-03-01T05:00:00Z"  # 06:00 CET
    assert ScheduleSpec.iso(spec.end_date) == "2026-06-29T04:00:01Z"  # the last 06:00 CEST run, plus one second
    assert translate_schedule(make_dag("0 6 * * *", start=None)).start_date is None
    assert translate_schedule(make_dag("0 6 * * *")).end_date is None


def _airflow_runs(dag) -> list[dt.datetime]:
    """Every run Airflow's own scheduler code creates between start_date and end_date (catchup)."""
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    timetable = coerce_to_core_timetable(dag.timetable)
    restriction = TimeRestriction(earliest=dag.start_date, latest=dag.end_date, catchup=True)
    runs, last = [], None
    while True:
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        if info is None:
            return runs
        runs.append(info.run_after)
        last = info.data_interval


@pytest.mark.parametrize(
    "timetable",
    ["cron-trigger", "cron-data-interval", "delta-trigger", "delta-data-interval"],
)
def test_start_and_end_dates_bracket_exactly_airflows_runs(timetable):
    from airflow.sdk.definitions.timetables.interval import CronDataIntervalTimetable, DeltaDataIntervalTimetable
    from airflow.sdk.definitions.timetables.trigger import CronTriggerTimetable, DeltaTriggerTimetable

    schedule = {
        "cron-trigger": CronTriggerTimetable("15 */6 * * *", timezone="Europe/Paris"),
        "cron-data-interval": CronDataIntervalTimetable("15 */6 * * *", timezone="Europe/Paris"),
        "delta-trigger": DeltaTriggerTimetable(dt.timedelta(hours=7)),
        "delta-data-interval": DeltaDataIntervalTimetable(dt.timedelta(hours=7)),
    }[timetable]
    dag = make_dag(schedule, tz="Europe/Paris", start=(2026, 3, 27, 1, 0), end=(2026, 3, 31, 12, 0))
    spec = translate_schedule(dag)
    runs = _airflow_runs(dag)
    assert len(runs) > 5
    assert spec.start_date == runs[0]
    # Everything Airflow runs is before EndDate; nothing else fits between its last run and EndDate.
    assert runs[-1] < spec.end_date <= runs[-1] + dt.timedelta(seconds=1)


# ---------------------------------------------------------------------------
# Classic EventBridge rules (UTC only)
# ---------------------------------------------------------------------------


def test_events_rule_keeps_utc_cron_and_rates():
    assert events_rule_expression(translate_schedule(make_dag("0 * * * *"))) == "cron(0 * * * ? *)"
    assert (
        events_rule_expression(translate_schedule(make_dag(dt.timedelta(hours=1), tz="Europe/Paris"))) == "rate(1 hour)"
    )


def test_events_rule_refuses_a_region_timezone_and_explains_why():
    spec = translate_schedule(make_dag("30 2 * * 1-5", tz="Europe/Paris"))
    with pytest.raises(ScheduleError) as caught:
        events_rule_expression(spec)
    message = str(caught.value)
    assert "UTC only" in message and "Europe/Paris" in message and "fixed offset" in message
    assert "ScheduleExpressionTimezone" in message  # the fix


@pytest.mark.parametrize(
    ("cron", "offset", "expected"),
    [
        ("30 2 * * 1-5", dt.timedelta(hours=5, minutes=30), "cron(0 21 ? * 1-5 *)"),
        ("0 9 * * MON", dt.timedelta(hours=3), "cron(0 6 ? * 2 *)"),
        ("0 20 * * FRI", dt.timedelta(hours=-8), "cron(0 4 ? * 7 *)"),  # Friday 20:00 at UTC-8 = Saturday 04:00 UTC
        ("*/30 * * * *", dt.timedelta(hours=5, minutes=30), "cron(0,30 * * * ? *)"),
        ("0 * 1 * *", dt.timedelta(hours=0), "cron(0 * 1 * ? *)"),
    ],
)
def test_events_rule_shifts_fixed_offsets_exactly(cron, offset, expected):
    spec = translate_schedule(make_dag(cron, tz=pendulum.FixedTimezone(int(offset.total_seconds()))))
    expression = events_rule_expression(spec)
    assert expression == expected
    _assert_same_instants(cron, offset, expression)


@pytest.mark.parametrize(
    ("cron", "why"),
    [
        # At UTC+02:00, 01:00 Monday is Sunday 23:00 UTC but 23:00 Monday stays Monday: one cron cannot say that.
        ("0 1,23 * * MON", "another day but not others"),
        # 01:00 on the 1st is 23:00 UTC on the last day of the previous month, whichever that is.
        ("0 1 1 * *", "month ends"),
    ],
)
def test_events_rule_refuses_shifts_that_change_the_instants(cron, why):
    spec = translate_schedule(make_dag(cron, tz=pendulum.FixedTimezone(2 * 3600)))
    with pytest.raises(ScheduleError, match=why):
        events_rule_expression(spec)


def _assert_same_instants(cron: str, offset: dt.timedelta, aws_utc_expression: str) -> None:
    """croniter's local fires at UTC+offset, moved to UTC, equal the AWS expression's UTC fires."""
    start, end = dt.datetime(2028, 1, 1), dt.datetime(2028, 3, 1)
    local = croniter_fires(cron, start - dt.timedelta(days=2), end + dt.timedelta(days=2))
    expected = [t - offset for t in local if start <= t - offset < end]
    assert aws_fires(aws_utc_expression, start, end) == expected


def test_catchup_is_noted():
    spec = translate_schedule(make_dag("0 0 * * *", catchup=True))
    assert any("catchup=True" in note for note in spec.notes)
