"""References: the only way a stage request may depend on a run.

A stage request is plain data (the AWS API request) in which some values are
references instead of literals. Airflow resolves them at run time through its
templating (``resolve(context)`` is the protocol Airflow's templater calls),
and the exporter translates the same objects to JSONPath / intrinsic functions.
Free-form Jinja is rejected, so every request stays translatable.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# SageMaker resource names (jobs, models, endpoint configs, endpoints): the one copy of the rule here;
# DAG params validate names with sagemaker_name_pattern(). (localaws, which imports nothing of this
# package, keeps its own copy, as AWS does.)
SAGEMAKER_NAME_MAX = 63


def sagemaker_name_pattern(max_length: int = SAGEMAKER_NAME_MAX) -> str:
    """The JSON-schema/regex pattern of a SageMaker name of at most ``max_length`` characters."""
    return f"^[a-zA-Z0-9](-*[a-zA-Z0-9]){{0,{max_length - 1}}}$"


SAGEMAKER_NAME_PATTERN = sagemaker_name_pattern()
SAGEMAKER_NAME_RE = re.compile(SAGEMAKER_NAME_PATTERN)
# Room kept for the longest per-run suffix either runtime appends: Step Functions
# uses "-" + the 32-hex MD5 of the execution name (Airflow's is 22 chars).
RUN_SUFFIX_LEN = 33
MAX_NAME_PREFIX = SAGEMAKER_NAME_MAX - RUN_SUFFIX_LEN


class UnresolvedReferenceError(LookupError):
    """A reference could not be resolved for this run (bad param or upstream field)."""


# The key that marks a tagged value (a reference, a rule, a tuple) in the JSON form our operators
# keep in Airflow's serialized DAG; ``to_tagged`` / ``from_tagged`` round-trip it exactly.
TAG = "__retraining__"
_TAGGED: dict[str, type] = {}


class TaggedValueError(ValueError):
    """A tagged value in a serialized DAG is not one this version knows, or is malformed."""


def tagged(cls: type) -> type:
    """Class decorator: ``from_tagged`` rebuilds instances of ``cls`` from ``cls.serialize()``."""
    _TAGGED[cls.__name__] = cls
    return cls


class Ref:
    """Base class of every reference."""

    def resolve(self, context: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def iter_refs(self) -> Iterator[Ref]:
        yield self

    def serialize(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


@tagged
@dataclass(frozen=True)
class ParamRef(Ref):
    """The value of a DAG param for this run (its default unless the trigger overrides it)."""

    name: str

    def serialize(self) -> dict[str, Any]:
        return {TAG: "ParamRef", "name": self.name}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> ParamRef:
        return cls(_text(data, "name"))

    def resolve(self, context: Any) -> Any:
        params = context["params"]
        if self.name not in params:
            raise UnresolvedReferenceError(
                f"param {self.name!r} is not defined on the DAG; defined params: {sorted(params)}"
            )
        return params[self.name]

    def __str__(self) -> str:
        return f"ParamRef({self.name!r})"


@tagged
@dataclass(frozen=True)
class ResultRef(Ref):
    """A named field of an upstream task's result, e.g. ``ResultRef("train_model", "TrainingJobName")``.

    Nested fields are given as further path parts:
    ``ResultRef("train_model", "ModelArtifacts", "S3ModelArtifacts")``.
    """

    task_id: str
    path: tuple[str, ...]

    def __init__(self, task_id: str, *path: str):
        if not path:
            raise ValueError(f"ResultRef({task_id!r}) needs the name of the field to read")
        object.__setattr__(self, "task_id", task_id)
        object.__setattr__(self, "path", tuple(path))

    def serialize(self) -> dict[str, Any]:
        return {TAG: "ResultRef", "task_id": self.task_id, "path": list(self.path)}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> ResultRef:
        path = data.get("path")
        if not isinstance(path, list) or not all(isinstance(p, str) for p in path):
            raise TaggedValueError(f"ResultRef: 'path' must be a list of strings, not {path!r}")
        return cls(_text(data, "task_id"), *path)

    def resolve(self, context: Any) -> Any:
        value = context["ti"].xcom_pull(task_ids=self.task_id)
        if _is_mapped(context, self.task_id):
            # A mapped task's results: one per map index, in map-index order (Airflow gives a lone one bare).
            results = value if isinstance(value, list) else [] if value is None else [value]
            return [self._field_of(result) for result in results]
        return self._field_of(value)

    def _field_of(self, value: Any) -> Any:
        if value is None:
            raise UnresolvedReferenceError(f"task {self.task_id!r} has no result in this run")
        walked: list[str] = []
        for part in self.path:
            if not isinstance(value, dict) or part not in value:
                available = sorted(value) if isinstance(value, dict) else type(value).__name__
                where = ".".join(walked) or "its result"
                raise UnresolvedReferenceError(
                    f"task {self.task_id!r}: field {part!r} not found in {where} (available: {available})"
                )
            value = value[part]
            walked.append(part)
        return value

    def __str__(self) -> str:
        return f"ResultRef({', '.join(repr(p) for p in (self.task_id, *self.path))})"


def _is_mapped(context: Any, task_id: str) -> bool:
    task = getattr(context["ti"], "task", None)
    dag = getattr(task, "dag", None)
    if dag is None or not dag.has_task(task_id):
        return False
    return bool(getattr(dag.get_task(task_id), "is_mapped", False))


@tagged
@dataclass(frozen=True)
class Format(Ref):
    """String built from a template with ``{}`` placeholders, like ASL's ``States.Format``."""

    template: str
    args: tuple[Any, ...]

    def __init__(self, template: str, *args: Any):
        if template.count("{}") != len(args):
            raise ValueError(
                f"Format({template!r}) has {template.count('{}')} '{{}}' placeholders but {len(args)} values"
            )
        if "{{" in template or "{%" in template:
            raise ValueError(f"Format({template!r}): Jinja is not allowed in stage requests")
        object.__setattr__(self, "template", template)
        object.__setattr__(self, "args", tuple(args))

    def serialize(self) -> dict[str, Any]:
        return {TAG: "Format", "template": self.template, "args": [to_tagged(a) for a in self.args]}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Format:
        args = data.get("args")
        if not isinstance(args, list):
            raise TaggedValueError(f"Format: 'args' must be a list, not {args!r}")
        return cls(_text(data, "template"), *(from_tagged(a) for a in args))

    def resolve(self, context: Any) -> str:
        values = [resolve_value(arg, context) for arg in self.args]
        pieces = self.template.split("{}")
        out = pieces[0]
        for value, piece in zip(values, pieces[1:], strict=False):
            out += str(value) + piece
        return out

    def iter_refs(self) -> Iterator[Ref]:
        yield self
        for arg in self.args:
            yield from iter_refs(arg)

    def __str__(self) -> str:
        return f"Format({', '.join([repr(self.template), *map(str, self.args)])})"


