"""Stage 5 (the rejected branch): end the run as failed with a fixed error name and cause."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from retraining.serialized import ExportSerialized


class FailRunOperator(ExportSerialized, BaseOperator):
    """End the run as failed with a fixed error name and cause (a Step Functions ``Fail`` state)."""

    ui_color = "#f4c7c3"
    export_attributes = ("error", "cause")

    def __init__(self, *, error: str, cause: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error
        self.cause = cause

    def execute(self, context: Any) -> None:
        raise AirflowFailException(f"{self.error}: {self.cause}")
