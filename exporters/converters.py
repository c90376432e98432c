"""One converter per operator class: an Airflow task → a fragment of states.

Extend it for your own operators::

    from exporters.converters import register, Fragment

    @register(MyOperator)
    def convert_my_operator(task, ctx):
        state = ctx.task_state(task, "arn:aws:states:::...", ctx.parameters(task, {...}))
        return Fragment.single(state, ctx.layout(task))

Converters never run the task; they read its declarative attributes.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from exporters import asl
from exporters.jinja import JinjaTranslationError, as_rendered, jinja_to_ref
from exporters.translate import Dynamic, JsonMerge, MapValue, ResultLayout, TranslationError, Translator

ConverterFn = Callable[[Any, "ConvertContext"], "Fragment"]
_REGISTRY: dict[type, ConverterFn] = {}
_LAZY: list[tuple[str, str, ConverterFn]] = []  # (module, class name, fn) for optional providers


class Unsupported(Exception):
    """Raised by a converter: the task cannot be translated; ``fix`` tells what to use instead."""

    def __init__(self, reason: str, fix: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.fix = fix


def register(operator_cls: type) -> Callable[[ConverterFn], ConverterFn]:
    def decorate(fn: ConverterFn) -> ConverterFn:
        _REGISTRY[operator_cls] = fn
        return fn

    return decorate


def register_lazy(module: str, class_name: str) -> Callable[[ConverterFn], ConverterFn]:
    """Register for a class that is resolved only when a DAG is exported (keeps imports light)."""

    def decorate(fn: ConverterFn) -> ConverterFn:
        _LAZY.append((module, class_name, fn))
        return fn

    return decorate


def _resolve_lazy() -> None:
    while _LAZY:
        module, class_name, fn = _LAZY.pop()
        try:
            cls = getattr(importlib.import_module(module), class_name)
        except (ImportError, AttributeError):
            continue
        _REGISTRY.setdefault(cls, fn)


def converter_for(task: Any) -> ConverterFn | None:
    _resolve_lazy()
    paths = getattr(task, "operator_class_paths", None)
    if paths is not None:  # a task of a serialized DAG: its classes by import path, nothing imported
        by_path = {f"{cls.__module__}.{cls.__qualname__}": fn for cls, fn in _REGISTRY.items()}
        return next((by_path[p] for p in paths if p in by_path), None)
    for cls in type(task).__mro__:
        if cls in _REGISTRY:
            return _REGISTRY[cls]
    return None


@dataclass
class Port:
    """Where a 'Next' still has to be filled in: a state's Next, a choice rule, a Choice default."""

    target: Any
    attr: str = "next"

    def link(self, name: str | None) -> None:
        if name is None and self.attr == "next" and isinstance(self.target, asl.State):
            self.target.next = None  # End
            return
        setattr(self.target, self.attr, name)


@dataclass
class Failure:
    """Where a task can fail: a Task/Parallel state (any error it raises), or choice ports to a fixed error.

    The compiler decides what a failure does: caught and recorded as the task's
    outcome (so other tasks go on), or left to end the execution.
    """

    state: asl.State | None = None
    ports: list[Port] = field(default_factory=list)
    error: str = ""
    cause: str = ""


@dataclass
class Fragment:
    """The states a task became. ``exits`` are linked to whatever follows the task when it succeeds."""

    entry: str
    states: list[asl.State]
    exits: list[Port]
    layout: ResultLayout | None = None
    # For branch operators: task id → the port to link to that task's entry.
    branches: dict[str, Port] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    always_fails: bool = False  # e.g. FailRunOperator: no states of its own, one failure
    # Where the task ends skipped (Airflow's AirflowSkipException, e.g. a soft_fail sensor timing out).
    skips: list[Port] = field(default_factory=list)

    @classmethod
    def single(cls, state: asl.State, layout: ResultLayout | None = None) -> Fragment:
        exits = [Port(state)] if state.chains else []
        failures = [Failure(state=state)] if isinstance(state, (asl.Task, asl.Parallel)) else []
        return cls(entry=state.name, states=[state], exits=exits, layout=layout, failures=failures)

    @classmethod
    def failing(cls, name: str, error: str, cause: str) -> Fragment:
        """A task that always fails with ``error``/``cause`` (a Fail state, or a record when handled)."""
        return cls(entry=name, states=[], exits=[], failures=[Failure(error=error, cause=cause)], always_fails=True)


