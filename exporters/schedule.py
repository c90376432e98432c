"""A DAG's schedule → an EventBridge schedule expression, exactly or not at all.

``translate_schedule(dag)`` reads the DAG's timetable (Airflow 3 turns every
``schedule=`` value into one) and returns a ``ScheduleSpec`` for EventBridge
Scheduler, ``None`` when the DAG has no schedule (``None``, ``@once``), or raises
``ScheduleError`` naming the DAG and the schedule when EventBridge cannot fire at
the same instants. Nothing is approximated:

* cron (``CronTriggerTimetable`` / ``CronDataIntervalTimetable``): the fields are
  expanded by croniter, the library Airflow schedules with, so the AWS expression
  fires on the value sets Airflow uses (names, ranges, steps, wrapping ranges, 7 =
  Sunday, croniter's own quirks). Day-of-week is renumbered (cron 0-6, Sunday 0
  or 7 → AWS 1-7, Sunday 1) and written as an explicit list (AWS has no ``/`` in
  that field); other fields use ``a/b`` where it is exact. Exactly one of
  day-of-month / day-of-week becomes ``?``. When both are restricted cron fires
  on either (OR), which AWS cannot express: error. ``L`` (last day of month) and
  ``d#n`` (n-th weekday) translate; ``W``, ``L`` in day-of-week, hashed/random
  values and 6/7-field expressions do not.
* timedelta (``Delta*Timetable``): ``rate(N minutes|hours|days)``; a whole number of
  minutes only. Airflow adds deltas in UTC, as EventBridge counts rates.
* the timetable's timezone → ``ScheduleExpressionTimezone`` (cron only).
* ``start_date`` / ``end_date`` → ``StartDate`` / ``EndDate``: the instants of the
  first and last run Airflow itself would schedule (Airflow's timetable computes
  them), so a data-interval timetable, which runs one period after the interval
  starts, keeps its exact first and last run.

EventBridge *rules* (``events_rule_expression``) evaluate cron in UTC only and
have no start or end date: a cron in a fixed-offset zone is shifted exactly when
it can be; a region's zone (DST, or rules that may change) is an error.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import pendulum
from croniter import CroniterError, croniter

from exporters.errors import ExporterError

__all__ = [
    "ScheduleError",
    "ScheduleSpec",
    "translate_schedule",
    "events_rule_expression",
    "cron_to_aws",
    "delta_to_rate",
]

# Presets Airflow (and croniter) accept, as their cron expressions.
CRON_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

NO_SCHEDULE_TIMETABLES = {"NullTimetable", "OnceTimetable"}
CRON_TIMETABLES = {"CronTriggerTimetable", "CronDataIntervalTimetable"}
DELTA_TIMETABLES = {"DeltaTriggerTimetable", "DeltaDataIntervalTimetable"}
# Timetables that run one period after their data interval starts.
DATA_INTERVAL_TIMETABLES = {"CronDataIntervalTimetable", "DeltaDataIntervalTimetable"}

UNSUPPORTED_TIMETABLES = {
    "AssetTriggeredTimetable": (
        "it is asset-triggered (data-aware): runs start when upstream assets are updated, not at times"
    ),
    "PartitionedAssetTimetable": (
        "it is asset-triggered (data-aware): runs start when upstream assets are updated, not at times"
    ),
    "AssetOrTimeSchedule": "it combines a time schedule with asset triggers; EventBridge can only fire on time",
    "PartitionedAtRuntime": "partitions are decided at run time, not by a time schedule",
    "ContinuousTimetable": (
        "@continuous starts a new run as soon as the previous one ends; EventBridge fires on time only"
    ),
    "MultipleCronTriggerTimetable": (
        "it fires on several cron expressions but never twice at one instant; separate EventBridge schedules would"
    ),
    "CronPartitionTimetable": (
        "its runs carry partition keys derived from the cron date, which EventBridge cannot compute"
    ),
    "EventsTimetable": "it fires on an explicit list of dates",
}


class ScheduleError(ExporterError, ValueError):
    """The DAG's schedule has no exact EventBridge equivalent (``fix``: what to use instead)."""

    def __init__(self, dag_id: str, schedule: str, reason: str, fix: str = ""):
        self.dag_id = dag_id
        self.schedule = schedule
        super().__init__(f"DAG {dag_id!r}: schedule {schedule} cannot be exported to EventBridge: {reason}", fix)


