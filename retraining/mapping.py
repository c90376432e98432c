"""Dynamic task mapping of our operators: per-candidate names and hyperparameters, checked at parse time.

``SageMakerTrainingJobOperator.partial(task_id=..., request=...).expand(hyperparameters=[{...}, {...}])``
trains one candidate per item. Each mapped try suffixes its job name with ``-<map_index>`` (the
export does the same with ``$$.Map.Item.Index``), so the names stay unique per candidate; the
longest suffixed name is checked against SageMaker's 63-character limit when the DAG is parsed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from airflow.sdk import BaseOperator
from airflow.sdk.bases.operator import partial as airflow_partial
from airflow.sdk.configuration import conf
from airflow.sdk.definitions.mappedoperator import MappedOperator, OperatorPartial

from retraining.refs import RUN_SUFFIX_LEN, SAGEMAKER_NAME_MAX, Ref, RunUniqueName, to_tagged

# Airflow's [core] max_map_length default: the most items a mapped task may have (so the longest index).
DEFAULT_MAX_MAP_LENGTH = 1024
# The partial keyword that keeps a mapped task's own arguments for the exporter (see MappedPartial).
PARTIAL_FIELD = "retraining_partial"
PARTIAL_FORMAT = 1


def map_index_of(context: Any) -> int | None:
    """This try's map index, or None when the task is not mapped (Airflow gives -1 then)."""
    index = getattr(context["ti"], "map_index", -1)
    return index if isinstance(index, int) and index >= 0 else None


def with_map_index(task_id: str, name: Any, map_index: int) -> str:
    """``name-<map_index>``, refused when it is not a valid SageMaker name length."""
    if not isinstance(name, str):
        raise ValueError(f"task {task_id!r}: request field 'TrainingJobName' must be a string, not {name!r}")
    suffixed = f"{name}-{map_index}"
    if len(suffixed) > SAGEMAKER_NAME_MAX:
        raise ValueError(
            f"task {task_id!r}: request field 'TrainingJobName' with the map index suffix ({suffixed!r}) is "
            f"{len(suffixed)} characters; SageMaker allows {SAGEMAKER_NAME_MAX}: shorten the name prefix"
        )
    return suffixed


def check_hyperparameters(task_id: str, hyperparameters: Any) -> None:
    """SageMaker takes hyperparameters as a map of strings to strings (references allowed as values)."""
    if hyperparameters is None or isinstance(hyperparameters, Ref):
        return
    if not isinstance(hyperparameters, Mapping):
        raise ValueError(
            f"task {task_id!r}: hyperparameters must be a dict of str to str, not {type(hyperparameters).__name__}"
        )
    for key, value in hyperparameters.items():
        if not isinstance(key, str) or not isinstance(value, (str, Ref)):
            raise ValueError(
                f"task {task_id!r}: hyperparameters[{key!r}] = {value!r}: SageMaker takes string keys and "
                "string values (write numbers as strings, e.g. '0.2')"
            )


def longest_name(name: Any) -> int | None:
    """The longest a job name can be in Airflow or in the export, when known at parse time."""
    if isinstance(name, str):
        return len(name)
    if isinstance(name, RunUniqueName) and isinstance(name.prefix, str):
        return len(name.prefix) + RUN_SUFFIX_LEN  # the export's suffix is the longer one
    return None


def max_map_length() -> int:
    return conf.getint("core", "max_map_length", fallback=DEFAULT_MAX_MAP_LENGTH)


def partial_document(operator_class: type, kwargs: dict[str, Any]) -> str:
    """The operator's own arguments of a ``.partial(...)`` in the tagged JSON form the exporter reads.

    Airflow serializes a mapped task's ``partial_kwargs`` with ``str()`` for objects it does not
    know (our references), so they are kept here too, whole, as ``retraining_export`` keeps them.
    """
    base = set(BaseOperator.__init__._BaseOperatorMeta__param_names)
    own = {k: to_tagged(v) for k, v in kwargs.items() if k not in base and k != PARTIAL_FIELD}
    document = {"format": PARTIAL_FORMAT, "class": f"{operator_class.__module__}.{operator_class.__qualname__}"}
    return json.dumps({**document, "kwargs": own}, separators=(",", ":"))


@attrs.define(kw_only=True, repr=False)
class MappedPartial(OperatorPartial):
    """``Operator.partial(...)`` of our operators: keeps their arguments for the exporter (``PARTIAL_FIELD``);
    with ``name_field``, ``expand``/``expand_kwargs`` check the suffixed names and hyperparameters."""

    name_field: str | None = None

    @classmethod
    def classmethod_for(cls, name_field: str | None = None) -> classmethod:
        def partial(operator_class: type, **kwargs: Any) -> MappedPartial:
            kwargs[PARTIAL_FIELD] = partial_document(operator_class, kwargs)
            plain = airflow_partial(operator_class, **kwargs)
            plain._expand_called = True  # replaced by the checking partial below (no "never mapped" warning)
            return cls(
                operator_class=plain.operator_class, kwargs=plain.kwargs, params=plain.params, name_field=name_field
            )

        return classmethod(partial)

    def expand(self, **mapped_kwargs: Any) -> MappedOperator:
        self._check(mapped_kwargs, _count(mapped_kwargs))
        return super().expand(**mapped_kwargs)

    def expand_kwargs(self, kwargs: Any, *, strict: bool = True) -> MappedOperator:
        literal = isinstance(kwargs, Sequence) and all(isinstance(item, Mapping) for item in kwargs)
        if literal:
            for item in kwargs:
                self._check(dict(item), len(kwargs))
        else:
            self._check({}, None)
        return super().expand_kwargs(kwargs, strict=strict)

    def _check(self, mapped: dict[str, Any], count: int | None) -> None:
        if self.name_field is None:
            return
        try:
            self._check_names(mapped, count)
        except ValueError:
            self._expand_called = True  # refused with its reason: no "never mapped" warning on top
            raise

    def _check_names(self, mapped: dict[str, Any], count: int | None) -> None:
        task_id = self.kwargs.get("task_id", "?")
        count = max_map_length() if count is None else count
        hyperparameters = mapped.get("hyperparameters", self.kwargs.get("hyperparameters"))
        for value in hyperparameters if isinstance(hyperparameters, list) else [hyperparameters]:
            if isinstance(value, (Mapping, type(None), Ref)):
                check_hyperparameters(task_id, value)
        request = mapped.get("request", self.kwargs.get("request"))
        for one in request if isinstance(request, list) else [request]:
            length = longest_name(one.get(self.name_field)) if isinstance(one, Mapping) else None
            if length is None:
                continue
            suffix = len(f"-{max(count - 1, 0)}")
            if length + suffix > SAGEMAKER_NAME_MAX:
                raise ValueError(
                    f"task {task_id!r}: request field {self.name_field!r} can be {length} characters and a mapped "
                    f"task adds '-<map_index>' (up to {suffix} for {count} items): over SageMaker's "
                    f"{SAGEMAKER_NAME_MAX}-character limit; shorten the name prefix"
                )


def _count(mapped_kwargs: dict[str, Any]) -> int | None:
    """How many mapped tries a literal expand makes (the product of the list lengths); None when not known."""
    total = 1
    for value in mapped_kwargs.values():
        if not isinstance(value, (list, tuple, dict)):
            return None
        total *= len(value)
    return total
