"""A moto server for the test session, with the few behaviours moto lacks added at the service boundary.

Every AWS call in the tests goes over HTTP to this server. moto is extended,
never bypassed, where it cannot express what a test needs:

- SageMaker ``UpdateEndpoint`` (moto has no such action): switches the config,
  or, when told to fail, keeps the old config serving with a ``FailureReason``
  (what SageMaker does when an update fails). New endpoints can be told to end
  ``Failed`` with a ``FailureReason``.
- ``CreateTrainingJob`` with a name already in use is rejected with SageMaker's
  own ``ResourceInUse`` error (moto would silently replace the job);
  ``CreateModel``/``CreateEndpointConfig``/``CreateEndpoint`` likewise with
  ``ValidationException: Cannot create already existing ...`` (the message
  Airflow's ``SageMakerEndpointOperator`` looks for to fall back to an update).
- Training jobs and Glue job runs end the way a test asks (failed with a reason,
  final metrics such as ``validation:error``); moto otherwise always succeeds.
- Lambda ``Invoke`` runs the real handler from ``lambda/`` in-process (moto would
  need Docker), with the function's environment applied, and reports a raised
  exception as a function error exactly like Lambda: ``X-Amz-Function-Error:
  Unhandled`` and an ``errorType``/``errorMessage``/``stackTrace`` payload.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import threading
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LAMBDA_DIR = ROOT / "lambda"


@dataclass
class Outcomes:
    """What the next training jobs / Glue runs / endpoint updates do. Reset per test."""

    training_status: str = "Completed"
    training_failure_reason: str | None = None
    training_metrics: dict[str, float] = field(default_factory=lambda: {"validation:error": 0.05, "train:error": 0.03})
    glue_state: str = "SUCCEEDED"
    glue_error_message: str | None = None
    endpoint_update_failure: str | None = None
    endpoint_create_failure: str | None = None  # new endpoints end Failed with this FailureReason


outcomes = Outcomes()
_env_lock = threading.Lock()


def reset_outcomes() -> None:
    global outcomes
    fresh = Outcomes()
    for name in fresh.__dataclass_fields__:
        setattr(outcomes, name, getattr(fresh, name))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_installed = False


def install() -> None:
    """Patch moto's backends (in this process: ThreadedMotoServer shares them), once per process.

    Done at session start (conftest): a test that patches moto for itself (tests/sfn_doubles.py) then
    restores these patches, not moto's originals, whatever order a pytest worker runs the files in."""
    global _installed
    if _installed:
        return
    _installed = True
    _install_sagemaker()
    _install_glue()
    _install_lambda()


def sagemaker_patches(outcomes: Any) -> list[tuple[Any, str, Any]]:
    """What moto's SageMaker needs to behave like SageMaker for our tests: ``(owner, attribute, value)``.

    ``outcomes`` says how the next training jobs end (``training_status``, ``training_failure_reason``,
    ``training_metrics``), whether an endpoint update fails (``endpoint_update_failure``) and,
    optionally, a status every endpoint reports (``endpoint_status``). Shared by these moto-server
    doubles and by ``sfn_doubles`` (moto's ASL interpreter), which applies them with a monkeypatch.
    """
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.sagemaker import models, responses
    from moto.sagemaker.exceptions import ResourceInUseException, ValidationError

    original_create_training_job = models.SageMakerModelBackend.create_training_job

    def create_training_job(self, training_job_name, *args, **kwargs):
        if training_job_name in self.training_jobs:  # moto would silently replace it
            arn = models.FakeTrainingJob.arn_formatter(training_job_name, self.account_id, self.region_name)
            raise ResourceInUseException(
                "Training job names must be unique within an AWS account and region, "
                f"and a training job with this name already exists ({arn})"
            )
        return original_create_training_job(self, training_job_name, *args, **kwargs)

    original_job_init = models.FakeTrainingJob.__init__

    def training_job_init(self, *args, **kwargs):
        original_job_init(self, *args, **kwargs)
        self.training_job_status = self.secondary_status = outcomes.training_status
        self.failure_reason = outcomes.training_failure_reason
        self.final_metric_data_list = [
            {"MetricName": k, "Value": v, "Timestamp": self.creation_time} for k, v in outcomes.training_metrics.items()
        ]

    original_job_response = models.FakeTrainingJob.response_object.fget

    def training_job_response(self):
        answer = original_job_response(self)
        if getattr(self, "failure_reason", None):
            answer["FailureReason"] = self.failure_reason
        return answer

    original_endpoint_response = models.FakeEndpoint.response_object.fget

    def endpoint_response(self):
        answer = original_endpoint_response(self)
        if getattr(outcomes, "endpoint_status", None):
            answer["EndpointStatus"] = outcomes.endpoint_status
        if getattr(self, "failure_reason", None):
            answer["FailureReason"] = self.failure_reason
        return answer

    def update_endpoint(self):  # moto has no UpdateEndpoint
        backend = self.sagemaker_backend
        name, config = self._get_param("EndpointName"), self._get_param("EndpointConfigName")
        if name not in backend.endpoints:
            arn = models.FakeEndpoint.arn_formatter(name, backend.account_id, backend.region_name)
            raise ValidationError(message=f"Could not find endpoint '{arn}'.")
        if config not in backend.endpoint_configs:
            raise ValidationError(message=f"Could not find endpoint configuration '{config}'.")
        endpoint = backend.endpoints[name]
        if outcomes.endpoint_update_failure:
            endpoint.failure_reason = outcomes.endpoint_update_failure  # the old config keeps serving
        else:
            endpoint.endpoint_config_name = config
            endpoint.production_variants = backend.endpoint_configs[config].production_variants
            endpoint.failure_reason = None
        endpoint.endpoint_status = "InService"
        endpoint.last_modified_time = str(utcnow())
        return ActionResult({"EndpointArn": endpoint.arn})

    def unique(method: str, name_arg: str, registry: str, kind: str, label: str):
        # SageMaker refuses to create a model, endpoint config or endpoint under a name in use; moto replaces it.
        original = getattr(models.SageMakerModelBackend, method)

        def create(self, *args, **kwargs):
            name = kwargs[name_arg] if name_arg in kwargs else args[0]
            if name in getattr(self, registry):
                arn = f"arn:aws:sagemaker:{self.region_name}:{self.account_id}:{kind}/{name.lower()}"
                raise ValidationError(message=f'Cannot create already existing {label} "{arn}".')
            return original(self, *args, **kwargs)

        return (models.SageMakerModelBackend, method, create)

    return [
        unique("create_model", "model_name", "_models", "model", "model"),
        unique(
            "create_endpoint_config",
            "endpoint_config_name",
            "endpoint_configs",
            "endpoint-config",
            "endpoint configuration",
        ),
        unique("create_endpoint", "endpoint_name", "endpoints", "endpoint", "endpoint"),
        (models.SageMakerModelBackend, "create_training_job", create_training_job),
        (models.FakeTrainingJob, "__init__", training_job_init),
        (models.FakeTrainingJob, "response_object", property(training_job_response)),
        (models.FakeEndpoint, "response_object", property(endpoint_response)),
        (responses.SageMakerResponse, "update_endpoint", update_endpoint),
    ]