@tagged
@dataclass(frozen=True)
class RunUniqueName(Ref):
    """A SageMaker-valid name unique to this run: ``<prefix>-<YYYYmmddHHMMSS>-<6 hex>``.

    The time part makes names sortable and readable; the hash of the run id
    keeps two runs with the same logical date apart. In Step Functions the
    exporter derives the suffix from the execution instead.
    """

    prefix: Any  # str or Ref resolving to str

    def serialize(self) -> dict[str, Any]:
        return {TAG: "RunUniqueName", "prefix": to_tagged(self.prefix)}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> RunUniqueName:
        if "prefix" not in data:
            raise TaggedValueError("RunUniqueName: no 'prefix'")
        return cls(from_tagged(data["prefix"]))

    def resolve(self, context: Any) -> str:
        prefix = resolve_value(self.prefix, context)
        when = context.get("logical_date") or context.get("data_interval_start")
        if when is None:  # Airflow 3 runs may have no logical date: use when the run was due
            dag_run = context.get("dag_run")
            when = getattr(dag_run, "run_after", None) or getattr(dag_run, "start_date", None)
        return run_unique_name(str(prefix), context["run_id"], when)

    def iter_refs(self) -> Iterator[Ref]:
        yield self
        yield from iter_refs(self.prefix)

    def __str__(self) -> str:
        return f"RunUniqueName({self.prefix if isinstance(self.prefix, Ref) else repr(self.prefix)})"


