"""Export Airflow DAGs built from our operators to AWS Step Functions.

    from exporters import export, validate, graph
    definition = export("model_retraining")          # dict
    problems = validate(definition)                   # [] when valid
    svg = graph("model_retraining", fmt="svg")        # bytes

CLI: ``python -m exporters export|graph|validate ...``. Imports stay lazy: DAG
files never import this package.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__all__ = ["export", "export_result", "graph", "validate", "ExportError", "DagLoadError"]
_API = ("export", "export_result", "graph", "validate", "export_dag_object")


def __getattr__(name: str) -> Any:
    if name in _API:
        from exporters import api

        return getattr(api, name)
    if name in ("ExportError", "DagLoadError"):
        from exporters import errors

        return getattr(errors, name)
    raise AttributeError(name)


class _Package(types.ModuleType):
    """Keeps ``exporters.validate`` / ``exporters.graph`` the API functions.

    Importing the submodules of the same names (``exporters/validate.py``,
    ``exporters/graph.py``) would otherwise replace the package attributes
    with the modules; the modules stay reachable through ``sys.modules``.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _API and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
