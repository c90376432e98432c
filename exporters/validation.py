"""Structural validation of an ASL definition: each problem names the state and field."""

from __future__ import annotations

from typing import Any

from exporters.asl import MAX_STATE_NAME, transitions

STATE_TYPES = {"Task", "Pass", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map"}
CHAINING = {"Task", "Pass", "Wait", "Parallel", "Map"}
COMPARATORS = {
    f"{kind}{op}{suffix}"
    for kind in ("String", "Numeric", "Timestamp")
    for op in ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
    for suffix in ("", "Path")
} | {
    "BooleanEquals",
    "BooleanEqualsPath",
    "IsNull",
    "IsPresent",
    "IsNumeric",
    "IsString",
    "IsBoolean",
    "IsTimestamp",
    "StringMatches",
}
MAX_NAME = MAX_STATE_NAME


def validate_definition(definition: Any) -> list[str]:
    """All problems found (empty list: valid)."""
    problems: list[str] = []
    if not isinstance(definition, dict):
        return ["definition: must be a JSON object"]
    _machine(definition, "", problems)
    return problems


def _machine(machine: dict[str, Any], where: str, problems: list[str]) -> None:
    states = machine.get("States")
    start = machine.get("StartAt")
    if not isinstance(states, dict) or not states:
        problems.append(f"{where or 'definition'}.States: must be a non-empty object")
        return
    if start not in states:
        problems.append(f"{where or 'definition'}.StartAt: {start!r} is not a state")
    for name, state in states.items():
        _state(name, state, states, f"{where}States.{name}", problems)
    reachable = _reachable(start, states)
    for name in states:
        if name not in reachable:
            problems.append(f"{where}States.{name}: unreachable from StartAt")
    if not any(
        s.get("Type") in ("Succeed", "Fail") or s.get("End") is True for s in states.values() if isinstance(s, dict)
    ):
        problems.append(f"{where or 'definition'}: no terminal state (End, Succeed or Fail)")


def _reachable(start: Any, states: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    stack = [start]
    while stack:
        name = stack.pop()
        if name in seen or name not in states or not isinstance(states[name], dict):
            continue
        seen.add(name)
        stack.extend(transitions(states[name]))
    return seen


def _state(name: str, state: Any, states: dict[str, Any], where: str, problems: list[str]) -> None:
    if len(name) > MAX_NAME:
        problems.append(f"{where}: state name longer than {MAX_NAME} characters")
    if not isinstance(state, dict):
        problems.append(f"{where}: must be an object")
        return
    kind = state.get("Type")
    if kind not in STATE_TYPES:
        problems.append(f"{where}.Type: {kind!r} is not a state type")
        return
    for target in transitions(state):
        if target not in states:
            problems.append(f"{where}: transition to {target!r}, which is not a state here")
    if kind in CHAINING:
        has_next, has_end = "Next" in state, state.get("End") is True
        if has_next == has_end:
            problems.append(f"{where}: needs exactly one of Next or End")
    elif "Next" in state or "End" in state:
        problems.append(f"{where}: a {kind} state takes no Next/End")
    if kind == "Task" and not isinstance(state.get("Resource"), str):
        problems.append(f"{where}.Resource: missing")
    if kind == "Choice":
        choices = state.get("Choices")
        if not isinstance(choices, list) or not choices:
            problems.append(f"{where}.Choices: must be a non-empty list")
        else:
            for i, rule in enumerate(choices):
                if not isinstance(rule, dict) or "Next" not in rule:
                    problems.append(f"{where}.Choices[{i}]: a top-level rule needs Next")
                _rule(rule, f"{where}.Choices[{i}]", problems)
    if kind == "Wait" and sum(k in state for k in ("Seconds", "SecondsPath", "Timestamp", "TimestampPath")) != 1:
        problems.append(f"{where}: a Wait needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath")
    if kind == "Fail":
        if "Cause" in state and "CausePath" in state:
            problems.append(f"{where}: Cause and CausePath are exclusive")
    if kind == "Parallel":
        branches = state.get("Branches")
        if not isinstance(branches, list) or not branches:
            problems.append(f"{where}.Branches: must be a non-empty list")
        else:
            for i, branch in enumerate(branches):
                _machine(branch, f"{where}.Branches[{i}].", problems)
    for i, retrier in enumerate(state.get("Retry", []) or []):
        _retrier(retrier, f"{where}.Retry[{i}]", problems)
    for i, catcher in enumerate(state.get("Catch", []) or []):
        if not isinstance(catcher, dict) or not catcher.get("ErrorEquals"):
            problems.append(f"{where}.Catch[{i}].ErrorEquals: must be a non-empty list")
    for field in ("Parameters", "ResultSelector"):
        if field in state:
            _payload(state[field], f"{where}.{field}", problems)
    for field in ("InputPath", "OutputPath", "ResultPath"):
        value = state.get(field, "$")
        if value is not None and (not isinstance(value, str) or not value.startswith("$")):
            problems.append(f"{where}.{field}: {value!r} is not a path")
    if "TimeoutSeconds" in state and (not isinstance(state["TimeoutSeconds"], int) or state["TimeoutSeconds"] < 1):
        problems.append(f"{where}.TimeoutSeconds: must be a positive integer")


def _rule(rule: Any, where: str, problems: list[str]) -> None:
    if not isinstance(rule, dict):
        problems.append(f"{where}: must be an object")
        return
    for combinator in ("And", "Or"):
        if combinator in rule:
            if not isinstance(rule[combinator], list) or not rule[combinator]:
                problems.append(f"{where}.{combinator}: must be a non-empty list")
                return
            for i, sub in enumerate(rule[combinator]):
                if isinstance(sub, dict) and "Next" in sub:
                    problems.append(f"{where}.{combinator}[{i}]: nested rules take no Next")
                _rule(sub, f"{where}.{combinator}[{i}]", problems)
            return
    if "Not" in rule:
        _rule(rule["Not"], f"{where}.Not", problems)
        return
    variable = rule.get("Variable")
    if not isinstance(variable, str) or not variable.startswith("$"):
        problems.append(f"{where}.Variable: must be a path")
    comparators = [k for k in rule if k in COMPARATORS]
    if len(comparators) != 1:
        problems.append(f"{where}: needs exactly one comparison operator, found {comparators or 'none'}")
        return
    op = comparators[0]
    value = rule[op]
    if op.endswith("Path") and (not isinstance(value, str) or not value.startswith("$")):
        problems.append(f"{where}.{op}: must be a path")
    elif (
        op.startswith("Numeric")
        and not op.endswith("Path")
        and (not isinstance(value, (int, float)) or isinstance(value, bool))
    ):
        problems.append(f"{where}.{op}: must be a number")


def _retrier(retrier: Any, where: str, problems: list[str]) -> None:
    if not isinstance(retrier, dict) or not retrier.get("ErrorEquals"):
        problems.append(f"{where}.ErrorEquals: must be a non-empty list")
        return
    if retrier.get("IntervalSeconds", 1) < 1:
        problems.append(f"{where}.IntervalSeconds: must be ≥ 1")
    if retrier.get("MaxAttempts", 3) < 0:
        problems.append(f"{where}.MaxAttempts: must be ≥ 0")
    if retrier.get("BackoffRate", 2.0) < 1.0:
        problems.append(f"{where}.BackoffRate: must be ≥ 1.0")


def _payload(value: Any, where: str, problems: list[str]) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            if key.endswith(".$"):
                if not isinstance(sub, str) or not (sub.startswith("$") or sub.startswith("States.")):
                    problems.append(f"{where}.{key}: must be a path or an intrinsic function")
                elif sub.startswith("States.") and sub.count("(") != sub.count(")"):
                    problems.append(f"{where}.{key}: unbalanced parentheses in {sub!r}")
            else:
                _payload(sub, f"{where}.{key}", problems)
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            _payload(sub, f"{where}[{i}]", problems)
