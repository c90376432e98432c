"""Doubles for running exported state machines in moto's Step Functions interpreter.

moto's execution mode (``@mock_aws(config={"stepfunctions": {"execute_state_machine":
True}})``) runs the ASL interpreter moto took over from LocalStack
(``moto/stepfunctions/parser``). Task states call services through boto3 clients
that moto's own backends answer in-process. What it does for the integrations an
exported ``model_retraining`` uses:

- ``glue:startJobRun.sync``: implemented (StartJobRun, then GetJobRun every 0.5 s
  until the run ends; FAILED/TIMEOUT/ERROR fail the task with ``States.TaskFailed``)
  but broken in moto 5.2.5: every such task fails with ``States.Runtime``
  "'NoneType' object has no attribute 'interrupt_all'" (fixed here, see
  ``_install_interpreter``).
- ``lambda:invoke``: implemented, but moto can only run a function in Docker.
- ``aws-sdk:sagemaker:*``: implemented generically (any boto3 action), but the
  error name of a failed call comes out as ``sagemaker.sagemakerException``:
  the interpreter only knows the Pascal-case service names of DynamoDB and SFN.
  Step Functions names it ``SageMaker.SageMakerException``.
- ``sagemaker:*`` (the optimised integration): *not* implemented. The interpreter
  forwards the bare call, cannot do ``.sync`` (``createTrainingJob.sync`` fails
  with ``States.Runtime`` "Unsupported sync callback procedure" before any call)
  and reports every service error as ``States.Runtime`` instead of
  ``SageMaker.AmazonSageMakerException``.
- A ``"RoleArn.$"`` key in ``Parameters`` is lexed as the ``Credentials`` keyword
  and kept as a literal key (fixed here): CreateTrainingJob would lose its role.
- Intrinsic functions ``States.JsonMerge``, ``States.Format``, ``States.Hash``,
  ``States.ArrayGetItem`` and JSONPath filters (``[?(@.MetricName == 'x')]``)
  inside them work as in Step Functions; Choice ``NumericLessThanPath`` too.
- moto's SageMaker has no ``UpdateEndpoint`` action, silently replaces a training
  job, model, endpoint config or endpoint created under a name already in use
  (SageMaker rejects it) and gives every training job the same metrics
  (``train:progress``).
- Retry back-off uses ``time.sleep`` and Wait states really wait; every service
  call builds a new boto3 client (slow).

What :func:`installed` adds while its block runs (everything is undone afterwards):

- :class:`StateTaskServiceSageMaker`, the optimised SageMaker integration as
  Step Functions documents it, forwarding every call to moto's SageMaker:
  ``createTrainingJob[.sync]``, ``createModel``, ``createEndpointConfig``,
  ``createEndpoint``, ``updateEndpoint``; ``.sync`` polls DescribeTrainingJob;
  service errors are ``SageMaker.AmazonSageMakerException``, a failed or
  stopped job is ``States.TaskFailed`` with the job description as the cause.
- ``SageMaker`` as the error-name prefix of ``aws-sdk:sagemaker:*`` calls.
- moto's SageMaker extended: ``UpdateEndpoint`` (switches the config, or fails
  the way SageMaker does: old config keeps serving, ``FailureReason`` set);
  ``CreateTrainingJob`` rejects a name in use (``ResourceInUse``), so do
  ``CreateModel``/``CreateEndpointConfig``/``CreateEndpoint``
  (``ValidationException: Cannot create already existing ...``); training jobs
  end with the status and final metrics a test sets; endpoints can be held in a
  status (e.g. ``Creating``) to exercise the polling loop.
- Glue job runs that end ``FAILED`` for the next N runs.
- Lambda ``Invoke`` runs the real handler from ``lambda/`` in-process with the
  function's environment (the handler's own boto3 calls reach moto too); an
  exception becomes a function error, as the Lambda runtime reports it.
- A recorder of every Task attempt that reaches a service: state, resource,
  parameters (as evaluated by the interpreter), output or error.
- Scripted service errors: the next N calls to a resource are answered with a
  service error (``code``/``message``) instead of reaching moto; each
  integration turns it into its own Step Functions error name.
- A virtual clock: retry back-off and Wait states are recorded, not slept, so
  the definition runs exactly as exported (60 s intervals, 30 s polls) and
  fast, and tests can assert the delays the interpreter asked for. Real-time
  limits (``TimeoutSeconds``) still run on the wall clock, so they never fire.
- One boto3 client per service for the interpreter, and the two interpreter
  bugs above fixed.
"""

