"""Any AWS API call as a stage: the request is plain data for one boto3 action.

``AwsSdkCallOperator(task_id=..., service="s3", action="PutObject", request={...})``
calls the action through the provider's ``AwsBaseHook`` client in Airflow; the exporter
turns the same object into Step Functions' ``arn:aws:states:::aws-sdk:<service>:<action>``
integration. The request takes the same references as every stage (``ParamRef``,
``ResultRef``, ``Format``, ``RunUniqueName``).

``action`` may be spelt as the API names it (``PutObject``), as boto3 does (``put_object``)
or as Step Functions does (``putObject``); it is checked against the service's API model
when the task runs or is exported, and an unknown one is named with the nearest actions.
"""

from __future__ import annotations

import base64
import datetime
import functools
import re
from collections.abc import Sequence
from typing import Any

from retraining.base import AwsStageOperator, StageFailed, pick_fields

_SERVICE_RE = re.compile(r"^[a-z][a-z0-9-]*$")
_ACTION_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class UnknownAwsAction(ValueError):
    """The service's API model has no such action (or there is no such service)."""


class AwsSdkCallOperator(AwsStageOperator):
    """Call one AWS API action with ``request`` as its parameters; the result is the answer.

    :param service: the boto3 client name (``s3``, ``sagemaker``, ``glue``, ``dynamodb`` ...).
    :param action: the API action (``PutObject``, ``put_object`` or ``putObject``).
    :param request: the action's parameters, as the API names them, with references allowed.
    :param result_fields: dotted fields of the answer to keep (all of it when empty). The
        answer passes through Step Functions' state data (256 KiB at most): keep what
        downstream tasks read. A field missing from the answer fails the task (as Step
        Functions' ``ResultSelector`` does), so name only fields the action always returns.

    The answer is made JSON-safe the way Step Functions returns it: no ``ResponseMetadata``,
    streamed bodies read as text, timestamps as ISO 8601 strings.
    """

    ui_color = "#eef2d7"
    export_attributes = (*AwsStageOperator.export_attributes, "service", "action")

    def __init__(
        self,
        *,
        service: str,
        action: str,
        request: dict[str, Any] | None = None,
        result_fields: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        request = {} if request is None else request
        task_id = kwargs.get("task_id", "?")
        if not isinstance(service, str) or not _SERVICE_RE.match(service):
            raise ValueError(f"task {task_id!r}: service {service!r} is not a boto3 client name (e.g. 's3')")
        if not isinstance(action, str) or not _ACTION_RE.match(action):
            raise ValueError(f"task {task_id!r}: action {action!r} is not an API action name (e.g. 'PutObject')")
        if not isinstance(request, dict) or not all(isinstance(k, str) for k in request):
            raise ValueError(f"task {task_id!r}: request must be a dict of the action's parameters")
        super().__init__(request=request, **kwargs)
        self.service = service
        self.action = action
        self.result_fields = tuple(result_fields)

    @property
    def aws_hook_kwargs(self) -> dict[str, Any]:
        return {"client_type": self.service}

    def execute(self, context: Any) -> Any:
        client = self.hook.get_conn()
        try:
            operation = operation_name(client.meta.service_model, self.action)
        except UnknownAwsAction as err:
            raise StageFailed(f"task {self.task_id!r}: {err}") from None
        method = {api: python for python, api in client.meta.method_to_api_mapping.items()}[operation]
        self.log.info("Calling %s %s", self.service, operation)
        answer = getattr(client, method)(**self.request)
        return sdk_result(answer, self.result_fields)


def operation_name(service_model: Any, action: str) -> str:
    """The API's own name of ``action`` (``put_object``/``putObject``/``PutObject`` → ``PutObject``)."""
    wanted = action.replace("_", "").lower()
    by_key = {name.lower(): name for name in service_model.operation_names}
    if wanted in by_key:
        return by_key[wanted]
    near = sorted(name for name in service_model.operation_names if wanted[:6] in name.lower())[:8]
    hint = f"; similar: {', '.join(near)}" if near else ""
    raise UnknownAwsAction(f"{service_model.service_name} has no API action {action!r}{hint}")


@functools.cache
def service_model(service: str) -> Any:
    """botocore's model of ``service`` (no client, no credentials)."""
    import botocore.session  # heavy: only when a task runs or is exported
    from botocore.exceptions import UnknownServiceError

    try:
        return botocore.session.get_session().get_service_model(service)
    except UnknownServiceError:
        raise UnknownAwsAction(f"{service!r} is not an AWS service boto3 knows") from None


def sdk_result(answer: Any, result_fields: Sequence[str] = ()) -> Any:
    """An API answer as Step Functions passes it on: JSON values only, no ResponseMetadata."""
    if isinstance(answer, dict):
        answer = {k: v for k, v in answer.items() if k != "ResponseMetadata"}
    answer = _json_value(answer)
    if result_fields and isinstance(answer, dict):
        kept = pick_fields(answer, result_fields)
        missing = [f for f in result_fields if _absent(kept, f)]
        if missing:
            # Step Functions' ResultSelector fails on an absent field too: fail alike, naming it.
            raise StageFailed(f"the answer has no field(s) {missing} (it has {sorted(answer)})")
        return kept
    return answer


def _absent(value: Any, dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return True
        value = value[part]
    return False


def _json_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if hasattr(value, "read"):  # a streamed body (S3 GetObject): Step Functions returns it as text
        value = value.read()
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode()
        except UnicodeDecodeError:
            return base64.b64encode(bytes(value)).decode()
    if isinstance(value, float) or value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)  # Decimal (DynamoDB) and other scalars
