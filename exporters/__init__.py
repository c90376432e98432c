"""Export Airflow DAGs built from our operators to AWS Step Functions.

    from exporters import export, validate, graph
    definition = export("model_retraining")          # dict
    problems = validate(definition)                   # [] when valid
    svg = graph("model_retraining", fmt="svg")        # bytes

CLI: ``python -m exporters export|graph|validate|deploy|...`` (installed: ``airflow-stepfunctions``).
DAG files never import this package (it depends on the authoring package, not the other way round).
"""

from __future__ import annotations

import sys
import types
from typing import Any

from exporters.api import export, export_dag_object, export_result, graph, validate
from exporters.errors import DagLoadError, ExporterError, ExportError

__all__ = [
    "DagLoadError",
    "ExportError",
    "ExporterError",
    "export",
    "export_dag_object",
    "export_result",
    "graph",
    "validate",
]
# Names shared by an API function and a submodule (exporters/validate.py, exporters/graph.py).
_SHADOWED = ("graph", "validate")


class _Package(types.ModuleType):
    """Keeps ``exporters.validate`` / ``exporters.graph`` the API functions.

    Importing the submodules of the same names would otherwise replace the package attributes
    with the modules (the import system sets them); the modules stay reachable through ``sys.modules``.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
