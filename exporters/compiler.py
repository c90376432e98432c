"""Emit the Step Functions state machine of an Airflow DAG (never running it), with Airflow's failure model.

State data: ``$.params`` holds the run's params (execution input merged over the
DAG's param defaults by the first two states); each task's result sits under its
own key (``$.<task_id>``), like an XCom per task; each task's outcome, when some
state reads it, under ``$.ti_<task_id>``: absent while the task succeeded, the
error (``{"Error", "Cause"}``) when it failed, ``"skipped"`` or
``"upstream_failed"`` when it did not run.

The failure model (``exporters/trigger_rules.py``) is Airflow's: a task runs when
its trigger rule holds over its upstream outcomes (a Choice in front of it when
that is not known at export time), otherwise it is marked as Airflow marks it;
every failure is caught where it happens and recorded, so other tasks go on;
the run ends from its leaves (any failed or upstream_failed: a Fail naming the
failed task and its error). Where a failure can only end the run (nothing else
would run in Airflow), it is left to end the execution at once: an
``all_success`` chain exports as plain states, as before.
"""

from __future__ import annotations

import copy
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from exporters import asl, concurrency, trigger_rules
from exporters.converters import (
    ConvertContext,
    Failure,
    Fragment,
    Port,
    Unsupported,
    converter_for,
    result_key,
    state_name,
)
from exporters.errors import ExportError, Problem
from exporters.mapping import MappedTask, convert_mapped
from exporters.quotas import check_quotas
from exporters.run_clock import run_clock, run_time_states
from exporters.structure import Branch, Par, Seq, Step, StructureProblem, TaskGraph, tasks_in
from exporters.translate import ResultLayout, Translator, path_keys
from exporters.trigger_rules import FAILED, FAILING, RUN, SKIPPED, SUCCESS

RESERVED_KEYS = {"params", "param_defaults", "error", "merged", "run_time", "run_clock"}
OUTCOME_PREFIX = "ti_"
DEFAULTS_STATE = "Param defaults"
PARAMS_STATE = "Apply params"
RUN_STATE = "Run state"
RUN_FAILED = "Run failed"
DONE = "Done"
ALL_OUTCOMES = trigger_rules.OUTCOMES
# How many later tasks the analysis simulates to prove that a failure can only end the run (keeps exports linear).
SIMULATION_LIMIT = 64


@dataclass
class ExportResult:
    dag_id: str
    machine: asl.StateMachine
    warnings: list[str] = field(default_factory=list)
    integrations: list[str] = field(default_factory=list)
    # task id -> the state entered when the task runs (for views and tests)
    task_entries: dict[str, str] = field(default_factory=dict)
    # The Pass state holding the DAG's param defaults (the first state).
    defaults_state: asl.Pass | None = None
    # Each expression in the definition → the typed references translated to it.
    origins: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def definition(self) -> dict[str, Any]:
        return self.machine.to_dict()

    def definition_with_param_defaults(self, values: dict[str, Any]) -> dict[str, Any]:
        """The definition with ``values`` in place of those params' defaults (e.g. template placeholders)."""
        if self.defaults_state is None:
            raise ValueError(f"DAG {self.dag_id!r}: the export has no param defaults state")
        defaults = {**self.defaults_state.parameters["param_defaults"], **values}
        replaced = replace(self.defaults_state, parameters={"param_defaults": defaults})
        machine = copy.copy(self.machine)
        machine.states = [replaced if s is self.defaults_state else s for s in self.machine.states]
        return machine.to_dict()

    def to_json(self) -> str:
        return self.machine.to_json()