from __future__ import annotations

import copy
import datetime
import functools
import json
import threading
import traceback
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ServiceCall:
    """One Task attempt that reached a service integration."""

    state: str
    resource: str
    parameters: dict[str, Any]
    output: Any = None
    error: str | None = None
    cause: str | None = None

    @property
    def action(self) -> str:
        """``glue:startJobRun.sync``, ``sagemaker:createModel``, ``aws-sdk:sagemaker:describeEndpoint`` ..."""
        return self.resource.split(":::", 1)[-1]


@dataclass
class Doubles:
    """Knobs and records of the doubles for one test."""

    calls: list[ServiceCall] = field(default_factory=list)
    retry_delays: list[tuple[str, float]] = field(default_factory=list)  # (state, seconds) asked by a retrier
    waits: list[tuple[str, float]] = field(default_factory=list)  # (state, seconds) of Wait states
    # SageMaker
    training_status: str = "Completed"
    training_failure_reason: str | None = None
    training_metrics: dict[str, float] = field(default_factory=lambda: {"train:error": 0.03, "validation:error": 0.05})
    endpoint_status: str | None = None  # hold every endpoint in this status (e.g. "Creating")
    endpoint_update_failure: str | None = None
    # Glue
    glue_runs_to_fail: int = 0
    glue_error_message: str = "Job run failed"
    # Scripted service errors, by action ("sagemaker:createModel")
    _scripted: dict[str, deque] = field(default_factory=lambda: defaultdict(deque))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def calls_to(self, action: str) -> list[ServiceCall]:
        """The calls whose action (resource after ``arn:aws:states:::``) is ``action``."""
        return [c for c in self.calls if c.action == action]

    def actions(self) -> list[str]:
        return [c.action for c in self.calls]

    def fail_calls(
        self, action: str, times: int, code: str = "ThrottlingException", message: str = "Rate exceeded"
    ) -> None:
        """Answer the next ``times`` calls to ``action`` with a service error instead of calling moto."""
        for _ in range(times):
            self._scripted[action].append((code, message))

    def _take_scripted(self, action: str) -> tuple[str, str] | None:
        with self._lock:
            queue = self._scripted.get(action)
            return queue.popleft() if queue else None

    def virtual_wait_seconds(self) -> float:
        return sum(seconds for _, seconds in self.waits)

    def reset(self) -> None:
        """Default knobs, no records (the installed doubles keep this object)."""
        fresh = Doubles()
        with self._lock:
            for name in self.__dataclass_fields__:
                if name != "_lock":
                    setattr(self, name, getattr(fresh, name))


# --------------------------------------------------------------------------------------------
# The optimised SageMaker integration
# --------------------------------------------------------------------------------------------

# Optimised SageMaker APIs Step Functions supports, and those it can run .sync.
SAGEMAKER_ACTIONS = {
    "createEndpoint",
    "createEndpointConfig",
    "createHyperParameterTuningJob",
    "createLabelingJob",
    "createModel",
    "createProcessingJob",
    "createTrainingJob",
    "createTransformJob",
    "updateEndpoint",
}
TRAINING_TERMINAL = {"Completed", "Failed", "Stopped"}