# ---------------------------------------------------------------------------
# The result
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cron:
    """A cron schedule as value sets (``None`` = every value), in cron numbering (day-of-week 0-6, Sunday 0)."""

    minutes: frozenset[int] | None
    hours: frozenset[int] | None
    days: frozenset[int] | str | None  # "L" = last day of month
    months: frozenset[int] | None
    weekdays: frozenset[int] | None
    nth: tuple[int, int] | None = None  # (weekday, n): n-th weekday of the month

    def aws(self) -> str:
        """The six AWS cron fields (year ``*``); exactly one day field is ``?``."""
        dom_restricted = self.days is not None
        dow_restricted = self.weekdays is not None or self.nth is not None
        if dom_restricted and dow_restricted:  # _parse_cron rejects this first
            raise ValueError("both day fields restricted")
        if dow_restricted:
            dom = "?"
            if self.nth is not None:
                dow = f"{self.nth[0] + 1}#{self.nth[1]}"
            else:
                # AWS: 1-7 = SUN-SAT, and no '/' in this field: an explicit list.
                dow = _render(sorted(d + 1 for d in self.weekdays), 1, 7, steps=False)
        else:
            dow = "?"
            dom = "L" if self.days == "L" else _render_opt(self.days, 1, 31)  # type: ignore[arg-type]
        return " ".join(
            [
                _render_opt(self.minutes, 0, 59),
                _render_opt(self.hours, 0, 23),
                dom,
                _render_opt(self.months, 1, 12),
                dow,
                "*",
            ]
        )


@dataclass(frozen=True)
class ScheduleSpec:
    """What EventBridge needs to fire when Airflow would.

    ``expression``: ``cron(...)`` (six AWS fields) or ``rate(...)``.
    ``timezone``: IANA name for ``ScheduleExpressionTimezone`` (cron only; ``None`` for rates).
    ``start_date`` / ``end_date``: aware UTC datetimes of Airflow's first run and the
    instant after its last run (``None``: no bound). Use ``iso()`` for ``StartDate``/``EndDate``.
    ``source``: the DAG's schedule as the author wrote it, for messages.
    ``notes``: caveats worth a warning (DST transitions, catchup), never approximations.
    """

    expression: str
    timezone: str | None
    start_date: dt.datetime | None
    end_date: dt.datetime | None
    source: str
    kind: str  # "cron" | "rate"
    notes: tuple[str, ...] = ()
    dag_id: str = ""
    cron: _Cron | None = field(default=None, repr=False, compare=False)
    utc_offset: dt.timedelta | None = field(default=None, repr=False, compare=False)  # fixed zones only

    @staticmethod
    def iso(value: dt.datetime | None) -> str | None:
        """ISO 8601 in UTC with a ``Z`` (the form CloudFormation's ``StartDate``/``EndDate`` take)."""
        if value is None:
            return None
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------


def translate_schedule(
    dag: Any, *, allow_unsupported: bool = False, warnings: list[str] | None = None
) -> ScheduleSpec | None:
    """The DAG's schedule as an EventBridge Scheduler schedule; ``None`` when it has none.

    Raises ``ScheduleError`` when EventBridge cannot fire at exactly Airflow's
    instants. With ``allow_unsupported=True`` such a schedule is dropped instead
    (returns ``None``) and the reason is appended to ``warnings``.
    """
    notes = warnings if warnings is not None else []
    timetable = dag.timetable
    kind = type(timetable).__name__
    source = describe_schedule(dag)
    try:
        if kind in NO_SCHEDULE_TIMETABLES:
            if kind == "OnceTimetable":
                notes.append(
                    f"schedule {source}: Airflow runs the DAG once after start_date; no EventBridge schedule is "
                    "exported: start that one execution yourself"
                )
            return None
        if kind in UNSUPPORTED_TIMETABLES:
            raise ScheduleError(dag.dag_id, source, UNSUPPORTED_TIMETABLES[kind], _FIX)
        if kind in CRON_TIMETABLES:
            return _cron_spec(dag, timetable, source)
        if kind in DELTA_TIMETABLES:
            return _rate_spec(dag, timetable, source)
        raise ScheduleError(
            dag.dag_id,
            source,
            f"{kind} is a custom timetable; only cron and timedelta schedules translate exactly",
            _FIX,
        )
    except ScheduleError as err:
        if not allow_unsupported:
            raise
        notes.append(f"{err}; exported WITHOUT a schedule (allow_unsupported_schedule): trigger executions another way")
        return None


