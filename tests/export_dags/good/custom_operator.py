"""A DAG with a team's own operator: exportable only once a converter is registered for it (the extension point)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, BaseOperator, Param

from retraining import ParamRef


class PublishEventOperator(BaseOperator):
    """Put one event on an EventBridge bus (the request is plain data, like our stage operators)."""

    # Template fields are what Airflow's serialized DAG keeps of an operator: the exporter reads them there.
    template_fields = ("bus", "detail_type", "detail")

    def __init__(self, *, bus: Any, detail_type: str, detail: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bus = bus
        self.detail_type = detail_type
        self.detail = detail

    def execute(self, context: Any) -> None:  # pragma: no cover - never run by the export tests
        raise NotImplementedError


with DAG(dag_id="custom_operator", schedule=None, params={"bus": Param("default", type="string")}) as custom_operator:
    PublishEventOperator(task_id="publish", bus=ParamRef("bus"), detail_type="ModelDeployed", detail={"model": "churn"})