def _epoch_millis(value: Any) -> Any:
    """Step Functions reports the timestamps of a service answer as epoch milliseconds."""
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {k: _epoch_millis(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_epoch_millis(v) for v in value]
    return value


@functools.cache
def _sagemaker_model():
    import botocore.session

    return botocore.session.get_session().get_service_model("sagemaker")


@functools.cache
def _sagemaker_request_members(api_action: str) -> frozenset[str]:
    operation = _sagemaker_model().operation_model(api_action[0].upper() + api_action[1:])
    return frozenset(operation.input_shape.members)


def _sagemaker_service_class():
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.utils import boto_client
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    class StateTaskServiceSageMaker(StateTaskServiceCallback):
        """``arn:aws:states:::sagemaker:<action>[.sync]`` answered by moto's SageMaker."""

        def __init__(self):
            super().__init__(supported_integration_patterns={ResourceCondition.Sync})

        def _get_supported_parameters(self) -> set[str] | None:
            # None: the interpreter rejects the definition ("resource not recognized").
            if self.resource.api_action not in SAGEMAKER_ACTIONS:
                return None
            return _sagemaker_request_members(self.resource.api_action)

        def _eval_parameters(self, env) -> dict:
            # The interpreter drops parameters an integration does not know; Step Functions rejects
            # them. Fail loudly, so a misspelt or mis-parsed field cannot go unnoticed.
            parameters = {}
            if self.parargs is not None:
                self.parargs.eval(env=env)
                parameters = env.stack.pop()
            unknown = sorted(set(parameters) - _sagemaker_request_members(self.resource.api_action))
            if unknown:
                raise ValueError(f"SageMaker {self.resource.api_action} has no parameter(s) {unknown}")
            return parameters

        def _validate_service_integration_is_supported(self):
            super()._validate_service_integration_is_supported()
            condition = self.resource.condition
            if condition is not None and condition != ResourceCondition.Sync:
                raise ValueError(f"{self.resource.resource_arn}: SageMaker has no .{condition} integration")
            if condition == ResourceCondition.Sync and not self.resource.api_action.endswith("Job"):
                raise ValueError(f"{self.resource.resource_arn}: only SageMaker job APIs can run .sync")

        def _client(self, resource_runtime_part, state_credentials):
            return boto_client.boto_client_for(
                service="sagemaker", region=resource_runtime_part.region, state_credentials=state_credentials
            )

        def _from_error(self, env, ex):
            if isinstance(ex, ClientError):
                error = "SageMaker.AmazonSageMakerException"
                meta = ex.response.get("ResponseMetadata", {})
                cause = (
                    f"{ex.response['Error'].get('Message', '')} (Service: AmazonSageMaker; "
                    f"Status Code: {meta.get('HTTPStatusCode', 400)}; Error Code: {ex.response['Error'].get('Code')}; "
                    f"Request ID: {meta.get('RequestId', '')}; Proxy: null)"
                )
                return FailureEvent(
                    env=env,
                    error_name=CustomErrorName(error),
                    event_type=HistoryEventType.TaskFailed,
                    event_details=EventDetails(
                        taskFailedEventDetails=TaskFailedEventDetails(
                            error=error,
                            cause=cause,
                            resource=self._get_sfn_resource(),
                            resourceType=self._get_sfn_resource_type(),
                        )
                    ),
                )
            return super()._from_error(env=env, ex=ex)

        def _eval_service_task(self, env, resource_runtime_part, normalised_parameters, state_credentials):
            client = self._client(resource_runtime_part, state_credentials)
            response = getattr(client, self._get_boto_service_action())(**normalised_parameters)
            response.pop("ResponseMetadata", None)
            env.stack.append(_epoch_millis(response))

        def _build_sync_resolver(self, env, resource_runtime_part, normalised_parameters, state_credentials):
            if self.resource.api_action != "createTrainingJob":
                raise RuntimeError(f"sfn_doubles: .sync of {self.resource.api_action} is not implemented")
            env.stack.pop()  # the CreateTrainingJob answer
            client = self._client(resource_runtime_part, state_credentials)
            name = normalised_parameters["TrainingJobName"]

            def resolve():
                job = client.describe_training_job(TrainingJobName=name)
                job.pop("ResponseMetadata", None)
                job = _epoch_millis(job)
                status = job["TrainingJobStatus"]
                if status not in TRAINING_TERMINAL:
                    return None
                if status == "Completed":
                    return job
                raise FailureEventException(
                    FailureEvent(
                        env=env,
                        error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                        event_type=HistoryEventType.TaskFailed,
                        event_details=EventDetails(
                            taskFailedEventDetails=TaskFailedEventDetails(
                                error=StatesErrorNameType.StatesTaskFailed.to_name(),
                                cause=to_json_str(job),
                                resource=self._get_sfn_resource(),
                                resourceType=self._get_sfn_resource_type(),
                            )
                        ),
                    )
                )

            return resolve

    return StateTaskServiceSageMaker


# --------------------------------------------------------------------------------------------
# Installation
# --------------------------------------------------------------------------------------------


def _error_name_of(task, env, ex) -> tuple[str | None, str | None]:
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEventException

    try:
        if isinstance(ex, FailureEventException):
            pair = ex.extract_error_cause_pair()
        else:
            pair = FailureEventException(task._from_error(env=env, ex=ex)).extract_error_cause_pair()
        return pair or (type(ex).__name__, str(ex))
    except Exception:  # noqa: BLE001 - never let the recorder change the outcome
        return type(ex).__name__, str(ex)


def _string_expression(text: str):
    """The sampler the preprocessor builds for the value of a ``"<field>.$"`` binding."""
    from moto.stepfunctions.parser.asl.component.common.string.string_expression import (
        StringContextPath,
        StringIntrinsicFunction,
        StringJsonPath,
    )
    from moto.stepfunctions.parser.asl.parse.intrinsic.intrinsic_parser import IntrinsicParser

    if text.startswith("$$"):
        return StringContextPath(context_object_path=text)
    if text.startswith("$"):
        return StringJsonPath(json_path=text)
    function, _ = IntrinsicParser.parse(text)
    return StringIntrinsicFunction(intrinsic_function_derivation=text, function=function)


def _install_interpreter(mp: pytest.MonkeyPatch, doubles: Doubles) -> None:
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.asl.component.common.payload.payloadvalue.payloadbinding.payload_binding import (
        PayloadBindingStringExpressionSimple,
    )
    from moto.stepfunctions.parser.asl.component.common.payload.payloadvalue.payloadvaluelit.payload_value_str import (
        PayloadValueStr,
    )
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.exec import execute_state
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils, state_task_factory
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service,
        state_task_service_aws_sdk,
        state_task_service_callback,
        state_task_service_glue,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function
    from moto.stepfunctions.parser.asl.parse import preprocessor
    from moto.stepfunctions.parser.asl.utils import boto_client

    # The optimised SageMaker integration.
    sagemaker_service = _sagemaker_service_class()
    original_factory = state_task_factory.state_task_service_for

    def state_task_service_for(service_name: str):
        if service_name == "sagemaker":
            return sagemaker_service()
        return original_factory(service_name=service_name)

    mp.setattr(state_task_factory, "state_task_service_for", state_task_service_for)

    # aws-sdk error names: "SageMaker.<Name>Exception", not "sagemaker.sagemakerException".
    mp.setitem(state_task_service_aws_sdk._SERVICE_ERROR_NAMES, "sagemaker", "SageMaker")

    # moto 5.2.5 bug: the lexer reads "RoleArn.$" as the keyword of Credentials.RoleArn.$, so in a
    # Parameters block it becomes a literal key "RoleArn.$" holding the path text; an integration
    # then drops it as an unknown parameter (CreateTrainingJob loses its RoleArn). Bind it as the
    # path (or intrinsic function) it is.
    original_binding_value = preprocessor.Preprocessor.visitPayload_binding_value

    def visitPayload_binding_value(self, ctx):
        binding = original_binding_value(self, ctx)
        if binding.field.endswith(".$") and isinstance(binding.payload_value, PayloadValueStr):
            return PayloadBindingStringExpressionSimple(
                field=binding.field[:-2], string_expression_simple=_string_expression(binding.payload_value.val)
            )
        return binding

    mp.setattr(preprocessor.Preprocessor, "visitPayload_binding_value", visitPayload_binding_value)

    # One boto3 client per (region, service) instead of a new one per call: same calls, faster.
    original_client_for = boto_client.boto_client_for
    clients: dict[tuple[str, str], Any] = {}

    def boto_client_for(region: str, service: str, state_credentials: Any = None):
        with doubles._lock:
            if (region, service) not in clients:
                clients[(region, service)] = original_client_for(
                    region=region, service=service, state_credentials=state_credentials
                )
            return clients[(region, service)]

    for module in (boto_client, lambda_eval_utils, state_task_service_glue, state_task_service_aws_sdk):
        mp.setattr(module, "boto_client_for", boto_client_for)

    # Record every Task attempt; answer scripted failures.
    base = state_task_service.StateTaskService
    original_before = base._before_eval_execution
    original_execution = base._eval_execution

    def _before_eval_execution(self, env, resource_runtime_part, raw_parameters, state_credentials):
        original_before(self, env, resource_runtime_part, raw_parameters, state_credentials)
        call = ServiceCall(
            state=self.name, resource=self.resource.resource_arn, parameters=copy.deepcopy(raw_parameters)
        )
        self._sfn_doubles_call = call
        with doubles._lock:
            doubles.calls.append(call)
        scripted = doubles._take_scripted(call.action)
        if scripted is not None:
            code, message = scripted
            raise ClientError(
                {
                    "Error": {"Code": code, "Message": message},
                    "ResponseMetadata": {"HTTPStatusCode": 400, "RequestId": "sfn-doubles-scripted"},
                },
                self._get_boto_service_action(),
            )

    def _eval_execution(self, env):
        self._sfn_doubles_call = None
        try:
            original_execution(self, env)
        except Exception as ex:
            call = self._sfn_doubles_call
            if call is not None:
                call.error, call.cause = _error_name_of(self, env, ex)
            raise
        call = self._sfn_doubles_call
        if call is not None:
            call.output = copy.deepcopy(env.stack[-1])

    mp.setattr(base, "_before_eval_execution", _before_eval_execution)
    mp.setattr(base, "_eval_execution", _eval_execution)

    # moto 5.2.5 bug: _eval_integration_pattern ends with callback_endpoint.interrupt_all() in a
    # finally block, but the endpoint is None for an integration that has .sync and no
    # .waitForTaskToken (Glue; our SageMaker double): every glue:startJobRun.sync then fails with
    # States.Runtime "'NoneType' object has no attribute 'interrupt_all'". The same steps, without
    # the callback endpoint such integrations cannot have.
    callback = state_task_service_callback.StateTaskServiceCallback
    original_integration_pattern = callback._eval_integration_pattern

    def _eval_integration_pattern(self, env, resource_runtime_part, normalised_parameters, state_credentials):
        if ResourceCondition.WaitForTaskToken in self._supported_integration_patterns or self.heartbeat:
            return original_integration_pattern(
                self, env, resource_runtime_part, normalised_parameters, state_credentials
            )
        self.timeout.eval(env=env)
        timeout_seconds = env.stack.pop()  # the task's output stays on the stack for the resolver
        build = (
            self._build_sync_resolver
            if self.resource.condition == ResourceCondition.Sync
            else self._build_sync2_resolver
        )
        resolver = build(env, resource_runtime_part, normalised_parameters, state_credentials)
        outcome = self._eval_sync(
            env=env,
            sync_resolver=resolver,
            timeout_seconds=timeout_seconds,
            callback_endpoint=None,
            heartbeat_endpoint=None,
        )
        env.stack.append(outcome)

    mp.setattr(callback, "_eval_integration_pattern", _eval_integration_pattern)

    # Virtual clock: record retry back-off and Wait states instead of sleeping.
    current = threading.local()
    original_handle_retry = execute_state.ExecutionState._handle_retry

    def _handle_retry(self, env, failure_event):
        current.state = self.name
        try:
            return original_handle_retry(self, env, failure_event)
        finally:
            current.state = None

    def _sleep(seconds: float) -> None:
        with doubles._lock:
            doubles.retry_delays.append((getattr(current, "state", None), seconds))

    def _wait_interval(self, env, wait_seconds):
        name = env.states.context_object.context_object_data.get("State", {}).get("Name")
        with doubles._lock:
            doubles.waits.append((name, wait_seconds))

    mp.setattr(execute_state.ExecutionState, "_handle_retry", _handle_retry)
    mp.setattr(retrier_decl, "time", SimpleNamespace(sleep=_sleep))
    mp.setattr(wait_function.WaitFunction, "_wait_interval", _wait_interval)


def _install_sagemaker(mp: pytest.MonkeyPatch, doubles: Doubles) -> None:
    from moto.sagemaker import models
    from moto.sagemaker.exceptions import ValidationError

    from tests.aws_doubles import sagemaker_patches

    backend_cls = models.SageMakerModelBackend

    def unique(method: str, name_arg: str, registry: str, kind: str, label: str):
        # SageMaker refuses to create a model, endpoint config or endpoint under a name in use.
        original = getattr(backend_cls, method)

        def create(self, *args, **kwargs):
            name = kwargs[name_arg] if name_arg in kwargs else args[0]
            if name in getattr(self, registry):
                arn = f"arn:aws:sagemaker:{self.region_name}:{self.account_id}:{kind}/{name.lower()}"
                raise ValidationError(message=f'Cannot create already existing {label} "{arn}".')
            return original(self, *args, **kwargs)

        mp.setattr(backend_cls, method, create)

    unique("create_model", "model_name", "_models", "model", "model")
    unique(
        "create_endpoint_config",
        "endpoint_config_name",
        "endpoint_configs",
        "endpoint-config",
        "endpoint configuration",
    )
    unique("create_endpoint", "endpoint_name", "endpoints", "endpoint", "endpoint")
    for owner, attribute, value in sagemaker_patches(doubles):
        mp.setattr(owner, attribute, value, raising=False)


def _install_glue(mp: pytest.MonkeyPatch, doubles: Doubles) -> None:
    from moto.glue import models

    original_start = models.GlueBackend.start_job_run

    def start_job_run(self, name, *args, **kwargs):
        run_id = original_start(self, name, *args, **kwargs)
        with doubles._lock:
            fail = doubles.glue_runs_to_fail > 0
            if fail:
                doubles.glue_runs_to_fail -= 1
        if fail:
            run = self.get_job_run(name, run_id)
            run.status = "FAILED"  # a terminal state outside moto's transitions: it stays
            original_as_dict = run.as_dict
            run.as_dict = lambda: {**original_as_dict(), "ErrorMessage": doubles.glue_error_message}
        return run_id

    mp.setattr(models.GlueBackend, "start_job_run", start_job_run)


def _install_lambda(mp: pytest.MonkeyPatch) -> None:
    from moto.awslambda import models

    from tests.aws_doubles import _function_environment, _load_handler

    def invoke(self, function_name, qualifier, body, headers, response_headers):
        fn = self.get_function(function_name, qualifier)
        handler = _load_handler(fn.handler)
        event = json.loads(body) if body else {}
        env = dict(fn.environment_vars or {})
        env.setdefault("AWS_REGION", self.region_name)
        try:
            with _function_environment(env):
                payload = json.dumps(handler(event, None)).encode()
        except Exception as err:  # noqa: BLE001 - what the Lambda runtime does with an unhandled exception
            response_headers["x-amz-function-error"] = "Unhandled"
            payload = json.dumps(
                {
                    "errorMessage": str(err),
                    "errorType": type(err).__name__,
                    "stackTrace": traceback.format_tb(err.__traceback__),
                }
            ).encode()
        return payload

    mp.setattr(models.LambdaBackend, "invoke", invoke)


@contextmanager
def installed() -> Iterator[Doubles]:
    """Install every double for the duration of the block (use inside ``mock_aws``)."""
    from tests import aws_doubles

    doubles = Doubles()
    with pytest.MonkeyPatch.context() as mp:
        # aws_doubles patches moto for the whole session once a test used the moto server, and its
        # knobs keep what the last such test set (e.g. endpoints that end Failed): neutral ones here.
        mp.setattr(aws_doubles, "outcomes", aws_doubles.Outcomes())
        _install_interpreter(mp, doubles)
        _install_sagemaker(mp, doubles)
        _install_glue(mp, doubles)
        _install_lambda(mp)
        yield doubles