# The forms of a run's time both runtimes produce: strftime formats, "iso" (``ts``: ``isoformat()``) and
# "str" (what ``{{ logical_date }}`` renders). Step Functions builds each from the scheduled time's parts.
TIME_FORMATS = (
    "%Y-%m-%d",
    "%Y%m%d",
    "%Y%m%dT%H%M%S",
    "%Y%m%d%H%M%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y%m%dT%H%M%S%z",
    "iso",
    "str",
)
RUN_TIMES = ("logical_date", "data_interval_start", "data_interval_end")


@tagged
@dataclass(frozen=True)
class LogicalDate(Ref):
    """The run's logical date (or ``of`` one end of its data interval) formatted as ``format``.

    ``LogicalDate()`` renders like ``{{ ds }}``, ``LogicalDate("%Y%m%d")`` like ``{{ ds_nodash }}``,
    ``LogicalDate("iso")`` like ``{{ ts }}``, ``LogicalDate("str", of="data_interval_end")`` like
    ``{{ data_interval_end }}``. Only the formats of ``TIME_FORMATS`` exist (Step Functions can build them
    from the scheduled time); all are in UTC, as Airflow renders them. A run without a logical date (an
    Airflow 3 manual run triggered without one) uses the time it was due, as Step Functions uses the
    execution's start time for a manual start.
    """

    format: str = "%Y-%m-%d"
    of: str = "logical_date"

    def __post_init__(self) -> None:
        if self.format not in TIME_FORMATS:
            raise ValueError(f"LogicalDate: format {self.format!r} is not one of {', '.join(TIME_FORMATS)}")
        if self.of not in RUN_TIMES:
            raise ValueError(f"LogicalDate: of={self.of!r} is not one of {', '.join(RUN_TIMES)}")

    def serialize(self) -> dict[str, Any]:
        return {TAG: "LogicalDate", "format": self.format, "of": self.of}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> LogicalDate:
        return cls(_text(data, "format"), _text(data, "of"))

    def resolve(self, context: Any) -> str:
        when = context.get(self.of)
        if when is None:  # Airflow 3 runs may have no logical date: use when the run was due
            dag_run = context.get("dag_run")
            when = getattr(dag_run, "run_after", None) or getattr(dag_run, "start_date", None)
        if when is None:
            raise UnresolvedReferenceError(f"this run has no {self.of}")
        return format_run_time(when, self.format)

    def __str__(self) -> str:
        extra = "" if self.of == "logical_date" else f", of={self.of!r}"
        return f"LogicalDate({self.format!r}{extra})"


def format_run_time(when: Any, form: str) -> str:
    """``when`` in UTC as ``form`` renders it (see ``TIME_FORMATS``)."""
    when = when.astimezone(dt.UTC) if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
    if form == "iso":
        return when.isoformat()
    if form == "str":
        return str(when)
    return when.strftime(form)


@tagged
@dataclass(frozen=True)
class RunId(Ref):
    """The run's id, like ``{{ run_id }}``: ``scheduled__<time it was due, ISO>`` for a scheduled run."""

    def serialize(self) -> dict[str, Any]:
        return {TAG: "RunId"}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> RunId:
        return cls()

    def resolve(self, context: Any) -> str:
        return str(context["run_id"])

    def __str__(self) -> str:
        return "RunId()"


def check_name_prefix(prefix: str, where: str) -> None:
    """Fail early (at parse or trigger time) on a prefix that cannot yield a valid SageMaker name."""
    if not prefix or len(prefix) > MAX_NAME_PREFIX or not is_valid_sagemaker_name(prefix):
        raise ValueError(
            f"{where}: name prefix {prefix!r} is not usable: it must be 1-{MAX_NAME_PREFIX} characters "
            "of letters, digits and '-', starting and ending with a letter or digit"
        )


def run_unique_name(prefix: str, run_id: str, when: Any = None) -> str:
    check_name_prefix(prefix, "RunUniqueName")
    stamp = when.strftime("%Y%m%d%H%M%S") if when is not None else "00000000000000"
    digest = hashlib.sha1(run_id.encode()).hexdigest()[:6]
    name = f"{prefix}-{stamp}-{digest}"
    assert is_valid_sagemaker_name(name), name
    return name


