"""The exporter's one front end: a DAG as Airflow serializes it.

Airflow's DAG processor parses DAG files and stores each DAG as JSON (``DagSerialization``);
the API server and the scheduler only ever read that JSON. The exporter compiles the same
thing: the CLI and the Python API serialize the DAG they parsed (``serialize``), the Airflow
UI view hands over the JSON the DAG processor stored, and both go through ``from_serialized``
→ ``compile_dag``. So the view and ``python -m exporters export`` give the same bytes by
construction, and the view needs no DAG file, no import and no parse.

``from_serialized`` builds the objects the converters read (``task_id``, ``request`` with its
``Ref`` objects, ``rule``, ``trigger_rule``, ``retries``, ...) from Airflow's deserialized DAG:

- our operators: the attributes they keep in ``retraining_export`` (``retraining.serialized``),
  decoded with ``retraining.refs.from_tagged`` (only our own classes are built);
- every operator: its template fields as Airflow stored them (references decoded), so stock
  provider operators export from their serialized fields; a field Airflow truncated
  (``[core] max_templated_field_length``) is refused by name, never exported half;
- converters are found by the import paths of the task's classes (``operator_class_paths``):
  nothing is imported from the DAG's code.

What Airflow's serialization does not keep cannot be exported; see the README ("What the
export reads from Airflow's serialized DAG").
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow.sdk.definitions._internal.types import NOTSET

from exporters.errors import DagLoadError, ExportError, Problem
from retraining.refs import TaggedValueError, from_tagged
from retraining.serialized import EXPORT_FIELD, EXPORT_FORMAT

NOT_SET_TEXT = str(NOTSET)
TRUNCATED_PREFIX = "Truncated. You can change this behaviour in [core]max_templated_field_length."


def serialize(dag: Any) -> dict[str, Any]:
    """``dag`` (parsed from its file) as the DAG processor stores it: Airflow's ``DagSerialization`` JSON."""
    from airflow.serialization.serialized_objects import DagSerialization  # Airflow's serializer: slow import

    # Through JSON text, as the metadata database holds it (tuples become lists, keys become strings).
    return json.loads(json.dumps(DagSerialization.to_dict(dag)))


def serialized_hash(data: dict[str, Any]) -> str:
    """The same hash Airflow keeps as ``SerializedDagModel.dag_hash`` for this JSON."""
    from airflow.models.serialized_dag import SerializedDagModel  # Airflow's model: slow import

    return SerializedDagModel.hash(data)


def from_serialized(data: dict[str, Any], live: Any = None) -> SerializedDagView:
    """Airflow's serialized DAG (as stored) → the DAG object the compiler and converters read.

    ``live``: the parsed DAG it was serialized from, when at hand (see ``SerializedTask``).
    """
    from airflow.serialization.serialized_objects import DagSerialization  # Airflow's deserializer: slow import

    dag_id = _dag_id_of(data)
    try:
        dag = DagSerialization.from_dict(data)
    except Exception as err:  # noqa: BLE001 - stored data we cannot read: say so, never a traceback
        raise DagLoadError(f"DAG {dag_id!r}: Airflow's serialized form cannot be read ({type(err).__name__}: {err})")
    return SerializedDagView(dag, live)


def _dag_id_of(data: Any) -> str:
    try:
        return str(data["dag"]["dag_id"])
    except (TypeError, KeyError):
        return "?"


class SerializedTask:
    """One task of a serialized DAG, with the attributes the converters read.

    Looked up in order: what Airflow stored for the exporter (our operators' ``retraining_export``,
    every operator's template fields), then Airflow's deserialized operator (retries,
    trigger_rule, upstream and downstream ids, ...). Past that, a setting Airflow does not store
    (a stock operator's ``wait_for_completion``, a sensor's ``timeout``):

    - the default: the value an operator of the task's class built from the stored fields alone
      has (``default_operator``; Airflow's own and its providers' classes only, never a DAG's own
      class: that would run DAG code);
    - with the parsed task at hand (the CLI and the Python API), its value; when that is not the
      default it is noted in ``not_kept``: the UI view cannot know it;
    - without (the UI view), the default, noted in ``assumed``.

    ``type(task).__name__`` is the task's own class name, as the compiler's messages name it.
    """

    def __init__(self, operator: Any, attributes: dict[str, Any], class_paths: list[str], live: Any = None) -> None:
        self._operator = operator
        self._live = live
        self.operator_class_paths = class_paths
        self.not_kept: dict[str, Any] = {}
        self.assumed: dict[str, Any] = {}
        self.__dict__.update(attributes)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_operator", "_live", "_probe"):
            raise AttributeError(name)
        try:
            return getattr(self._operator, name)
        except AttributeError:
            pass
        default = getattr(self.default_operator(), name, _MISSING)
        if self._live is not None:
            value = getattr(self._live, name)
            if default is _MISSING or value != default:
                self.not_kept[name] = value
            return value
        if default is _MISSING:
            raise AttributeError(name)
        self.assumed[name] = default
        return default

    @property
    def parsed(self) -> Any:
        """The parsed task this one was serialized from (the CLI and the Python API), or None (the UI view)."""
        return self._live

    def default_operator(self) -> Any:
        """The task's class built from what Airflow stored (its template fields), every other setting left default.

        Only Airflow's and its providers' installed classes are built (their constructors run no
        DAG code); ``None`` for any other class, or when the stored fields do not build one.
        """
        if "_probe" not in self.__dict__:
            self.__dict__["_probe"] = _default_operator(self)
        return self.__dict__["_probe"]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.task_id!r} (serialized)>"


