"""A small typed model of the Amazon States Language (JSONPath flavour).

Each state serialises itself with ``to_dict()``; ``StateMachine.to_json()`` is
deterministic (fixed key order per state type, sorted-free so the order reads
like the console), so re-exporting an unchanged DAG is byte-identical.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

MAX_STATE_NAME = 80  # https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html


@dataclass
class Retry:
    error_equals: list[str]
    interval_seconds: int = 1
    max_attempts: int = 3
    backoff_rate: float = 2.0
    max_delay_seconds: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ErrorEquals": list(self.error_equals),
            "IntervalSeconds": self.interval_seconds,
            "MaxAttempts": self.max_attempts,
            "BackoffRate": self.backoff_rate,
        }
        if self.max_delay_seconds is not None:
            out["MaxDelaySeconds"] = self.max_delay_seconds
        return out


@dataclass
class Catch:
    error_equals: list[str]
    next: str
    result_path: str | None = "$.error"

    def to_dict(self) -> dict[str, Any]:
        return {"ErrorEquals": list(self.error_equals), "Next": self.next, "ResultPath": self.result_path}


@dataclass
class State:
    name: str
    comment: str | None = field(default=None, kw_only=True)
    next: str | None = field(default=None, kw_only=True)
    end: bool = field(default=False, kw_only=True)

    type_name = ""
    # Whether this state type takes Next/End (Choice, Fail, Succeed don't).
    chains = True

    def body(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Type": self.type_name}
        if self.comment:
            out["Comment"] = self.comment
        out.update(self.body())
        if self.chains:
            if self.next is not None:
                out["Next"] = self.next
            else:
                out["End"] = True
        return out

    def successors(self) -> list[str]:
        return [self.next] if self.chains and self.next else []


@dataclass
class _DataState(State):
    """States with the input/output processing fields."""

    parameters: dict[str, Any] | None = field(default=None, kw_only=True)
    result_selector: dict[str, Any] | None = field(default=None, kw_only=True)
    result_path: str | None | type(...) = field(default=..., kw_only=True)  # ... = not set; None = JSON null
    output_path: str | None = field(default=None, kw_only=True)

    def io_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.parameters is not None:
            out["Parameters"] = self.parameters
        if self.result_selector is not None:
            out["ResultSelector"] = self.result_selector
        if self.result_path is not ...:
            out["ResultPath"] = self.result_path
        if self.output_path is not None:
            out["OutputPath"] = self.output_path
        return out


@dataclass
class _HandlesErrors(_DataState):
    """States that take Retry and Catch (Task, Parallel)."""

    retry: list[Retry] = field(default_factory=list, kw_only=True)
    catch: list[Catch] = field(default_factory=list, kw_only=True)

    def error_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.retry:
            out["Retry"] = [r.to_dict() for r in self.retry]
        if self.catch:
            out["Catch"] = [c.to_dict() for c in self.catch]
        return out

    def successors(self) -> list[str]:
        return [*super().successors(), *(c.next for c in self.catch)]


@dataclass
class Task(_HandlesErrors):
    resource: str = ""
    timeout_seconds: int | None = field(default=None, kw_only=True)

    type_name = "Task"

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Resource": self.resource}
        out.update(self.io_fields())
        if self.timeout_seconds is not None:
            out["TimeoutSeconds"] = self.timeout_seconds
        out.update(self.error_fields())
        return out


@dataclass
class Pass(_DataState):
    result: Any = field(default=None, kw_only=True)

    type_name = "Pass"

    def body(self) -> dict[str, Any]:
        out = self.io_fields()
        if self.result is not None:
            out["Result"] = self.result
        return out


@dataclass
class Wait(State):
    seconds: int | None = None
    seconds_path: str | None = None

    type_name = "Wait"

    def body(self) -> dict[str, Any]:
        return {"SecondsPath": self.seconds_path} if self.seconds_path else {"Seconds": self.seconds}


@dataclass
class Fail(State):
    error: str | None = None
    cause: str | None = None
    error_path: str | None = None
    cause_path: str | None = None

    type_name = "Fail"
    chains = False

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.error_path is not None:
            out["ErrorPath"] = self.error_path
        elif self.error is not None:
            out["Error"] = self.error
        if self.cause_path is not None:
            out["CausePath"] = self.cause_path
        elif self.cause is not None:
            out["Cause"] = self.cause
        return out


@dataclass
class Succeed(State):
    type_name = "Succeed"
    chains = False


@dataclass
class ChoiceRule:
    """One comparison (or And/Or/Not of rules) and the state it leads to (top level only)."""

    variable: str | None = None
    operator: str | None = None  # e.g. "NumericLessThan", "NumericLessThanPath", "StringEquals", "IsPresent"
    value: Any = None
    and_: list[ChoiceRule] | None = None
    or_: list[ChoiceRule] | None = None
    not_: ChoiceRule | None = None
    next: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.and_ is not None:
            out: dict[str, Any] = {"And": [r.to_dict() for r in self.and_]}
        elif self.or_ is not None:
            out = {"Or": [r.to_dict() for r in self.or_]}
        elif self.not_ is not None:
            out = {"Not": self.not_.to_dict()}
        else:
            out = {"Variable": self.variable, self.operator: self.value}
        if self.next is not None:
            out["Next"] = self.next
        return out


@dataclass
class Choice(State):
    choices: list[ChoiceRule] = field(default_factory=list)
    default: str | None = None

    type_name = "Choice"
    chains = False

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Choices": [c.to_dict() for c in self.choices]}
        if self.default is not None:
            out["Default"] = self.default
        return out

    def successors(self) -> list[str]:
        targets = [c.next for c in self.choices if c.next]
        if self.default:
            targets.append(self.default)
        return targets


@dataclass
class Parallel(_HandlesErrors):
    branches: list[StateMachine] = field(default_factory=list)

    type_name = "Parallel"

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Branches": [b.to_dict(top_level=False) for b in self.branches]}
        out.update(self.io_fields())
        out.update(self.error_fields())
        return out


@dataclass
class Map(_DataState):
    iterator: StateMachine | None = None
    items_path: str = "$"
    max_concurrency: int = 0
    item_selector: dict[str, Any] | None = None
    mode: str = "INLINE"  # or "DISTRIBUTED": each iteration a child execution (STANDARD)
    catch: list[Catch] = field(default_factory=list, kw_only=True)

    type_name = "Map"

    def body(self) -> dict[str, Any]:
        config: dict[str, Any] = {"Mode": self.mode}
        if self.mode == "DISTRIBUTED":
            config["ExecutionType"] = "STANDARD"
        out: dict[str, Any] = {"ItemsPath": self.items_path}
        if self.item_selector is not None:
            out["ItemSelector"] = self.item_selector
        out["MaxConcurrency"] = self.max_concurrency
        out["ItemProcessor"] = {
            "ProcessorConfig": config,
            **(self.iterator.to_dict(top_level=False) if self.iterator else {}),
        }
        out.update(self.io_fields())
        if self.catch:
            out["Catch"] = [c.to_dict() for c in self.catch]
        return out

    def successors(self) -> list[str]:
        return [*super().successors(), *(c.next for c in self.catch)]


@dataclass
class StateMachine:
    """Top-level workflow or a Parallel branch: states in insertion order, the first is StartAt unless set."""

    states: list[State] = field(default_factory=list)
    start_at: str | None = None
    comment: str | None = None
    timeout_seconds: int | None = None

    def add(self, *states: State) -> StateMachine:
        self.states.extend(states)
        return self

    def to_dict(self, top_level: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.comment and top_level:
            out["Comment"] = self.comment
        out["StartAt"] = self.start_at or (self.states[0].name if self.states else None)
        if top_level and self.timeout_seconds is not None:
            out["TimeoutSeconds"] = self.timeout_seconds
        out["States"] = {s.name: s.to_dict() for s in self.states}
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"


def walk(states: Iterable[State]) -> Iterator[State]:
    """Every state, Parallel branches included (depth first, in order)."""
    for state in states:
        yield state
        if isinstance(state, Parallel):
            for branch in state.branches:
                yield from walk(branch.states)
        elif isinstance(state, Map) and state.iterator is not None:
            yield from walk(state.iterator.states)


def walk_definition(machine: dict[str, Any], where: str = "") -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(location prefix, name, state) of every state of a definition dict, Parallel and Map branches included.

    The location prefix reads like ``States.P.Branches[0].`` so problems can name where a state sits.
    """
    states = machine.get("States")
    if not isinstance(states, dict):
        return
    for name, state in states.items():
        yield where, name, state
        if not isinstance(state, dict):
            continue
        for i, branch in enumerate(state.get("Branches") or []):
            if isinstance(branch, dict):
                yield from walk_definition(branch, f"{where}States.{name}.Branches[{i}].")
        for key in ("ItemProcessor", "Iterator"):
            if isinstance(state.get(key), dict):
                yield from walk_definition(state[key], f"{where}States.{name}.{key}.")


def transitions(state: dict[str, Any]) -> list[str]:
    """The names a definition state can go to next: Next, Default, choice rules and catchers."""
    out = []
    if "Next" in state:
        out.append(state["Next"])
    if "Default" in state:
        out.append(state["Default"])
    for rule in state.get("Choices", []) or []:
        if isinstance(rule, dict) and "Next" in rule:
            out.append(rule["Next"])
    for catcher in state.get("Catch", []) or []:
        if isinstance(catcher, dict) and "Next" in catcher:
            out.append(catcher["Next"])
    return out
