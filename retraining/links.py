"""Operator extra links: buttons on a task instance that open what the task started.

Airflow 3 evaluates the links declared on an operator class (``operator_extra_links``) in the
worker when the task ends, successful or not, and keeps each URL in XCom (key
``_link_<ClassName>``); the UI reads it from there. So ``get_link`` runs next to the task: it
reads the task's result (the dict the operator returned, XCom ``return_value``) and, when the
task failed before returning one, what the operator kept on itself (the rendered request, the
run id it started).

- AWS runs: the AWS console page, in the region of the task's AWS connection (or the
  operator's ``region_name``), on the console domain of that region's partition.
- Local-backend runs (connection ``retraining_local``): the endpoint link opens the local
  endpoint's status page (``GET <local backend>/endpoints/<name>``); the other stages have no
  page there, so their links stay empty (the UI greys them out).

Import-light on purpose: DAG files import this module through the operators.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar
from urllib.parse import quote

from airflow.sdk import BaseHook, BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom

from retraining.settings import DEFAULT_LOCAL_URL, local_conn_id

log = logging.getLogger(__name__)

PARTITION_DOMAINS = {"aws": "aws.amazon.com", "aws-cn": "amazonaws.cn", "aws-us-gov": "amazonaws-us-gov.com"}


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def console_url(region: str, service_path: str, fragment: str) -> str:
    """``https://console.<domain>/<service_path>?region=<region>#<fragment>`` (the provider's link format)."""
    domain = PARTITION_DOMAINS[partition_of(region)]
    return f"https://console.{domain}/{service_path}?region={quote(region, safe='')}#{fragment}"


def _segment(value: str) -> str:
    return quote(value, safe="")


def _text(value: Any) -> str | None:
    """A rendered name, or None (a reference not rendered yet, a missing field)."""
    return value if isinstance(value, str) and value else None


def task_result(ti_key: Any) -> dict[str, Any]:
    """The dict the task returned (XCom ``return_value``); empty when it returned none (e.g. it failed)."""
    value = XCom.get_value(ti_key=ti_key, key="return_value")
    return value if isinstance(value, dict) else {}


def aws_region(conn_id: str | None, region_name: str | None) -> str | None:
    """The region the task talked to: the operator's ``region_name``, else its AWS connection's."""
    if region_name:
        return region_name
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook  # imports boto3: not at DAG parse

    hook = AwsBaseHook(aws_conn_id=conn_id, client_type="sts")
    return hook.region_name or hook.get_session().region_name


def local_backend_url() -> str:
    """The local backend's base URL, from the ``retraining_local`` connection (default 127.0.0.1:4599)."""
    try:
        extra = BaseHook.get_connection(local_conn_id()).extra_dejson
    except Exception:  # noqa: BLE001 - no connection: the default port
        extra = {}
    return str(extra.get("endpoint_url") or DEFAULT_LOCAL_URL).rstrip("/")


class StageConsoleLink(BaseOperatorLink):
    """A console link for one kind of AWS resource a stage creates or runs."""

    name: ClassVar[str] = ""

    def identify(self, operator: Any, result: dict[str, Any]) -> dict[str, str] | None:
        """The names the URL needs (from the result, else the operator), or None when unknown."""
        raise NotImplementedError

    def aws_link(self, region: str, ids: dict[str, str]) -> str:
        raise NotImplementedError

    def local_link(self, base_url: str, ids: dict[str, str]) -> str:
        return ""

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        try:
            ids = self.identify(operator, task_result(ti_key))
            if not ids:
                return ""
            conn_id = operator.connection_id()
            if conn_id == local_conn_id():
                return self.local_link(local_backend_url(), ids)
            region = aws_region(conn_id, getattr(operator, "region_name", None))
            return self.aws_link(region, ids) if region else ""
        except Exception:  # noqa: BLE001 - a link must never fail the task
            log.warning("No %r link for task %s", self.name, getattr(operator, "task_id", "?"), exc_info=True)
            return ""


class GlueJobRunLink(StageConsoleLink):
    name = "AWS Glue job run"

    def identify(self, operator: Any, result: dict[str, Any]) -> dict[str, str] | None:
        job = _text(result.get("JobName")) or _text(operator.request.get("JobName"))
        run = _text(result.get("JobRunId")) or _text(getattr(operator, "_job_run_id", None))
        return {"job": job, "run": run} if job and run else None

    def aws_link(self, region: str, ids: dict[str, str]) -> str:
        return console_url(region, "gluestudio/home", f"/job/{_segment(ids['job'])}/run/{_segment(ids['run'])}")


class _SageMakerLink(StageConsoleLink):
    result_field: ClassVar[str] = ""
    console_fragment: ClassVar[str] = ""

    def identify(self, operator: Any, result: dict[str, Any]) -> dict[str, str] | None:
        name = _text(result.get(self.result_field)) or _text(operator.request.get(self.result_field))
        return {"name": name} if name else None

    def aws_link(self, region: str, ids: dict[str, str]) -> str:
        return console_url(region, "sagemaker/home", f"/{self.console_fragment}/{_segment(ids['name'])}")


class TrainingJobLink(_SageMakerLink):
    name = "SageMaker training job"
    result_field = "TrainingJobName"
    console_fragment = "jobs"


class ModelLink(_SageMakerLink):
    name = "SageMaker model"
    result_field = "ModelName"
    console_fragment = "models"


class EndpointConfigLink(_SageMakerLink):
    name = "SageMaker endpoint config"
    result_field = "EndpointConfigName"
    console_fragment = "endpointConfig"


class EndpointLink(_SageMakerLink):
    name = "SageMaker endpoint"
    result_field = "EndpointName"
    console_fragment = "endpoints"

    def local_link(self, base_url: str, ids: dict[str, str]) -> str:
        return f"{base_url}/endpoints/{_segment(ids['name'])}"


class LambdaFunctionLink(StageConsoleLink):
    name = "Lambda function"

    def identify(self, operator: Any, result: dict[str, Any]) -> dict[str, str] | None:
        name = _text(operator.request.get("FunctionName"))
        return {"name": name} if name else None

    def aws_link(self, region: str, ids: dict[str, str]) -> str:
        return console_url(region, "lambda/home", f"/functions/{_segment(ids['name'])}")
