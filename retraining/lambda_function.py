"""Invoke a Lambda function synchronously and keep its JSON answer (stage 3: the metric check)."""

from __future__ import annotations

import json
from typing import Any

from retraining.base import AwsStageOperator, HookClass, StageFailed
from retraining.links import LambdaFunctionLink


class LambdaInvokeOperator(AwsStageOperator):
    """Synchronously ``Invoke`` a Lambda function with a JSON payload; the result is its JSON answer.

    A function error (the handler raised) fails the task with the function's
    own ``errorType: errorMessage``.
    """

    aws_hook_class = HookClass("airflow.providers.amazon.aws.hooks.lambda_function.LambdaHook")
    ui_color = "#fde8c8"
    operator_extra_links = (LambdaFunctionLink(),)

    def __init__(self, *, function_name: Any, payload: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(request={"FunctionName": function_name, "Payload": payload}, **kwargs)

    def execute(self, context: Any) -> Any:
        function_name = self.request["FunctionName"]
        response = self.hook.invoke_lambda(
            function_name=function_name,
            invocation_type="RequestResponse",
            payload=json.dumps(self.request["Payload"]),
        )
        raw = response["Payload"].read()
        if response.get("FunctionError"):
            raise StageFailed(f"Lambda function {function_name!r} failed: {describe_function_error(raw)}")
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            raise StageFailed(f"Lambda function {function_name!r} returned non-JSON: {raw[:200]!r}") from None
        self.log.info("Lambda function %s answered: %s", function_name, answer)
        return answer


def describe_function_error(raw: bytes) -> str:
    """``errorType: errorMessage`` from a Lambda error payload (never its stack trace)."""
    try:
        error = json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")[:500]
    if isinstance(error, dict) and "errorMessage" in error:
        kind = error.get("errorType")
        return f"{kind}: {error['errorMessage']}" if kind else str(error["errorMessage"])
    return str(error)[:500]


# The name this operator had before it was recognised as a generic invoke; DAGs written then keep working.
LambdaMetricCheckOperator = LambdaInvokeOperator