class ConvertContext:
    """What converters need: translation of references, names, retries, timeouts."""

    def __init__(self, dag: Any, translator: Translator, warnings: list[str]):
        self.dag = dag
        self.translator = translator
        self.warnings = warnings

    # names and keys
    @staticmethod
    def result_key(task_id: str) -> str:
        return result_key(task_id)

    @staticmethod
    def state_name(task: Any, suffix: str | None = None) -> str:
        return state_name(task.task_id, suffix)

    # translation
    def parameters(self, task: Any, request: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.translator.parameters(request)
        except TranslationError as err:
            raise Unsupported(
                str(err),
                getattr(err, "fix", "use ParamRef/ResultRef/Format/RunUniqueName on fields the exporter keeps"),
            ) from None

    def expr(self, value: Any) -> Any:
        try:
            return self.translator.expr(value)
        except TranslationError as err:
            raise Unsupported(str(err), getattr(err, "fix", "")) from None

    def layout(self, task: Any, **kwargs: Any) -> ResultLayout:
        return ResultLayout(key=result_key(task.task_id), **kwargs)

    # retries and timeouts, as Airflow applies them to the task
    def retries(self, task: Any, error_equals: tuple[str, ...] = ("States.ALL",)) -> list[asl.Retry]:
        attempts = int(task.retries or 0)
        if attempts <= 0:
            return []
        interval = max(1, int(task.retry_delay.total_seconds())) if task.retry_delay else 300
        max_delay = int(task.max_retry_delay.total_seconds()) if task.max_retry_delay else None
        # Airflow 3: retry_exponential_backoff is the multiplier (0 and 1 mean a constant delay).
        multiplier = float(task.retry_exponential_backoff or 0) or 1.0
        return [
            asl.Retry(
                error_equals=list(error_equals),
                interval_seconds=interval,
                max_attempts=attempts,
                backoff_rate=multiplier,
                max_delay_seconds=max_delay if multiplier > 1.0 else None,
            )
        ]

    def timeout(self, task: Any) -> int | None:
        if task.execution_timeout is None:
            return None
        return max(1, int(task.execution_timeout.total_seconds()))

    def task_state(
        self,
        task: Any,
        resource: str,
        parameters: dict[str, Any],
        *,
        name: str | None = None,
        result_selector: dict[str, Any] | None = None,
        result_path: Any = ...,
        comment: str | None = None,
        retry_errors: tuple[str, ...] = ("States.ALL",),
    ) -> asl.Task:
        return asl.Task(
            name or state_name(task.task_id),
            resource=resource,
            parameters=parameters,
            result_selector=result_selector,
            result_path=path_for_key(result_key(task.task_id)) if result_path is ... else result_path,
            timeout_seconds=self.timeout(task),
            retry=self.retries(task, retry_errors),
            comment=comment,
        )


_KEY_UNSAFE = re.compile(r"[^0-9A-Za-z_]")


def result_key(task_id: str) -> str:
    """The state-data key of a task's result: its id, with characters JSONPath dislikes replaced."""
    return _KEY_UNSAFE.sub("_", task_id)


def path_for_key(key: str) -> str:
    return f"$.{key}"


def state_name(task_id: str, suffix: str | None = None) -> str:
    """``task_id`` (a task group's task: ``group.sub.task``) and ``: suffix``, within ASL's 80 characters.

    A longer name is cut predictably, ``~`` and 8 hex of its SHA-1 marking the cut (distinct names stay
    distinct): in a task group the group path is shortened, keeping the task's own id and the suffix whole.
    """
    name = task_id if suffix is None else f"{task_id}: {suffix}"
    if len(name) <= asl.MAX_STATE_NAME:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    group, _, own = task_id.rpartition(".")
    tail = own if suffix is None else f"{own}: {suffix}"
    room = asl.MAX_STATE_NAME - len(tail) - 10  # "~" + digest + "."
    if group and room >= 8:
        return f"{group[:room]}~{digest}.{tail}"
    return name[: asl.MAX_STATE_NAME - 9] + "~" + digest


def selector_from_fields(fields: tuple[str, ...], renames: dict[str, str] | None = None) -> dict[str, Any]:
    """``ResultSelector`` keeping dotted ``fields`` of the API answer, nested as in the answer."""
    renames = renames or {}
    out: dict[str, Any] = {}
    for dotted in fields:
        parts = dotted.split(".")
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        source = renames.get(dotted, dotted)
        target[f"{parts[-1]}.$"] = f"$.{source}"
    return out


# ---------------------------------------------------------------------------
# The table: operators whose task is one Task state calling one service integration
# ---------------------------------------------------------------------------
RowValue = Any  # a value, or a function of the task giving it


def operator_request(task: Any) -> dict[str, Any]:
    """Our operators keep their whole API request, references included, in ``request``."""
    return task.request


@dataclass(frozen=True)
class IntegrationRow:
    """One operator → one Task state: the integration it calls, its request, the fields its result keeps.

    ``result_selector`` and ``layout`` (keyword arguments of ``ResultLayout`` besides its key) are values or
    functions of the task. ``waits``: the operator attribute (default True) saying whether the task waits for
    the work to finish; when it does not, the state calls ``resource`` without ``.sync`` and keeps
    ``result_selector_no_wait``.
    """

    operator: type | str  # the class, or "module.ClassName" resolved when a DAG is exported
    resource: str
    result_selector: RowValue
    request: Callable[[Any], dict[str, Any]] = operator_request
    layout: RowValue = field(default_factory=dict)
    waits: str | None = None
    result_selector_no_wait: dict[str, Any] | None = None
    retry_errors: tuple[str, ...] = ("States.ALL",)


def _row_value(value: RowValue, task: Any) -> Any:
    return value(task) if callable(value) else value


def convert_integration(row: IntegrationRow, task: Any, ctx: ConvertContext) -> Fragment:
    """The generic converter of a table row."""
    parameters = ctx.parameters(task, row.request(task))
    waits = row.waits is None or bool(getattr(task, row.waits, True))
    state = ctx.task_state(
        task,
        row.resource if waits else row.resource.removesuffix(".sync"),
        parameters,
        result_selector=_row_value(row.result_selector, task) if waits else row.result_selector_no_wait,
        retry_errors=row.retry_errors,
    )
    return Fragment.single(state, ctx.layout(task, **_row_value(row.layout, task)))


def register_table(rows: tuple[Any, ...], convert: Callable[[Any, Any, ConvertContext], Fragment]) -> None:
    """Register ``convert(row, task, ctx)`` for each row's ``operator`` (a class, or "module.ClassName")."""
    for row in rows:
        converter = functools.partial(convert, row)
        if isinstance(row.operator, str):
            module, _, class_name = row.operator.rpartition(".")
            register_lazy(module, class_name)(converter)
        else:
            register(row.operator)(converter)


# ---------------------------------------------------------------------------
# Our operators
# ---------------------------------------------------------------------------
from retraining import (  # noqa: E402  (operators import only Airflow: cheap)
    FailRunOperator,
    GlueJobRunOperator,
    LambdaInvokeOperator,
    MetricChoiceOperator,
    SageMakerCreateEndpointConfigOperator,
    SageMakerCreateModelOperator,
    SageMakerDeployEndpointOperator,
    SageMakerTrainingJobOperator,
)
from retraining.refs import Format, ResultRef  # noqa: E402
from retraining.sagemaker import ENDPOINT_PENDING_STATES as ENDPOINT_WAIT_STATES  # noqa: E402  (the operator's copy)

# Retry what the SageMaker API answers (throttling, limits, outages), not a job that ran and
# failed (States.TaskFailed): its name belongs to the run, so a retry could only collide, and the
# Airflow task also fails at once. (States.TaskFailed in a retrier would match every error.)
TRAINING_API_ERRORS = (
    "SageMaker.AmazonSageMakerException",
    "SageMaker.ResourceLimitExceededException",
    "States.Timeout",
)

CHOICE_OPERATORS = {
    "<": "NumericLessThan",
    "<=": "NumericLessThanEquals",
    ">": "NumericGreaterThan",
    ">=": "NumericGreaterThanEquals",
    "==": "NumericEquals",
}


def training_request(task: Any) -> dict[str, Any]:
    """The request as the operator sends it: ``hyperparameters`` merged over ``HyperParameters``; a mapped
    task's job name suffixed ``-<map index>`` (as ``retraining.mapping.with_map_index`` does in Airflow)."""
    request = dict(task.request)
    extra = getattr(task, "hyperparameters", None)
    if extra:
        base = request.get("HyperParameters")
        if isinstance(extra, dict) and (base is None or isinstance(base, dict)):
            request["HyperParameters"] = {**(base or {}), **extra}
        else:  # known per map index (or a reference): merged at run time
            request["HyperParameters"] = JsonMerge(base or {}, extra, ("HyperParameters", "hyperparameters"))
    if getattr(task, "mapping", None) is not None:
        request["TrainingJobName"] = Format("{}-{}", request["TrainingJobName"], MapValue(("index",)))
    return request


OWN_OPERATOR_ROWS = (
    IntegrationRow(
        GlueJobRunOperator,
        "arn:aws:states:::glue:startJobRun.sync",
        # GetJobRun's answer names the run id "Id"; keep Airflow's field names.
        result_selector=lambda task: selector_from_fields(task.result_fields, {"JobRunId": "Id"}),
        layout=lambda task: {"fields": frozenset(task.result_fields)},
    ),
    IntegrationRow(
        SageMakerTrainingJobOperator,
        "arn:aws:states:::sagemaker:createTrainingJob.sync",
        request=training_request,
        # Keep only what downstream states use: a DescribeTrainingJob answer can
        # exceed Step Functions' 256 KiB state-data limit.
        result_selector=lambda task: selector_from_fields(task.result_fields),
        layout=lambda task: {"fields": frozenset(f.split(".")[0] for f in task.result_fields)},
        retry_errors=TRAINING_API_ERRORS,
    ),
    IntegrationRow(
        LambdaInvokeOperator,
        "arn:aws:states:::lambda:invoke",
        result_selector={"Payload.$": "$.Payload"},
        # Airflow keeps the function's answer; Step Functions keeps it under Payload.
        layout={"prefix": ("Payload",), "whole": ("Payload",)},
    ),
    IntegrationRow(
        SageMakerCreateModelOperator,
        "arn:aws:states:::sagemaker:createModel",
        result_selector={"ModelArn.$": "$.ModelArn"},
        layout=lambda task: {"fields": frozenset({"ModelArn"}), "aliases": {"ModelName": task.request["ModelName"]}},
    ),
    IntegrationRow(
        SageMakerCreateEndpointConfigOperator,
        "arn:aws:states:::sagemaker:createEndpointConfig",
        result_selector={"EndpointConfigArn.$": "$.EndpointConfigArn"},
        layout=lambda task: {
            "fields": frozenset({"EndpointConfigArn"}),
            "aliases": {"EndpointConfigName": task.request["EndpointConfigName"]},
        },
    ),
)
register_table(OWN_OPERATOR_ROWS, convert_integration)


def endpoint_deploy_fragment(
    task: Any,
    ctx: ConvertContext,
    request: dict[str, Any],
    *,
    create_if_missing: bool,
    update: bool,
    wait: bool,
    poll_seconds: int,
) -> Fragment:
    """UpdateEndpoint (CreateEndpoint when missing), then Wait → DescribeEndpoint → Choice until InService.

    Like the Airflow operator: only a "not found" answer means "create"; any other
    error fails the attempt. One attempt is one branch of a single-branch Parallel,
    so the task's retries re-run the whole attempt as Airflow re-runs the operator,
    and ``execution_timeout`` bounds each attempt's wait by counting polls.
    """
    here = path_for_key(result_key(task.task_id))
    record = asl.Pass(
        state_name(task.task_id, "request"),
        parameters={**ctx.parameters(task, request), "Polls": {"value": 0}},
        result_path=here,
        comment="The endpoint, the config it must serve, and a poll counter",
    )
    calls, finishing = _endpoint_calls(task.task_id, here, create_if_missing=create_if_missing, update=update)
    record.next = calls[0].name
    states: list[asl.State] = [record, *calls]
    layout = ctx.layout(task, fields=frozenset({"EndpointName", "EndpointConfigName"}))
    if wait:
        loop = _endpoint_wait_loop(task, ctx, here, poll_seconds)
        for call in finishing:
            call.next = loop[0].name
        states += loop
        layout.paths.update(
            {"EndpointStatus": ("Endpoint", "EndpointStatus"), "EndpointArn": ("Endpoint", "EndpointArn")}
        )
    else:
        for call in finishing:
            call.next = None
    attempt = asl.Parallel(
        state_name(task.task_id),
        branches=[asl.StateMachine(states=states, start_at=record.name)],
        result_selector={"merged.$": "$[0]"},
        result_path="$",
        output_path="$.merged",
        retry=ctx.retries(task),
        comment="One attempt of the task: its retries re-run the whole deploy, as Airflow retries the operator",
    )
    return Fragment.single(attempt, layout)


DESCRIBE_ENDPOINT = "arn:aws:states:::aws-sdk:sagemaker:describeEndpoint"


def _endpoint_call(task_id: str, here: str, operation: str, resource: str) -> asl.Task:
    """UpdateEndpoint or CreateEndpoint with the names the request record holds."""
    return asl.Task(
        state_name(task_id, operation),
        resource=resource,
        parameters={"EndpointName.$": f"{here}.EndpointName", "EndpointConfigName.$": f"{here}.EndpointConfigName"},
        result_path=None,
    )


def _endpoint_calls(
    task_id: str, here: str, *, create_if_missing: bool, update: bool
) -> tuple[list[asl.State], list[asl.Task]]:
    """The states that update or create the endpoint (the first is their entry), and the calls that end them."""
    update_state = _endpoint_call(task_id, here, "UpdateEndpoint", "arn:aws:states:::sagemaker:updateEndpoint")
    create_state = _endpoint_call(task_id, here, "CreateEndpoint", "arn:aws:states:::sagemaker:createEndpoint")
    if not update:
        return [create_state], [create_state]
    if not create_if_missing:
        return [update_state], [update_state]
    return _update_or_create(task_id, here, update_state, create_state), [update_state, create_state]


def _update_or_create(task_id: str, here: str, update_state: asl.Task, create_state: asl.Task) -> list[asl.State]:
    """DescribeEndpoint decides at run time: found → update; "not found" → create; any other error → fail."""
    missing = asl.Choice(state_name(task_id, "endpoint missing?"))
    probe = asl.Task(
        state_name(task_id, "endpoint exists?"),
        resource=DESCRIBE_ENDPOINT,
        parameters={"EndpointName.$": f"{here}.EndpointName"},
        result_path=None,
        catch=[asl.Catch(["States.ALL"], missing.name, result_path=f"{here}.Error")],
        comment="Update the endpoint if it exists, create it otherwise (decided at run time)",
    )
    describe_failed = asl.Fail(
        state_name(task_id, "DescribeEndpoint failed"),
        error="EndpointDescribeFailed",
        cause_path=f"{here}.Error.Cause",
    )
    missing.choices = [
        # SageMaker answers a missing endpoint with "Could not find endpoint ...".
        asl.ChoiceRule(
            variable=f"{here}.Error.Cause",
            operator="StringMatches",
            value="*Could not find endpoint*",
            next=create_state.name,
        ),
    ]
    missing.default = describe_failed.name
    probe.next = update_state.name
    return [probe, update_state, missing, create_state, describe_failed]


def _endpoint_wait_loop(task: Any, ctx: ConvertContext, here: str, poll_seconds: int) -> list[asl.State]:
    """Wait → DescribeEndpoint → Choice until InService on the new config (the Wait is the entry)."""
    task_id = task.task_id
    wait_state = asl.Wait(state_name(task_id, "wait"), seconds=poll_seconds)
    describe = asl.Task(
        state_name(task_id, "DescribeEndpoint"),
        resource=DESCRIBE_ENDPOINT,
        parameters={"EndpointName.$": f"{here}.EndpointName"},
        result_selector={
            "EndpointStatus.$": "$.EndpointStatus",
            "EndpointConfigName.$": "$.EndpointConfigName",
            "EndpointArn.$": "$.EndpointArn",
        },
        result_path=f"{here}.Endpoint",
    )
    failed = asl.Fail(
        state_name(task_id, "failed"),
        error="EndpointDeployFailed",
        cause="The endpoint did not reach InService on the new config; the previous config keeps serving. "
        "See FailureReason in DescribeEndpoint.",
    )
    status = f"{here}.Endpoint.EndpointStatus"
    done = asl.Succeed(state_name(task_id, "deployed"))
    in_service = asl.ChoiceRule(
        and_=[
            asl.ChoiceRule(variable=status, operator="StringEquals", value="InService"),
            asl.ChoiceRule(
                variable=f"{here}.Endpoint.EndpointConfigName",
                operator="StringEqualsPath",
                value=f"{here}.EndpointConfigName",
            ),
        ],
        next=done.name,
    )
    count_poll = asl.Pass(
        state_name(task_id, "count poll"),
        parameters={"value.$": f"States.MathAdd({here}.Polls.value, 1)"},
        result_path=f"{here}.Polls",
        next=wait_state.name,
    )
    still_working = asl.ChoiceRule(
        or_=[asl.ChoiceRule(variable=status, operator="StringEquals", value=s) for s in ENDPOINT_WAIT_STATES],
        next=count_poll.name,
    )
    limit_rules, limit_states = _endpoint_poll_limit(task, ctx, here, poll_seconds)
    check = asl.Choice(
        state_name(task_id, "InService?"), choices=[in_service, *limit_rules, still_working], default=failed.name
    )
    wait_state.next = describe.name
    describe.next = check.name
    return [wait_state, describe, check, count_poll, failed, *limit_states, done]


def _endpoint_poll_limit(
    task: Any, ctx: ConvertContext, here: str, poll_seconds: int
) -> tuple[list[asl.ChoiceRule], list[asl.State]]:
    """execution_timeout bounds each attempt's wait, as it bounds each Airflow try: a rule counting polls, its Fail."""
    timeout = ctx.timeout(task)
    if timeout is None:
        return [], []
    timed_out = asl.Fail(
        state_name(task.task_id, "timed out"),
        error="EndpointDeployTimeout",
        cause=f"The endpoint was not InService on the new config within {timeout} s (execution_timeout)",
    )
    too_many_polls = asl.ChoiceRule(
        variable=f"{here}.Polls.value",
        operator="NumericGreaterThanEquals",
        value=max(1, -(-timeout // poll_seconds)),
        next=timed_out.name,
    )
    return [too_many_polls], [timed_out]


@register(SageMakerDeployEndpointOperator)
def convert_deploy_endpoint(task: SageMakerDeployEndpointOperator, ctx: ConvertContext) -> Fragment:
    return endpoint_deploy_fragment(
        task,
        ctx,
        task.request,
        create_if_missing=True,
        update=True,
        wait=True,
        poll_seconds=max(1, int(task.poll_interval)),
    )


@register(MetricChoiceOperator)
def convert_metric_choice(task: MetricChoiceOperator, ctx: ConvertContext) -> Fragment:
    rule = task.rule
    if not isinstance(rule.metrics, ResultRef):
        raise Unsupported("the rule's metrics must be a ResultRef to an upstream task's metric list")
    metrics = ctx.expr(rule.metrics)
    if not isinstance(metrics, Dynamic) or not metrics.expr.startswith("$"):
        raise Unsupported("the rule's metrics must come from an upstream result")
    key = result_key(task.task_id)
    name_literal = rule.metric.replace("\\", "\\\\").replace("'", "\\'")
    # Find the metric by name (never by list position), like the Airflow rule does. A path matching nothing is a
    # runtime error where a value is read, so a Choice asks first (IsPresent is defined for any path): a missing
    # metric fails the task as the Airflow rule does, never the whole execution.
    matches = f"{metrics.expr}[?(@.MetricName == '{name_literal}')].Value"
    read = asl.Pass(
        state_name(task.task_id, f"read {rule.metric}"),
        parameters={"metric": rule.metric, "value.$": f"States.ArrayGetItem({matches}, 0)"},
        result_path=f"$.{key}",
    )
    missing = asl.ChoiceRule(not_=asl.ChoiceRule(variable=matches, operator="IsPresent", value=True))
    find = asl.Choice(
        state_name(task.task_id, f"find {rule.metric}"), choices=[missing], default=read.name, comment=f"{rule}"
    )
    value = f"$.{key}.value"
    threshold = ctx.expr(rule.threshold)
    operator = CHOICE_OPERATORS[rule.comparison]
    # The Airflow operator fails (AirflowFailException: no retry) when the metric is missing or not a number.
    not_evaluable = [asl.ChoiceRule(not_=asl.ChoiceRule(variable=value, operator="IsNumeric", value=True))]
    if isinstance(threshold, Dynamic):
        if not threshold.expr.startswith("$"):
            raise Unsupported("the threshold must be a number or a ParamRef/ResultRef")
        not_evaluable.append(
            asl.ChoiceRule(not_=asl.ChoiceRule(variable=threshold.expr, operator="IsNumeric", value=True))
        )
        condition = asl.ChoiceRule(variable=value, operator=operator + "Path", value=threshold.expr)
    else:
        condition = asl.ChoiceRule(variable=value, operator=operator, value=threshold)
    choice = asl.Choice(state_name(task.task_id), choices=[*not_evaluable, condition], comment=f"{rule}")
    read.next = choice.name
    return Fragment(
        entry=find.name,
        states=[find, read, choice],
        exits=[],
        layout=ctx.layout(task, fields=frozenset({"metric", "value"})),
        branches={rule.if_true: Port(condition), rule.if_false: Port(choice, "default")},
        failures=[
            Failure(
                ports=[Port(r) for r in (missing, *not_evaluable)],
                error="MetricRuleNotEvaluable",
                cause=f"cannot evaluate rule '{rule}': the metric is missing, or it or the threshold is not a number",
            )
        ],
    )


@register(FailRunOperator)
def convert_fail(task: FailRunOperator, ctx: ConvertContext) -> Fragment:
    return Fragment.failing(state_name(task.task_id), task.error, task.cause)


# ---------------------------------------------------------------------------
# Stock operators (so existing DAGs export without rewriting)
# ---------------------------------------------------------------------------
AMAZON_OPERATORS = "airflow.providers.amazon.aws.operators"


@register_lazy("airflow.providers.standard.operators.empty", "EmptyOperator")
def convert_empty(task: Any, ctx: ConvertContext) -> Fragment:
    return Fragment.single(asl.Pass(state_name(task.task_id), result_path=None))


def _stock_value(task: Any, value: Any, field_name: str, *, rendered: bool = False) -> Any:
    """A stock operator's templated value → a reference, when it is a plain param/XCom lookup.

    A value of a template field is taken as Airflow's Jinja renders it (``as_rendered``: one trailing
    newline dropped, newlines normalised) unless ``rendered`` says that was done already.
    """
    if not rendered and field_name.split(".")[0] in getattr(task, "template_fields", ()):
        value = as_rendered(value, task)
    try:
        return jinja_to_ref(value)
    except JinjaTranslationError as err:
        raise Unsupported(
            f"field {field_name!r}: {err}",
            "use '{{ params.NAME }}', '{{ ti.xcom_pull(task_ids=\"TASK\")[\"FIELD\"] }}' or a schedule-time value "
            "('{{ ds }}', '{{ ts }}', '{{ run_id }}'...) only, or our operators with ParamRef/ResultRef/LogicalDate",
        ) from None


def _stock_config(task: Any) -> dict[str, Any]:
    config = task.config
    if isinstance(config, str):
        raise Unsupported("config is a string (template or file); give the request as a dict")
    return _stock_value(task, dict(config), "config")


def _stock_glue_request(task: Any) -> dict[str, Any]:
    request: dict[str, Any] = {"JobName": _stock_value(task, task.job_name, "job_name")}
    if task.script_args:
        request["Arguments"] = _stock_value(task, dict(task.script_args), "script_args")
    for key, value in sorted((getattr(task, "run_job_kwargs", None) or {}).items()):
        request[key] = _stock_value(task, value, f"run_job_kwargs.{key}")  # StartJobRun fields
    return request


def _stock_lambda_request(task: Any) -> dict[str, Any]:
    if getattr(task, "invocation_type", None) not in (None, "RequestResponse"):
        raise Unsupported(f"invocation_type {task.invocation_type!r}", "use RequestResponse (synchronous)")
    payload = task.payload
    from_text = isinstance(payload, (str, bytes))
    if from_text:
        # Airflow renders the payload text as a whole (its JSON strings cannot hold a raw newline).
        text = payload.decode() if isinstance(payload, bytes) else as_rendered(payload, task)
        try:
            payload = json.loads(text) if text else {}
        except ValueError:
            raise Unsupported("payload is not JSON", "give the payload as a JSON object") from None
    request = {
        "FunctionName": _stock_value(task, task.function_name, "function_name"),
        "Payload": _stock_value(task, payload, "payload", rendered=from_text),
    }
    if getattr(task, "qualifier", None):
        request["Qualifier"] = _stock_value(task, task.qualifier, "qualifier")
    return request


STOCK_OPERATOR_ROWS = (
    IntegrationRow(
        f"{AMAZON_OPERATORS}.sagemaker.SageMakerModelOperator",
        "arn:aws:states:::sagemaker:createModel",
        request=_stock_config,
        result_selector={"ModelArn.$": "$.ModelArn"},
    ),
    IntegrationRow(
        f"{AMAZON_OPERATORS}.sagemaker.SageMakerEndpointConfigOperator",
        "arn:aws:states:::sagemaker:createEndpointConfig",
        request=_stock_config,
        result_selector={"EndpointConfigArn.$": "$.EndpointConfigArn"},
    ),
    IntegrationRow(
        f"{AMAZON_OPERATORS}.lambda_function.LambdaInvokeFunctionOperator",
        "arn:aws:states:::lambda:invoke",
        request=_stock_lambda_request,
        result_selector={"Payload.$": "$.Payload"},
        # The stock operator's XCom is the payload as a JSON string: Airflow cannot read a field of it
        # (Jinja: "'str object' has no attribute ..."), so no field is offered; the answer is kept under Payload.
        layout={"prefix": ("Payload",), "fields": frozenset()},
    ),
)
register_table(STOCK_OPERATOR_ROWS, convert_integration)

# GlueJobOperator's job run; its converter (converters_stock) may get or create the job definition first.
STOCK_GLUE_JOB_RUN = IntegrationRow(
    f"{AMAZON_OPERATORS}.glue.GlueJobOperator",
    "arn:aws:states:::glue:startJobRun.sync",
    request=_stock_glue_request,
    waits="wait_for_completion",
    result_selector={"JobName.$": "$.JobName", "JobRunId.$": "$.Id", "JobRunState.$": "$.JobRunState"},
    result_selector_no_wait={"JobRunId.$": "$.JobRunId"},
    # The operator returns the run id, and pushes it as XCom "glue_job_run_id" too.
    layout={"whole": ("JobRunId",), "xcom_keys": {"glue_job_run_id": ("JobRunId",)}},
)


@register_lazy(f"{AMAZON_OPERATORS}.sagemaker", "SageMakerEndpointOperator")
def convert_stock_endpoint(task: Any, ctx: ConvertContext) -> Fragment:
    config = _stock_config(task)
    if "Model" in config or "EndpointConfig" in config:
        raise Unsupported(
            "config bundles Model/EndpointConfig with the endpoint",
            "use SageMakerModelOperator and SageMakerEndpointConfigOperator tasks before this one",
        )
    request = config.get("Endpoint", config)
    operation = getattr(task, "operation", "create")
    return endpoint_deploy_fragment(
        task,
        ctx,
        {"EndpointName": request["EndpointName"], "EndpointConfigName": request["EndpointConfigName"]},
        # Airflow's operation='create' falls back to an update when the endpoint exists;
        # operation='update' fails when it does not.
        create_if_missing=operation == "create",
        update=True,
        wait=getattr(task, "wait_for_completion", True),
        poll_seconds=max(1, int(getattr(task, "check_interval", 30))),
    )


# Converter modules that register themselves on import (AWS SDK calls, S3, sensors, nested pipelines).
from exporters import (  # noqa: E402, F401
    converters_nested,
    converters_s3,
    converters_sdk,
    converters_sensors,
    converters_stock,
)