def _install_sagemaker() -> None:
    from moto.sagemaker import models

    original_endpoint_init = models.FakeEndpoint.__init__

    def endpoint_init(self, *args, **kwargs):
        original_endpoint_init(self, *args, **kwargs)
        if outcomes.endpoint_create_failure:
            self.endpoint_status = "Failed"
            self.failure_reason = outcomes.endpoint_create_failure

    models.FakeEndpoint.__init__ = endpoint_init
    for owner, attribute, value in sagemaker_patches(outcomes):
        setattr(owner, attribute, value)


def _install_glue() -> None:
    from moto.glue import models

    original_init = models.FakeJobRun.__init__
    original_as_dict = models.FakeJobRun.as_dict

    def job_run_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self._final_state = outcomes.glue_state
        self._error_message = outcomes.glue_error_message

    managed_status = models.FakeJobRun.status

    def status(self):
        current = managed_status.fget(self)
        if current == "SUCCEEDED" and self._final_state != "SUCCEEDED":
            self._status = current = self._final_state
        return current

    def as_dict(self):
        answer = original_as_dict(self)
        if (
            self._error_message
            and answer["JobRunState"] != "SUCCEEDED"
            and answer["JobRunState"] in ("FAILED", "TIMEOUT", "ERROR", "STOPPED")
        ):
            answer["ErrorMessage"] = self._error_message
        return answer

    models.FakeJobRun.__init__ = job_run_init
    models.FakeJobRun.status = property(status, managed_status.fset)
    models.FakeJobRun.as_dict = as_dict


def _load_handler(handler: str):
    module_name, func_name = handler.rsplit(".", 1)
    path = LAMBDA_DIR / f"{module_name}.py"
    spec = importlib.util.spec_from_file_location(f"lambda_{module_name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # fresh module: a cold start per invocation
    return getattr(module, func_name)


@contextmanager
def _function_environment(variables: dict[str, str]):
    with _env_lock:
        saved = {k: os.environ.get(k) for k in variables}
        os.environ.update(variables)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _install_lambda() -> None:
    from moto.awslambda import models

    def invoke(self, function_name, qualifier, body, headers, response_headers):
        fn = self.get_function(function_name, qualifier)
        handler = _load_handler(fn.handler)
        event = json.loads(body) if body else {}
        env = dict(fn.environment_vars or {})
        env.setdefault("AWS_REGION", self.region_name)
        try:
            with _function_environment(env):
                answer = handler(event, None)
            payload = json.dumps(answer).encode()
        except Exception as err:  # noqa: BLE001 - what the Lambda runtime does with an unhandled exception
            response_headers["x-amz-function-error"] = "Unhandled"
            payload = json.dumps(
                {
                    "errorMessage": str(err),
                    "errorType": type(err).__name__,
                    "stackTrace": traceback.format_tb(err.__traceback__),
                }
            ).encode()
        response_headers["Content-Length"] = str(len(payload))
        return payload

    models.LambdaBackend.invoke = invoke
