"""Export Airflow DAGs built from our operators to AWS Step Functions.

    from exporters import export, validate, graph
    definition = export("model_retraining")          # dict
    problems = validate(definition)                   # [] when valid
    svg = graph("model_retraining", fmt="svg")        # bytes

CLI: ``python -m exporters export|graph|validate|deploy|...`` (installed: ``airflow-stepfunctions``).
DAG files never import this package (it depends on the authoring package, not the other way round).
"""

from __future__ import annotations

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
