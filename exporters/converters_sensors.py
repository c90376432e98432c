"""Sensors → a poke loop: SDK check → Choice → Wait → check again, as ``BaseSensorOperator.execute`` pokes.

The loop follows Airflow's: the first poke at once; after a poke that is not done, the sensor times
out once ``timeout`` seconds have passed (``AirflowSensorTimeout``: failed, never retried), else it
waits ``poke_interval`` (``exponential_backoff``: ``max(int(poke_interval * 2**(n-2)), 1)`` after the
n-th poke, at most ``max_wait`` and at most the time left, without Airflow's hash jitter) and pokes
again. Elapsed time is the sum of the waits. A poke that finds the watched resource failed raises in
Airflow, so the task's retries apply: the loop restarts after ``retry_delay`` up to ``retries`` times,
then fails. ``mode="reschedule"`` waits the same way (Step Functions holds no worker while it waits).

``soft_fail=True``: a timeout ends the task skipped (Airflow raises ``AirflowSkipException``), recorded as the
task's outcome so its downstream tasks are decided by their trigger rules as in Airflow; a resource found
failed still fails the task (its poke raises ``AirflowException``, which ``soft_fail`` does not turn into a
skip). ``ExternalTaskSensor`` has no Step Functions meaning and is refused with the reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from exporters import asl
from exporters.converters import (
    ConvertContext,
    Fragment,
    Port,
    Unsupported,
    register_lazy,
    register_table,
    result_key,
    state_name,
)
from exporters.converters_s3 import field_value, split_bucket_key
from exporters.converters_sdk import sdk_state
from retraining.refs import Format

# S3 answers HeadObject on a missing key with 404: SDK v2 names it NoSuchKey, boto3 a generic error.
S3_MISSING_KEY_ERRORS = ["S3.NoSuchKeyException", "S3.S3Exception"]
GLUE_SUCCESS = ("SUCCEEDED",)
GLUE_FAILURE = ("FAILED", "STOPPED", "TIMEOUT")  # GlueJobSensor.FAILURE_STATES (ERROR keeps it poking)
TRAINING_PENDING = ("InProgress", "Stopping")  # SageMakerHook.non_terminal_states
TRAINING_FAILED = ("Failed", "Stopped")  # SageMakerHook.training_failed_states
ENDPOINT_PENDING = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
ENDPOINT_FAILED = ("Failed",)


@dataclass
class Check:
    """The states of one poke: where it starts, and the ports for done / not yet / resource failed."""

    entry: str
    states: list[asl.State]
    done: list[Port]
    pending: list[Port] = field(default_factory=list)
    failed: list[Port] = field(default_factory=list)


def _refuse_unsupported_modes(task: Any) -> None:
    for flag in ("never_fail", "silent_fail"):
        if getattr(task, flag, False):
            raise Unsupported(f"{flag}=True has no Step Functions translation yet", f"leave {flag} unset")
    if getattr(task, "deferrable", False):
        raise Unsupported(
            "deferrable=True: the trigger gives up after max_retries polls instead of the sensor's timeout",
            "use deferrable=False (mode='reschedule' frees the worker too); the export waits in Step Functions",
        )


def sensor_fragment(task: Any, ctx: ConvertContext, build_check: Callable[[str], Check]) -> Fragment:
    """The poke loop around the check ``build_check(here)`` builds (``here``: the task's state-data path)."""
    _refuse_unsupported_modes(task)
    tid = task.task_id
    here = f"$.{result_key(tid)}"
    sensor = f"{here}.Sensor"
    timeout = max(0, math.ceil(float(task.timeout)))
    interval = max(1, math.ceil(float(task.poke_interval)))
    backoff = bool(getattr(task, "exponential_backoff", False))
    first = max(int(interval * 2**-1), 1) if backoff else interval
    fresh = {"Remaining": timeout, "Interval": first, "NegInterval": -first, "Next": interval, "NegNext": -interval}
    init = asl.Pass(
        state_name(tid),
        parameters={"Sensor": {**fresh, "Attempts": 0}},
        result_path=here,
        comment=f"Poke every {interval} s{' (doubling)' if backoff else ''} for at most {timeout} s",
    )
    check = build_check(here)
    init.next = check.entry
    wait_states, wait_entry = _waits(tid, sensor, check.entry, interval, backoff, getattr(task, "max_wait", None))
    out_of_time = asl.ChoiceRule(variable=f"{sensor}.Remaining", operator="NumericLessThanEquals", value=0)
    time_left = asl.Choice(state_name(tid, "time left?"), choices=[out_of_time], default=wait_entry)
    for port in check.pending:
        port.link(time_left.name)
    states: list[asl.State] = [init, *check.states, time_left, *wait_states]
    skips: list[Port] = []
    if getattr(task, "soft_fail", False):
        # Airflow raises AirflowSkipException instead of AirflowSensorTimeout: the task ends skipped.
        skips.append(Port(out_of_time))
    else:
        timed_out = asl.Fail(
            state_name(tid, "timed out"),
            error="SensorTimeout",
            cause=f"Sensor {tid} has timed out: the condition did not hold within {timeout} s (timeout)",
        )
        out_of_time.next = timed_out.name
        states.append(timed_out)
    if check.failed:
        # A failed resource raises AirflowException in poke(): a failure even with soft_fail (only a timeout,
        # AirflowSensorTimeout/AirflowFailException, becomes a skip).
        states += _retry_loop(task, ctx, sensor, check, fresh)
    return Fragment(entry=init.name, states=states, exits=check.done, skips=skips)


def _sensor_fields(sensor: str, **changes: Any) -> dict[str, Any]:
    """Parameters rewriting the sensor's counters: unchanged ones copied, ``changes`` as given."""
    out: dict[str, Any] = {}
    for name in ("Remaining", "Interval", "NegInterval", "Next", "NegNext", "Attempts"):
        if name in changes:
            value = changes[name]
            out[f"{name}.$" if isinstance(value, str) else name] = value
        else:
            out[f"{name}.$"] = f"{sensor}.{name}"
    return out


def _waits(
    tid: str, sensor: str, check_entry: str, interval: int, backoff: bool, max_wait: Any
) -> tuple[list[asl.State], str]:
    """The states between a poke that is not done and the next poke; returns them and their entry."""
    if not backoff:
        wait = asl.Wait(state_name(tid, "wait"), seconds=interval)
        count = asl.Pass(
            state_name(tid, "count wait"),
            parameters=_sensor_fields(sensor, Remaining=f"States.MathAdd({sensor}.Remaining, {-interval})"),
            result_path=sensor,
            next=check_entry,
        )
        wait.next = count.name
        return [wait, count], wait.name
    wait = asl.Wait(state_name(tid, "wait"), seconds_path=f"{sensor}.Wait")
    # The last wait ends when the time is up (Airflow: min(timeout - run_duration, backoff)).
    last = asl.Pass(
        state_name(tid, "last wait"),
        parameters={**_sensor_fields(sensor, Remaining=0), "Wait.$": f"{sensor}.Remaining"},
        result_path=sensor,
        next=wait.name,
    )
    normal = asl.Pass(
        state_name(tid, "next wait"),
        parameters={
            **_sensor_fields(sensor, Remaining=f"States.MathAdd({sensor}.Remaining, {sensor}.NegInterval)"),
            "Wait.$": f"{sensor}.Interval",
        },
        result_path=sensor,
        next=wait.name,
    )
    cap = asl.Choice(
        state_name(tid, "longer than the time left?"),
        choices=[
            asl.ChoiceRule(
                variable=f"{sensor}.Interval",
                operator="NumericGreaterThanPath",
                value=f"{sensor}.Remaining",
                next=last.name,
            )
        ],
        default=normal.name,
    )
    states: list[asl.State] = [cap, last, normal, wait]
    entry = cap.name
    if max_wait is not None:
        limit = max(1, math.ceil(max_wait.total_seconds()))
        clip = asl.Pass(
            state_name(tid, "max_wait"),
            parameters=_sensor_fields(sensor, Interval=limit, NegInterval=-limit),
            result_path=sensor,
            next=cap.name,
        )
        over = asl.Choice(
            state_name(tid, "longer than max_wait?"),
            choices=[
                asl.ChoiceRule(
                    variable=f"{sensor}.Interval", operator="NumericGreaterThan", value=limit, next=clip.name
                )
            ],
            default=cap.name,
        )
        states = [over, clip, *states]
        entry = over.name
    double = asl.Pass(
        state_name(tid, "double interval"),
        parameters=_sensor_fields(
            sensor,
            Interval=f"{sensor}.Next",
            NegInterval=f"{sensor}.NegNext",
            Next=f"States.MathAdd({sensor}.Next, {sensor}.Next)",
            NegNext=f"States.MathAdd({sensor}.NegNext, {sensor}.NegNext)",
        ),
        result_path=sensor,
        next=check_entry,
    )
    wait.next = double.name
    return [*states, double], entry


def _retry_loop(task: Any, ctx: ConvertContext, sensor: str, check: Check, fresh: dict[str, Any]) -> list[asl.State]:
    """A poke that finds the resource failed raises in Airflow: the task's retries restart the sensor."""
    tid = task.task_id
    failed = asl.Fail(
        state_name(tid, "failed"),
        error="SensorFailed",
        cause=f"Sensor {tid}: the watched resource ended in a failed state",
    )
    retries = int(task.retries or 0)
    delay = max(1, int(task.retry_delay.total_seconds())) if task.retry_delay else 300
    restart = asl.Pass(
        state_name(tid, "retry"),
        parameters={**fresh, "Attempts.$": f"States.MathAdd({sensor}.Attempts, 1)"},
        result_path=sensor,
    )
    pause = asl.Wait(state_name(tid, "retry delay"), seconds=delay, next=check.entry)
    restart.next = pause.name
    again = asl.Choice(
        state_name(tid, "retry?"),
        choices=[
            asl.ChoiceRule(variable=f"{sensor}.Attempts", operator="NumericLessThan", value=retries, next=restart.name)
        ],
        default=failed.name,
    )
    for port in check.failed:
        port.link(again.name)
    return [again, restart, pause, failed]


def _status_check(
    task: Any,
    ctx: ConvertContext,
    here: str,
    service: str,
    action: str,
    request: dict[str, Any],
    status_path: str,
    *,
    done: tuple[str, ...] = (),
    pending: tuple[str, ...] = (),
    failed: tuple[str, ...] = (),
) -> Check:
    """Describe → Choice on a status: ``done`` listed (others pending) or ``pending`` listed (others done)."""
    tid = task.task_id
    describe = sdk_state(
        task,
        ctx,
        service,
        action,
        request,
        name=state_name(tid, "poke"),
        result_selector={"Status.$": status_path},
        result_path=f"{here}.Poke",
    )
    status = f"{here}.Poke.Status"

    def any_of(values: tuple[str, ...]) -> asl.ChoiceRule:
        rules = [asl.ChoiceRule(variable=status, operator="StringEquals", value=v) for v in values]
        return rules[0] if len(rules) == 1 else asl.ChoiceRule(or_=rules)

    choice = asl.Choice(state_name(tid, "done?"), comment=f"{action} status")
    describe.next = choice.name
    failed_rule = any_of(failed) if failed else None
    if failed_rule is not None:
        choice.choices.append(failed_rule)
    if done:
        done_rule = any_of(done)
        choice.choices.append(done_rule)
        return Check(
            describe.name,
            [describe, choice],
            done=[Port(done_rule)],
            pending=[Port(choice, "default")],
            failed=[Port(failed_rule)] if failed_rule else [],
        )
    pending_rule = any_of(pending)
    choice.choices.append(pending_rule)
    return Check(
        describe.name,
        [describe, choice],
        done=[Port(choice, "default")],
        pending=[Port(pending_rule)],
        failed=[Port(failed_rule)] if failed_rule else [],
    )


# ---------------------------------------------------------------------------
# The sensors
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusSensor:
    """A sensor that pokes one describe call and reads one status field (the table row of its converter)."""

    operator: str  # "module.ClassName", resolved when a DAG is exported
    service: str
    action: str
    request: dict[str, str]  # API field -> the sensor's attribute holding its value
    status_path: str
    done: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()


STATUS_SENSORS = (
    StatusSensor(
        "airflow.providers.amazon.aws.sensors.glue.GlueJobSensor",
        "glue",
        "GetJobRun",
        {"JobName": "job_name", "RunId": "run_id"},
        "$.JobRun.JobRunState",
        done=GLUE_SUCCESS,
        failed=GLUE_FAILURE,
    ),
    StatusSensor(
        "airflow.providers.amazon.aws.sensors.sagemaker.SageMakerTrainingSensor",
        "sagemaker",
        "DescribeTrainingJob",
        {"TrainingJobName": "job_name"},
        "$.TrainingJobStatus",
        pending=TRAINING_PENDING,
        failed=TRAINING_FAILED,
    ),
    StatusSensor(
        "airflow.providers.amazon.aws.sensors.sagemaker.SageMakerEndpointSensor",
        "sagemaker",
        "DescribeEndpoint",
        {"EndpointName": "endpoint_name"},
        "$.EndpointStatus",
        pending=ENDPOINT_PENDING,
        failed=ENDPOINT_FAILED,
    ),
)


def convert_status_sensor(row: StatusSensor, task: Any, ctx: ConvertContext) -> Fragment:
    request = {api_field: field_value(task, attribute) for api_field, attribute in row.request.items()}
    return sensor_fragment(
        task,
        ctx,
        lambda here: _status_check(
            task,
            ctx,
            here,
            row.service,
            row.action,
            request,
            row.status_path,
            done=row.done,
            pending=row.pending,
            failed=row.failed,
        ),
    )


register_table(STATUS_SENSORS, convert_status_sensor)


_WILDCARD = re.compile(r"[\[*?]")


def _prefix_of_pattern(pattern: Any) -> Any:
    """``data/2026/*`` → ``data/2026/``: the patterns whose fnmatch is exactly "starts with"."""
    if isinstance(pattern, str):
        if pattern.endswith("*") and not _WILDCARD.search(pattern[:-1]):
            return pattern[:-1]
    elif isinstance(pattern, Format) and pattern.template.endswith("*") and not _WILDCARD.search(pattern.template[:-1]):
        return Format(pattern.template[:-1], *pattern.args)
    raise Unsupported(
        f"wildcard pattern {pattern}: only '<prefix>*' has an exact Step Functions check (a listing by prefix)",
        "match a prefix with a single trailing '*'",
    )


@register_lazy("airflow.providers.amazon.aws.sensors.s3", "S3KeySensor")
def convert_s3_key_sensor(task: Any, ctx: ConvertContext) -> Fragment:
    if getattr(task, "check_fn", None) is not None:
        raise Unsupported("check_fn is Python run on each poke", "drop check_fn, or check in a Lambda function")
    if getattr(task, "use_regex", False):
        raise Unsupported("use_regex=True: S3 cannot list keys by a regular expression", "use a '<prefix>*' wildcard")
    if sorted(getattr(task, "metadata_keys", None) or ["Size", "Key"]) != ["Key", "Size"]:
        raise Unsupported("metadata_keys are only read by check_fn", "leave metadata_keys unset")
    keys = field_value(task, "bucket_key")
    keys = keys if isinstance(keys, list) else [keys]
    bucket = field_value(task, "bucket_name")
    wildcard = bool(getattr(task, "wildcard_match", False))
    pairs = [split_bucket_key(bucket, key, "bucket_name", "bucket_key") for key in keys]

    def build(here: str) -> Check:
        states: list[asl.State] = []
        pending: list[Port] = []
        previous: list[Port] = []
        for i, (key_bucket, key) in enumerate(pairs):
            suffix = "poke" if len(pairs) == 1 else f"poke {i + 1}"
            if wildcard:
                listing = sdk_state(
                    task,
                    ctx,
                    "s3",
                    "ListObjectsV2",
                    {"Bucket": key_bucket, "Prefix": _prefix_of_pattern(key), "MaxKeys": 1},
                    name=state_name(task.task_id, suffix),
                    result_selector={"KeyCount.$": "$.KeyCount"},
                    result_path=f"{here}.Poke",
                )
                found = asl.ChoiceRule(variable=f"{here}.Poke.KeyCount", operator="NumericGreaterThan", value=0)
                matched = asl.Choice(state_name(task.task_id, f"{suffix}: found?"), choices=[found])
                listing.next = matched.name
                pending.append(Port(matched, "default"))
                states += [listing, matched]
                entry, ports = listing.name, [Port(found)]
            else:
                head = sdk_state(
                    task,
                    ctx,
                    "s3",
                    "HeadObject",
                    {"Bucket": key_bucket, "Key": key},
                    name=state_name(task.task_id, suffix),
                    result_path=None,
                )
                catch = asl.Catch(list(S3_MISSING_KEY_ERRORS), "", result_path=None)
                head.catch = [catch]
                pending.append(Port(catch))
                states.append(head)
                entry, ports = head.name, [Port(head)]
            for port in previous:
                port.link(entry)
            previous = ports
        return Check(states[0].name, states, done=previous, pending=pending)

    return sensor_fragment(task, ctx, build)


@register_lazy("airflow.providers.amazon.aws.sensors.glue_catalog_partition", "GlueCatalogPartitionSensor")
def convert_glue_catalog_partition_sensor(task: Any, ctx: ConvertContext) -> Fragment:
    """``GlueCatalogHook.check_for_partition``: GetPartitions with the expression, done when one partition comes back.

    The hook's paginator stops at the first partition and follows ``NextToken`` until then (Glue may answer a
    page without partitions but with a token): so does the check, a page of at most one partition at a time.
    """
    table = field_value(task, "table_name")
    database = field_value(task, "database_name")
    expression = field_value(task, "expression")
    if isinstance(table, str) and "." in table:  # poke() splits "database.table" (and drops database_name)
        if table.count(".") != 1:
            raise Unsupported(f"table_name {table!r}: poke() splits it on its one '.' (Airflow raises ValueError)")
        database, table = table.split(".")
    elif not isinstance(table, str):
        raise Unsupported(
            "table_name from a reference: poke() splits 'database.table' at run time",
            "give table_name literally, or the database in database_name and the table in table_name",
        )
    tid = task.task_id

    def build(here: str) -> Check:
        request = {"DatabaseName": database, "TableName": table, "Expression": expression, "MaxResults": 1}
        first = sdk_state(
            task, ctx, "glue", "GetPartitions", request, name=state_name(tid, "poke"), result_path=f"{here}.Poke"
        )
        next_page = sdk_state(
            task,
            ctx,
            "glue",
            "GetPartitions",
            request,
            name=state_name(tid, "poke: next page"),
            result_path=f"{here}.Poke",
        )
        next_page.parameters["NextToken.$"] = f"{here}.Poke.NextToken"
        found = asl.ChoiceRule(variable=f"{here}.Poke.Partitions[0]", operator="IsPresent", value=True)
        more = asl.ChoiceRule(variable=f"{here}.Poke.NextToken", operator="IsPresent", value=True, next=next_page.name)
        choice = asl.Choice(state_name(tid, "found?"), choices=[found, more], comment="GetPartitions answer")
        first.next = next_page.next = choice.name
        return Check(first.name, [first, next_page, choice], done=[Port(found)], pending=[Port(choice, "default")])

    return sensor_fragment(task, ctx, build)


@register_lazy("airflow.providers.standard.sensors.external_task", "ExternalTaskSensor")
def convert_external_task_sensor(task: Any, ctx: ConvertContext) -> Fragment:
    raise Unsupported(
        "ExternalTaskSensor waits for a task of another DAG's run in Airflow's metadata database; "
        "a Step Functions execution has no such record to wait on",
        "start the other pipeline from this one with TriggerDagRunOperator(wait_for_completion=True), "
        "or wait on the data it writes (S3KeySensor)",
    )
