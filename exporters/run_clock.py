"""Schedule-time values in the state machine: what Airflow renders as ``ds``, ``ts``, ``logical_date``, ``run_id``.

Where the time comes from. A scheduled execution's input carries the instant EventBridge was due to fire,
under ``SCHEDULED_TIME_KEY``: EventBridge Scheduler fills ``<aws.scheduler.scheduled-time>`` into the
target input, an EventBridge rule its event's ``$.time`` through an input transformer (both UTC,
``2026-11-25T06:00:00Z``). A manual start (no such key) uses ``$$.Execution.StartTime``. The machine checks
the value (a UTC timestamp, else the run fails naming the key), splits it into its parts once
(``States.StringSplit``) and builds each format the DAG uses with ``States.Format`` under ``$.run_time``.

What matches Airflow exactly, for a scheduled run due at T (Airflow 3.3; values in UTC, as Airflow renders them
whatever the timetable's zone):

* ``run_id`` = ``scheduled__`` + T in ISO form, for every timetable (``DagRun.generate_run_id``);
* ``data_interval_end`` = T, for every timetable;
* ``logical_date`` (``ds``, ``ts``, ...) and ``data_interval_start`` = T for ``CronTriggerTimetable`` /
  ``DeltaTriggerTimetable`` without an ``interval`` (a cron string's timetable in Airflow 3) and for DAGs
  without a schedule. With an ``interval``, or for ``CronDataIntervalTimetable`` /
  ``DeltaDataIntervalTimetable``, they are one period before T: intrinsic functions have no date arithmetic,
  so they are refused with that reason.

A manual start stands for a manual Airflow run triggered at the start time (its ``run_after`` and logical
date), to the second: ``run_id`` is ``manual__`` + that time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from exporters import asl

SCHEDULED_TIME_KEY = "__scheduled_time__"
RUN_TIME_KEY = "run_time"  # state-data key of the computed values
_CLOCK_KEY = "run_clock"  # state-data key of the time's parts (scratch)
SCHEDULER_PLACEHOLDER = "<aws.scheduler.scheduled-time>"
EVENTS_RULE_PLACEHOLDER = "<time>"
EVENTS_RULE_PATHS = {"time": "$.time"}
TRIGGER_TIMETABLES = {"CronTriggerTimetable", "DeltaTriggerTimetable"}
DATA_INTERVAL_TIMETABLES = {"CronDataIntervalTimetable", "DeltaDataIntervalTimetable"}
MANUAL_ONLY_TIMETABLES = {"NullTimetable", "OnceTimetable"}

# LogicalDate format → (field under $.run_time, States.Format template over year, month, day, hour, minute, second).
FIELDS: dict[str, tuple[str, str]] = {
    "%Y-%m-%d": ("ds", "{}-{}-{}"),
    "%Y%m%d": ("ds_nodash", "{}{}{}"),
    "%Y%m%dT%H%M%S": ("ts_nodash", "{}{}{}T{}{}{}"),
    "%Y%m%d%H%M%S": ("compact", "{}{}{}{}{}{}"),
    "%Y-%m-%dT%H:%M:%S": ("iso_naive", "{}-{}-{}T{}:{}:{}"),
    "%Y%m%dT%H%M%S%z": ("ts_nodash_with_tz", "{}{}{}T{}{}{}+0000"),
    "iso": ("ts", "{}-{}-{}T{}:{}:{}+00:00"),
    "str": ("str", "{}-{}-{} {}:{}:{}+00:00"),
}
RUN_ID_FIELD = "run_id"
_PARTS = ("year", "month", "day", "hour", "minute", "second")
_RUN_ID_TEMPLATE = "{}__{}-{}-{}T{}:{}:{}+00:00"


class RunClockError(ValueError):
    """A schedule-time value the DAG's timetable gives a meaning Step Functions cannot compute exactly."""

    def __init__(self, reason: str, fix: str):
        super().__init__(reason)
        self.fix = fix


@dataclass(frozen=True)
class RunClock:
    """Which run times of the DAG's timetable the machine can compute (``refused``: time → reason)."""

    timetable: str
    refused: dict[str, str]

    def field(self, form: str, of: str = "logical_date") -> str:
        """The ``$.run_time`` field holding ``of`` as ``form``; raises ``RunClockError`` when not exact."""
        if of in self.refused:
            raise RunClockError(
                f"{of} of a {self.timetable} run {self.refused[of]}",
                "use data_interval_end / LogicalDate(..., of='data_interval_end') (the time the run was due), "
                "or a cron schedule without data intervals (Airflow 3's default CronTriggerTimetable)",
            )
        return FIELDS[form][0]