def is_valid_sagemaker_name(name: str) -> bool:
    return len(name) <= SAGEMAKER_NAME_MAX and bool(SAGEMAKER_NAME_RE.match(name))


def resolve_value(value: Any, context: Any) -> Any:
    """Resolve every reference inside nested dicts/lists; literals are returned unchanged."""
    if isinstance(value, Ref):
        return value.resolve(context)
    if isinstance(value, dict):
        return {k: resolve_value(v, context) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [resolve_value(v, context) for v in value]
    return value


def iter_refs(value: Any) -> Iterator[Ref]:
    """Every reference inside a (nested) request, including those nested in Format."""
    if isinstance(value, Ref):
        yield from value.iter_refs()
    elif isinstance(value, dict):
        for v in value.values():
            yield from iter_refs(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from iter_refs(v)


def find_jinja(value: Any, path: str = "") -> list[str]:
    """Paths of string literals that contain Jinja markup (not allowed: not translatable)."""
    found: list[str] = []
    if isinstance(value, str):
        if "{{" in value or "{%" in value or "{#" in value:
            found.append(path or "<value>")
    elif isinstance(value, dict):
        for k, v in value.items():
            found.extend(find_jinja(v, f"{path}.{k}" if path else str(k)))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found.extend(find_jinja(v, f"{path}[{i}]"))
    return found


@dataclass(frozen=True)
class Opaque:
    """A request value with no JSON form (e.g. a datetime): kept as its text; the exporter refuses it by name."""

    text: str
    type_name: str

    def __str__(self) -> str:
        return f"<{self.type_name}: {self.text}>"


def to_tagged(value: Any) -> Any:
    """``value`` as JSON-safe data: references and rules tagged, tuples kept apart from lists, order kept."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if type(value).__name__ in _TAGGED and isinstance(value, _TAGGED[type(value).__name__]):
        return value.serialize()
    if isinstance(value, dict):
        if TAG in value or not all(isinstance(k, str) for k in value):
            # A key that is ours, or not a string: keep the pairs as they are.
            return {TAG: "dict", "items": [[to_tagged(k), to_tagged(v)] for k, v in value.items()]}
        return {k: to_tagged(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_tagged(v) for v in value]
    if isinstance(value, tuple):
        return {TAG: "tuple", "items": [to_tagged(v) for v in value]}
    if isinstance(value, Opaque):
        return {TAG: "opaque", "text": value.text, "type": value.type_name}
    return {TAG: "opaque", "text": str(value)[:1000], "type": type(value).__name__}


def from_tagged(value: Any) -> Any:
    """The inverse of ``to_tagged``: only our own classes are ever built (never an import, never a call by name)."""
    if isinstance(value, list):
        return [from_tagged(v) for v in value]
    if not isinstance(value, dict):
        return value
    if TAG not in value:
        return {k: from_tagged(v) for k, v in value.items()}
    kind = value[TAG]
    if kind == "tuple":
        return tuple(from_tagged(v) for v in _items(value))
    if kind == "dict":
        pairs = _items(value)
        if not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise TaggedValueError("dict: 'items' must be [key, value] pairs")
        return {from_tagged(k): from_tagged(v) for k, v in pairs}
    if kind == "opaque":
        return Opaque(str(value.get("text", "")), str(value.get("type", "object")))
    cls = _TAGGED.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise TaggedValueError(f"unknown tagged value {str(kind)[:60]!r} (known: {', '.join(sorted(_TAGGED))})")
    try:
        return cls.deserialize(value)
    except TaggedValueError:
        raise
    except (TypeError, ValueError) as err:
        raise TaggedValueError(f"{kind}: {err}") from None


def _items(value: dict[str, Any]) -> list[Any]:
    items = value.get("items")
    if not isinstance(items, list):
        raise TaggedValueError(f"{value[TAG]}: 'items' must be a list")
    return items


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise TaggedValueError(f"{data.get(TAG)}: {key!r} must be a string, not {value!r}")
    return value
