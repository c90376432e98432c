"""Dynamic task mapping (``.partial(...).expand(...)`` / ``.expand_kwargs(...)``) → one ``Map`` state.

Mapping is data, not states: whatever the number of items, a mapped task is one Map state whose
iteration is the operator's own converted state(s), so a 1,000-item task exports as fast as one task.

What Airflow stores for a mapped task is its ``partial_kwargs`` and ``expand_input`` (literal lists,
or an upstream task's XComArg). The exporter builds the operator's class from them with a
placeholder (``MapValue``) for each mapped argument, and converts it as any task; the placeholders
read the iteration's item (``$.map.item``), its index (``$.map.index``, from ``$$.Map.Item.Index``)
and constants (``$.map.const``). Our operators' own arguments are kept whole by ``.partial()``
(``retraining.mapping.PARTIAL_FIELD``: Airflow stores our references as text otherwise).

Airflow's semantics, reproduced:

- every map index runs even when another fails, with its own retries: each iteration catches its
  failure (after the state's retries) and returns a failure record instead of a result;
- after the Map, the task failed when any index failed (recorded like any task's failure, so the
  trigger rules downstream decide as Airflow does);
- the task's result is the list of its indexes' results in map-index order (``ResultRef`` of a
  mapped task reads a field as that list; a failed index has no result, as it has no XCom);
- ``max_active_tis_per_dagrun`` / ``max_active_tis_per_dag`` → ``MaxConcurrency``;
- an upstream list that is empty at run time skips the task (its result reads as ``[]``).

Large fan-outs use Distributed Map (``DISTRIBUTED_THRESHOLD_EVENTS``), or when the task says so
with ``executor_config={"step_functions": {"map_mode": "DISTRIBUTED"}}``.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import BaseOperator

import retraining
from exporters import asl
from exporters.converters import ConvertContext, Failure, Fragment, Port, Unsupported, result_key, state_name
from exporters.errors import ExportError, Problem
from exporters.serialized import NOT_SET_TEXT, SerializedTask, _airflow_class, _task_class
from exporters.translate import MapValue, ResultLayout, path_keys, path_of
from retraining.mapping import PARTIAL_FIELD, PARTIAL_FORMAT
from retraining.refs import TaggedValueError, from_tagged
from retraining.serialized import class_paths

MAP_KEY = "map"
OUTCOME_FIELD = "map_outcome"  # in a failed index's record: "failed"
FAILED = "failed"
ERROR_KEY = "map_error"
MAPPED_TASK_FAILED = "MappedTaskFailed"
# Step Functions: an inline Map runs at most 40 iterations at once and its events count against the
# execution's 25,000-event history; a Distributed Map runs each iteration as a child execution with its
# own history. Each iteration attempt of a one-Task operator writes about 10 events (iteration
# started/succeeded, state entered/exited, task scheduled/started/succeeded, the result's Pass).
# Above 10,000 events (40% of the history, the rest left for the DAG's other tasks), go distributed.
EVENTS_PER_ATTEMPT = 10
DISTRIBUTED_THRESHOLD_EVENTS = 10_000
INLINE_CONCURRENCY = 40
MODES = ("INLINE", "DISTRIBUTED")
# A path's first key in the iteration's states (``$.params...``, ``$.<task>...``; not ``$$.`` context paths).
_OWN_KEY = re.compile(r"(?<!\$)\$\.([A-Za-z0-9_]+)")


# Stock operators: the arguments their converters pass through whole into the request, so a value known only
# per map index is exported exactly. Other arguments are read at export time (a dict's keys, a JSON string's
# content): mapping over them is refused with the reason.
STOCK_MAPPABLE = {
    "airflow.providers.amazon.aws.operators.glue.GlueJobOperator": ("job_name",),
    "airflow.providers.amazon.aws.operators.lambda_function.LambdaInvokeFunctionOperator": (
        "function_name",
        "qualifier",
    ),
}


@dataclass
class MappingSpec:
    """What a mapped task maps over."""

    kwargs: list[str]  # the mapped argument names
    items: list[dict[str, Any]] | None = None  # literal: one dict of mapped arguments per map index
    source: Any = None  # an upstream XComArg (its operator's task id and key)
    source_kwarg: str | None = None  # expand(name=upstream.output): the argument the whole item goes to
    max_concurrency: int | None = None
    per_dag: bool = False  # max_active_tis_per_dag (across runs in Airflow; per execution here)
    mode: str | None = None  # explicit executor_config choice
    problems: list[str] = field(default_factory=list)


class MappedTask(SerializedTask):
    """A mapped task of a serialized DAG, as the converters read it: its operator built with placeholders.

    Airflow's settings (retries, trigger rule, ...) come from the stored mapped operator; the
    operator's own settings from the operator built from its partial arguments.
    """

    def __init__(self, operator: Any, built: Any, attributes: dict[str, Any], paths: list[str], spec: MappingSpec):
        super().__init__(operator, attributes, paths)
        self.__dict__["_built"] = built
        self.mapping = spec

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_operator", "_live", "_probe", "_built"):
            raise AttributeError(name)
        try:
            return getattr(self._operator, name)
        except AttributeError:
            pass
        built = self.__dict__.get("_built")
        if built is not None and hasattr(built, name):
            return getattr(built, name)
        raise AttributeError(name)


def wrap_mapped(op: Any, dag_id: str) -> MappedTask:
    """A stored mapped operator → a ``MappedTask`` (or one ``ExportError`` naming the task)."""
    tid = op.task_id
    module = str(getattr(op, "_task_module", None) or "")
    name = str(getattr(op, "task_type", None) or type(op).__name__)
    path = f"{module}.{name}"
    spec = _spec(op)
    problem: Problem | None = None
    built = None
    paths = [path]
    try:
        placeholders = _placeholders(spec)
        own = _own_kwargs(op, path)
        cls = _class(path)
        if cls is None:
            raise Unsupported(
                f"{name} is mapped; the exporter builds a mapped task's operator from what Airflow stored, which "
                "it does only for this package's operators and Airflow's own and its providers' classes "
                "(building a DAG's own class would run DAG code)",
                "map one of the supported operators, or write the tasks out",
            )
        try:
            built = cls(task_id=tid, **own, **placeholders)
        except Exception as err:  # noqa: BLE001 - the class refuses a placeholder for a mapped argument
            raise Unsupported(
                f"{name} cannot take the mapped argument(s) {', '.join(spec.kwargs)} as values known only per map "
                f"index ({type(err).__name__}: {err})",
                "map an argument the operator passes through to the AWS request (e.g. a request field)",
            ) from None
        paths = class_paths(cls)
        if not path.startswith("retraining."):
            allowed = STOCK_MAPPABLE.get(path, ())
            refused = [k for k in spec.kwargs if k not in allowed]
            if refused:
                raise Unsupported(
                    f"{name} mapped over {', '.join(refused)}: its converter reads that argument when the DAG is "
                    "exported, so a value known only per map index cannot be translated exactly",
                    (f"map {name} over {' or '.join(allowed)}, or " if allowed else "")
                    + "use this package's operator (e.g. SageMakerTrainingJobOperator with hyperparameters, "
                    "LambdaInvokeOperator with a payload) mapped over its arguments",
                )
    except Unsupported as err:
        problem = Problem(tid, err.reason, err.fix)
    except TaggedValueError as err:
        problem = Problem(
            tid,
            f"its stored partial arguments cannot be read ({err})",
            "re-parse the DAG file with this version of the retraining package",
        )
    if problem is not None:
        raise ExportError(dag_id, [problem])
    attributes = {
        attr: getattr(built, attr)
        for attr in (*getattr(built, "export_attributes", ()), *(getattr(built, "template_fields", ()) or ()))
        if hasattr(built, attr)
    }
    task_cls = _task_class(module, name)
    mapped_cls = type(task_cls.__name__, (MappedTask, task_cls), {"__module__": module, "__qualname__": name})
    return mapped_cls(op, built, attributes, paths, spec)


def _class(path: str) -> type | None:
    """Our operators (this package, installed with the exporter) or Airflow's/providers' installed classes."""
    module_name, _, name = path.rpartition(".")
    if module_name.startswith("retraining."):
        candidate = getattr(retraining, name, None)
        if isinstance(candidate, type) and candidate.__module__ == module_name:
            return candidate
        return None
    return _airflow_class(path)


def _own_kwargs(op: Any, path: str) -> dict[str, Any]:
    """The operator's own partial arguments: ours from ``PARTIAL_FIELD`` (whole), others as Airflow stored them."""
    partial = dict(getattr(op, "partial_kwargs", {}) or {})
    stored = partial.pop(PARTIAL_FIELD, None)
    if stored is not None:
        document = json.loads(stored) if isinstance(stored, str) else stored
        if not isinstance(document, dict) or document.get("format") != PARTIAL_FORMAT:
            raise TaggedValueError(f"{PARTIAL_FIELD}: unknown format")
        kwargs = document.get("kwargs")
        if not isinstance(kwargs, dict):
            raise TaggedValueError(f"{PARTIAL_FIELD}: 'kwargs' is missing")
        return {str(k): from_tagged(v) for k, v in kwargs.items()}
    if path.startswith("retraining."):
        raise TaggedValueError(f"{PARTIAL_FIELD} is missing (stored by an older version)")
    base = set(BaseOperator.__init__._BaseOperatorMeta__param_names)
    own = {}
    for key, value in partial.items():
        if key in base or key.startswith("has_") or value == NOT_SET_TEXT:
            continue
        own[key] = value
    return own


