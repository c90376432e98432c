"""Export Airflow DAGs built from our operators to AWS Step Functions.

    from exporters import export, validate, graph
    definition = export("model_retraining")          # dict
    problems = validate(definition)                   # [] when valid
    svg = graph("model_retraining", fmt="svg")        # bytes

CLI: ``python -m exporters export|graph|validate ...``. Imports stay lazy: DAG
files never import this package.
"""

from __future__ import annotations

from typing import Any

__all__ = ["export", "export_result", "graph", "validate", "ExportError", "DagLoadError"]


def __getattr__(name: str) -> Any:
    if name in ("export", "export_result", "graph", "validate", "export_dag_object"):
        from exporters import api

        return getattr(api, name)
    if name in ("ExportError", "DagLoadError"):
        from exporters import errors

        return getattr(errors, name)
    raise AttributeError(name)
