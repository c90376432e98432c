"""Walk an Airflow DAG (never running it) and build the equivalent Step Functions state machine.

Layout of the state data: ``$.params`` holds the run's params (execution input
merged over the DAG's param defaults by the first two states), and each task's
result sits under its own key (``$.<task_id>``), like an XCom per task.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any

from exporters import asl
from exporters.converters import (
    ConvertContext,
    Fragment,
    Port,
    Unsupported,
    converter_for,
    result_key,
    state_name,
)
from exporters.errors import ExportError, Problem
from exporters.translate import ResultLayout, Translator, path_keys

JOIN_AFTER_BRANCH_RULES = {"none_failed_min_one_success", "none_failed", "one_success"}
FAILURE_HANDLER_RULES = {"one_failed", "all_failed"}
RESERVED_KEYS = {"params", "param_defaults", "error"}
DEFAULTS_STATE = "Param defaults"
PARAMS_STATE = "Apply params"


@dataclass
class ExportResult:
    dag_id: str
    machine: asl.StateMachine
    warnings: list[str] = field(default_factory=list)
    integrations: list[str] = field(default_factory=list)
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


class Compiler:
    def __init__(self, dag: Any):
        self.dag = dag
        self.tasks = {t.task_id: t for t in dag.tasks}
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        self.fragments: dict[str, Fragment] = {}
        self.layouts: dict[str, ResultLayout] = {}
        self.translator = Translator(param_defaults(dag), self.layouts, is_upstream=self._is_upstream)
        self._names: set[str] = {DEFAULTS_STATE, PARAMS_STATE}
        self._order: list[str] | None = None
        self._owner: dict[str, str] = {}
        self.ctx = ConvertContext(dag, self.translator, self.warnings)
        self._succeed: asl.Succeed | None = None

    # -- entry point --------------------------------------------------------
    def compile(self) -> ExportResult:
        dag = self.dag
        if not self.tasks:
            raise ExportError(dag.dag_id, [Problem(None, "the DAG has no tasks")])
        self._check_keys()
        handlers = {tid for tid, t in self.tasks.items() if t.trigger_rule in FAILURE_HANDLER_RULES}
        handler_region = self._downstream_closure(handlers)
        main = [tid for tid in self._topological_order() if tid not in handler_region]

        # Converters run in dependency order so references see upstream layouts.
        for tid in self._topological_order():
            self._convert(self.tasks[tid])
        converted_cleanly = not self.problems

        machine = asl.StateMachine(comment=f"Exported from Airflow DAG {dag.dag_id!r}")
        if dag.dagrun_timeout is not None:
            machine.timeout_seconds = max(1, int(dag.dagrun_timeout.total_seconds()))
        machine.add(*self._param_states())

        main_set = set(main)
        roots = [tid for tid in main if not (set(self.tasks[tid].upstream_task_ids) & main_set)]
        body: list[asl.State] = []
        if not self._series_parallel(main_set, roots):
            self.warnings.append(
                "the task graph is not series-parallel: exported as one sequence in dependency order "
                "(tasks that run side by side in Airflow run one after another)"
            )
            entry, exits = self._linear(main, body)
        else:
            entry, exits = self._region(roots, None, main_set, body)
        machine.states[-1].next = entry
        machine.add(*body)
        if not converted_cleanly:
            raise ExportError(dag.dag_id, self.problems)
        self._finish(exits, machine.states)

        for handler in sorted(handlers):
            self._attach_failure_handler(handler, handler_region, machine)
        if self.problems:
            raise ExportError(dag.dag_id, self.problems)

        self._dag_level_warnings()
        return ExportResult(
            dag.dag_id,
            machine,
            self.warnings,
            self._integrations(machine),
            defaults_state=machine.states[0],
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
        for tid in self.tasks:
            key = result_key(tid)
            if key in RESERVED_KEYS:
                self.problems.append(
                    Problem(
                        tid, f"task id {tid!r} collides with the reserved state-data key {key!r}", "rename the task"
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
        before = len(self.problems)
        self._convert_task(task)
        if len(self.problems) > before:
            # Stand-in so the structure can still be checked and its problems listed too.
            self.fragments[task.task_id] = Fragment.single(asl.Pass(state_name(task.task_id)))

    def _convert_task(self, task: Any) -> None:
        tid = task.task_id
        rule = str(getattr(task.trigger_rule, "value", task.trigger_rule))
        converter = converter_for(task)
        if converter is None:
            self.problems.append(
                Problem(tid, f"{type(task).__name__} has no Step Functions converter", _advice_for(task))
            )
            return
        if getattr(task, "is_mapped", False) or type(task).__name__ == "MappedOperator":
            self.problems.append(
                Problem(tid, "dynamically mapped tasks (expand) are not supported", "use a fixed set of tasks")
            )
            return
        allowed = {"all_success"} | JOIN_AFTER_BRANCH_RULES | FAILURE_HANDLER_RULES
        if rule not in allowed:
            self.problems.append(
                Problem(
                    tid,
                    f"trigger_rule {rule!r} has no Step Functions equivalent",
                    "use all_success, a join rule after a branch, or one_failed for a failure handler",
                )
            )
            return
        if rule == "all_failed" and len(task.upstream_task_ids) > 1:
            self.problems.append(
                Problem(
                    tid,
                    "trigger_rule 'all_failed' with several upstream tasks cannot be expressed",
                    "give the handler one upstream task or use one_failed",
                )
            )
            return
        self.translator.reader = tid
        try:
            fragment = converter(task, self.ctx)
        except Unsupported as err:
            self.problems.append(Problem(tid, err.reason, err.fix))
            return
        finally:
            self.translator.reader = None
        duplicates = sorted(s.name for s in _all_states(fragment.states) if s.name in self._names)
        if duplicates:
            self.problems.append(
                Problem(tid, f"state name(s) {duplicates} already used by another task", "rename the task")
            )
            return
        self._names.update(s.name for s in _all_states(fragment.states))
        for state in fragment.states:
            self._owner[state.name] = tid
        self.fragments[tid] = fragment
        if fragment.layout is not None:
            self.layouts[tid] = fragment.layout

    # -- params -------------------------------------------------------------
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

    # -- structure ----------------------------------------------------------
    def _topological_order(self) -> list[str]:
        if self._order is None:
            self._order = self._compute_topological_order()
        return self._order

    def _compute_topological_order(self) -> list[str]:
        order = [t.task_id for t in self.dag.topological_sort()] if hasattr(self.dag, "topological_sort") else None
        if order:
            return order
        indegree = {tid: len(t.upstream_task_ids) for tid, t in self.tasks.items()}
        ready = sorted(tid for tid, d in indegree.items() if d == 0)
        out = []
        while ready:
            tid = ready.pop(0)
            out.append(tid)
            for nxt in sorted(self.tasks[tid].downstream_task_ids):
                indegree[nxt] -= 1
                if indegree[nxt] == 0:
                    ready.append(nxt)
        return out

    def _is_upstream(self, target: str, reader: str) -> bool:
        """Whether ``target`` runs before ``reader`` (walks up from the reader only as far as needed)."""
        from collections import deque

        # Breadth first: the task read is nearly always close above the reader.
        seen: set[str] = set()
        queue = deque(self.tasks[reader].upstream_task_ids if reader in self.tasks else ())
        while queue:
            tid = queue.popleft()
            if tid == target:
                return True
            if tid not in seen:
                seen.add(tid)
                queue.extend(self.tasks[tid].upstream_task_ids)
        return False

    def _downstream_closure(self, starts: set[str]) -> set[str]:
        seen: set[str] = set()
        stack = list(starts)
        while stack:
            tid = stack.pop()
            if tid in seen:
                continue
            seen.add(tid)
            stack.extend(self.tasks[tid].downstream_task_ids)
        return seen

    def _succ(self, tid: str, region: set[str]) -> list[str]:
        return sorted(t for t in self.tasks[tid].downstream_task_ids if t in region)

    def _pred(self, tid: str, region: set[str]) -> list[str]:
        return sorted(t for t in self.tasks[tid].upstream_task_ids if t in region)

    def _post_dominators(self, region: set[str]) -> None:
        """Immediate post-dominators in ``region`` (Cooper-Harvey-Kennedy on the reversed DAG, one pass)."""
        order = [t for t in self._topological_order() if t in region]
        self._rank = {t: i for i, t in enumerate(order)}
        self._rank[_END] = len(order)
        self._ipdom_raw = {_END: _END}
        for tid in reversed(order):
            succ = self._succ(tid, region)
            self._ipdom_raw[tid] = self._intersect(succ) if succ else _END
        self._ipdom = {t: (None if self._ipdom_raw[t] == _END else self._ipdom_raw[t]) for t in order}

    def _intersect(self, tasks: list[str]) -> str:
        """The nearest task every path from all of ``tasks`` reaches (``_END`` if none)."""
        current = tasks[0]
        for other in tasks[1:]:
            a, b = current, other
            while a != b:
                while self._rank[a] < self._rank[b]:
                    a = self._ipdom_raw[a]
                while self._rank[b] < self._rank[a]:
                    b = self._ipdom_raw[b]
            current = a
        return current

    def _series_parallel(self, region: set[str], roots: list[str]) -> bool:
        self._post_dominators(region)
        try:
            self._region(roots, None, region, [], dry_run=True)
        except _NotSeriesParallel:
            return False
        return True

    def _region(
        self, starts: list[str], stop: str | None, region: set[str], out: list[asl.State], dry_run: bool = False
    ) -> tuple[str, list[Port]]:
        """Compile tasks from ``starts`` up to (not including) ``stop``; return entry and open exits."""
        entry: str | None = None
        pending: list[Port] = []
        current: str | None = starts[0]
        if len(starts) > 1:  # several roots: side by side until they meet
            meet = self._intersect(starts)
            join = None if meet == _END else meet
            entry, pending = self._parallel(None, starts, join, region, out, dry_run)
            current = join
        while current is not None and current != stop:
            fragment = self.fragments[current]
            if not dry_run:
                out.extend(fragment.states)
                self._link(pending, fragment.entry)
            entry = entry or fragment.entry
            succ = self._succ(current, region)
            join = self._ipdom[current]

            if fragment.branches:
                targets = set(fragment.branches)
                if not targets <= set(succ) or set(succ) - targets:
                    raise _Structure(
                        current, f"the branch targets {sorted(targets)} must be exactly its downstream tasks {succ}"
                    )
                pending = []
                for target, port in sorted(fragment.branches.items()):
                    if target == join:
                        pending.append(port)
                        continue
                    self._check_closed(current, target, join, region)
                    sub_entry, sub_exits = self._region([target], join, region, out, dry_run)
                    if not dry_run:
                        port.link(sub_entry)
                    pending.extend(sub_exits)
                if join is not None and self.tasks[join].trigger_rule not in JOIN_AFTER_BRANCH_RULES:
                    raise _Structure(
                        join,
                        f"joins the branches of {current!r} with trigger_rule {self.tasks[join].trigger_rule!r}: "
                        "Airflow skips it whenever a branch is skipped",
                        "set trigger_rule='none_failed_min_one_success' on the join task",
                    )
                current = join
                continue

            pending = list(fragment.exits)
            if fragment.terminal and succ:
                raise _Structure(current, f"ends the run but has downstream tasks {succ}")
            if not succ:
                current = None
            elif len(succ) == 1:
                nxt = succ[0]
                if len(self._pred(nxt, region)) > 1 and nxt != stop:
                    raise _NotSeriesParallel()
                current = nxt
            else:
                _, pending = self._parallel(current, succ, join, region, out, dry_run, pending)
                current = join
        return entry or "", pending

    def _parallel(
        self,
        after: str | None,
        starts: list[str],
        join: str | None,
        region: set[str],
        out: list[asl.State],
        dry_run: bool,
        pending: list[Port] | None = None,
    ) -> tuple[str, list[Port]]:
        for s in starts:
            self._check_closed(after, s, join, region)
        if join is not None:
            rule = self.tasks[join].trigger_rule
            if rule != "all_success":
                raise _Structure(
                    join,
                    f"joins parallel tasks with trigger_rule {rule!r}",
                    "use all_success (the default) after a fan-out",
                )
        branches: list[asl.StateMachine] = []
        for start in starts:
            sub: list[asl.State] = []
            sub_entry, sub_exits = self._region([start], join, region, sub, dry_run)
            if not dry_run:
                self._finish(sub_exits, sub)
                branches.append(asl.StateMachine(states=sub, start_at=sub_entry))
        name = _parallel_name(starts)
        if not dry_run:
            name = self._unique_name(name)
        if dry_run:
            return name, []
        merged = "$[0]"
        for i in range(1, len(branches)):
            merged = f"States.JsonMerge({merged}, $[{i}], false)"
        parallel = asl.Parallel(
            name,
            branches=branches,
            # Each branch returns the whole state data plus its own results; merge them.
            result_selector={"merged.$": merged},
            result_path="$",
            output_path="$.merged",
            comment=f"Runs {', '.join(starts)} side by side, as Airflow does",
        )
        out.append(parallel)
        if pending:
            self._link(pending, parallel.name)
        return name, [Port(parallel)]

    def _check_closed(self, fork: str | None, start: str, join: str | None, region: set[str]) -> None:
        """Tasks between ``start`` and ``join`` may only depend on ``fork`` or each other."""
        inside: set[str] = set()
        stack = [start]
        while stack:
            tid = stack.pop()
            if tid in inside or tid == join:
                continue
            inside.add(tid)
            stack.extend(self._succ(tid, region))
        for tid in inside:
            for up in self._pred(tid, region):
                if up not in inside and up != fork:
                    raise _NotSeriesParallel()

    def _linear(self, order: list[str], out: list[asl.State]) -> tuple[str, list[Port]]:
        pending: list[Port] = []
        entry = None
        for tid in order:
            fragment = self.fragments[tid]
            if fragment.branches:
                self.problems.append(
                    Problem(
                        tid,
                        "a branch in a graph that is not series-parallel cannot be exported",
                        "make each branch a closed sub-graph that joins at one task",
                    )
                )
                return "", []
            out.extend(fragment.states)
            self._link(pending, fragment.entry)
            entry = entry or fragment.entry
            pending = list(fragment.exits)
        return entry or "", pending

    def _link(self, ports: list[Port], name: str) -> None:
        for port in ports:
            port.link(name)

    def _finish(self, exits: list[Port], states: list[asl.State]) -> None:
        """Open exits end the workflow (or branch): a chaining state gets End, a choice rule a Succeed state."""
        needs_succeed = [p for p in exits if not isinstance(p.target, asl.State) or not p.target.chains]
        for port in exits:
            if port not in needs_succeed:
                port.link(None)
        if needs_succeed:
            done = asl.Succeed(self._unique_name("Done"))
            states.append(done)
            for port in needs_succeed:
                port.link(done.name)

    def _unique_name(self, base: str) -> str:
        """A state name no other state uses (names are unique across the whole machine, branches included)."""
        name, n = base, 1
        while name in self._names:
            n += 1
            name = f"{base} {n}"
        self._names.add(name)
        return name

    # -- failure handlers (trigger_rule one_failed / all_failed) --------------
    def _attach_failure_handler(self, handler: str, handler_region: set[str], machine: asl.StateMachine) -> None:
        task = self.tasks[handler]
        watched = sorted(task.upstream_task_ids)
        for up in watched:
            if up in handler_region:
                self.problems.append(
                    Problem(
                        handler,
                        f"failure handler downstream of another handler ({up!r})",
                        "attach handlers to main-flow tasks only",
                    )
                )
                return
        # one_failed fires when a watched task fails *or* is upstream_failed: so a failure of any
        # watched task or of anything it depends on.
        covered = set(watched)
        for up in watched:
            covered |= set(self.tasks[up].get_flat_relative_ids(upstream=True))
        covered -= handler_region
        region = self._downstream_closure({handler})
        order = [t for t in self._topological_order() if t in region]
        sub: list[asl.State] = []
        entry, exits = self._linear(order, sub)
        fail = asl.Fail(
            self._unique_name(f"{handler}: run failed"), error="UpstreamTaskFailed", cause_path="$.error.Cause"
        )
        self._link(exits, fail.name)
        sub.append(fail)
        for state in list(machine.states):
            if not isinstance(state, (asl.Task, asl.Parallel)):
                continue
            owners = {self._owner[s.name] for s in _all_states([state]) if s.name in self._owner}
            if not owners or not owners & covered:
                continue
            if not owners <= covered:
                self.problems.append(
                    Problem(
                        handler,
                        "watches tasks that run in parallel with tasks it does not depend on "
                        f"({sorted(owners - covered)})",
                        "watch the task after the fan-in instead",
                    )
                )
                return
            state.catch.append(asl.Catch(["States.ALL"], entry, result_path="$.error"))
        machine.add(*sub)

    # -- reporting -----------------------------------------------------------
    def _dag_level_warnings(self) -> None:
        if getattr(self.dag, "max_active_runs", None) == 1:
            self.warnings.append(
                "max_active_runs=1 has no Step Functions setting: overlapping executions are possible; "
                "keep the schedule interval longer than a run"
            )

    @staticmethod
    def _integrations(machine: asl.StateMachine) -> list[str]:
        found: set[str] = set()

        def walk(states: list[asl.State]) -> None:
            for s in states:
                if isinstance(s, asl.Task):
                    found.add(s.resource)
                if isinstance(s, asl.Parallel):
                    for b in s.branches:
                        walk(b.states)

        walk(machine.states)
        return sorted(found)


_END = "\0end"


class _NotSeriesParallel(Exception):
    pass


class _Structure(Exception):
    def __init__(self, task_id: str, reason: str, fix: str = ""):
        super().__init__(reason)
        self.task_id, self.reason, self.fix = task_id, reason, fix


def _parallel_name(starts: list[str]) -> str:
    from exporters.converters import state_name

    return state_name("Parallel: " + ", ".join(starts))


def _all_states(states: list[asl.State]):
    for state in states:
        yield state
        for branch in getattr(state, "branches", []) or []:
            yield from _all_states(branch.states)


def _advice_for(task: Any) -> str:
    kind = type(task).__name__
    if "Python" in kind or kind.startswith("_Python") or kind == "DecoratedOperator":
        return (
            "arbitrary Python cannot run in Step Functions: move the logic into a Lambda function "
            "and use LambdaInvokeOperator / LambdaInvokeFunctionOperator"
        )
    if "Sensor" in kind:
        return (
            "register a converter for this sensor (exporters.converters.register) "
            "or replace it with a Wait/poll pattern"
        )
    if "Bash" in kind:
        return "shell commands cannot run in Step Functions: use a Glue job, a Lambda function or an ECS task"
    return "use one of the supported operators or register a converter with exporters.converters.register"


def compile_dag(dag: Any) -> ExportResult:
    import gc

    compiler = Compiler(dag)
    # Compiling allocates many small objects and frees none: the cyclic GC's repeated
    # scans of a growing heap would make big exports superlinear for nothing.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return compiler.compile()
    except _Structure as err:
        raise ExportError(dag.dag_id, [*compiler.problems, Problem(err.task_id, err.reason, err.fix)]) from None
    finally:
        if enabled:
            gc.enable()
