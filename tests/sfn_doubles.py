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

- The optimised SageMaker integration as Step Functions documents it (the code
  ``exporters run --local`` uses: ``local_run_interpreter.install_sagemaker_and_fixes``),
  forwarding every call to moto's SageMaker:
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

from exporters.local_run_interpreter import install_sagemaker_and_fixes

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
        """The DAG's service calls, in order (the max_active_runs guard's run-slot writes: ``calls_to`` them)."""
        return [c.action for c in self.calls if c.action != RUN_SLOT_WRITE]

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


def _install_interpreter(mp: pytest.MonkeyPatch, doubles: Doubles) -> None:
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.exec import execute_state
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service,
        state_task_service_aws_sdk,
        state_task_service_glue,
    )
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function
    from moto.stepfunctions.parser.asl.utils import boto_client

    # The optimised SageMaker integration on moto's SageMaker, its error names, moto's two bugs fixed: the same code
    # as `exporters run --local` (the client is looked up per call, so it is the cached one installed below).
    install_sagemaker_and_fixes(
        mp.setattr, mp.setitem, lambda region, service: boto_client.boto_client_for(region=region, service=service)
    )

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
    from tests.aws_doubles import sagemaker_patches

    # Includes SageMaker's refusal of a model, endpoint config or endpoint name in use.
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
        create_run_slot_table()
        yield doubles


RUN_SLOT_WRITE = "dynamodb:updateItem"  # exporters.concurrency.UPDATE_ITEM, after arn:aws:states:::


def create_run_slot_table(region: str = "us-east-1") -> None:
    """The DynamoDB table of the max_active_runs guard (exporters.concurrency), in moto (the template creates it)."""
    # Lazy like the other doubles: importing this module must not load boto3 or the exporter.
    import boto3

    from exporters import concurrency

    boto3.client("dynamodb", region_name=region).create_table(
        TableName=concurrency.DEFAULT_TABLE,
        AttributeDefinitions=[{"AttributeName": concurrency.LOCK_KEY, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": concurrency.LOCK_KEY, "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