_FIX = (
    "use a cron expression or timedelta EventBridge can express, "
    "or export without a schedule (allow_unsupported_schedule=True) and start executions another way"
)


def describe_schedule(dag: Any) -> str:
    """The schedule as written (``'0 * * * *'``, ``timedelta(hours=1)``, ``@once``, a timetable class), for messages."""
    timetable = dag.timetable
    kind = type(timetable).__name__
    written = getattr(dag, "schedule", None)
    if kind in CRON_TIMETABLES:
        expr = written if isinstance(written, str) else _attr(timetable, "expression")
        return f"{expr!r} ({kind}, timezone {_tz_name(_timetable_tz(dag, timetable))})"
    if kind in DELTA_TIMETABLES:
        return f"{_fmt_delta(_attr(timetable, 'delta'))} ({kind})"
    if isinstance(written, str):
        return f"{written!r} ({kind})"
    return kind


def events_rule_expression(spec: ScheduleSpec) -> str:
    """The expression for a classic ``AWS::Events::Rule``, which evaluates cron in UTC.

    Rates need no timezone. A cron in UTC is used as is; in a fixed-offset zone it
    is shifted to UTC when the shift keeps the same instants (raises otherwise); a
    region's zone (``Europe/Paris``: DST, rules that may change) cannot be
    converted exactly: ``ScheduleError``.
    """
    if spec.kind == "rate":
        return spec.expression
    assert spec.cron is not None
    if spec.timezone == "UTC":
        return spec.expression
    if spec.utc_offset is None:
        raise ScheduleError(
            spec.dag_id,
            spec.source,
            f"EventBridge rules evaluate cron in UTC only, and {spec.timezone} is not a fixed offset from UTC "
            "(daylight saving time or zone rules that may change): no UTC cron fires at the same local times all year",
            "use the EventBridge Scheduler (the default), which takes ScheduleExpressionTimezone, "
            "or give the DAG a fixed-offset timezone",
        )
    return f"cron({_shift_to_utc(spec, spec.cron, spec.utc_offset).aws()})"


# ---------------------------------------------------------------------------
# Cron
# ---------------------------------------------------------------------------

_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
_VALUE = r"(?:\d+|[A-Za-z]{3})"
_ITEM = re.compile(rf"^(?:\*|{_VALUE}(?:-{_VALUE})?)(?:/\d+)?$")
_NTH = re.compile(rf"^({_VALUE})#(\d+)$")
_FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")


class _CronUnsupported(Exception):
    pass


def cron_to_aws(expression: str) -> str:
    """A 5-field cron expression (Airflow/croniter semantics) → the AWS ``cron(...)`` expression.

    Raises ``ValueError``.
    """
    try:
        return f"cron({_parse_cron(expression).aws()})"
    except _CronUnsupported as err:
        raise ValueError(f"cron {expression!r}: {err}") from None


def _parse_cron(expression: str) -> _Cron:
    text = CRON_PRESETS.get(expression.strip().lower(), expression.strip())
    fields = text.split()
    if len(fields) != 5:
        raise _CronUnsupported(
            f"{len(fields)} fields: only 5-field cron translates (croniter's 6th/7th fields are seconds/year, "
            "which AWS cron lacks or orders differently)"
        )
    for index, value in enumerate(fields):
        _check_field_syntax(index, value)

    try:
        expanded, nth = croniter.expand(text)
    except (CroniterError, ValueError) as err:
        raise _CronUnsupported(f"croniter rejects it: {err}") from None

    def values(index: int) -> frozenset[int] | None:
        got = expanded[index]
        return None if got == ["*"] else frozenset(int(v) for v in got)

    days_raw = expanded[2]
    if days_raw == ["*"]:
        days: frozenset[int] | str | None = None
    elif days_raw == ["l"]:
        days = "L"
    elif any(not isinstance(v, int) for v in days_raw):
        raise _CronUnsupported("'L' (last day of month) combined with other days has no AWS equivalent")
    else:
        days = frozenset(days_raw)

    weekdays = values(4)
    nth_spec: tuple[int, int] | None = None
    if nth:
        if len(nth) != 1 or len(next(iter(nth.values()))) != 1:
            raise _CronUnsupported("several n-th weekdays ('#') in one expression: AWS takes a single 'd#n'")
        day, ns = next(iter(nth.items()))
        n = next(iter(ns))
        if n == "l" or not isinstance(n, int):
            raise _CronUnsupported("'L' in day-of-week (last weekday of the month) has no documented AWS equivalent")
        nth_spec = (int(day), n)
        weekdays = None

    cron = _Cron(values(0), values(1), days, values(3), weekdays, nth_spec)
    # croniter: both day fields restricted → a day matches if EITHER matches.
    if cron.days is not None and (cron.weekdays is not None or cron.nth is not None):
        raise _CronUnsupported(
            f"day-of-month {fields[2]!r} and day-of-week {fields[4]!r} are both restricted: cron runs on days matching "
            "EITHER field, and AWS cron requires one of them to be '?'"
        )
    return cron