def _default_operator(task: SerializedTask) -> Any:
    cls = _airflow_class(task.operator_class_paths[0])
    if cls is None:
        return None
    accepted = constructor_parameters(cls)
    stored = {f: getattr(task._operator, f, None) for f in getattr(task._operator, "template_fields", ()) or ()}
    kwargs = {k: v for k, v in stored.items() if k in accepted and v is not None}
    try:
        return cls(task_id=task.task_id, **kwargs)
    except Exception:  # noqa: BLE001 - the stored fields do not build one: no defaults to offer
        return None


def constructor_parameters(cls: type) -> set[str]:
    """Every named parameter of the constructors of ``cls`` and its bases."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            names.update(inspect.signature(init).parameters)
        except (TypeError, ValueError):
            continue
    return names


_MISSING = object()


def is_a(task: Any, cls: type) -> bool:
    """``isinstance`` for parsed tasks and for ``SerializedTask`` (by the stored class import paths)."""
    return isinstance(task, cls) or f"{cls.__module__}.{cls.__qualname__}" in getattr(task, "operator_class_paths", ())


def _is_airflows(module: str) -> bool:
    return module == "airflow" or module.startswith("airflow.")


_AIRFLOW_CLASSES: dict[str, type | None] = {}


def _airflow_class(path: str) -> type | None:
    """The class at ``path`` when it is Airflow's or a provider's, installed (never from a dags folder)."""
    if path in _AIRFLOW_CLASSES:
        return _AIRFLOW_CLASSES[path]
    found = None
    module_name, _, name = path.rpartition(".")
    if _is_airflows(module_name):
        installed = Path(importlib.util.find_spec("airflow").origin).parents[1]  # site-packages
        try:
            spec = importlib.util.find_spec(module_name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin and Path(spec.origin).resolve().is_relative_to(installed.resolve()):
            candidate = getattr(importlib.import_module(module_name), name, None)
            found = candidate if isinstance(candidate, type) else None
    _AIRFLOW_CLASSES[path] = found
    return found


_TASK_CLASSES: dict[tuple[str, str], type] = {}


def _task_class(module: str, name: str) -> type:
    """A ``SerializedTask`` subclass named like the task's class (no import: only the name is used)."""
    key = (module, name)
    cls = _TASK_CLASSES.get(key)
    if cls is None:
        safe = name if name.isidentifier() else "Operator"
        cls = type(safe, (SerializedTask,), {"__module__": module, "__qualname__": safe})
        _TASK_CLASSES[key] = cls
    return cls