def _placeholders(spec: MappingSpec) -> dict[str, Any]:
    if spec.problems:
        raise Unsupported(spec.problems[0], spec.problems[1] if len(spec.problems) > 1 else "")
    if spec.source_kwarg is not None:
        return {spec.source_kwarg: MapValue(("item",))}
    return {name: MapValue(("item", name)) for name in spec.kwargs}


def _spec(op: Any) -> MappingSpec:
    expand = getattr(op, "expand_input", None) or getattr(op, "_get_specified_expand_input", lambda: None)()
    value = getattr(expand, "value", None)
    kind = type(expand).__name__
    spec = MappingSpec(kwargs=[])
    per_run = op.max_active_tis_per_dagrun
    per_dag = op.max_active_tis_per_dag
    limits = [n for n in (per_run, per_dag) if isinstance(n, int) and n > 0]
    spec.max_concurrency = min(limits) if limits else None
    spec.per_dag = per_dag is not None and spec.max_concurrency == per_dag and per_run != per_dag
    config = (getattr(op, "executor_config", None) or {}).get("step_functions") or {}
    mode = config.get("map_mode") if isinstance(config, dict) else None
    if mode is not None:
        spec.mode = str(mode).upper()
        if spec.mode not in MODES:
            spec.problems += [
                f"executor_config['step_functions']['map_mode'] = {mode!r} is not a Map mode",
                "use 'INLINE' or 'DISTRIBUTED'",
            ]
    if "ListOfDicts" in kind:  # expand_kwargs
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            spec.items = [dict(v) for v in value]
            spec.kwargs = sorted({k for item in value for k in item})
            return spec
        spec.problems += [
            "expand_kwargs over an upstream result: the mapped argument names are known only at run time",
            "use expand(argument=upstream.output), or expand_kwargs over a literal list of dicts",
        ]
        return spec
    if not isinstance(value, dict):
        spec.problems += [f"its mapped arguments ({kind}) cannot be read", "re-parse the DAG"]
        return spec
    spec.kwargs = list(value)
    dynamic = [k for k, v in value.items() if not isinstance(v, list)]
    if not dynamic:
        spec.items = [dict(zip(value, combo, strict=True)) for combo in itertools.product(*value.values())]
        return spec
    if len(value) > 1:
        spec.problems += [
            "expand() over an upstream result together with other mapped arguments: Airflow maps their cross "
            "product, known only at run time",
            "map over one upstream result (put the other values in partial()), or over literal lists only",
        ]
        return spec
    source = value[dynamic[0]]
    if not type(source).__name__.endswith("PlainXComArg"):
        spec.problems += [
            f"expand({dynamic[0]}=...) over a {type(source).__name__}: only a literal list or an upstream "
            "task's whole result (upstream.output) can be exported",
            "map over upstream.output (a result that is a list) or a literal list",
        ]
        return spec
    spec.source = source
    spec.source_kwarg = dynamic[0]
    return spec