def _check_field_syntax(index: int, value: str) -> None:
    name = _FIELD_NAMES[index]
    upper = value.upper()
    if upper == "?":
        if index in (2, 4):
            return
        raise _CronUnsupported(f"'?' in the {name} field")
    if re.search(r"(^|[,\-/(])[HR](?![A-Z])|^[HR]\(", upper) or upper in ("H", "R"):
        raise _CronUnsupported(f"{name} {value!r}: hashed/random values (H, R) have no AWS equivalent")
    if index == 2:
        if upper == "L":
            return
        if "W" in upper:
            raise _CronUnsupported(
                f"day-of-month {value!r}: 'W' (nearest weekday) is not translated: croniter's and EventBridge's "
                "behaviour at month boundaries is not known to agree"
            )
        if "L" in upper:
            raise _CronUnsupported(f"day-of-month {value!r}: 'L' only translates alone (the last day of the month)")
    if index == 4:
        if "L" in upper:  # no weekday name contains an L
            raise _CronUnsupported(
                f"day-of-week {value!r}: 'L' (last weekday of the month) has no documented AWS equivalent"
            )
        if "#" in value:
            if "," in value or not _NTH.match(value):
                raise _CronUnsupported(f"day-of-week {value!r}: AWS takes a single 'day#n' item")
            _check_names(index, _NTH.match(value).group(1), value)
            return
    for item in value.split(","):
        if not _ITEM.match(item):
            raise _CronUnsupported(
                f"{name} {value!r}: {item!r} is not plain cron syntax (numbers, names, '*', '-', '/', ',')"
            )
        for token in re.findall(r"[A-Za-z]+", item):
            _check_names(index, token, value)


def _check_names(index: int, token: str, value: str) -> None:
    if token.isdigit():
        return
    names = _MONTHS if index == 3 else _WEEKDAYS if index == 4 else []
    if token.upper() not in names:
        raise _CronUnsupported(f"{_FIELD_NAMES[index]} {value!r}: unknown name {token!r}")


def _render_opt(values: frozenset[int] | None, lo: int, hi: int) -> str:
    return "*" if values is None else _render(sorted(values), lo, hi)


def _render(values: list[int], lo: int, hi: int, steps: bool = True) -> str:
    """A value set as an AWS field: ``*``, ``a/s`` (a, a+s, … up to the maximum), ranges and lists."""
    if values == list(range(lo, hi + 1)):
        return "*"
    if steps and len(values) >= 3:
        step = values[1] - values[0]
        if step > 1 and values == list(range(values[0], hi + 1, step)):
            return f"{values[0]}/{step}"
    parts: list[str] = []
    run: list[int] = []
    for v in values + [None]:  # type: ignore[list-item]
        if run and (v is None or v != run[-1] + 1):
            parts.append(f"{run[0]}-{run[-1]}" if len(run) >= 3 else ",".join(str(x) for x in run))
            run = []
        if v is not None:
            run.append(v)
    return ",".join(parts)


