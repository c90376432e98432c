"""Step Functions quotas checked at export, each message naming the limit and where AWS documents it.

https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html (Standard workflows):
definition size 1 MB, state name 80 characters, input or output of a state or
execution 256 KiB (UTF-8), execution history 25,000 events.
"""

from __future__ import annotations

import json
from typing import Any

from exporters import asl

QUOTAS_DOC = "https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html"
MAX_DEFINITION_BYTES = 1024 * 1024
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_HISTORY_EVENTS = 25_000
# History events per state visit (entered + exited), per Task attempt (scheduled, started, then
# succeeded or failed) and per Parallel (started, succeeded/failed).
EVENTS_PER_STATE = 2
EVENTS_PER_TASK_ATTEMPT = 3
EVENTS_PER_PARALLEL = 2


def compact_json(definition: dict[str, Any]) -> str:
    """The definition as ``deploy`` sends it to Step Functions: no whitespace (the size quota counts every byte)."""
    return json.dumps(definition, separators=(",", ":"), ensure_ascii=False)


def check_quotas(machine: asl.StateMachine, dag: Any, task_count: int) -> list[str]:
    """Warnings for quotas an execution of this definition would reach (empty: within every quota)."""
    warnings = []
    size = len(compact_json(machine.to_dict()).encode())
    if size > MAX_DEFINITION_BYTES:
        warnings.append(
            f"the definition is {size:,} bytes (UTF-8, without whitespace, as deploy sends it): over Step Functions' "
            f"1 MB definition size quota ({QUOTAS_DOC}); CreateStateMachine will refuse it: split the DAG"
        )
    for state in asl.walk(machine.states):
        if len(state.name) > asl.MAX_STATE_NAME:
            warnings.append(f"state {state.name!r}: name over the 80-character quota ({QUOTAS_DOC})")
    defaults = next((s.parameters for s in machine.states if isinstance(s, asl.Pass) and s.parameters), None)
    if defaults is not None:
        params_size = len(json.dumps(defaults, separators=(",", ":")).encode())
        # The params travel in every state's input twice (defaults and merged params) before any result.
        if 2 * params_size > MAX_PAYLOAD_BYTES:
            warnings.append(
                f"the DAG's param defaults take {params_size:,} bytes and are carried in every state's input twice: "
                f"over the 256 KiB payload quota ({QUOTAS_DOC}); pass large values by S3 URI"
            )
    events = worst_case_events(machine.states)
    if events > MAX_HISTORY_EVENTS:
        warnings.append(
            f"a run can take up to about {events:,} history events (every task retried to its limit, every wait "
            f"polled to its timeout): over the 25,000-event execution history quota ({QUOTAS_DOC}); "
            "fewer retries, longer poll intervals or a smaller DAG"
        )
    return warnings


def worst_case_events(states: list[asl.State]) -> int:
    """History events of a run that visits every state, retries every Task to its limit and polls every loop."""
    total = 0
    for state in states:
        attempts = 1 + sum(r.max_attempts for r in getattr(state, "retry", []) or [])
        total += EVENTS_PER_STATE
        if isinstance(state, asl.Task):
            total += EVENTS_PER_TASK_ATTEMPT * attempts
        elif isinstance(state, asl.Parallel):
            inner = sum(worst_case_events(b.states) for b in state.branches)
            total += attempts * (EVENTS_PER_PARALLEL + inner)
        elif isinstance(state, asl.Choice):
            total += _loop_events(state, states)
    return total


def _loop_events(choice: asl.Choice, states: list[asl.State]) -> int:
    """A poll loop bounded by a counter (``NumericGreaterThanEquals`` on ``...Polls.value``): its extra visits."""
    bound = next(
        (
            r.value
            for r in choice.choices
            if r.operator == "NumericGreaterThanEquals" and str(r.variable).endswith("Polls.value")
        ),
        None,
    )
    if not isinstance(bound, int):
        return 0
    # Each poll: Wait, DescribeEndpoint (a Task), the Choice and the counter.
    per_poll = 4 * EVENTS_PER_STATE + EVENTS_PER_TASK_ATTEMPT
    return bound * per_poll