# ---------------------------------------------------------------------------------------------
# Emission
# ---------------------------------------------------------------------------------------------


def convert_mapped(task: MappedTask, converter: Any, ctx: ConvertContext, task_keys: set[str]) -> Fragment:
    """The task's converted state(s) as the iteration of one Map state, failures decided after it."""
    spec: MappingSpec = task.mapping
    tid = task.task_id
    key = result_key(tid)
    constants: dict[str, Any] = {}
    ctx.translator.map_constants = constants
    try:
        inner = converter(task, ctx)
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise Unsupported(
            f"{type(task).__name__} cannot take the mapped argument(s) {', '.join(spec.kwargs)} as values known only "
            f"per map index ({type(err).__name__}: {err})",
            "map an argument the operator passes through to the AWS request",
        ) from None
    finally:
        ctx.translator.map_constants = None
    if inner.branches or inner.always_fails:
        raise Unsupported(
            f"{type(task).__name__} cannot be mapped: it decides the run's path or always fails",
            "map an AWS stage operator",
        )
    items_path, before = _items(task, spec, ctx, key)
    iteration = _iteration(tid, inner)
    paths = _OWN_KEY.findall(json.dumps(iteration.to_dict(top_level=False)))
    read = sorted({k for k in paths if k in task_keys and k != key})  # its own key is written, not read
    if MAP_KEY in read:
        raise Unsupported(f"reads the result of a task whose key is {MAP_KEY!r}, the key of its map item", "rename it")
    selector: dict[str, Any] = {f"{k}.$": f"$.{k}" for k in read}
    for where in path_keys(constants, "const"):
        raise Unsupported(f"the constant {where!r} has a key ending in '.$'", "rename the key")
    selector[MAP_KEY] = {"index.$": "$$.Map.Item.Index", "item.$": "$$.Map.Item.Value"}
    if constants:
        selector[MAP_KEY]["const"] = constants
    mode = _mode(task, spec, ctx)
    concurrency = spec.max_concurrency or 0
    if spec.per_dag:
        ctx.warnings.append(
            f"task {tid!r}: max_active_tis_per_dag={spec.max_concurrency} limits its tries across all runs in "
            "Airflow; the export limits each execution's Map (MaxConcurrency) only"
        )
    count = f"{len(spec.items)} items" if spec.items is not None else "the items of an upstream result"
    mapped = asl.Map(
        state_name(tid, "map"),
        iterator=iteration,
        items_path=items_path,
        max_concurrency=concurrency,
        item_selector=selector,
        mode=mode,
        result_path=f"$.{key}",
        comment=f"Airflow maps {tid!r} over {count}: every index runs, each with its own retries",
    )
    check = asl.Choice(
        state_name(tid, "any index failed?"),
        comment="Airflow: a mapped task failed when any of its map indexes failed",
    )
    failed_rule = asl.ChoiceRule(
        variable=f"{path_of(key)}[?(@.{OUTCOME_FIELD} == '{FAILED}')]", operator="IsPresent", value=True
    )
    check.choices = [failed_rule]
    mapped.next = check.name
    skips: list[Port] = []
    if spec.items is not None:
        before[0].next = mapped.name  # the literal items, then the Map
    else:
        # Airflow skips a task mapped over an upstream list that is empty at run time; its result reads as [].
        empty = asl.Pass(
            state_name(tid, "no items"),
            result=[],
            result_path=f"$.{key}",
            comment="Airflow: mapped over an empty list, the task is skipped",
        )
        any_items = asl.Choice(
            state_name(tid, "any items?"),
            choices=[asl.ChoiceRule(variable=f"{items_path}[0]", operator="IsPresent", value=True, next=mapped.name)],
            default=empty.name,
        )
        before = [any_items, empty]
        skips = [Port(empty)]
    states: list[asl.State] = [*before, mapped, check]
    layout = inner.layout or ResultLayout(key=key)
    layout = ResultLayout(key=key, prefix=layout.prefix, fields=layout.fields, paths=dict(layout.paths), mapped=True)
    return Fragment(
        entry=states[0].name,
        states=states,
        exits=[Port(check, "default")],
        skips=skips,
        layout=layout,
        failures=[
            Failure(
                state=mapped,  # a run-time error of the Map itself (e.g. its items are not a list)
            ),
            Failure(
                ports=[Port(failed_rule)],
                error=MAPPED_TASK_FAILED,
                cause=f"one or more map indexes of {tid!r} failed (each after its retries); their errors are in "
                "the task's results",
            ),
        ],
    )


