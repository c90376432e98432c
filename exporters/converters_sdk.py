"""Step Functions' AWS SDK integration: ``arn:aws:states:::aws-sdk:<service>:<action>``.

``sdk_state`` builds the Task state for one API call; the generic ``AwsSdkCallOperator``
converts through it, and so do the stock operators whose ``execute()`` is one API call
(the S3 operators, the sensors' checks). The action is checked against botocore's model
of the service, so a misspelt action or parameter fails the export naming the task,
never the first execution.
"""

from __future__ import annotations

from typing import Any

from exporters import asl
from exporters.converters import ConvertContext, Fragment, Unsupported, register, selector_from_fields
from exporters.iam_sdk import SFN_NAMES
from retraining.aws_sdk import AwsSdkCallOperator, UnknownAwsAction, operation_name, service_model

SDK_PREFIX = "arn:aws:states:::aws-sdk:"
# Actions whose answers would put secrets into the state data, the execution history and logs.
SECRET_ACTIONS = {
    ("secretsmanager", "GetSecretValue"),
    ("ssm", "GetParameter"),
    ("ssm", "GetParameters"),
    ("ssm", "GetParametersByPath"),
    ("sts", "AssumeRole"),
    ("sts", "GetSessionToken"),
    ("iam", "CreateAccessKey"),
    ("kms", "Decrypt"),
    ("kms", "GenerateDataKey"),
}


def sdk_resource(service: str, action: str) -> str:
    """The integration ARN for boto3 client ``service`` and API action ``action`` (checked)."""
    operation = sdk_operation(service, action)
    return SDK_PREFIX + f"{SFN_NAMES.get(service, service)}:{operation[0].lower()}{operation[1:]}"


def sdk_operation(service: str, action: str) -> str:
    """The API's name of ``action`` (``PutObject``); ``Unsupported`` when the service has none."""
    try:
        operation = operation_name(service_model(service), action)
    except UnknownAwsAction as err:
        raise Unsupported(str(err), "give a boto3 client name and one of its API actions") from None
    if (service, operation) in SECRET_ACTIONS:
        raise Unsupported(
            f"{service}:{operation} returns secrets: Step Functions would keep them in the state data and history",
            "read the secret inside the service that needs it (e.g. a Glue job or Lambda function)",
        )
    return operation


def check_parameters(service: str, operation: str, request: dict[str, Any]) -> None:
    """Every top-level request key is a parameter of the action (Step Functions rejects others)."""
    members = service_model(service).operation_model(operation).input_shape
    known = set(members.members) if members is not None else set()
    unknown = sorted(k for k in request if k not in known)
    if unknown:
        raise Unsupported(
            f"{service} {operation} has no parameter(s) {unknown}",
            f"use the API's parameter names: {', '.join(sorted(known)) or 'none'}",
        )


def sdk_state(
    task: Any,
    ctx: ConvertContext,
    service: str,
    action: str,
    request: dict[str, Any],
    *,
    name: str | None = None,
    result_selector: dict[str, Any] | None = None,
    result_path: Any = ...,
) -> asl.Task:
    """A Task state calling ``service``'s ``action`` with ``request`` (references translated)."""
    operation = sdk_operation(service, action)
    check_parameters(service, operation, request)
    return ctx.task_state(
        task,
        sdk_resource(service, operation),
        ctx.parameters(task, request),
        name=name,
        result_selector=result_selector,
        result_path=result_path,
    )


@register(AwsSdkCallOperator)
def convert_aws_sdk_call(task: AwsSdkCallOperator, ctx: ConvertContext) -> Fragment:
    fields = tuple(task.result_fields)
    state = sdk_state(
        task,
        ctx,
        task.service,
        task.action,
        task.request,
        result_selector=selector_from_fields(fields) if fields else None,
    )
    top = frozenset(f.split(".")[0] for f in fields) if fields else None
    # The answer (or the fields kept) is the task's result in both: task.output is kept whole.
    return Fragment.single(state, ctx.layout(task, fields=top, whole=()))
