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

import json
from collections.abc import Iterator
from typing import Any

from exporters.errors import DagLoadError, ExportError, Problem
from retraining.refs import TaggedValueError, from_tagged
from retraining.serialized import EXPORT_FIELD, EXPORT_FORMAT

# Settings of stock operators that the converters read but Airflow's serialization does not keep
# (they are not template fields): the export can only assume their defaults, and says so.
NOT_SERIALIZED_SETTINGS: dict[str, dict[str, Any]] = {
    "airflow.providers.amazon.aws.operators.glue.GlueJobOperator": {"wait_for_completion": True},
    "airflow.providers.amazon.aws.operators.sagemaker.SageMakerTrainingOperator": {"wait_for_completion": True},
    "airflow.providers.amazon.aws.operators.sagemaker.SageMakerEndpointOperator": {
        "check_interval": 30,
        "operation": "create",
        "wait_for_completion": True,
    },
}
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


def from_serialized(data: dict[str, Any]) -> SerializedDagView:
    """Airflow's serialized DAG (as stored) → the DAG object the compiler and converters read."""
    from airflow.serialization.serialized_objects import DagSerialization  # Airflow's deserializer: slow import

    dag_id = _dag_id_of(data)
    try:
        dag = DagSerialization.from_dict(data)
    except Exception as err:  # noqa: BLE001 - stored data we cannot read: say so, never a traceback
        raise DagLoadError(f"DAG {dag_id!r}: Airflow's serialized form cannot be read ({type(err).__name__}: {err})")
    return SerializedDagView(dag)


def _dag_id_of(data: Any) -> str:
    try:
        return str(data["dag"]["dag_id"])
    except (TypeError, KeyError):
        return "?"


class SerializedTask:
    """One task of a serialized DAG, with the attributes the converters read.

    Anything not set here is read from Airflow's deserialized operator (retries, trigger_rule,
    upstream and downstream ids, ...). ``type(task).__name__`` is the task's own class name, as
    the compiler's messages name it.
    """

    def __init__(self, operator: Any, attributes: dict[str, Any], class_paths: list[str]) -> None:
        self._operator = operator
        self.operator_class_paths = class_paths
        self.__dict__.update(attributes)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_operator":
            raise AttributeError(name)
        return getattr(self._operator, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.task_id!r} (serialized)>"


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


def _wrap_task(op: Any, dag_id: str) -> SerializedTask:
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
        try:
            attributes[field] = from_tagged(value)
        except TaggedValueError as err:
            problems.append(Problem(op.task_id, f"field {field!r}: {err}"))
    if problems:
        raise ExportError(dag_id, problems)
    return _task_class(module, name)(op, attributes, class_paths)


class SerializedDagView:
    """Airflow's deserialized DAG with its tasks as ``SerializedTask`` objects (everything else delegated)."""

    def __init__(self, dag: Any) -> None:
        self._dag = dag
        problems: list[Problem] = []
        self.task_dict: dict[str, SerializedTask] = {}
        for op in dag.task_dict.values():
            try:
                self.task_dict[op.task_id] = _wrap_task(op, dag.dag_id)
            except ExportError as err:
                problems.extend(err.problems)
        if problems:
            raise ExportError(dag.dag_id, problems)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_dag":
            raise AttributeError(name)
        return getattr(self._dag, name)

    def assumed_defaults(self) -> list[str]:
        """One line per stock task whose settings Airflow's serialized DAG does not keep (defaults assumed)."""
        notes = []
        for task in self.task_dict.values():
            lost = NOT_SERIALIZED_SETTINGS.get(task.operator_class_paths[0])
            if lost:
                settings = ", ".join(f"{name}={value!r}" for name, value in lost.items())
                notes.append(
                    f"task {task.task_id!r} ({type(task).__name__}): Airflow's serialized DAG does not keep "
                    f"{', '.join(lost)}; exported as if {settings} (the operator's defaults)"
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
    return from_serialized(serialize(dag))


def as_view(dag: Any) -> SerializedDagView:
    """``dag`` itself when it is already a ``SerializedDagView``, else ``load(dag)``."""
    return dag if isinstance(dag, SerializedDagView) else load(dag)