def _wrap_task(op: Any, dag_id: str, live: Any = None) -> SerializedTask:
    if getattr(op, "is_mapped", False):  # .partial(...).expand(...): its operator built from partial_kwargs
        from exporters.mapping import wrap_mapped  # lazy: exporters.mapping builds on this module's classes

        return wrap_mapped(op, dag_id)
    module = str(getattr(op, "_task_module", None) or "")
    name = str(getattr(op, "task_type", None) or type(op).__name__)
    attributes: dict[str, Any] = {}
    problems: list[Problem] = []
    class_paths = [f"{module}.{name}"]
    stored = getattr(op, EXPORT_FIELD, None)
    if stored is not None:  # one of our operators: what it keeps for the exporter, whole and in order
        try:
            document = json.loads(stored) if isinstance(stored, str) else stored
            if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
                raise TaggedValueError(f"format {document.get('format') if isinstance(document, dict) else None!r}")
            paths = document.get("classes")
            stored_attributes = document.get("attributes")
            if not isinstance(paths, list) or not isinstance(stored_attributes, dict):
                raise TaggedValueError("'classes' and 'attributes' are missing")
            class_paths = [str(p) for p in paths]
            for attr, value in stored_attributes.items():
                attributes[str(attr)] = from_tagged(value)
        except (ValueError, TaggedValueError) as err:
            problems.append(
                Problem(
                    op.task_id,
                    f"its stored export attributes cannot be read ({err})",
                    "re-parse the DAG file with this version of the retraining package",
                )
            )
    for field in getattr(op, "template_fields", ()) or ():
        if field in attributes:
            continue  # kept whole in retraining_export; the template field copy may be truncated
        value = getattr(op, field, None)
        if isinstance(value, str) and value.startswith(TRUNCATED_PREFIX):
            problems.append(
                Problem(
                    op.task_id,
                    f"field {field!r} is longer than [core] max_templated_field_length: Airflow stored it truncated, "
                    "so it cannot be exported",
                    "raise [core] max_templated_field_length (where the DAG processor runs) or shorten the value",
                )
            )
            continue
        if value == NOT_SET_TEXT:  # Airflow stores an unset template field (NOTSET) as its text
            attributes[field] = NOTSET
            continue
        try:
            attributes[field] = from_tagged(value)
        except TaggedValueError as err:
            problems.append(Problem(op.task_id, f"field {field!r}: {err}"))
    if problems:
        raise ExportError(dag_id, problems)
    return _task_class(module, name)(op, attributes, class_paths, live)


class SerializedDagView:
    """Airflow's deserialized DAG with its tasks as ``SerializedTask`` objects (everything else delegated)."""

    def __init__(self, dag: Any, live: Any = None) -> None:
        self._dag = dag
        problems: list[Problem] = []
        self.task_dict: dict[str, SerializedTask] = {}
        live_tasks = getattr(live, "task_dict", {}) if live is not None else {}
        for op in dag.task_dict.values():
            try:
                self.task_dict[op.task_id] = _wrap_task(op, dag.dag_id, live_tasks.get(op.task_id))
            except ExportError as err:
                problems.extend(err.problems)
        if problems:
            raise ExportError(dag.dag_id, problems)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_dag":
            raise AttributeError(name)
        return getattr(self._dag, name)

    def not_kept_notes(self) -> list[str]:
        """Settings read from the parsed DAG that Airflow's serialized DAG does not keep (after a compile)."""
        notes = []
        for task in self.task_dict.values():
            if task.not_kept:
                settings = ", ".join(f"{name}={value!r}" for name, value in sorted(task.not_kept.items()))
                notes.append(
                    f"task {task.task_id!r} ({type(task).__name__}): {settings} not kept in Airflow's serialized DAG: "
                    "this export uses them, the Airflow UI view cannot (it shows the operator's defaults)"
                )
        return notes

    def assumed_notes(self) -> list[str]:
        """Settings Airflow's serialized DAG does not keep, read as the operator's defaults (after a compile)."""
        notes = []
        for task in self.task_dict.values():
            if task.assumed:
                settings = ", ".join(f"{name}={value!r}" for name, value in sorted(task.assumed.items()))
                notes.append(
                    f"task {task.task_id!r} ({type(task).__name__}): Airflow's serialized DAG does not keep "
                    f"{', '.join(sorted(task.assumed))}: exported with the operator's defaults ({settings}); "
                    "`python -m exporters export` reads them from the DAG file"
                )
        return notes

    @property
    def tasks(self) -> list[SerializedTask]:
        return list(self.task_dict.values())

    @property
    def task_ids(self) -> list[str]:
        return list(self.task_dict)

    def get_task(self, task_id: str) -> SerializedTask:
        return self.task_dict[task_id]

    def has_task(self, task_id: str) -> bool:
        return task_id in self.task_dict

    def topological_sort(self) -> tuple[SerializedTask, ...]:
        """Tasks in Airflow's own topological order (groups flattened), as ``DAG.topological_sort`` gives it."""
        return tuple(self.task_dict[node.task_id] for node in _nested_topo(self._dag.task_group))


def _nested_topo(group: Any) -> Iterator[Any]:
    for node in group.topological_sort():
        if hasattr(node, "children"):
            yield from _nested_topo(node)
        else:
            yield node


def load(dag: Any) -> SerializedDagView:
    """A parsed DAG through Airflow's serialization: what the DAG processor would store, read back."""
    return from_serialized(serialize(dag), live=dag)


def as_view(dag: Any) -> SerializedDagView:
    """``dag`` itself when it is already a ``SerializedDagView``, else ``load(dag)``."""
    return dag if isinstance(dag, SerializedDagView) else load(dag)
