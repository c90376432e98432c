"""What every AWS-facing stage operator shares: a declarative request, its provider hook, polling.

Like the Amazon provider's ``AwsBaseOperator``, each stage names its hook class (``aws_hook_class``)
and reaches AWS through a cached ``hook`` property built from the stage's connection and region.
Unlike it, the hook class is named by import path and imported on first use: the provider's hook
modules import boto3 (about 300 ms), which parsing a DAG file must not pay.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowNotFoundException

from retraining.mapping import MappedPartial
from retraining.refs import Ref, ResultRef, find_jinja, iter_refs
from retraining.serialized import ExportSerialized
from retraining.settings import BACKEND_SETTING, backend_choice, local_conn_id


class StageFailed(AirflowException):
    """The AWS resource a stage started ended in a failed state; the message says why."""


class HookClass:
    """A class attribute naming a hook class by import path; reading it imports the class (once)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._class: type | None = None

    def __get__(self, instance: Any, owner: type) -> type:
        if self._class is None:
            module, name = self.path.rsplit(".", 1)
            self._class = getattr(importlib.import_module(module), name)
        return self._class


class AwsStageOperator(ExportSerialized, BaseOperator):
    """A stage whose whole AWS request is plain data held on the operator.

    ``request`` is the API request (e.g. ``CreateTrainingJob``) with literals and
    references (``ParamRef``, ``ResultRef``, ``Format``, ``RunUniqueName``). Airflow
    resolves the references when it renders ``template_fields``; the exporter
    reads the unresolved request to build the equivalent Step Functions state.
    """

    template_fields: Sequence[str] = ("request",)
    # The provider hook this stage talks to AWS through (each stage names its own).
    aws_hook_class: type = HookClass("airflow.providers.amazon.aws.hooks.base_aws.AwsBaseHook")
    # Fields of the result kept for downstream tasks (dotted paths). The XCom
    # value has exactly these, so Airflow and Step Functions pass the same data.
    result_fields: tuple[str, ...] = ()
    ui_color = "#f7e8d0"
    # Kept in Airflow's serialized DAG for the exporter (see retraining.serialized).
    export_attributes = ("request", "result_fields", "api_action", "aws_conn_id", "region_name", "poll_interval")
    # .partial(...) keeps the operator's own arguments for the exporter (Airflow stores references as text).
    partial = MappedPartial.classmethod_for()

    def __init__(
        self,
        *,
        request: dict[str, Any],
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        poll_interval: float = 30,
        max_wait_seconds: float | None = None,
        retraining_partial: str | None = None,  # set by .partial(...) for the exporter; nothing to do at run time
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        jinja_paths = find_jinja(request)
        if jinja_paths:
            raise ValueError(
                f"task {self.task_id!r}: request field(s) {', '.join(jinja_paths)} contain Jinja; "
                "stage requests take only literals and ParamRef(...), ResultRef(...), Format(...) or "
                "RunUniqueName(...) references, so the exporter can translate them"
            )
        self.request = request
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.poll_interval = poll_interval
        self.max_wait_seconds = max_wait_seconds

    def connection_id(self) -> str | None:
        """The Airflow connection this run talks to: AWS, or the local backend standing in for it."""
        choice = backend_choice()
        local = local_conn_id()
        if choice == "aws":
            return self.aws_conn_id
        if choice == "local":
            return local
        if choice != "auto":
            raise AirflowException(f"{BACKEND_SETTING}={choice!r}: use aws, local or auto")
        if self.aws_conn_id is None or _connection_exists(self.aws_conn_id):
            return self.aws_conn_id
        if _connection_exists(local):
            self.log.info("No connection %r: using the local backend (%s)", self.aws_conn_id, local)
            return local
        raise AirflowException(
            f"task {self.task_id!r}: no Airflow connection {self.aws_conn_id!r} for AWS and no {local!r} "
            "for the local backend; add an AWS connection, or run the pipeline locally with `make run`"
        )

    @property
    def aws_hook_kwargs(self) -> dict[str, Any]:
        """Arguments of ``aws_hook_class`` besides the connection and region (none by default)."""
        return {}

    @cached_property
    def hook(self) -> Any:
        """The provider hook for this run's connection (AWS, or the local backend) and region."""
        return self.aws_hook_class(
            aws_conn_id=self.connection_id(), region_name=self.region_name, **self.aws_hook_kwargs
        )

    @property
    def references(self) -> list[Ref]:
        return list(iter_refs(self.request))

    @property
    def upstream_results_used(self) -> list[str]:
        """Tasks whose results this stage reads (each must be upstream of it: the exporter checks)."""
        return sorted({ref.task_id for ref in iter_refs(self.request) if isinstance(ref, ResultRef)})

    def wait_for(
        self,
        describe: Callable[[], dict[str, Any]],
        status_key: str,
        pending: set[str],
        what: str,
    ) -> dict[str, Any]:
        """Poll ``describe`` until ``status_key`` leaves the pending states; return the last answer."""
        started = time.monotonic()
        attempt = 0
        while True:
            answer = describe()
            status = answer[status_key]
            if status not in pending:
                return answer
            waited = time.monotonic() - started
            if self.max_wait_seconds is not None and waited > self.max_wait_seconds:
                raise StageFailed(
                    f"{what} still {status} after {int(waited)} s (max_wait_seconds={self.max_wait_seconds})"
                )
            self.log.info("%s is %s (%d s)", what, status, int(waited))
            # Short waits first (quick resources finish quickly), then every poll_interval.
            time.sleep(min(self.poll_interval, 2**attempt))
            attempt += 1


def _connection_exists(conn_id: str) -> bool:
    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    return True


def pick_fields(answer: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """Keep only the dotted ``fields`` of an AWS answer, preserving nesting."""
    kept: dict[str, Any] = {}
    for dotted in fields:
        parts = dotted.split(".")
        value: Any = answer
        for part in parts:
            if not isinstance(value, dict) or part not in value:
                value = None
                break
            value = value[part]
        if value is None:
            continue
        target = kept
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return kept