def run_clock(dag: Any) -> RunClock:
    timetable = type(dag.timetable).__name__
    one_period = (
        "is one period before the time the run is due; Step Functions' intrinsic functions have no date arithmetic"
    )
    if timetable in MANUAL_ONLY_TIMETABLES:
        refused: dict[str, str] = {}
    elif timetable in TRIGGER_TIMETABLES:
        interval = getattr(dag.timetable, "interval", None) or getattr(dag.timetable, "_interval", None)
        has_interval = bool(interval) and interval != type(interval)()
        refused = (
            {t: f"(interval {interval!r}) {one_period}" for t in ("logical_date", "data_interval_start")}
            if has_interval
            else {}
        )
    elif timetable in DATA_INTERVAL_TIMETABLES:
        refused = {t: one_period for t in ("logical_date", "data_interval_start")}
    else:
        reason = "has no time EventBridge passes (not a time schedule Step Functions can start)"
        refused = {t: reason for t in ("logical_date", "data_interval_start", "data_interval_end")}
    return RunClock(timetable, refused)


def run_time_states(fields: set[str], unique_name: Any) -> list[asl.State]:
    """The states computing ``fields`` under ``$.run_time`` (the first is the entry, the last chains on)."""
    check = unique_name("Run time: scheduled?")
    scheduled = asl.Pass(
        unique_name("Run time: scheduled"),
        parameters={"at.$": f"$.params.{SCHEDULED_TIME_KEY}", "run_type": "scheduled"},
        result_path=f"$.{_CLOCK_KEY}",
        comment="A scheduled execution: the time EventBridge was due to start it",
    )
    manual = asl.Pass(
        unique_name("Run time: manual"),
        parameters={"at.$": "$$.Execution.StartTime", "run_type": "manual"},
        result_path=f"$.{_CLOCK_KEY}",
        comment="A manual start: the execution's start time stands for the run's logical date",
    )
    invalid = asl.Fail(
        unique_name("Run time: invalid scheduled time"),
        error="InvalidScheduledTime",
        cause=f"execution input {SCHEDULED_TIME_KEY!r} must be a UTC timestamp like 2026-01-31T06:00:00Z",
    )
    at = f"$.params.{SCHEDULED_TIME_KEY}"
    valid = asl.ChoiceRule(
        and_=[
            asl.ChoiceRule(variable=at, operator="IsPresent", value=True),
            asl.ChoiceRule(variable=at, operator="IsTimestamp", value=True),
            asl.ChoiceRule(variable=at, operator="StringMatches", value="*Z"),  # UTC, no offset
        ],
        next=scheduled.name,
    )
    missing = asl.ChoiceRule(not_=asl.ChoiceRule(variable=at, operator="IsPresent", value=True), next=manual.name)
    choice = asl.Choice(
        check, choices=[valid, missing], default=invalid.name, comment="Where the run's time comes from"
    )
    split = asl.Pass(
        unique_name("Run time: parts"),
        parameters={
            **{
                f"{part}.$": f"States.ArrayGetItem(States.StringSplit($.{_CLOCK_KEY}.at, '-T:.Z'), {i})"
                for i, part in enumerate(_PARTS)
            },
            "run_type.$": f"$.{_CLOCK_KEY}.run_type",
        },
        result_path=f"$.{_CLOCK_KEY}",
        comment="Year, month, day, hour, minute, second of the UTC time (a start time's milliseconds dropped)",
    )
    part = [f"$.{_CLOCK_KEY}.{p}" for p in _PARTS]
    templates = dict(FIELDS.values())
    values: dict[str, str] = {}
    for name in sorted(fields):
        if name == RUN_ID_FIELD:
            values[f"{name}.$"] = f"States.Format('{_RUN_ID_TEMPLATE}', $.{_CLOCK_KEY}.run_type, {', '.join(part)})"
        else:
            template = templates[name]
            values[f"{name}.$"] = f"States.Format('{template}', {', '.join(part[: template.count('{}')])})"
    compute = asl.Pass(
        unique_name("Run time"),
        parameters=values,
        result_path=f"$.{RUN_TIME_KEY}",
        comment="Airflow's schedule-time values of this run (UTC), as the DAG's tasks read them",
    )
    scheduled.next = split.name
    manual.next = split.name
    split.next = compute.name
    return [choice, scheduled, manual, invalid, split, compute]


def reads_scheduled_time(definition: dict[str, Any]) -> bool:
    """Whether the machine computes run times (so a schedule must pass its time in the input)."""
    return f"$.params.{SCHEDULED_TIME_KEY}" in json.dumps(definition)


def schedule_input(payload: dict[str, Any], definition: dict[str, Any], placeholder: str) -> dict[str, Any]:
    """A scheduled execution's input: ``payload`` plus the scheduled time's placeholder when the machine reads it."""
    if not reads_scheduled_time(definition):
        return payload
    return {**payload, SCHEDULED_TIME_KEY: placeholder}
