"""``max_active_runs`` on Step Functions: a run slot taken at the start of each execution, given back at every end.

The AWS-documented pattern ("Controlling concurrency in distributed systems using AWS
Step Functions", aws-samples ``app-control-concurrency-with-dynamodb``): a DynamoDB item
per DAG (key ``LockName`` = the DAG id) counts the runs holding a slot; each holder is an
attribute named by its execution ARN.

- "Acquire run slot": ``UpdateItem`` adds 1 and the holder attribute only when the count is
  below ``max_active_runs`` and this execution holds none (a conditional write: two runs can
  never both take the last slot). A full table answers ``ConditionalCheckFailedException``,
  which the state retries every ``interval`` seconds, like Airflow's queued run waiting for a
  slot, up to the bound (``dagrun_timeout``, else ``DEFAULT_QUEUE_BOUND``); then the run fails
  naming the limit ("No run slot in time").
- "Release run slot": ``UpdateItem`` subtracts 1 and removes the holder attribute, only if it
  is there (releasing twice is harmless). It runs before the run's Succeed, and after every
  failure the machine can see: each Fail state becomes a Pass recording its error under
  ``$.error``, each top-level Task/Parallel/Map that would end the execution gets a Catch doing
  the same, then "Release run slot after failure" and one Fail re-raising that error and cause.
- What the machine cannot see (the execution's own ``TimeoutSeconds``, StopExecution, an
  uncatchable ``States.Runtime``): the template's EventBridge rule on the execution status
  change (FAILED, TIMED_OUT, ABORTED) starts a small cleanup state machine
  (``cleanup_definition``) doing the same release for the execution named in the event.

DAGs without a ``max_active_runs`` below Airflow's default (``[core] max_active_runs_per_dag``)
get no guard and export exactly as before.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from exporters import asl

DEFAULT_TABLE = "airflow-run-slots"  # the table named in the exported definition (deploy --concurrency-table)
TABLE_PLACEHOLDER = "${RunSlotTableName}"  # the template's DefinitionSubstitutions key
LOCK_KEY = "LockName"
COUNT = "currentlockcount"
ERROR_KEY = "error"  # compiler.RESERVED_KEYS: no task result sits there
UPDATE_ITEM = "arn:aws:states:::dynamodb:updateItem"
SLOT_TAKEN = "DynamoDB.ConditionalCheckFailedException"
# Errors meaning DynamoDB refused the request before applying it: safe to send again.
THROTTLED = [
    "DynamoDB.ProvisionedThroughputExceededException",
    "DynamoDB.RequestLimitExceeded",
    "DynamoDB.ThrottlingException",
]
# Airflow's queued run waits without limit; a run still queued after a day is stale (the next scheduled run of a
# daily DAG is queued by then), and the history quota needs a bound: 24 h when the DAG has no dagrun_timeout.
DEFAULT_QUEUE_BOUND = dt.timedelta(hours=24)
# Polls of a full table per queued run: about 3 history events each, well inside the 25,000-event quota.
MAX_POLLS = 360
ACQUIRE = "Acquire run slot"
NO_SLOT = "No run slot in time"
RELEASE = "Release run slot"
RELEASE_AFTER_FAILURE = "Release run slot after failure"
RESERVED_ERROR = "Step Functions error?"
RENAMED_ERROR = "Name the Step Functions error"
FAILED = "Run failed, slot released"


def run_slot_limit(dag: Any) -> int | None:
    """The DAG's ``max_active_runs`` when it is below Airflow's default (a guard is emitted), else None."""
    # Lazy: the exporter reads Airflow's configuration only when it compiles a DAG.
    from airflow.configuration import conf

    limit = getattr(dag, "max_active_runs", None)
    default = conf.getint("core", "max_active_runs_per_dag", fallback=16)
    if not isinstance(limit, int) or limit < 1 or limit >= default:
        return None
    return limit


def queue_bound(dag: Any) -> tuple[int, int, int]:
    """(bound seconds, poll interval seconds, polls): how long a run waits for a slot, and how often it tries."""
    timeout = getattr(dag, "dagrun_timeout", None)
    bound = max(1, int((timeout or DEFAULT_QUEUE_BOUND).total_seconds()))
    interval = max(1, math.ceil(bound / MAX_POLLS))
    # The last try ends well before the execution's own timeout (the run then fails naming the limit, not "timed out").
    return bound, interval, max(1, int(0.9 * bound / interval) - 1)


def add_guard(machine: asl.StateMachine, dag: Any, limit: int, taken: set[str]) -> None:
    """Wrap ``machine`` (a compiled top-level machine) in the run-slot guard; ``taken``: state names in use."""
    names = _Names(taken)
    bound, interval, polls = queue_bound(dag)
    start = machine.start_at or machine.states[0].name
    lock = {LOCK_KEY: {"S": dag.dag_id}}
    acquire = asl.Task(
        names.new(ACQUIRE),
        resource=UPDATE_ITEM,
        parameters={
            "TableName": DEFAULT_TABLE,
            "Key": lock,
            "UpdateExpression": "SET #count = if_not_exists(#count, :zero) + :one, #holder = :since",
            "ConditionExpression": (
                "(attribute_not_exists(#count) OR #count < :limit) AND attribute_not_exists(#holder)"
            ),
            "ExpressionAttributeNames": {"#count": COUNT, "#holder.$": "$$.Execution.Id"},
            "ExpressionAttributeValues": {
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
                ":limit": {"N": str(limit)},
                ":since": {"S.$": "$$.State.EnteredTime"},
            },
        },
        result_path=None,
        retry=[
            asl.Retry([SLOT_TAKEN], interval_seconds=interval, max_attempts=polls, backoff_rate=1.0),
            asl.Retry(list(THROTTLED), interval_seconds=1, max_attempts=5, backoff_rate=2.0),
        ],
        comment=f"Airflow's max_active_runs={limit}: take one of the DAG's run slots, or wait queued "
        f"(a try every {interval} s, up to {bound} s)",
        next=start,
    )
    no_slot = asl.Fail(
        names.new(NO_SLOT),
        error="RunSlotWaitTimedOut",
        cause=f"DAG {dag.dag_id!r}: no run slot came free within {bound} s "
        f"({'dagrun_timeout' if dag.dagrun_timeout else 'the exporter default queue bound'}): "
        f"{limit} run(s) were active the whole time (max_active_runs={limit})",
    )
    acquire.catch.append(asl.Catch([SLOT_TAKEN], no_slot.name, result_path=None))

    body = list(machine.states)
    release_ok = _release_task(names.new(RELEASE), "The run ends: give its slot back", DEFAULT_TABLE, dag.dag_id)
    release_failed = _release_task(
        names.new(RELEASE_AFTER_FAILURE), "The run failed: give its slot back", DEFAULT_TABLE, dag.dag_id
    )
    failed = asl.Fail(
        names.new(FAILED),
        error_path=f"$.{ERROR_KEY}.Error",
        cause_path=f"$.{ERROR_KEY}.Cause",
        comment="The run's failure, as recorded before the slot was given back",
    )
    # A Fail state may not raise an error named "States.*" (the ASL spec reserves them): such an error is named
    # StepFunctionsError, its own name leading the cause.
    reserved = asl.Choice(
        names.new(RESERVED_ERROR),
        choices=[asl.ChoiceRule(variable=f"$.{ERROR_KEY}.Error", operator="StringMatches", value="States.*")],
        default=failed.name,
    )
    renamed = asl.Pass(
        names.new(RENAMED_ERROR),
        parameters={
            "Error": "StepFunctionsError",
            "Cause.$": f"States.Format('{{}}: {{}}', $.{ERROR_KEY}.Error, $.{ERROR_KEY}.Cause)",
        },
        result_path=f"$.{ERROR_KEY}",
        next=failed.name,
    )
    reserved.choices[0].next = renamed.name
    release_failed.next = reserved.name
    release_failed.catch.append(asl.Catch([SLOT_TAKEN], reserved.name, result_path=None))

    succeeds = [s for s in body if isinstance(s, asl.Succeed)]
    done = succeeds[0] if succeeds else asl.Succeed(names.new("Done"))
    retarget = {s.name: release_ok.name for s in succeeds}
    out: list[asl.State] = []
    for state in body:
        if isinstance(state, asl.Succeed):
            continue
        if isinstance(state, asl.Fail):
            out.append(_recorded(state, release_failed.name))
            continue
        if state.chains and state.next is None:
            state.next = release_ok.name
        if hasattr(state, "catch") and not any("States.ALL" in c.error_equals for c in state.catch):
            state.catch.append(asl.Catch(["States.ALL"], release_failed.name, result_path=f"$.{ERROR_KEY}"))
        out.append(state)
    _retarget(out, retarget)
    release_ok.next = done.name
    release_ok.catch.append(asl.Catch([SLOT_TAKEN], done.name, result_path=None))  # already given back
    machine.states = [acquire, *out, release_ok, done, release_failed, reserved, renamed, failed, no_slot]
    machine.start_at = acquire.name


def _release_task(name: str, comment: str, table: Any, lock: str) -> asl.Task:
    return asl.Task(
        name,
        resource=UPDATE_ITEM,
        parameters=release_request(table, lock, "$$.Execution.Id"),
        result_path=None,
        retry=[
            asl.Retry([SLOT_TAKEN], max_attempts=0),
            asl.Retry(["States.ALL"], interval_seconds=1, max_attempts=5, backoff_rate=2.0),
        ],
        comment=comment,
    )


def release_request(table: Any, lock: str, holder_path: str) -> dict[str, Any]:
    """The ``UpdateItem`` giving back the slot held by the execution ARN at ``holder_path`` (only if it holds one)."""
    return {
        "TableName": table,
        "Key": {LOCK_KEY: {"S": lock}},
        "UpdateExpression": "SET #count = #count - :one REMOVE #holder",
        "ConditionExpression": "attribute_exists(#holder)",
        "ExpressionAttributeNames": {"#count": COUNT, "#holder.$": holder_path},
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    }


def _recorded(fail: asl.Fail, release: str) -> asl.Pass:
    """A Fail state as a Pass recording the error and cause it would end the run with, then the release."""
    if fail.error_path is not None or fail.cause_path is not None:
        parameters = {
            **({"Error.$": fail.error_path} if fail.error_path else {"Error": fail.error or ""}),
            **({"Cause.$": fail.cause_path} if fail.cause_path else {"Cause": fail.cause or ""}),
        }
        return asl.Pass(
            fail.name,
            parameters=parameters,
            result_path=f"$.{ERROR_KEY}",
            comment=fail.comment,
            next=release,
        )
    return asl.Pass(
        fail.name,
        result={"Error": fail.error or "", "Cause": fail.cause or ""},
        result_path=f"$.{ERROR_KEY}",
        comment=fail.comment,
        next=release,
    )


def _retarget(states: list[asl.State], mapping: dict[str, str]) -> None:
    """Point every transition to a state in ``mapping`` at its replacement (top level only)."""
    if not mapping:
        return
    for state in states:
        if state.chains and state.next in mapping:
            state.next = mapping[state.next]
        for catch in getattr(state, "catch", ()):
            if catch.next in mapping:
                catch.next = mapping[catch.next]
        if isinstance(state, asl.Choice):
            for rule in state.choices:
                if rule.next in mapping:
                    rule.next = mapping[rule.next]
            if state.default in mapping:
                state.default = mapping[state.default]


class _Names:
    def __init__(self, taken: set[str]):
        self.taken = taken

    def new(self, base: str) -> str:
        name, n = base, 1
        while name in self.taken:
            n += 1
            name = f"{base} {n}"
        self.taken.add(name)
        return name


def has_guard(definition: dict[str, Any]) -> bool:
    return any(
        isinstance(state, dict) and state.get("Resource") == UPDATE_ITEM and _table_of(state) == DEFAULT_TABLE
        for state in (definition.get("States") or {}).values()
    )


def _table_of(state: dict[str, Any]) -> Any:
    params = state.get("Parameters")
    return params.get("TableName") if isinstance(params, dict) else None


def with_table(definition: dict[str, Any], table: str) -> dict[str, Any]:
    """The definition with the guard's table named ``table`` (a name, or the template's placeholder)."""
    states = {}
    for name, state in (definition.get("States") or {}).items():
        if isinstance(state, dict) and state.get("Resource") == UPDATE_ITEM and _table_of(state) == DEFAULT_TABLE:
            state = {**state, "Parameters": {**state["Parameters"], "TableName": table}}
        states[name] = state
    return {**definition, "States": states}


def cleanup_definition(table: Any, lock: str) -> dict[str, Any]:
    """The cleanup state machine: started by EventBridge when an execution ends FAILED, TIMED_OUT or ABORTED."""
    release = _release_task(
        "Release run slot of ended execution",
        "Give back the slot of the execution named in the status-change event (if it still holds one)",
        table,
        lock,
    )
    release.parameters = release_request(table, lock, "$.detail.executionArn")
    released = asl.Succeed("Slot free")
    release.next = released.name
    release.catch.append(asl.Catch([SLOT_TAKEN], released.name, result_path=None))
    machine = asl.StateMachine(
        comment=f"Gives back the run slot of an execution of DAG {lock!r} that ended without doing so",
        states=[release, released],
    )
    return machine.to_dict()


def local_stand_in(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition with the guard's DynamoDB calls as Pass states, for a local run (one execution at a time)."""
    states = {}
    for name, state in (definition.get("States") or {}).items():
        if isinstance(state, dict) and state.get("Resource") == UPDATE_ITEM and _table_of(state) == DEFAULT_TABLE:
            state = {
                "Type": "Pass",
                "Comment": "Local run: one execution at a time, so the run slot is always free",
                "ResultPath": None,
                "Next": state["Next"],
            }
        states[name] = state
    return {**definition, "States": states}
