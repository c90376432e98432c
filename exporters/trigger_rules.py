"""Airflow's failure model, stated once: task outcomes and what each trigger rule decides from its upstreams.

Airflow 3 (``airflow/ti_deps/deps/trigger_rule_dep.py``) decides a task once its
upstream tasks are done: run it, or mark it ``skipped`` / ``upstream_failed``. Each
rule below is an ordered list of (condition, decision) pairs and a default; a
condition is "any upstream outcome in X" or "every upstream outcome in X". The
same table drives the static analysis (which decisions are possible where) and
the gates the compiler emits (Choice rules over the recorded outcomes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

SUCCESS = "success"
FAILED = "failed"
SKIPPED = "skipped"
UPSTREAM_FAILED = "upstream_failed"
RUN = "run"
OUTCOMES = frozenset({SUCCESS, FAILED, SKIPPED, UPSTREAM_FAILED})
# A run fails when a leaf task ends in one of these (skipped leaves count as success).
FAILING = frozenset({FAILED, UPSTREAM_FAILED})


@dataclass(frozen=True)
class Condition:
    quantifier: str  # "any" or "all"
    outcomes: frozenset[str]


def _any(*outcomes: str) -> Condition:
    return Condition("any", frozenset(outcomes))


def _all(*outcomes: str) -> Condition:
    return Condition("all", frozenset(outcomes))


# rule -> ([(condition, decision), ...], default decision), evaluated once every upstream is done.
RULES: dict[str, tuple[list[tuple[Condition, str]], str]] = {
    "all_success": ([(_any(FAILED, UPSTREAM_FAILED), UPSTREAM_FAILED), (_any(SKIPPED), SKIPPED)], RUN),
    "all_failed": ([(_any(SUCCESS, SKIPPED), SKIPPED)], RUN),
    "all_done": ([], RUN),
    "all_skipped": ([(_any(SUCCESS, FAILED, UPSTREAM_FAILED), SKIPPED)], RUN),
    "one_success": ([(_any(SUCCESS), RUN), (_all(SKIPPED), SKIPPED)], UPSTREAM_FAILED),
    "one_failed": ([(_any(FAILED, UPSTREAM_FAILED), RUN)], SKIPPED),
    "one_done": ([(_any(FAILED, SUCCESS), RUN)], SKIPPED),
    "none_failed": ([(_any(FAILED, UPSTREAM_FAILED), UPSTREAM_FAILED)], RUN),
    "none_failed_min_one_success": (
        [(_any(FAILED, UPSTREAM_FAILED), UPSTREAM_FAILED), (_all(SKIPPED), SKIPPED), (_any(SUCCESS), RUN)],
        UPSTREAM_FAILED,
    ),
    "none_skipped": ([(_any(SKIPPED), SKIPPED)], RUN),
    "always": ([], RUN),
    "all_done_min_one_success": ([(_any(SKIPPED), SKIPPED), (_any(SUCCESS), RUN)], UPSTREAM_FAILED),
}


def rule_name(task: Any) -> str:
    return str(getattr(task.trigger_rule, "value", task.trigger_rule))


def decide(rule: str, upstream: Iterable[str]) -> str:
    """What Airflow does with a task whose upstream tasks ended in ``upstream`` (a root task always runs)."""
    outcomes = list(upstream)
    if not outcomes:
        return RUN
    conditions, default = RULES[rule]
    for condition, decision in conditions:
        test = any if condition.quantifier == "any" else all
        if test(o in condition.outcomes for o in outcomes):
            return decision
    return default


# Three-valued logic over the outcomes each upstream may have at the gate.
TRUE, FALSE, UNKNOWN = True, False, None


def holds(condition: Condition, possible: list[frozenset[str]]) -> bool | None:
    """Whether ``condition`` holds for every (TRUE), no (FALSE) or some (UNKNOWN) combination of outcomes."""
    inside = [p <= condition.outcomes for p in possible]
    outside = [not (p & condition.outcomes) for p in possible]
    if condition.quantifier == "any":
        if any(inside):
            return TRUE
        return FALSE if all(outside) else UNKNOWN
    if all(inside):
        return TRUE
    return FALSE if any(outside) else UNKNOWN


def possible_decisions(rule: str, possible: list[frozenset[str]]) -> set[str]:
    """The decisions the rule can reach given each upstream's possible outcomes (sound over-approximation)."""
    if not possible:
        return {RUN}
    conditions, default = RULES[rule]
    found: set[str] = set()
    for condition, decision in conditions:
        verdict = holds(condition, possible)
        if verdict is TRUE:
            found.add(decision)
            return found
        if verdict is UNKNOWN:
            found.add(decision)
    found.add(default)
    return found


@dataclass
class Gate:
    """Choice rules deciding a task: [(predicate, decision)] then a default; predicates are built by the caller."""

    branches: list[tuple[Any, str]]
    default: str


def gate(
    rule: str,
    upstream: list[tuple[str, frozenset[str]]],
    is_in: Callable[[str, frozenset[str]], Any],
    any_of: Callable[[list[Any]], Any],
    all_of: Callable[[list[Any]], Any],
) -> Gate:
    """The rule as predicates over recorded outcomes, folded with what is known statically.

    ``is_in(task, outcomes)`` builds the predicate "task ended in one of outcomes";
    ``any_of``/``all_of`` combine predicates. Conditions known to hold or fail from
    the possible outcomes are folded away, so an unconditional task gets no gate
    (``Gate([], RUN)``).
    """
    conditions, default = RULES[rule]
    possible = [p for _, p in upstream]
    branches: list[tuple[Any, str]] = []
    if not upstream:
        return Gate([], RUN)
    for condition, decision in conditions:
        verdict = holds(condition, possible)
        if verdict is FALSE:
            continue
        if verdict is TRUE:
            return _simplify(branches, decision)
        parts = []
        for task_id, p in upstream:
            wanted = p & condition.outcomes
            if condition.quantifier == "any" and not wanted:
                continue
            if condition.quantifier == "all" and p <= condition.outcomes:
                continue
            parts.append(is_in(task_id, wanted))
        branches.append((any_of(parts) if condition.quantifier == "any" else all_of(parts), decision))
    return _simplify(branches, default)


def _simplify(branches: list[tuple[Any, str]], default: str) -> Gate:
    # Trailing branches that decide the same as the default add nothing.
    while branches and branches[-1][1] == default:
        branches.pop()
    return Gate(branches, default)
