"""What our operators keep in Airflow's serialized DAG, so the exporter never needs the DAG file.

Airflow stores a DAG's tasks as JSON (the DAG processor writes it; the API server and the
scheduler read only that). Template fields are stored key-sorted and, past ``[core]
max_templated_field_length``, redacted and truncated; other operator attributes are not stored
at all. So each of our operators also stores ``retraining_export``: one JSON text with the
attributes the exporter reads (``export_attributes``: the request with its references, the
metric rule, ...) in the exact tagged form of ``retraining.refs.to_tagged`` (order kept, never
truncated), and the import paths of its classes (the exporter finds a converter by them
without importing anything).
"""

from __future__ import annotations

import json

from retraining.refs import to_tagged

EXPORT_FIELD = "retraining_export"
EXPORT_FORMAT = 1


def class_paths(cls: type) -> list[str]:
    """``module.QualName`` of ``cls`` and of its bases, nearest first (the converters' lookup order)."""
    return [f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__ if c is not object]


class ExportSerialized:
    """Mixin for an operator: store ``export_attributes`` in the serialized DAG (``EXPORT_FIELD``)."""

    export_attributes: tuple[str, ...] = ()

    @classmethod
    def get_serialized_fields(cls) -> frozenset[str]:
        return super().get_serialized_fields() | {EXPORT_FIELD}  # type: ignore[misc]

    @property
    def retraining_export(self) -> str:
        document = {
            "format": EXPORT_FORMAT,
            "classes": class_paths(type(self)),
            "attributes": {name: to_tagged(getattr(self, name, None)) for name in self.export_attributes},
        }
        return json.dumps(document, separators=(",", ":"))
