"""moto's ASL interpreter (LocalStack's) with every service call answered by the local backend over HTTP.

The interpreter runs the exported definition unchanged. What :func:`interpreter` adds while its block runs
(everything is restored afterwards), pinned to the moto version it was checked against:

- Service clients: every boto3 client the interpreter builds talks to the local backend's endpoint URL
  (one client per service, reused).
- The optimised SageMaker integration (``arn:aws:states:::sagemaker:<action>[.sync]``), which moto lacks,
  as Step Functions documents it: the request-response actions forward the call; ``createTrainingJob.sync``
  calls CreateTrainingJob, then polls DescribeTrainingJob until ``Completed``/``Failed``/``Stopped``;
  ``Failed``/``Stopped`` fail the task with ``States.TaskFailed`` and the job description as the cause (as
  ``glue:startJobRun.sync`` does in the interpreter); a service error is ``SageMaker.AmazonSageMakerException``.
- ``aws-sdk:sagemaker:*`` errors named ``SageMaker.<Code>`` (moto names them ``sagemaker.<code>``).
- moto 5.2.5 bugs fixed: ``.sync`` without ``.waitForTaskToken`` (Glue) ends with a ``States.Runtime``
  "'NoneType' object has no attribute 'interrupt_all'"; a ``"RoleArn.$"`` key in ``Parameters`` is lexed as
  the Credentials keyword and kept as a literal key (CreateTrainingJob would lose its role); aws-sdk answers
  keep boto3's datetimes (Step Functions: epoch milliseconds); intrinsic functions' string literals are read
  unlike Step Functions (``\\'``, ``\\{``, ``\\}``, ``\\\\`` escapes; ``States.Format`` with literal braces).
- Wait states and retry back-off really wait, multiplied by ``time_scale`` (1 = real time).

moto is imported lazily: it is heavy and only ``exporters run --local`` needs it.
"""

from __future__ import annotations

import datetime
import functools
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from exporters.errors import ExporterError

