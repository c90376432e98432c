"""Pick the best of several SageMaker training jobs by a validation metric (lower is better).

Event: ``{"TrainingJobNames": ["<name>", ...], "MetricName": "validation:error"}`` (the names in
map-index order, as a mapped training task's results arrive downstream).
Answer: ``{"statusCode": 200, "TrainingJobName": <best>, "BestIndex": <its position>,
"ModelArtifacts": "s3://.../model.tar.gz", "TrainingImage": ..., "metrics": [{"MetricName": ...,
"Value": ...}], "Candidates": [{"TrainingJobName": ..., "Value": ...}]}``. ``metrics`` is the best
job's final metrics in the list shape the metric rule reads (as the metric-check function returns them).

The best job has the lowest value of ``MetricName``; a tie goes to the lowest position. Every job
must exist, have completed and report the metric, otherwise the invocation fails with an error whose
type and message name the job (Lambda reports them as ``errorType`` / ``errorMessage``).
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

# Enough for any hyperparameter sweep a retraining run fans out; bounds the DescribeTrainingJob calls.
MAX_CANDIDATES = 100
SAGEMAKER_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
METRIC_NAME = re.compile(r"[^\n]{1,255}")

_sagemaker = None  # reused across warm invocations


class InvalidCandidates(ValueError):
    """The event's ``TrainingJobNames`` or ``MetricName`` is missing or malformed."""


class TrainingJobNotFound(LookupError):
    """SageMaker knows no training job of that name in this account and region."""


class CandidateNotCompleted(RuntimeError):
    """A candidate's training job did not complete."""


class MetricNotReported(LookupError):
    """A candidate's job reported no (numeric) value for the metric."""


class SageMakerUnavailable(RuntimeError):
    """DescribeTrainingJob failed for another reason (permissions, throttling)."""


def _client():
    global _sagemaker
    if _sagemaker is None:
        _sagemaker = boto3.client("sagemaker")
    return _sagemaker


def _candidate_names(event: Any) -> tuple[list[str], str]:
    if not isinstance(event, dict):
        raise InvalidCandidates(f"event must be a JSON object, not {type(event).__name__}")
    names = event.get("TrainingJobNames")
    if not isinstance(names, list) or not names:
        raise InvalidCandidates(f"event needs 'TrainingJobNames' (a non-empty list of job names); got {names!r:.200}")
    if len(names) > MAX_CANDIDATES:
        raise InvalidCandidates(f"TrainingJobNames has {len(names)} jobs; at most {MAX_CANDIDATES} are compared")
    for index, name in enumerate(names):
        if not isinstance(name, str) or not SAGEMAKER_NAME.fullmatch(name):
            raise InvalidCandidates(
                f"TrainingJobNames[{index}] = {name!r:.100} is not a SageMaker training job name "
                "(1-63 letters, digits and inner hyphens)"
            )
    if len(set(names)) != len(names):
        raise InvalidCandidates("TrainingJobNames lists a job more than once")
    metric = event.get("MetricName")
    if not isinstance(metric, str) or not METRIC_NAME.fullmatch(metric):
        raise InvalidCandidates(f"event needs 'MetricName' (e.g. 'validation:error'); got {metric!r:.100}")
    return names, metric


def _describe(name: str) -> dict[str, Any]:
    try:
        return _client().describe_training_job(TrainingJobName=name)
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        message = err.response.get("Error", {}).get("Message", str(err))
        if code == "ValidationException" and ("not find" in message.lower() or "not found" in message.lower()):
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "this region"
            raise TrainingJobNotFound(f"training job {name!r} not found in {region}") from None
        raise SageMakerUnavailable(f"DescribeTrainingJob({name!r}) failed: {code}: {message}") from None
    except BotoCoreError as err:
        raise SageMakerUnavailable(f"DescribeTrainingJob({name!r}) failed: {err}") from None


def _metric(job: dict[str, Any], metric: str) -> float:
    name = job["TrainingJobName"]
    reported = {m.get("MetricName"): m.get("Value") for m in job.get("FinalMetricDataList") or []}
    value = reported.get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        shown = sorted(str(k) for k in reported) or "no metrics"
        raise MetricNotReported(f"training job {name!r} reported no numeric {metric!r}; it reported: {shown}")
    return float(value)


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    names, metric = _candidate_names(event)
    jobs, values = [], []
    for name in names:
        job = _describe(name)
        if job.get("TrainingJobStatus") != "Completed":
            raise CandidateNotCompleted(f"training job {name!r} is {job.get('TrainingJobStatus')}, not Completed")
        if not (job.get("ModelArtifacts") or {}).get("S3ModelArtifacts"):
            raise CandidateNotCompleted(f"training job {name!r} completed without model artifacts")
        values.append(_metric(job, metric))
        jobs.append(job)
    best = min(range(len(jobs)), key=lambda index: (values[index], index))
    job = jobs[best]
    return {
        "statusCode": 200,
        "TrainingJobName": job["TrainingJobName"],
        "BestIndex": best,
        "ModelArtifacts": job["ModelArtifacts"]["S3ModelArtifacts"],
        "TrainingImage": job.get("AlgorithmSpecification", {}).get("TrainingImage"),
        "metrics": [
            {"MetricName": m["MetricName"], "Value": float(m["Value"])} for m in job.get("FinalMetricDataList", [])
        ],
        "Candidates": [{"TrainingJobName": n, "Value": v} for n, v in zip(names, values, strict=True)],
    }