def _cron_spec(dag: Any, timetable: Any, source: str) -> ScheduleSpec:
    expression = _attr(timetable, "expression")
    try:
        cron = _parse_cron(expression)
    except _CronUnsupported as err:
        raise ScheduleError(dag.dag_id, source, str(err), _FIX) from None
    tz = _timetable_tz(dag, timetable)
    name, offset = _zone(tz)
    notes: list[str] = []
    if (
        offset is not None
        and offset != dt.timedelta(0)
        and offset % dt.timedelta(hours=1) == dt.timedelta(0)
        and abs(offset) <= dt.timedelta(hours=14)
    ):
        # EventBridge Scheduler takes IANA names; Etc/GMT±N are the fixed whole-hour offsets (sign inverted by POSIX).
        hours = int(offset / dt.timedelta(hours=1))
        scheduler_tz = "Etc/GMT" + (f"{-hours:+d}" if hours else "")
        spec_cron = cron
    elif offset is not None and offset != dt.timedelta(0):
        # A fixed offset with minutes (+05:30 as FixedTimezone): no IANA name guaranteed; shift to UTC exactly.
        scheduler_tz = "UTC"
        probe = ScheduleSpec("", None, None, None, source, "cron", dag_id=dag.dag_id)
        spec_cron = _shift_to_utc(probe, cron, offset)
    else:
        scheduler_tz = "UTC" if offset == dt.timedelta(0) else name
        spec_cron = cron
    if offset is None:
        notes.extend(_dst_notes(cron, name, _start(dag)))
    start, end = _run_bounds(dag, timetable)
    notes.extend(_catchup_notes(dag))
    return ScheduleSpec(
        expression=f"cron({spec_cron.aws()})",
        timezone=scheduler_tz,
        start_date=start,
        end_date=end,
        source=source,
        kind="cron",
        notes=tuple(notes),
        dag_id=dag.dag_id,
        cron=cron,
        utc_offset=offset,
    )


def _shift_to_utc(spec: ScheduleSpec, cron: _Cron, offset: dt.timedelta) -> _Cron:
    """The same instants as ``cron`` at UTC+``offset``, written in UTC (raises ``ScheduleError`` when impossible)."""
    shift = int(offset / dt.timedelta(minutes=1))
    minutes = sorted(cron.minutes) if cron.minutes is not None else list(range(60))
    hours = sorted(cron.hours) if cron.hours is not None else list(range(24))
    by_day: dict[int, set[tuple[int, int]]] = {}
    for h in hours:
        for m in minutes:
            day, rest = divmod(h * 60 + m - shift, 1440)
            by_day.setdefault(day, set()).add(divmod(rest, 60))
    days_restricted = (
        cron.days is not None or cron.weekdays is not None or cron.nth is not None or cron.months is not None
    )

    def fail(reason: str) -> ScheduleError:
        return ScheduleError(
            spec.dag_id,
            spec.source,
            f"EventBridge rules evaluate cron in UTC; shifting this cron by {_fmt_offset(offset)} to UTC {reason}",
            "use the EventBridge Scheduler (the default), which takes the timezone as is",
        )

    if days_restricted and len(by_day) > 1:
        raise fail("moves some of its times to another day but not others, which one cron cannot express")
    pairs = set().union(*by_day.values())
    new_hours = sorted({h for h, _ in pairs})
    new_minutes = sorted({m for _, m in pairs})
    if len(pairs) != len(new_hours) * len(new_minutes):
        raise fail("gives hour/minute combinations that are not every hour × every minute of the result")
    day_shift = next(iter(by_day)) if len(by_day) == 1 else 0
    weekdays = cron.weekdays
    if day_shift:
        if cron.days is not None or cron.months is not None or cron.nth is not None:
            raise fail(
                "moves its times across midnight, and its day-of-month/month/n-th weekday would move across month ends"
            )
        if weekdays is not None:
            weekdays = frozenset((d + day_shift) % 7 for d in weekdays)
    return _Cron(
        None if len(new_minutes) == 60 else frozenset(new_minutes),
        None if len(new_hours) == 24 else frozenset(new_hours),
        cron.days,
        cron.months,
        weekdays,
        cron.nth,
    )


