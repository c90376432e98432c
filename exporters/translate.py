"""References (params, upstream results, formats, run-unique names) → JSONPath and intrinsic functions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from exporters.run_clock import RUN_ID_FIELD, RUN_TIME_KEY, SCHEDULED_TIME_KEY, RunClock, RunClockError
from retraining.refs import Format, LogicalDate, Opaque, ParamRef, Ref, ResultRef, RunId, RunUniqueName

# Per-run suffix in Step Functions: the MD5 of the execution name (32 hex, valid in SageMaker names).
EXECUTION_SUFFIX = "States.Hash($$.Execution.Name, 'MD5')"
_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TranslationError(ValueError):
    """A value has no faithful Step Functions equivalent; the message says which and why (``fix``: what to do)."""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        if fix is not None:
            self.fix = fix


class NotUpstream(TranslationError):
    def __init__(self, read: str, reader: str):
        super().__init__(f"reads the result of {read!r}, which is not upstream of it")
        self.fix = f"add {read} >> {reader} (directly or through other tasks)"


class LiteralPathKey(TranslationError):
    def __init__(self, key: str):
        super().__init__(
            f"field {key!r} holds a literal under a name ending in '.$', which Step Functions reads as "
            "a path or intrinsic function, not as the value written"
        )
        self.fix = "rename the field so it does not end in '.$'"


@dataclass
class ResultLayout:
    """Where a task's result lives in the state data and which fields it has.

    ``prefix``: path under the task's key where the Airflow result's fields sit
    (Lambda: ``("Payload",)``). ``fields``: the top-level field names that exist
    (None: any, e.g. a Lambda payload). ``aliases``: fields whose value is known
    from the request (e.g. ``ModelName``), translated as that request value.
    ``paths``: fields stored elsewhere than prefix + name.
    """

    key: str
    prefix: tuple[str, ...] = ()
    fields: frozenset[str] | None = None
    aliases: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # XComArgs (see XComArgRef). ``whole``: where the task's return value sits exactly, under the task's key
    # (None: only some of its fields are kept). ``xcom_keys``: other XCom keys the operator pushes → where
    # their value sits. ``multiple_outputs``: the task pushes each top-level field of its result as an XCom.
    whole: tuple[str, ...] | None = None
    xcom_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    multiple_outputs: bool = False
    # A mapped task: its key holds one result per map index, in map-index order (a field reads as a list).
    mapped: bool = False


def path_of(*parts: str, root: str = "$") -> str:
    out = root
    for part in parts:
        if _SIMPLE_KEY.match(part):
            out += f".{part}"
        else:
            out += "['" + part.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return out


def intrinsic_string(text: str) -> str:
    """A string literal inside an intrinsic function (', {, }, \\ escaped)."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("{", "\\{").replace("}", "\\}")
    return f"'{escaped}'"


def path_keys(value: Any, where: str) -> list[str]:
    """Where a literal holds a key ending in ``.$``: Step Functions would read its value as a path."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key).endswith(".$"):
                found.append(f"{where}.{key}" if where else str(key))
            found += path_keys(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found += path_keys(item, f"{where}[{i}]")
    return found


RETURN_KEY = "return_value"
# How Airflow writes an XComArg as text (``str(task.output["key"])``): what a serialized DAG holds for one.
_XCOM_ARG_TEXT = re.compile(
    r"""^\{\{\s*(?:ti|task_instance)\.xcom_pull\(\s*task_ids\s*=\s*'([^']+)'\s*"""
    r"""(?:,\s*dag_id\s*=\s*'([^']+)'\s*)?(?:,\s*key\s*=\s*'(.+)'\s*)?\)\s*\}\}$""",
    re.S,
)

# What a serialized DAG holds for an XComArg built with .map()/.zip()/.concat(): its description, not a value.
DERIVED_XCOM_ARG_TEXT = re.compile(r"^XComArg\(<.*\)\.(?:map|zip|concat)\(.*\)$", re.S)
DERIVED_XCOM_ARG = "an XComArg built with .map(), .zip() or .concat() has no Step Functions translation"


@dataclass(frozen=True)
class XComArgRef(Ref):
    """An XComArg passed into an operator field: XCom ``key`` of task ``task_id``.

    ``task.output`` is the task's return value (key ``return_value``); ``task.output["key"]`` (and a
    TaskFlow call's ``["key"]``) is the XCom *named* ``key``, which exists when the task has
    ``multiple_outputs=True`` (each top-level field of its result is pushed under its name) or when the
    operator pushes it itself (e.g. ``GlueJobOperator``'s ``glue_job_run_id``). Built by the exporter from
    the DAG as Airflow serializes it; never part of a request a user writes.
    """

    task_id: str
    key: str = RETURN_KEY
    dag_id: str | None = None

    def __str__(self) -> str:
        return f"{self.task_id}.output" + ("" if self.key == RETURN_KEY else f"[{self.key!r}]")


def xcom_arg_ref(value: Any) -> XComArgRef | None:
    """``value`` as an XComArgRef when it is an XComArg (live, stored as text, or kept opaque); else None."""
    if isinstance(value, XComArgRef):
        return value
    if isinstance(value, Opaque):
        if not value.type_name.endswith("XComArg"):
            return None
        if value.type_name != "PlainXComArg":
            raise TranslationError(f"a {value.type_name}: {DERIVED_XCOM_ARG}")
        return xcom_arg_from_text(value.text)
    if type(value).__name__ == "PlainXComArg":  # a live DAG's XComArg (airflow.sdk stays unimported here)
        return XComArgRef(value.operator.task_id, value.key, value.operator.dag_id)
    if type(value).__name__.endswith("XComArg"):
        raise TranslationError(f"a {type(value).__name__}: {DERIVED_XCOM_ARG}")
    return None


def xcom_arg_from_text(text: str) -> XComArgRef | None:
    """``{{ task_instance.xcom_pull(task_ids='T', dag_id='D', key='K') }}`` (Airflow's text of an XComArg)."""
    m = _XCOM_ARG_TEXT.match(text.strip())
    if m is None:
        return None
    return XComArgRef(m.group(1), m.group(3) or RETURN_KEY, m.group(2))


@dataclass(frozen=True)
class MapValue(Ref):
    """Inside a mapped task's iteration: a part of its state data under ``$.map`` (``index``, ``item``, ``const``).

    The exporter's own placeholder for a mapped argument; never in a DAG file.
    """

    path: tuple[str, ...]

    def __str__(self) -> str:
        return f"<map {'.'.join(self.path)}>"


@dataclass(frozen=True)
class JsonMerge(Ref):
    """``States.JsonMerge(base, over, false)`` (exporter-internal). A dict side is a constant of a mapped
    task's iteration (``$.map.const.<name>``, ``names`` giving base's and over's); elsewhere both sides
    must be read at run time."""

    base: Any
    over: Any
    names: tuple[str, str] = ("base", "over")


@dataclass
class Dynamic:
    """A value computed by Step Functions: a path or an intrinsic function call."""

    expr: str


class Translator:
    def __init__(
        self,
        params: dict[str, Any],
        layouts: dict[str, ResultLayout],
        is_upstream=None,
        clock: RunClock | None = None,
    ):
        self.params = params
        self.layouts = layouts
        # (target, reader) -> whether target runs before reader; reader = the task being converted.
        self.is_upstream = is_upstream
        self.reader: str | None = None
        self.dag_id: str | None = None  # the DAG being exported (an XComArg of another DAG is refused)
        # While a mapped task converts: constants its iteration reads (``$.map.const``; see exporters.mapping).
        self.map_constants: dict[str, Any] | None = None
        # Each emitted expression → the references translated to it (IAM reads names from these).
        self.origins: dict[str, list[Ref]] = {}
        # Schedule-time values: which the DAG's timetable defines exactly, and the fields the machine must compute.
        self.clock = clock
        self.run_time_fields: set[str] = set()

    # -- single values ---------------------------------------------------
    def expr(self, value: Any) -> Any:
        """A Ref → Dynamic; literals unchanged."""
        value = xcom_arg_ref(value) or value
        translated = self._expr(value)
        if isinstance(translated, Dynamic) and isinstance(value, Ref):
            refs = self.origins.setdefault(translated.expr, [])
            if value not in refs:
                refs.append(value)
        return translated

    def _expr(self, value: Any) -> Any:
        if isinstance(value, ParamRef):
            if value.name not in self.params:
                raise TranslationError(f"ParamRef({value.name!r}): the DAG has no param {value.name!r}")
            return Dynamic(path_of("params", value.name))
        if isinstance(value, ResultRef):
            return self._result(value)
        if isinstance(value, XComArgRef):
            return self._xcom_arg(value)
        if isinstance(value, MapValue):
            return Dynamic(path_of("map", *value.path))
        if isinstance(value, JsonMerge):
            base = self._merged(value.base, value.names[0])
            over = self._merged(value.over, value.names[1])
            return Dynamic(f"States.JsonMerge({base}, {over}, false)")
        if isinstance(value, Format):
            args = [self.argument(a) for a in value.args]
            pieces = value.template.split("{}")
            template = "{}".join(intrinsic_string(p)[1:-1] for p in pieces)
            return Dynamic(f"States.Format('{template}'{''.join(', ' + a for a in args)})")
        if isinstance(value, RunUniqueName):
            prefix = self.expr(value.prefix)
            if isinstance(prefix, Dynamic):
                return Dynamic(f"States.Format('{{}}-{{}}', {prefix.expr}, {EXECUTION_SUFFIX})")
            literal = intrinsic_string(f"{prefix}-")[1:-1]
            return Dynamic(f"States.Format('{literal}{{}}', {EXECUTION_SUFFIX})")
        if isinstance(value, (LogicalDate, RunId)):
            return self._run_time(value)
        if isinstance(value, Ref):
            raise TranslationError(f"{type(value).__name__} has no Step Functions translation")
        return value

    def argument(self, value: Any) -> str:
        """A value as an intrinsic-function argument."""
        translated = self.expr(value)
        if isinstance(translated, Dynamic):
            return translated.expr
        if isinstance(translated, bool) or translated is None:
            raise TranslationError(f"{translated!r} cannot be an argument of States.Format")
        if isinstance(translated, (int, float)):
            return repr(translated)
        if isinstance(translated, str):
            return intrinsic_string(translated)
        raise TranslationError(
            f"{type(translated).__name__} value {translated!r} cannot be an argument of States.Format"
        )

    def _run_time(self, ref: LogicalDate | RunId) -> Dynamic:
        if self.clock is None:
            raise TranslationError(f"{ref} needs the DAG's timetable, which this translation was not given")
        if SCHEDULED_TIME_KEY in self.params:
            raise TranslationError(
                f"{ref}: the DAG has a param named {SCHEDULED_TIME_KEY!r}, "
                "the execution-input key of the scheduled time"
            )
        try:
            name = RUN_ID_FIELD if isinstance(ref, RunId) else self.clock.field(ref.format, ref.of)
        except RunClockError as err:
            failure = TranslationError(f"{ref}: {err}")
            failure.fix = err.fix
            raise failure from None
        self.run_time_fields.add(name)
        return Dynamic(path_of(RUN_TIME_KEY, name))

    def _result(self, ref: ResultRef) -> Any:
        if self.reader is not None and self.is_upstream is not None and not self.is_upstream(ref.task_id, self.reader):
            raise NotUpstream(ref.task_id, self.reader)
        layout = self.layouts.get(ref.task_id)
        if layout is None:
            raise TranslationError(
                f"ResultRef({ref.task_id!r}, ...): task {ref.task_id!r} is not upstream of this task or has no result"
            )
        head, rest = ref.path[0], ref.path[1:]
        if layout.mapped:
            return self._mapped_result(ref, layout)
        if head in layout.aliases:
            if rest:
                raise TranslationError(f"ResultRef{(ref.task_id, *ref.path)}: {head!r} has no sub-fields")
            return self.expr(layout.aliases[head])
        if head in layout.paths:
            return Dynamic(path_of(layout.key, *layout.paths[head], *rest))
        if layout.fields is not None and head not in layout.fields:
            raise TranslationError(
                f"ResultRef{(ref.task_id, *ref.path)}: field {head!r} is not kept in Step Functions "
                f"(available: {sorted(set(layout.fields) | set(layout.aliases) | set(layout.paths))})"
            )
        return Dynamic(path_of(layout.key, *layout.prefix, *ref.path))

    def _xcom_arg(self, ref: XComArgRef) -> Any:
        """An XComArg → where Step Functions keeps that XCom's value (or the reason it does not)."""
        if ref.dag_id is not None and self.dag_id is not None and ref.dag_id != self.dag_id:
            raise TranslationError(f"{ref} pulls an XCom of DAG {ref.dag_id!r}, not of this DAG")
        if self.reader is not None and self.is_upstream is not None and not self.is_upstream(ref.task_id, self.reader):
            raise NotUpstream(ref.task_id, self.reader)
        layout = self.layouts.get(ref.task_id)
        if layout is None:
            raise TranslationError(f"{ref}: task {ref.task_id!r} has no result the export keeps")
        if ref.key == RETURN_KEY:
            if layout.whole is None:
                raise TranslationError(
                    f"{ref}: the result of {ref.task_id!r} is not kept whole in Step Functions (only the fields "
                    "downstream tasks read, or in another shape)",
                    fix=f"set multiple_outputs=True on {ref.task_id!r} and pass {ref.task_id}.output['FIELD'], "
                    f"or use ResultRef({ref.task_id!r}, 'FIELD')",
                )
            return Dynamic(path_of(layout.key, *layout.whole))
        if ref.key in layout.xcom_keys:
            return Dynamic(path_of(layout.key, *layout.xcom_keys[ref.key]))
        if not layout.multiple_outputs:
            raise TranslationError(
                f"{ref}: Airflow pulls the XCom named {ref.key!r}, which {ref.task_id!r} does not push "
                "(it has no multiple_outputs=True)",
                fix=f"set multiple_outputs=True on {ref.task_id!r} (each field of its result becomes an XCom), "
                f"or use ResultRef({ref.task_id!r}, {ref.key!r})",
            )
        # multiple_outputs: XCom "key" is the result's top-level field "key".
        return self.expr(ResultRef(ref.task_id, ref.key))

    def _merged(self, part: Any, name: str) -> str:
        if isinstance(part, dict):
            if self.map_constants is None:
                err = TranslationError(f"{name}: a dict merged with a value known only at run time")
                err.fix = "give both as dicts, or put the whole value in the request"
                raise err
            self.map_constants[name] = self.parameters(part)
            return path_of("map", "const", name)
        translated = self.expr(part)
        if not isinstance(translated, Dynamic):
            raise TranslationError(f"{name}: {part!r} cannot be merged at run time")
        return translated.expr

    def _mapped_result(self, ref: ResultRef, layout: ResultLayout) -> Dynamic:
        """A field of a mapped task's results: the list of that field over its map indexes, in order."""
        head = ref.path[0]
        if layout.fields is not None and head not in layout.fields and head not in layout.paths:
            raise TranslationError(
                f"ResultRef{(ref.task_id, *ref.path)}: field {head!r} is not kept in Step Functions "
                f"(available: {sorted(set(layout.fields) | set(layout.paths))})"
            )
        inner = (*layout.paths[head], *ref.path[1:]) if head in layout.paths else (*layout.prefix, *ref.path)
        return Dynamic(path_of(*inner, root=path_of(layout.key) + "[*]"))

    # -- whole requests --------------------------------------------------
    def parameters(self, request: dict[str, Any]) -> dict[str, Any]:
        """An API request with references → a ``Parameters`` object (``"Key.$"`` for dynamic values)."""
        out: dict[str, Any] = {}
        for key, value in request.items():
            translated = self._value(value, key)
            if isinstance(translated, Dynamic):
                out[f"{key}.$"] = translated.expr
            elif str(key).endswith(".$"):
                raise LiteralPathKey(key)
            else:
                out[key] = translated
        return out

    def _value(self, value: Any, where: str) -> Any:
        if isinstance(value, Ref) or xcom_arg_ref(value) is not None:
            return self.expr(value)
        if isinstance(value, dict):
            return self.parameters(value)
        if isinstance(value, (list, tuple)):
            items = [self._value(v, f"{where}[{i}]") for i, v in enumerate(value)]
            if any(isinstance(i, Dynamic) for i in items):
                if any(isinstance(i, (dict, list)) for i in items):
                    raise TranslationError(f"{where}: a list mixing references and objects cannot be expressed")
                return Dynamic("States.Array(" + ", ".join(self.argument_of(i) for i in items) + ")")
            return items
        return value

    def argument_of(self, item: Any) -> str:
        return item.expr if isinstance(item, Dynamic) else self.argument(item)
