"""Metric check: return a SageMaker training job's final metrics.

Event: ``{"TrainingJobName": "<name>"}``.
Answer: ``{"statusCode": 200, "trainingMetrics": [{"MetricName": ..., "Value": ...}],
"TrainingJobStatus": ...}``. The metrics are a list; consumers look a metric up
by ``MetricName``, never by position.

A missing or unknown job name raises an error whose type and message say what
is wrong (Lambda reports them as ``errorType`` / ``errorMessage``).
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

_sagemaker = None  # reused across warm invocations


class MissingTrainingJobName(ValueError):
    """The event has no usable ``TrainingJobName``."""


class TrainingJobNotFound(LookupError):
    """SageMaker knows no training job of that name in this account and region."""


class SageMakerUnavailable(RuntimeError):
    """DescribeTrainingJob failed for another reason (permissions, throttling)."""


def _client():
    global _sagemaker
    if _sagemaker is None:
        _sagemaker = boto3.client("sagemaker")
    return _sagemaker


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    name = event.get("TrainingJobName") if isinstance(event, dict) else None
    if not isinstance(name, str) or not name.strip():
        got = sorted(event) if isinstance(event, dict) else type(event).__name__
        raise MissingTrainingJobName(f"event needs 'TrainingJobName' (a non-empty string); got {got}")

    try:
        job = _client().describe_training_job(TrainingJobName=name)
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        message = err.response.get("Error", {}).get("Message", str(err))
        if code == "ValidationException" and ("not find" in message.lower() or "not found" in message.lower()):
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "this region"
            raise TrainingJobNotFound(f"training job {name!r} not found in {region}") from None
        raise SageMakerUnavailable(f"DescribeTrainingJob({name!r}) failed: {code}: {message}") from None
    except BotoCoreError as err:
        raise SageMakerUnavailable(f"DescribeTrainingJob({name!r}) failed: {err}") from None

    metrics = [{"MetricName": m["MetricName"], "Value": float(m["Value"])} for m in job.get("FinalMetricDataList", [])]
    return {"statusCode": 200, "trainingMetrics": metrics, "TrainingJobStatus": job["TrainingJobStatus"]}