def _dst_notes(cron: _Cron, zone_name: str, start: dt.datetime | None) -> list[str]:
    """Where the zone's clock jumps, Airflow and EventBridge Scheduler differ; say so if the cron can fire there."""
    try:
        zone = ZoneInfo(zone_name)
    except Exception:  # noqa: BLE001 - unknown to zoneinfo: nothing to check
        return []
    year = (start or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)).astimezone(zone).year
    hours = set(cron.hours) if cron.hours is not None else set(range(24))
    minutes = set(cron.minutes) if cron.minutes is not None else set(range(60))
    gap_hit = overlap_hit = None
    t = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + 2, 1, 1, tzinfo=dt.UTC)
    hour = dt.timedelta(hours=1)
    before = t.astimezone(zone).utcoffset()
    while t < end:
        after = (t + hour).astimezone(zone).utcoffset()
        if after != before:
            change = t  # offsets change on a whole minute: find it
            while change.astimezone(zone).utcoffset() == before:
                change += dt.timedelta(minutes=1)
            lo, hi = sorted([(change + before).replace(tzinfo=None), (change + after).replace(tzinfo=None)])
            while lo < hi:  # the local wall-clock times skipped (gap) or repeated (overlap)
                if lo.hour in hours and lo.minute in minutes:
                    if after > before:
                        gap_hit = gap_hit or lo
                    else:
                        overlap_hit = overlap_hit or lo
                    break
                lo += dt.timedelta(minutes=1)
            before = after
        t += hour
    notes = []
    every_hour = cron.hours is None  # Airflow then steps by elapsed time across DST changes
    if gap_hit and not every_hour:
        notes.append(
            f"in {zone_name} the clock skips {gap_hit:%H:%M} on {gap_hit:%Y-%m-%d} (daylight saving time starts): "
            "Airflow runs that day's run late, at the first valid time; EventBridge Scheduler skips it"
        )
    if overlap_hit:
        notes.append(
            f"in {zone_name} {overlap_hit:%H:%M} occurs twice on {overlap_hit:%Y-%m-%d} (daylight saving time ends): "
            + (
                (
                    "Airflow, stepping by elapsed time on an every-hour cron, runs at both instants; "
                    "EventBridge Scheduler once"
                )
                if every_hour
                else (
                    "EventBridge Scheduler runs it once; "
                    "Airflow runs it once too, possibly at the other of the two instants"
                )
            )
        )
    return notes


def _catchup_notes(dag: Any) -> list[str]:
    if getattr(dag, "catchup", False):
        return [
            "catchup=True: Airflow backfills runs missed since start_date; EventBridge never starts missed executions"
        ]
    return []


# ---------------------------------------------------------------------------
# Rates
# ---------------------------------------------------------------------------


def delta_to_rate(delta: Any) -> str:
    """``timedelta`` (or a relativedelta of days/hours/minutes/seconds) → ``rate(N unit)``. Raises ``ValueError``."""
    seconds = _delta_seconds(delta)
    if seconds <= 0:
        raise ValueError(f"{delta!r} is not a positive interval")
    if seconds % 60:
        raise ValueError(f"{delta!r} is not a whole number of minutes: EventBridge rates count whole minutes")
    minutes = seconds // 60
    for size, unit in ((1440, "day"), (60, "hour"), (1, "minute")):
        if minutes % size == 0:
            n = minutes // size
            return f"rate({n} {unit}{'' if n == 1 else 's'})"
    raise AssertionError("unreachable")


def _delta_seconds(delta: Any) -> int:
    if isinstance(delta, dt.timedelta):
        if delta.microseconds:
            raise ValueError(f"{delta!r} is not a whole number of minutes: EventBridge rates count whole minutes")
        return int(delta.total_seconds())
    # dateutil.relativedelta: only its fixed-length parts have a rate.
    calendar = (
        "years",
        "months",
        "leapdays",
        "year",
        "month",
        "day",
        "weekday",
        "hour",
        "minute",
        "second",
        "microsecond",
    )
    used = [name for name in calendar if getattr(delta, name, None)]
    if used:
        raise ValueError(
            f"{delta!r} uses calendar fields ({', '.join(used)}): months and years vary in length, "
            "so no fixed EventBridge rate fires at the same times"
        )
    if getattr(delta, "microseconds", 0):
        raise ValueError(f"{delta!r} is not a whole number of minutes: EventBridge rates count whole minutes")
    return int(delta.days * 86400 + delta.hours * 3600 + delta.minutes * 60 + delta.seconds)


def _rate_spec(dag: Any, timetable: Any, source: str) -> ScheduleSpec:
    delta = _attr(timetable, "delta")
    try:
        expression = delta_to_rate(delta)
    except ValueError as err:
        raise ScheduleError(dag.dag_id, source, str(err), _FIX) from None
    start, end = _run_bounds(dag, timetable)
    return ScheduleSpec(
        expression=expression,
        timezone=None,
        start_date=start,
        end_date=end,
        source=source,
        kind="rate",
        notes=tuple(_catchup_notes(dag)),
        dag_id=dag.dag_id,
    )