def _items(task: MappedTask, spec: MappingSpec, ctx: ConvertContext, key: str) -> tuple[str, list[asl.State]]:
    """Where the Map's items are: a literal list (a Pass puts it under the task's key) or an upstream result."""
    tid = task.task_id
    if spec.items is not None:
        if not spec.items:
            raise Unsupported("it maps over an empty list: Airflow skips it in every run", "remove the task")
        for where in path_keys(spec.items, "items"):
            raise Unsupported(f"mapped value {where!r} has a key ending in '.$'", "rename the key")
        values = [_literal(tid, item) for item in spec.items]
        put = asl.Pass(
            state_name(tid, "items"),
            result=values,
            result_path=f"$.{key}",
            comment=f"The {len(values)} literal items {tid!r} is mapped over",
        )
        return f"$.{key}", [put]
    source_id = spec.source.operator.task_id
    layout = ctx.translator.layouts.get(source_id)
    if layout is None or not ctx.translator.is_upstream(source_id, tid):
        raise Unsupported(f"maps over the result of {source_id!r}, which is not upstream of it or has no result")
    if layout.mapped:
        raise Unsupported(
            f"maps over the results of the mapped task {source_id!r}",
            "map over a task whose single result is the list (e.g. a Lambda function returning it)",
        )
    if layout.fields is not None:
        raise Unsupported(
            f"maps over the whole result of {source_id!r}, a record of fields (Airflow would map over its keys)",
            "map over the result of a task that returns a list, e.g. a Lambda function",
        )
    return path_of(layout.key, *layout.prefix), []