def param_defaults(dag: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for name in dag.params:
        param = dag.params.get_param(name)
        value = param.value if hasattr(param, "value") else param
        defaults[name] = _json_safe(value)
    return defaults


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return str(value)


def outcome_path(task_id: str) -> str:
    return f"$.{OUTCOME_PREFIX}{result_key(task_id)}"


@dataclass
class TaskPlan:
    """What the analysis decided for one task."""

    gate: trigger_rules.Gate
    possible: frozenset[str]
    caught: bool  # failures recorded (False: a failure ends the execution at once)
    aborts: set[str] = field(default_factory=set)  # non-run decisions after which the run can only fail
    in_parallel: bool = False


class Compiler:
    def __init__(self, dag: Any):
        self.dag = dag
        self.tasks = {t.task_id: t for t in dag.tasks}
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        self.fragments: dict[str, Fragment] = {}
        self.layouts: dict[str, ResultLayout] = {}
        self.graph = TaskGraph(dag)
        self.translator = Translator(
            param_defaults(dag), self.layouts, is_upstream=self.graph.is_upstream, clock=run_clock(dag)
        )
        self.translator.dag_id = dag.dag_id
        self._names: set[str] = {DEFAULTS_STATE, PARAMS_STATE}
        self.ctx = ConvertContext(dag, self.translator, self.warnings)
        self.plans: dict[str, TaskPlan] = {}
        self.inspected: set[str] = set()  # tasks whose outcome some state reads
        self.skip_marks: dict[tuple[str, str], dict[str, str]] = {}  # (branch, taken target) -> {task: outcome}
        # (branch, its outcome when it did not choose) -> {task in its sub-graphs: outcome}
        self.unchosen_marks: dict[tuple[str, str], dict[str, str]] = {}
        self._exit_outcomes: dict[int, str] = {}  # id(port) -> the task outcome that exit stands for
        self._chain_memo: dict[tuple[str, str], bool] = {}
        self._converters: dict[Any, Any] = {}  # operator class (or its import paths) -> converter
        self._cuts: set[str] = set()  # tasks after which only their own outcome matters (TaskGraph.cut_points)
        self._after: dict[str, Later | None] = {}
        self._name_counters: dict[str, int] = {}
        self._entries: dict[str, str] = {}
        self._run_failed_name: str | None = None
        self._fail_states: set[str] = set()  # tasks whose fragment holds Fail states of its own

    # -- entry point --------------------------------------------------------
    def compile(self) -> ExportResult:
        dag = self.dag
        if not self.tasks:
            raise ExportError(dag.dag_id, [Problem(None, "the DAG has no tasks")])
        self._check_keys()
        # Converters run in dependency order so references see upstream layouts.
        for tid in self.graph.order:
            self._convert(self.tasks[tid])
        if self.problems:
            raise ExportError(dag.dag_id, self.problems)
        self.graph.branch_targets = {tid: sorted(f.branches) for tid, f in self.fragments.items() if f.branches}
        try:
            tree = self.graph.tree()
            self._cuts = self.graph.cut_points(tree)
            chunks = [tasks_in(item) for item in tree.items]
            for i, item in enumerate(tree.items):
                if isinstance(item, Step):  # a cut's later tasks, known before it is planned (proofs stop there)
                    self._after[item.task_id] = Later(chunks, i + 1, None)
            self._analyse(tree, None, in_parallel=False)
        except StructureProblem as err:
            raise ExportError(dag.dag_id, [Problem(err.task_id, err.reason, err.fix)]) from None
        if self.problems:
            raise ExportError(dag.dag_id, self.problems)
        failing_leaves = [leaf for leaf in self.graph.leaves if self.plans[leaf].possible & FAILING]
        for leaf in failing_leaves:
            self.inspected.add(leaf)

        machine = asl.StateMachine(comment=f"Exported from Airflow DAG {dag.dag_id!r}")
        if dag.dagrun_timeout is not None:
            machine.timeout_seconds = max(1, int(dag.dagrun_timeout.total_seconds()))
        machine.add(*self._param_states())
        if self.translator.run_time_fields:  # some task reads ds/ts/logical_date/run_id...: compute them once
            clock_states = run_time_states(self.translator.run_time_fields, self._unique_name)
            machine.states[-1].next = clock_states[0].name
            machine.add(*clock_states)
        body: list[asl.State] = []
        top_done = self._unique_name(DONE)  # the run's own end keeps the plain name when no task has it
        entry, exits = self._emit(tree, body)
        machine.states[-1].next = entry
        machine.add(*body)
        if failing_leaves:
            done = asl.Succeed(top_done)
            check = asl.Choice(
                self._unique_name(RUN_STATE),
                choices=[
                    self._with_next(
                        self._any_of([self._is_in(leaf, FAILING) for leaf in failing_leaves]), self.run_failed
                    )
                ],
                default=done.name,
                comment="Airflow: the run failed if a leaf task failed or is upstream_failed",
            )
            self._link(exits, check.name)
            machine.add(check, done)
        else:
            self._finish(exits, machine.states, top_done)
        if self._run_failed_name is not None:
            machine.add(*self._run_failed_states())
        defaults_state = machine.states[0]
        run_slots = concurrency.run_slot_limit(dag)
        if run_slots is not None:
            concurrency.add_guard(machine, dag, run_slots, {s.name for s in asl.walk(machine.states)})
        self.warnings.extend(check_quotas(machine, dag, len(self.tasks)))
        return ExportResult(
            dag.dag_id,
            machine,
            self.warnings,
            _integrations(machine),
            dict(self._entries),
            defaults_state=defaults_state,
            origins={expr: list(refs) for expr, refs in self.translator.origins.items()},
        )

    # -- conversion ---------------------------------------------------------
    def _check_keys(self) -> None:
        for name, default in param_defaults(self.dag).items():
            for where in path_keys(default, name):
                self.problems.append(
                    Problem(
                        None,
                        f"param default {where!r}: a key ending in '.$' would be read by Step Functions as a path "
                        "or intrinsic function, not as the value written",
                        "rename the key",
                    )
                )
        seen: dict[str, str] = {}
        keys = {result_key(tid) for tid in self.tasks}
        for tid in self.tasks:
            key = result_key(tid)
            if key in RESERVED_KEYS:
                self.problems.append(
                    Problem(
                        tid, f"task id {tid!r} collides with the reserved state-data key {key!r}", "rename the task"
                    )
                )
            elif key.startswith(OUTCOME_PREFIX) and key[len(OUTCOME_PREFIX) :] in keys:
                self.problems.append(
                    Problem(
                        tid,
                        f"task id {tid!r} collides with the state-data key of the outcome of "
                        f"{key[len(OUTCOME_PREFIX) :]!r}",
                        "rename the task",
                    )
                )
            elif key in seen:
                self.problems.append(
                    Problem(
                        tid,
                        f"task ids {seen[key]!r} and {tid!r} map to the same state-data key {key!r}",
                        "rename one of them",
                    )
                )
            seen[key] = tid
        for name in self.dag.params:
            if not name.replace("_", "a").isalnum():
                self.problems.append(
                    Problem(None, f"param name {name!r} is not usable in JSONPath", "use letters, digits and _")
                )

    def _convert(self, task: Any) -> None:
        tid = task.task_id
        rule = trigger_rules.rule_name(task)
        converter = self._converter_for(task)
        if converter is None:
            self.problems.append(
                Problem(tid, f"{type(task).__name__} has no Step Functions converter", _advice_for(task))
            )
            return
        mapped = isinstance(task, MappedTask)
        if not mapped and (getattr(task, "is_mapped", False) or type(task).__name__ == "MappedOperator"):
            self.problems.append(
                Problem(
                    tid,
                    "a mapped task (expand) is exported from Airflow's serialized DAG only",
                    "export with exporters.api / python -m exporters (they read the DAG as Airflow stores it)",
                )
            )
            return
        if rule not in trigger_rules.RULES:
            self.problems.append(
                Problem(
                    tid,
                    f"trigger_rule {rule!r} has no Step Functions equivalent",
                    f"use one of {', '.join(sorted(trigger_rules.RULES))}",
                )
            )
            return
        self.translator.reader = tid
        try:
            if mapped:
                fragment = convert_mapped(task, converter, self.ctx, {result_key(t) for t in self.tasks} | {"params"})
            else:
                fragment = converter(task, self.ctx)
        except Unsupported as err:
            self.problems.append(Problem(tid, err.reason, err.fix))
            return
        finally:
            self.translator.reader = None
        names = [s.name for s in asl.walk(fragment.states)]
        duplicates = sorted(n for n in names if n in self._names)
        if duplicates:
            self.problems.append(
                Problem(tid, f"state name(s) {duplicates} already used by another task", "rename the task")
            )
            return
        self._names.update(names)
        self.fragments[tid] = self._with_failures(tid, fragment)
        if fragment.layout is not None:
            # With multiple_outputs, each top-level field of the result is also an XCom of its own (XComArgs).
            fragment.layout.multiple_outputs = bool(getattr(task, "multiple_outputs", False))
            self.layouts[tid] = fragment.layout

    def _converter_for(self, task: Any):
        """``converter_for``, looked up once per operator class in an export (it scans the whole registry)."""
        paths = getattr(task, "operator_class_paths", None)
        key = tuple(paths) if paths is not None else type(task)
        if key not in self._converters:
            self._converters[key] = converter_for(task)
        return self._converters[key]

    def _with_failures(self, tid: str, fragment: Fragment) -> Fragment:
        """A fragment that does not say where it fails: its Task/Parallel states do, and its Fail states.

        Fail states cannot be caught: when such a task's failure must be recorded, the emitter makes
        the fragment one attempt (a single-branch Parallel whose failure is the task's failure).
        """
        if fragment.failures or fragment.always_fails or fragment.branches:
            return fragment
        fragment.failures = [Failure(state=s) for s in fragment.states if isinstance(s, (asl.Task, asl.Parallel))]
        if any(isinstance(s, asl.Fail) for s in fragment.states):
            self._fail_states.add(tid)
            fragment.failures.append(Failure(error="States.Fail"))  # marks the task as able to fail
        return fragment

    def _as_attempt(self, tid: str, fragment: Fragment) -> Fragment:
        inner = list(fragment.states)
        self._finish(list(fragment.exits), inner)
        attempt = asl.Parallel(
            self._unique_name(state_name(tid, "attempt")),
            branches=[asl.StateMachine(states=inner, start_at=fragment.entry)],
            result_selector={"merged.$": "$[0]"},
            result_path="$",
            output_path="$.merged",
            comment=f"One attempt of {tid!r}: a Fail state inside ends the attempt as the task's failure",
        )
        return Fragment.single(attempt, fragment.layout)

    # -- analysis: what can happen where ------------------------------------
    def _analyse(self, node: Any, after: Later | None, in_parallel: bool) -> None:
        """Plan each task in control order; ``after`` = what runs later on the same path (lazily, O(1) to pass)."""
        if isinstance(node, Seq):
            chunks = [tasks_in(item) for item in node.items]
            for i, item in enumerate(node.items):
                self._analyse(item, Later(chunks, i + 1, after), in_parallel)
        elif isinstance(node, Par):
            for branch in node.branches:
                self._analyse(branch, None, True)
        elif isinstance(node, Step):
            self._plan(node.task_id, after, in_parallel)
        else:
            self._analyse_branch(node, after, in_parallel)

    def _analyse_branch(self, node: Branch, after: Later | None, in_parallel: bool) -> None:
        region_tasks = [t for region in node.regions.values() for t in tasks_in(region)]
        self._plan(node.task_id, Later([region_tasks], 0, after), in_parallel)
        plan = self.plans[node.task_id]
        # A sub-graph runs only when the branch task chose it, i.e. succeeded: plan it so.
        possible, plan.possible = plan.possible, frozenset({SUCCESS})
        for region in node.regions.values():
            self._analyse(region, after, in_parallel)
        plan.possible = possible
        # When it did not choose (failed, skipped, upstream_failed), Airflow decides every target by its trigger rule.
        for outcome in sorted(possible - {SUCCESS}):
            forced, _ = self._forced({node.task_id: frozenset({outcome})}, region_tasks)
            if forced is None:
                raise StructureProblem(
                    node.task_id,
                    f"when it ends {outcome}, Airflow runs tasks after its targets (a target's sub-graph has a "
                    "trigger rule that fires then), but a branch's sub-graphs run only when it chooses them",
                    "handle the branch task's failure after the join (e.g. a one_failed task downstream of it), "
                    "or give the targets' sub-graphs trigger rules that fail or skip with it (e.g. all_success)",
                )
            for tid, outcomes in forced.items():
                self.plans[tid].possible |= outcomes
            self.unchosen_marks[(node.task_id, outcome)] = {
                tid: next(iter(outcomes)) if len(outcomes) == 1 else "" for tid, outcomes in forced.items()
            }
        # Airflow skips the targets not chosen; their sub-graphs must then stay unrun, as nothing runs them here.
        for taken in node.regions:
            marks: dict[str, str] = {}
            for target, region in node.regions.items():
                if target == taken or not region.items:
                    continue
                forced, _ = self._forced({target: frozenset({SKIPPED})}, tasks_in(region)[1:])
                if forced is None:
                    raise StructureProblem(
                        target,
                        f"runs in Airflow even when {node.task_id!r} does not choose it (its sub-graph has tasks whose "
                        "trigger rule fires on a skip)",
                        "give the tasks after a branch target trigger rules that skip with it (e.g. all_success)",
                    )
                for tid, outcomes in forced.items():
                    self.plans[tid].possible |= outcomes
                    marks[tid] = next(iter(outcomes)) if len(outcomes) == 1 else ""
            self.skip_marks[(node.task_id, taken)] = marks

    def _plan(self, tid: str, after: Later | None, in_parallel: bool) -> None:
        task = self.tasks[tid]
        fragment = self.fragments[tid]
        self._after[tid] = after
        upstream = [(u, self.plans[u].possible) for u in sorted(self.graph.upstream[tid])]
        gate = trigger_rules.gate(
            trigger_rules.rule_name(task), upstream, self._is_in_noted, self._any_of, self._all_of
        )
        decisions = {d for _, d in gate.branches} | {gate.default}
        runs = RUN in decisions
        can_fail = runs and bool(fragment.failures)
        caught = can_fail and (in_parallel or not self._certain_failure(tid, FAILED))
        possible = {d for d in decisions if d != RUN}
        if runs and not fragment.always_fails:
            possible.add(SUCCESS)
        if runs and fragment.skips:
            possible.add(SKIPPED)
        if caught:
            possible.add(FAILED)
        aborts = set()
        if not in_parallel:
            aborts = {d for d in decisions - {RUN} if self._certain_failure(tid, d)}
        if possible - aborts:
            possible -= aborts  # an outcome that ends the run at once is never seen by a later state
        self.plans[tid] = TaskPlan(gate, frozenset(possible), caught, aborts, in_parallel)

    def _certain_failure(self, tid: str, outcome: str) -> bool:
        """Whether, once ``tid`` ends in ``outcome``, Airflow runs nothing else on this path and the run fails.

        Walked iteratively and memoised: along a plain chain the answer is the next task's; elsewhere
        the later tasks are simulated up to the next cut point (a task later tasks depend on alone),
        whose answer is then the answer. Each task is simulated from a bounded number of starts:
        linear in the DAG's size.
        """
        walked: list[tuple[str, str]] = []
        current, current_outcome = tid, outcome
        while True:
            key = (current, current_outcome)
            if key in self._chain_memo:
                answer = self._chain_memo[key]
                break
            walked.append(key)
            successor = self._chain_successor(current)
            if successor is None:
                found = self._simulated_failure(current, current_outcome)
                if isinstance(found, bool):
                    answer = found
                    break
                current, current_outcome = found
                continue
            decisions = trigger_rules.possible_decisions(
                trigger_rules.rule_name(self.tasks[successor]), [frozenset({current_outcome})]
            )
            if RUN in decisions or len(decisions) != 1:
                answer = False
                break
            current, current_outcome = successor, decisions.pop()
        for key in walked:
            self._chain_memo[key] = answer
        return answer

    def _simulated_failure(self, tid: str, outcome: str) -> bool | tuple[str, str]:
        """The answer for ``tid``, or the cut point reached and its forced outcome (whose answer it is)."""
        forced, cut = self._forced({tid: frozenset({outcome})}, self._after.get(tid) or (), stop_at=self._cuts)
        if forced is None:
            return False
        if cut is not None:
            return cut, next(iter(forced[cut]))
        forced[tid] = frozenset({outcome})
        leaves = self.graph.leaf_set
        return any(t in leaves and outcomes <= FAILING for t, outcomes in forced.items())

    def _chain_successor(self, tid: str) -> str | None:
        """The next task when ``tid`` and it form a plain link of a chain (its only upstream is ``tid``)."""
        after = self._after.get(tid)
        following = after.first() if after is not None else None
        if following is None or self.graph.downstream[tid] != {following} or self.graph.upstream[following] != {tid}:
            return None
        if following not in self._after:
            # Not planned yet: its own "later" is this one's minus itself.
            self._after[following] = after.without_first()
        return following

    def _forced(
        self, start: dict[str, frozenset[str]], later: Any, stop_at: set[str] | frozenset[str] = frozenset()
    ) -> tuple[dict[str, frozenset[str]] | None, str | None]:
        """Outcomes of ``later`` tasks (in control order) given ``start``, if none can run (None when one might).

        Stops after the first task of ``stop_at`` forced to a single outcome, returning it as well.
        """
        known = dict(start)
        out: dict[str, frozenset[str]] = {}
        for n, tid in enumerate(later):
            if n >= SIMULATION_LIMIT:
                return None, None  # not known cheaply: "might run" (the failure is then caught: still faithful)
            ups = self.graph.upstream[tid]
            if not ups & known.keys():
                return None, None  # not affected: it may well run
            sets = [known.get(u) or self._possible_or_any(u) for u in sorted(ups)]
            decisions = trigger_rules.possible_decisions(trigger_rules.rule_name(self.tasks[tid]), sets)
            if RUN in decisions:
                return None, None
            known[tid] = out[tid] = frozenset(decisions)
            if tid in stop_at and len(decisions) == 1:
                return out, tid
        return out, None

    def _possible_or_any(self, tid: str) -> frozenset[str]:
        plan = self.plans.get(tid)
        return plan.possible if plan is not None else ALL_OUTCOMES

    # -- predicates over recorded outcomes ------------------------------------
    def _is_in_noted(self, tid: str, outcomes: frozenset[str]) -> asl.ChoiceRule:
        self.inspected.add(tid)
        return self._is_in(tid, outcomes & self.plans[tid].possible or outcomes)

    def _is_in(self, tid: str, outcomes: frozenset[str]) -> asl.ChoiceRule:
        """ "``tid`` ended in one of ``outcomes``", using only what can happen to it."""
        possible = self.plans[tid].possible
        wanted = outcomes & possible
        unwanted = possible - outcomes
        path = outcome_path(tid)
        if len(unwanted) < len(wanted):
            negated = self._one_of(path, unwanted)
            if negated.not_ is not None and negated.next is None:
                return negated.not_  # not (not x) is x
            return asl.ChoiceRule(not_=negated)
        return self._one_of(path, wanted)

    @staticmethod
    def _one_of(path: str, outcomes: frozenset[str] | set[str]) -> asl.ChoiceRule:
        parts = []
        for outcome in sorted(outcomes):
            if outcome == SUCCESS:
                parts.append(asl.ChoiceRule(not_=asl.ChoiceRule(variable=path, operator="IsPresent", value=True)))
            elif outcome == FAILED:
                parts.append(asl.ChoiceRule(variable=f"{path}.Error", operator="IsPresent", value=True))
            else:
                parts.append(
                    asl.ChoiceRule(
                        and_=[
                            asl.ChoiceRule(variable=path, operator="IsPresent", value=True),
                            asl.ChoiceRule(variable=path, operator="StringEquals", value=outcome),
                        ]
                    )
                )
        if not parts:
            return asl.ChoiceRule(variable="$", operator="IsPresent", value=False)
        return parts[0] if len(parts) == 1 else asl.ChoiceRule(or_=parts)

    @staticmethod
    def _any_of(parts: list[asl.ChoiceRule]) -> asl.ChoiceRule:
        return parts[0] if len(parts) == 1 else asl.ChoiceRule(or_=parts)

    @staticmethod
    def _all_of(parts: list[asl.ChoiceRule]) -> asl.ChoiceRule:
        return parts[0] if len(parts) == 1 else asl.ChoiceRule(and_=parts)

    @staticmethod
    def _with_next(rule: asl.ChoiceRule, next_name: str) -> asl.ChoiceRule:
        rule.next = next_name
        return rule

    @property
    def run_failed(self) -> str:
        """The name of the state that ends a failed run (reserved on first use: a task may be called "Run failed")."""
        if self._run_failed_name is None:
            self._run_failed_name = self._unique_name(RUN_FAILED)
        return self._run_failed_name

    # -- emission -------------------------------------------------------------
    def _emit(self, node: Any, out: list[asl.State]) -> tuple[str | None, list[Port]]:
        """States for ``node`` appended to ``out``; returns the entry (None: nothing to do) and open exits."""
        if isinstance(node, Seq):
            entry: str | None = None
            pending: list[Port] = []
            for item in node.items:
                item_entry, exits = self._emit(item, out)
                if item_entry is None:
                    continue
                self._link(pending, item_entry)
                entry = entry or item_entry
                pending = exits
            return entry, pending
        if isinstance(node, Par):
            return self._emit_parallel(node, out)
        if isinstance(node, Step):
            return self._emit_task(node.task_id, out)
        return self._emit_branch(node, out)

    def _emit_parallel(self, node: Par, out: list[asl.State]) -> tuple[str, list[Port]]:
        branches = []
        starts = []
        for branch in node.branches:
            sub: list[asl.State] = []
            entry, exits = self._emit(branch, sub)
            first = tasks_in(branch)[0]
            starts.append(first)
            if entry is None:  # nothing runs in this branch: record why, so the branch is not empty
                entry, exits = self._mark_state(first, self._static_decision(first), sub)
            self._finish(exits, sub)
            branches.append(asl.StateMachine(states=sub, start_at=entry))
        merged = "$[0]"
        for i in range(1, len(branches)):
            merged = f"States.JsonMerge({merged}, $[{i}], false)"
        parallel = asl.Parallel(
            self._unique_name(state_name("Parallel: " + ", ".join(starts))),
            branches=branches,
            # Each branch returns the whole state data plus its own results and outcomes; merge them.
            result_selector={"merged.$": merged},
            result_path="$",
            output_path="$.merged",
            comment=f"Runs {', '.join(starts)} side by side, as Airflow does",
        )
        out.append(parallel)
        return parallel.name, [Port(parallel)]

    def _static_decision(self, tid: str) -> str:
        plan = self.plans[tid]
        return plan.gate.default if not plan.gate.branches else SKIPPED

    def _emit_task(self, tid: str, out: list[asl.State]) -> tuple[str | None, list[Port]]:
        plan = self.plans[tid]
        gate = plan.gate
        if not gate.branches and gate.default != RUN:
            # Known at export time not to run: only its mark (when read), or the run's end.
            if tid in self.inspected or gate.default in plan.aborts:
                entry, exits = self._not_run(tid, gate.default, out, None)
                return entry, self._labelled(exits, gate.default)
            return None, []
        choice = None
        if gate.branches:
            rule = trigger_rules.rule_name(self.tasks[tid])
            choice = asl.Choice(
                self._unique_name(state_name(tid, f"{rule}?")),
                comment=f"Airflow's trigger rule {rule!r} over the upstream outcomes",
            )
            out.append(choice)
        run_entry, exits = self._emit_body(tid, self.fragments[tid], out)
        self._entries[tid] = run_entry
        if choice is None:
            return run_entry, exits
        for predicate, decision in gate.branches:
            choice.choices.append(predicate)
            exits.extend(self._decide(tid, decision, out, Port(predicate), run_entry))
        exits.extend(self._decide(tid, gate.default, out, Port(choice, "default"), run_entry))
        return choice.name, exits

    def _decide(self, tid: str, decision: str, out: list[asl.State], port: Port, run_entry: str) -> list[Port]:
        """Link one gate outcome; returns the ports still open (to whatever follows the task)."""
        if decision == RUN:
            port.link(run_entry)
            return []
        entry, exits = self._not_run(tid, decision, out, port)
        if entry is not None:
            port.link(entry)
        return self._labelled(exits, decision)

    def _labelled(self, ports: list[Port], outcome: str) -> list[Port]:
        """``ports`` noted as the exits where the task ended in ``outcome`` (a branch's unchosen paths need it)."""
        for port in ports:
            self._exit_outcomes[id(port)] = outcome
        return ports

    def _not_run(self, tid: str, decision: str, out: list[asl.State], port: Port | None):
        """Where a gate decision not to run leads: the run's end (if it can only fail), a mark, or straight on."""
        plan = self.plans[tid]
        if decision in plan.aborts:
            return self.run_failed, []
        if tid in self.inspected:
            return self._mark_state(tid, decision, out)
        if port is None:
            return None, []
        return None, [port]

    def _mark_state(self, tid: str, decision: str, out: list[asl.State]) -> tuple[str, list[Port]]:
        mark = asl.Pass(
            self._unique_name(state_name(tid, decision)),
            result=decision,
            result_path=outcome_path(tid),
            comment=f"Airflow marks {tid!r} {decision}",
        )
        out.append(mark)
        return mark.name, [Port(mark)]

    def _emit_body(self, tid: str, fragment: Fragment, out: list[asl.State]) -> tuple[str, list[Port]]:
        """The task's own states, its failures caught and recorded or left to end the run."""
        plan = self.plans[tid]
        if fragment.skips:
            fragment = self._with_skip_mark(tid, fragment)
        exits = list(fragment.exits)
        if fragment.always_fails:
            failure = fragment.failures[0]
            if plan.caught:
                state = asl.Pass(
                    state_name(tid),
                    result={"Error": failure.error, "Cause": failure.cause},
                    result_path=outcome_path(tid),
                    comment=f"{failure.error}: recorded as the task's failure",
                )
                out.append(state)
                return state.name, self._labelled([Port(state)], FAILED)
            fail = asl.Fail(state_name(tid), error=failure.error, cause=failure.cause)
            out.append(fail)
            return fail.name, []
        if tid in self._fail_states:
            if not plan.caught:
                out.extend(fragment.states)  # its Fail states end the run, as the task's failure would
                return fragment.entry, exits
            fragment = self._as_attempt(tid, fragment)
            exits = list(fragment.exits)
        out.extend(fragment.states)
        for failure in fragment.failures:
            if failure.state is not None:
                if plan.caught:
                    catch = asl.Catch(["States.ALL"], "", result_path=outcome_path(tid))
                    failure.state.catch.append(catch)
                    exits.extend(self._labelled([Port(catch)], FAILED))
                continue
            if plan.caught:
                record = asl.Pass(
                    self._unique_name(state_name(tid, f"failed: {failure.error}")),
                    result={"Error": failure.error, "Cause": failure.cause},
                    result_path=outcome_path(tid),
                )
                out.append(record)
                exits.extend(self._labelled([Port(record)], FAILED))
            else:
                record = asl.Fail(
                    self._unique_name(state_name(tid, f"failed: {failure.error}")),
                    error=failure.error,
                    cause=failure.cause,
                )
                out.append(record)
            for port in failure.ports:
                port.link(record.name)
        return fragment.entry, exits

    def _with_skip_mark(self, tid: str, fragment: Fragment) -> Fragment:
        """The fragment with its skip ports leading to a mark of the task as skipped, then on like a success."""
        mark = asl.Pass(
            self._unique_name(state_name(tid, SKIPPED)),
            result=SKIPPED,
            result_path=outcome_path(tid),
            comment=f"{tid!r} ends skipped (AirflowSkipException)",
        )
        self._link(fragment.skips, mark.name)
        return replace(fragment, states=[*fragment.states, mark], exits=[*fragment.exits, Port(mark)], skips=[])

    def _emit_branch(self, node: Branch, out: list[asl.State]) -> tuple[str | None, list[Port]]:
        tid = node.task_id
        fragment = self.fragments[tid]
        entry, exits = self._emit_task(tid, out)
        exits = self._mark_unchosen(tid, exits, out)
        if SUCCESS not in self.plans[tid].possible:
            return entry, exits  # it never chooses: no sub-graph runs
        for target, region in node.regions.items():
            port = fragment.branches[target]
            chain: list[Port] = [port]
            for marked, outcome in sorted(self.skip_marks[(tid, target)].items()):
                if marked not in self.inspected:
                    continue
                if not outcome:
                    raise StructureProblem(marked, "its outcome after a branch not taken is not known at export")
                mark = asl.Pass(
                    self._unique_name(state_name(marked, f"{outcome} (via {target})")),
                    result=outcome,
                    result_path=outcome_path(marked),
                )
                out.append(mark)
                self._link(chain, mark.name)
                chain = [Port(mark)]
            region_entry, region_exits = self._emit(region, out)
            if region_entry is None:
                exits.extend(chain)
            else:
                self._link(chain, region_entry)
                exits.extend(region_exits)
        return entry, exits

    def _mark_unchosen(self, tid: str, exits: list[Port], out: list[asl.State]) -> list[Port]:
        """The branch task's exits without a choice, through the marks of its sub-graphs' tasks (those read later)."""
        passing: list[Port] = []
        by_marks: dict[tuple[tuple[str, str], ...], list[Port]] = {}
        for port in exits:
            outcome = self._exit_outcomes.get(id(port), "")
            marks = self.unchosen_marks.get((tid, outcome), {})
            read = tuple(sorted((marked, mark) for marked, mark in marks.items() if marked in self.inspected))
            for marked, mark in read:
                if not mark:
                    raise StructureProblem(marked, f"its outcome when {tid!r} ends {outcome} is not known at export")
            if read:
                by_marks.setdefault(read, []).append(port)
            else:
                passing.append(port)
        for read, chain in sorted(by_marks.items()):
            for marked, mark in read:
                state = asl.Pass(
                    self._unique_name(state_name(marked, f"{mark} ({tid} chose none)")),
                    result=mark,
                    result_path=outcome_path(marked),
                    comment=f"{tid!r} did not choose: Airflow marks {marked!r} {mark}",
                )
                out.append(state)
                self._link(chain, state.name)
                chain = [Port(state)]
            passing.extend(chain)
        return passing

    # -- params and the run's end ---------------------------------------------
    def _param_states(self) -> list[asl.State]:
        defaults = asl.Pass(
            DEFAULTS_STATE,
            parameters={"param_defaults": param_defaults(self.dag)},
            comment="The DAG's param defaults",
        )
        merge = asl.Pass(
            PARAMS_STATE,
            parameters={"params.$": "States.JsonMerge($.param_defaults, $$.Execution.Input, false)"},
            comment="Execution input overrides the defaults, as a trigger's conf overrides Airflow params",
        )
        defaults.next = merge.name
        return [defaults, merge]

    def _run_failed_states(self) -> list[asl.State]:
        """The run failed: a Fail naming the first failed task (in dependency order) and its error."""
        candidates = [tid for tid in self.graph.order if FAILED in self.plans[tid].possible]
        fallback = asl.Fail(
            self._unique_name(state_name("Run failed: upstream")),
            error="UpstreamTaskFailed",
            cause="a task the run depends on failed",
        )
        fails = []
        rules = []
        for tid in candidates:
            fail = asl.Fail(
                self._unique_name(state_name(tid, "run failed")),
                error_path=f"{outcome_path(tid)}.Error",
                cause_path=f"{outcome_path(tid)}.Cause",
            )
            fails.append(fail)
            rules.append(asl.ChoiceRule(variable=f"{outcome_path(tid)}.Error", operator="IsPresent", value=True))
            rules[-1].next = fail.name
        if not rules:
            fallback.name = self.run_failed
            return [fallback]
        choice = asl.Choice(
            self.run_failed,
            choices=rules,
            default=fallback.name,
            comment="Name the first task that failed, and its error",
        )
        return [choice, *fails, fallback]

    def _link(self, ports: list[Port], name: str) -> None:
        for port in ports:
            port.link(name)

    def _finish(self, exits: list[Port], states: list[asl.State], done_name: str | None = None) -> None:
        """Open exits end the workflow (or branch): a chaining state gets End, a choice rule a Succeed state."""
        needs_succeed = [p for p in exits if not isinstance(p.target, asl.State) or not p.target.chains]
        for port in exits:
            if port not in needs_succeed:
                port.link(None)
        if needs_succeed:
            done = asl.Succeed(done_name or self._unique_name(DONE))
            states.append(done)
            for port in needs_succeed:
                port.link(done.name)

    def _unique_name(self, base: str) -> str:
        """A state name no other state uses (names are unique across the whole machine, branches included)."""
        name, n = base, self._name_counters.get(base, 1)
        if n > 1:
            name = state_name(f"{base} {n}")
        while name in self._names:
            n += 1
            name = state_name(f"{base} {n}")
        self._name_counters[base] = n  # the next call for this base starts here: linear, not quadratic
        self._names.add(name)
        return name


class Later:
    """The tasks after a point of the control flow: the rest of a sequence, then what follows it (lazy)."""

    __slots__ = ("chunks", "start", "parent")

    def __init__(self, chunks: list[list[str]], start: int, parent: Later | None):
        self.chunks, self.start, self.parent = chunks, start, parent

    def __iter__(self):
        for i in range(self.start, len(self.chunks)):  # no slice: a copy per call would make chains quadratic
            yield from self.chunks[i]
        if self.parent is not None:
            yield from self.parent

    def first(self) -> str | None:
        return next(iter(self), None)

    def without_first(self) -> Later | None:
        """What follows the first task, when the first chunk is that single task (a chain link)."""
        for i in range(self.start, len(self.chunks)):
            if self.chunks[i]:
                if len(self.chunks[i]) == 1:
                    return Later(self.chunks, i + 1, self.parent)
                return Later([self.chunks[i][1:], *self.chunks[i + 1 :]], 0, self.parent)
        return self.parent.without_first() if self.parent is not None else None


def _integrations(machine: asl.StateMachine) -> list[str]:
    return sorted({s.resource for s in asl.walk(machine.states) if isinstance(s, asl.Task)})


def _advice_for(task: Any) -> str:
    kind = type(task).__name__
    if "Python" in kind or kind == "DecoratedOperator":
        return (
            "arbitrary Python cannot run in Step Functions: move the logic into a Lambda function "
            "and invoke it with a Lambda operator that has a converter (e.g. LambdaInvokeFunctionOperator)"
        )
    if "Sensor" in kind:
        return "register a converter for this sensor (exporters.converters.register) or use a Wait/poll pattern"
    if "Bash" in kind:
        return "shell commands cannot run in Step Functions: use a Glue job, a Lambda function or an ECS task"
    return "use an operator that has a converter, or register one with exporters.converters.register"


def compile_dag(dag: Any) -> ExportResult:
    with _collector_skips_what_exists():
        return Compiler(dag).compile()


@contextmanager
def _collector_skips_what_exists() -> Iterator[None]:
    """The objects alive when the compile starts (the DAG above all) are left out of garbage collections meanwhile.

    The compile allocates states that live until it ends; each full collection they trigger would
    walk the whole DAG again, which made the compile of a 5,000-task DAG 8x (not 5x) that of 1,000
    tasks. ``gc.freeze`` only defers collecting those objects (unlike ``gc.disable``, new garbage is
    still collected), and they are handed back at the end. A process that froze objects itself
    (the view's build processes) keeps its own arrangement.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