# ---------------------------------------------------------------------------
# Start and end: Airflow's own first and last run
# ---------------------------------------------------------------------------


def _start(dag: Any) -> dt.datetime | None:
    value = getattr(dag, "start_date", None)
    return _aware(value)


def _aware(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromtimestamp(value.timestamp(), tz=dt.UTC)


def _run_bounds(dag: Any, timetable: Any) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(Airflow's first run, one second after its last run), in UTC; ``None`` where unbounded.

    Scheduler fires "on or after" StartDate and "before" EndDate; one second past the
    last run keeps that run whichever way the boundary is read, and no other run fits
    in a second (both fire on whole minutes).
    """
    start = _start(dag)
    end = _aware(getattr(dag, "end_date", None))
    if start is None and end is None:
        return None, None
    kind = type(timetable).__name__
    data_interval = kind in DATA_INTERVAL_TIMETABLES
    first = last = None
    if kind in CRON_TIMETABLES:
        core = _core_timetable(timetable)
        if start is not None:
            tick = core._align_to_next(pendulum.instance(start))  # first tick at or after start_date
            first = _aware(core._get_next(tick) if data_interval else tick)
        if end is not None:
            tick = core._align_to_prev(pendulum.instance(end))  # last tick at or before end_date
            last = _aware(core._get_next(tick) if data_interval else tick)
    else:
        step = dt.timedelta(seconds=_delta_seconds(_attr(timetable, "delta")))
        if start is not None:
            first = start + step if data_interval else start
        if end is not None:
            # Runs are start_date + k * delta (+ one delta for data intervals, which run at their end).
            tick = end if start is None else start + ((end - start) // step) * step
            last = tick + step if data_interval else tick
    if last is not None:
        last += dt.timedelta(seconds=1)
    return first, last


def _core_timetable(timetable: Any) -> Any:
    """Airflow's scheduler-side timetable (it has the DST-exact next/previous tick arithmetic)."""
    if hasattr(timetable, "_get_next"):
        return timetable
    from airflow.serialization.encoders import coerce_to_core_timetable  # imports all of Airflow (~6 s cold)

    return coerce_to_core_timetable(timetable)


# ---------------------------------------------------------------------------
# Timetable attributes (SDK timetables name them plainly, core ones with a leading _)
# ---------------------------------------------------------------------------


def _attr(timetable: Any, name: str) -> Any:
    if hasattr(timetable, name):
        return getattr(timetable, name)
    return getattr(timetable, f"_{name}")


def _timetable_tz(dag: Any, timetable: Any) -> Any:
    tz = (
        getattr(timetable, "timezone", None)
        or getattr(timetable, "_timezone", None)
        or getattr(dag, "timezone", None)
        or "UTC"
    )
    if isinstance(tz, str):
        tz = pendulum.timezone(tz)
    return tz


def _tz_name(tz: Any) -> str:
    return getattr(tz, "name", None) or str(tz)


def _zone(tz: Any) -> tuple[str, dt.timedelta | None]:
    """(name, fixed UTC offset or ``None`` for a region's zone whose offset can change)."""
    name = _tz_name(tz)
    offset = getattr(tz, "offset", None)  # pendulum FixedTimezone: seconds east of UTC
    if isinstance(offset, int) and type(tz).__name__ == "FixedTimezone":
        return name, dt.timedelta(seconds=offset)
    if name in ("UTC", "Etc/UTC", "Etc/UCT", "Etc/GMT", "Etc/Universal", "Etc/Zulu", "GMT", "Universal", "Zulu", "UCT"):
        return name, dt.timedelta(0)
    match = re.fullmatch(r"Etc/GMT([+-]\d{1,2})", name)
    if match:
        return name, dt.timedelta(hours=-int(match.group(1)))  # POSIX sign: Etc/GMT-2 is UTC+2
    return name, None


def _fmt_delta(delta: Any) -> str:
    if not isinstance(delta, dt.timedelta):
        return repr(delta)
    seconds = delta.total_seconds()
    for size, unit in ((86400, "days"), (3600, "hours"), (60, "minutes"), (1, "seconds")):
        if seconds % size == 0:
            return f"timedelta({unit}={int(seconds // size)})"
    return repr(delta)


def _fmt_offset(offset: dt.timedelta) -> str:
    minutes = int(offset / dt.timedelta(minutes=1))
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