def _literal(tid: str, item: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(item))
    except (TypeError, ValueError):
        raise Unsupported(
            f"a mapped value of {tid!r} is not JSON data ({item!r})",
            "map over JSON data (strings, numbers, lists, dicts)",
        ) from None


def _mode(task: MappedTask, spec: MappingSpec, ctx: ConvertContext) -> str:
    if spec.mode is not None:
        return spec.mode
    if spec.items is None:
        return "INLINE"
    attempts = 1 + int(task.retries or 0)
    events = len(spec.items) * attempts * EVENTS_PER_ATTEMPT
    if events > DISTRIBUTED_THRESHOLD_EVENTS:
        ctx.warnings.append(
            f"task {task.task_id!r}: {len(spec.items)} items × {attempts} attempt(s) could write about {events} "
            "history events inline (an execution keeps 25,000): exported as a Distributed Map (child executions)"
        )
        return "DISTRIBUTED"
    return "INLINE"


def _iteration(tid: str, inner: Fragment) -> asl.StateMachine:
    """One map index: the task's states; a failure (after retries) becomes the index's failure record."""
    key = result_key(tid)
    fragment = _as_attempt(tid, inner) if any(isinstance(s, asl.Fail) for s in inner.states) else inner
    states = list(fragment.states)
    if inner.layout is None:
        result = asl.Pass(state_name(tid, "index result"), result={}, result_path="$")
    else:
        result = asl.Pass(state_name(tid, "index result"), output_path=f"$.{key}")
    result.comment = "The index's result: what Airflow pushes as its XCom"
    failed = asl.Pass(
        state_name(tid, "index failed"),
        parameters={
            OUTCOME_FIELD: FAILED,
            "index.$": "$.map.index",
            "Error.$": f"$.{ERROR_KEY}.Error",
            "Cause.$": f"$.{ERROR_KEY}.Cause",
        },
        comment="Airflow: this map index failed (its retries used); the others go on",
    )
    states += [result, failed]
    for port in fragment.exits:
        port.link(result.name)
    fixed: dict[tuple[str, str], asl.Pass] = {}
    failures = fragment.failures or [Failure(state=s) for s in states if isinstance(s, (asl.Task, asl.Parallel))]
    for failure in failures:
        if failure.state is not None:
            failure.state.catch.append(asl.Catch(["States.ALL"], failed.name, result_path=f"$.{ERROR_KEY}"))
            continue
        record = fixed.get((failure.error, failure.cause))
        if record is None:
            record = asl.Pass(
                state_name(tid, f"index failed: {failure.error}"),
                parameters={OUTCOME_FIELD: FAILED, "index.$": "$.map.index", "Error": failure.error},
            )
            record.parameters["Cause"] = failure.cause
            fixed[(failure.error, failure.cause)] = record
            states.append(record)
        for port in failure.ports:
            port.link(record.name)
    return asl.StateMachine(states=states, start_at=fragment.entry)


def _as_attempt(tid: str, fragment: Fragment) -> Fragment:
    """A fragment with Fail states of its own as one attempt (a single-branch Parallel): Fail cannot be caught."""
    inner = list(fragment.states)
    open_exits = [p for p in fragment.exits]
    done = asl.Succeed(state_name(tid, "attempt done"))
    if open_exits:
        inner.append(done)
        for port in open_exits:
            port.link(done.name)
    attempt = asl.Parallel(
        state_name(tid, "attempt"),
        branches=[asl.StateMachine(states=inner, start_at=fragment.entry)],
        result_selector={"merged.$": "$[0]"},
        result_path="$",
        output_path="$.merged",
    )
    return Fragment.single(attempt, fragment.layout)