MOTO_VERSION = "5.2.5"
REGION = "us-east-1"
# Optimised SageMaker APIs Step Functions supports; .sync only for the job APIs.
SAGEMAKER_ACTIONS = frozenset(
    {
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
)
TRAINING_TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
SYNC_POLL_SECONDS = 0.5  # the interpreter's own .sync polling interval (Glue)


class InterpreterVersionError(ExporterError):
    """moto is not the version the added integration patterns and fixes were checked against."""


def check_moto_version() -> None:
    import moto  # heavy: only when running a state machine

    if moto.__version__ != MOTO_VERSION:
        raise InterpreterVersionError(
            f"exporters run --local is checked against moto {MOTO_VERSION} (its ASL interpreter and the integration "
            f"patterns added to it); found moto {moto.__version__}",
            "install the pinned version: pip install -r requirements.txt -c constraints.txt",
        )


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
def _sagemaker_request_members(api_action: str) -> frozenset[str]:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    operation = model.operation_model(api_action[0].upper() + api_action[1:])
    return frozenset(operation.input_shape.members)


def _sagemaker_service_class(client_for: Callable[[str, str], Any]):
    """The optimised SageMaker integration, built on the interpreter's classes (imported here: moto is lazy)."""
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
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    class StateTaskServiceSageMaker(StateTaskServiceCallback):
        """``arn:aws:states:::sagemaker:<action>[.sync]`` on the local backend."""

        def __init__(self):
            super().__init__(supported_integration_patterns={ResourceCondition.Sync})

        def _get_supported_parameters(self) -> set[str] | None:
            if self.resource.api_action not in SAGEMAKER_ACTIONS:
                return None  # the interpreter rejects the state: "resource not recognized"
            return set(_sagemaker_request_members(self.resource.api_action))

        def _eval_parameters(self, env) -> dict:
            # The interpreter silently drops parameters an integration does not know; Step Functions
            # rejects the definition. Fail loudly, naming them.
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
            client = client_for(resource_runtime_part.region, "sagemaker")
            response = getattr(client, self._get_boto_service_action())(**normalised_parameters)
            response.pop("ResponseMetadata", None)
            env.stack.append(_epoch_millis(response))

        def _build_sync_resolver(self, env, resource_runtime_part, normalised_parameters, state_credentials):
            if self.resource.api_action != "createTrainingJob":
                raise RuntimeError(f".sync of sagemaker:{self.resource.api_action} is not implemented locally")
            env.stack.pop()  # the CreateTrainingJob answer; the task's output is the final description
            client = client_for(resource_runtime_part.region, "sagemaker")
            name = normalised_parameters["TrainingJobName"]

            def resolve():
                job = client.describe_training_job(TrainingJobName=name)
                job.pop("ResponseMetadata", None)
                job = _epoch_millis(job)
                if job["TrainingJobStatus"] not in TRAINING_TERMINAL:
                    return None
                if job["TrainingJobStatus"] == "Completed":
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


def aws_start_time(start: datetime.datetime) -> str:
    """``$$.Execution.StartTime`` as Step Functions gives it (``2026-11-25T06:00:00.123Z``); moto 5.2.5 passes
    a ``datetime``, which intrinsic functions (the schedule-time values' ``States.StringSplit``) reject."""
    start = start.astimezone(datetime.UTC)
    return start.strftime("%Y-%m-%dT%H:%M:%S.") + f"{start.microsecond // 1000:03d}Z"


def _with_request_id(parsed: dict[str, Any], **_: Any) -> None:
    """AWS answers every call with a request id, which the interpreter's error causes quote; the local backend
    sends none, so give each answer one (the interpreter would fail with KeyError 'RequestId')."""
    metadata = parsed.setdefault("ResponseMetadata", {})
    if not metadata.get("RequestId"):
        metadata["RequestId"] = f"local-{uuid.uuid4()}"


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


Setattr = Callable[[Any, str, Any], None]
Setitem = Callable[[dict, Any, Any], None]


def install_sagemaker_and_fixes(setattr_: Setattr, setitem: Setitem, client_for: Callable[[str, str], Any]) -> None:
    """The optimised SageMaker integration (calling ``client_for(region, service)``), ``SageMaker`` as the error
    prefix of ``aws-sdk:sagemaker:*``, and moto 5.2.5's bugs fixed (see below); ``setattr_``/``setitem`` record what
    they replace so the caller can undo it (``_Patches`` here, ``pytest.MonkeyPatch`` in the tests)."""
    from moto.stepfunctions.parser.asl.component.common.payload.payloadvalue.payloadbinding.payload_binding import (
        PayloadBindingStringExpressionSimple,
    )
    from moto.stepfunctions.parser.asl.component.common.payload.payloadvalue.payloadvaluelit.payload_value_str import (
        PayloadValueStr,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk,
        state_task_service_callback,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
    from moto.stepfunctions.parser.asl.parse import preprocessor
    from moto.stepfunctions.parser.backend.execution import Execution

    sagemaker_service = _sagemaker_service_class(client_for)
    original_factory = state_task_factory.state_task_service_for

    def state_task_service_for(service_name: str):
        if service_name == "sagemaker":
            return sagemaker_service()
        return original_factory(service_name=service_name)

    setattr_(state_task_factory, "state_task_service_for", state_task_service_for)
    # aws-sdk error names: "SageMaker.<Name>Exception", not "sagemaker.sagemakerException".
    setitem(state_task_service_aws_sdk._SERVICE_ERROR_NAMES, "sagemaker", "SageMaker")

    # moto 5.2.5: the lexer reads "RoleArn.$" as the keyword of Credentials.RoleArn.$, so in a Parameters block
    # it becomes a literal key "RoleArn.$" holding the path text, which an integration then drops as unknown
    # (CreateTrainingJob would lose its role). Bind it as the path (or intrinsic function) it is.
    original_binding_value = preprocessor.Preprocessor.visitPayload_binding_value

    def visitPayload_binding_value(self, ctx):  # noqa: N802 - the ANTLR visitor's name
        binding = original_binding_value(self, ctx)
        if binding.field.endswith(".$") and isinstance(binding.payload_value, PayloadValueStr):
            return PayloadBindingStringExpressionSimple(
                field=binding.field[:-2], string_expression_simple=_string_expression(binding.payload_value.val)
            )
        return binding

    setattr_(preprocessor.Preprocessor, "visitPayload_binding_value", visitPayload_binding_value)

    # moto 5.2.5: _eval_integration_pattern calls callback_endpoint.interrupt_all() in a finally block, but the
    # endpoint is None for .sync without .waitForTaskToken (Glue; SageMaker here): every such task would fail with
    # States.Runtime "'NoneType' object has no attribute 'interrupt_all'". The same steps without that endpoint.
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

    setattr_(callback, "_eval_integration_pattern", _eval_integration_pattern)

    # moto 5.2.5: $$.Execution.StartTime is a datetime; Step Functions gives ISO text, which intrinsic functions
    # (the schedule-time values' States.StringSplit) need.
    start_details = Execution.get_start_execution_details

    def get_start_execution_details(self):
        details = start_details(self)
        details.start_time = aws_start_time(self.start_date)
        return details

    setattr_(Execution, "get_start_execution_details", get_start_execution_details)

    # moto 5.2.5: an aws-sdk answer keeps boto3's datetimes (e.g. GetPartitions' CreationTime), which the
    # execution's output cannot hold; Step Functions gives them as epoch milliseconds, as for SageMaker above.
    aws_sdk = state_task_service_aws_sdk.StateTaskServiceAwsSdk
    original_sdk_call = aws_sdk._eval_service_task

    def _eval_sdk_call(self, env, resource_runtime_part, normalised_parameters, state_credentials):
        original_sdk_call(self, env, resource_runtime_part, normalised_parameters, state_credentials)
        env.stack[-1] = _epoch_millis(env.stack[-1])

    setattr_(aws_sdk, "_eval_service_task", _eval_sdk_call)
    _install_intrinsic_string_fixes(setattr_)


class _IntrinsicLiteral(str):
    """A string literal of an intrinsic function, unescaped; ``raw`` keeps its escapes for ``States.Format``."""

    raw: str


_INTRINSIC_ESCAPE = re.compile(r"\\(.)", re.S)


def _unescape_intrinsic(raw: str, other: Callable[[re.Match], str] = lambda m: m.group(0)) -> _IntrinsicLiteral:
    """Step Functions: ``\\'``, ``\\{``, ``\\}``, ``\\\\`` stand for the character itself; ``other`` reads the rest."""
    text = _IntrinsicLiteral(_INTRINSIC_ESCAPE.sub(lambda m: m.group(1) if m.group(1) in "'{}\\" else other(m), raw))
    text.raw = raw
    return text


def _format(template: str, values: list[str]) -> str:
    """``States.Format``: each unescaped ``{}`` of the template replaced in turn; escaped braces are literal."""
    raw = getattr(template, "raw", None)
    if raw is None:  # a template read from the state data: no escapes to honour
        raw = template.replace("\\", "\\\\")
    out, placeholders, i = [], 0, 0
    while i < len(raw):
        if raw[i] == "\\" and i + 1 < len(raw):
            out.append(raw[i + 1] if raw[i + 1] in "'{}\\" else raw[i : i + 2])
            i += 2
        elif raw.startswith("{}", i):
            if placeholders >= len(values):
                raise ValueError(f"States.Format: more {{}} than arguments in {template!r}")
            out.append(values[placeholders])
            placeholders += 1
            i += 2
        else:
            out.append(raw[i])
            i += 1
    if placeholders != len(values):
        raise ValueError(f"States.Format: {len(values)} arguments for {placeholders} {{}} in {template!r}")
    return "".join(out)


def _install_intrinsic_string_fixes(setattr_: Setattr) -> None:
    """moto 5.2.5 reads intrinsic functions' string literals unlike Step Functions.

    - The ``"Field.$"`` value is not JSON-decoded before the intrinsic parser reads it, so ``\\'`` in the
      definition's JSON reaches it as an escaped backslash and the literal ends early.
    - In a literal, ``\\'``, ``\\{``, ``\\}`` and ``\\\\`` keep their backslash (Step Functions: the character).
    - ``States.Format`` uses Python's ``str.format``, so an escaped literal brace breaks it.
    """
    import json

    from moto.stepfunctions.parser.asl.component.common.string.string_expression import StringIntrinsicFunction
    from moto.stepfunctions.parser.asl.component.intrinsic.function.statesfunction.generic import string_format
    from moto.stepfunctions.parser.asl.parse import preprocessor
    from moto.stepfunctions.parser.asl.parse.intrinsic import preprocessor as intrinsic_preprocessor
    from moto.stepfunctions.parser.asl.parse.intrinsic.intrinsic_parser import IntrinsicParser

    def visitString_intrinsic_function(self, ctx):  # noqa: N802 - the ANTLR visitor's name
        derivation = json.loads(ctx.STRINGINTRINSICFUNC().getText())
        function, _ = IntrinsicParser.parse(derivation)
        return StringIntrinsicFunction(intrinsic_function_derivation=derivation, function=function)

    setattr_(preprocessor.Preprocessor, "visitString_intrinsic_function", visitString_intrinsic_function)

    moto_escapes = intrinsic_preprocessor.Preprocessor._replace_escaped_characters  # \\n, \\t, \\r, \\"

    def _text_of_str(parse_tree):
        return _unescape_intrinsic(parse_tree.getText()[1:-1], moto_escapes)

    setattr_(intrinsic_preprocessor.Preprocessor, "_text_of_str", staticmethod(_text_of_str))

    def _eval_body(self, env) -> None:
        self.argument_list.eval(env=env)
        args = env.stack.pop()
        env.stack.append(_format(args[0], [self._to_str_repr(value) for value in args[1:]]))

    setattr_(string_format.StringFormat, "_eval_body", _eval_body)


class _Patches:
    """Attribute and dict-item replacements, undone in reverse order."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def setattr(self, owner: Any, name: str, value: Any) -> None:
        # Classes: restore what the class itself held (an inherited attribute is removed again).
        own = vars(owner) if isinstance(owner, type) else None
        had, old = (name in own, own.get(name)) if own is not None else (True, getattr(owner, name))
        setattr(owner, name, value)
        self._undo.append(lambda: setattr(owner, name, old) if had else delattr(owner, name))

    def setitem(self, mapping: dict, key: Any, value: Any) -> None:
        missing = key not in mapping
        old = mapping.get(key)
        mapping[key] = value
        self._undo.append(lambda: mapping.pop(key, None) if missing else mapping.__setitem__(key, old))

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()


_ACTIVE = threading.Lock()  # one patched interpreter per process at a time


@contextmanager
def interpreter(endpoint_url: str, time_scale: float = 1.0) -> Iterator[threading.Event]:
    """The interpreter, with every service integration answered by the backend at ``endpoint_url``.

    Yields an event: set it (with the execution's stop) to cut retry back-off short.
    """
    check_moto_version()
    import boto3
    from botocore.config import Config
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function
    from moto.stepfunctions.parser.asl.utils import boto_client

    if not _ACTIVE.acquire(blocking=False):
        raise RuntimeError("another local state machine run is active in this process")
    patches = _Patches()
    try:
        clients: dict[tuple[str, str], Any] = {}
        clients_lock = threading.Lock()

        def client_for(region: str, service: str) -> Any:
            with clients_lock:
                if (region, service) not in clients:
                    clients[(region, service)] = boto3.client(
                        service,
                        region_name=region,
                        endpoint_url=endpoint_url,
                        aws_access_key_id="local",
                        aws_secret_access_key="local",
                        config=Config(
                            parameter_validation=False,
                            retries={"max_attempts": 0, "total_max_attempts": 1},
                            connect_timeout=60,
                            read_timeout=60,
                        ),
                    )
                    clients[(region, service)].meta.events.register("after-call", _with_request_id)
                return clients[(region, service)]

        def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
            return client_for(region, service)

        # Every interpreter module that imported boto_client_for by name.
        original_client_for = boto_client.boto_client_for
        for module_name, module in list(sys.modules.items()):
            if (
                module_name.startswith("moto.stepfunctions.parser")
                and getattr(module, "boto_client_for", None) is original_client_for
            ):
                patches.setattr(module, "boto_client_for", boto_client_for)

        install_sagemaker_and_fixes(patches.setattr, patches.setitem, client_for)

        # Wait states and retry back-off: real waits, scaled. (moto's own wait re-waits forever on a
        # fractional remainder, so the scaled wait is ours; it still ends early when the execution stops.)
        def _wait_interval(self, env, wait_seconds):
            deadline = time.monotonic() + max(0.0, wait_seconds * time_scale)
            while env.is_running():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                env.program_state_event.wait(left)

        patches.setattr(wait_function.WaitFunction, "_wait_interval", _wait_interval)
        stopping = threading.Event()
        patches.setattr(
            retrier_decl, "time", SimpleNamespace(sleep=lambda seconds: stopping.wait(max(0.0, seconds * time_scale)))
        )
        # The interpreter logs every error a state handles, with its whole parse tree; the history has them.
        interpreter_log = logging.getLogger("moto.stepfunctions.parser")
        patches.setattr(interpreter_log, "level", logging.CRITICAL)
        yield stopping
    finally:
        patches.undo()
        _ACTIVE.release()
