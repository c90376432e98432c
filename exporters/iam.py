"""Least-privilege IAM for an exported state machine, derived from the states it actually has.

``state_machine_policy(definition, context)`` walks every state (Parallel branches
and Map processors too), and for each service integration grants exactly the
actions Step Functions calls for it, on the resources that state names:

* names come from typed data: each expression in the definition maps back to the reference
  it was translated from (``context.origins``, the export's table; nothing is parsed), so
  ``ParamRef("x")`` → the template's expression for param x (usually ``{"Ref": ...}``),
  ``Format``/``RunUniqueName`` → their literal parts and params, an upstream result → the path
  a Pass state filled (``$.update_endpoint.EndpointName``) followed to its value; anything
  computed at run time (the execution-name hash of ``RunUniqueName``) becomes ``*`` *inside
  the name*, so a per-run name is scoped by its prefix (``training-job/${TrainingJobPrefix}-*``);
* a literal ``*`` or ``?`` in a name is refused (``WildcardName``): it would widen the grant;
* resources are ``Fn::Sub`` ARNs on ``${AWS::Partition}``, ``${AWS::Region}``,
  ``${AWS::AccountId}``; SageMaker ARNs carry lower-cased names (SageMaker lower-cases
  them), so literals are lower-cased here and params used in them are reported
  (``context.usages``) for the template to constrain to lower case;
* no ``*`` action, no ``service:*``, and ``"Resource": "*"`` only for the actions in
  ``RESOURCE_STAR_ACTIONS`` (they have no resource-level permissions).

An integration this module does not know raises ``PolicyError``: a policy is never
guessed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from exporters.errors import ExporterError

__all__ = [
    "PolicyContext",
    "PolicyError",
    "RESOURCE_STAR_ACTIONS",
    "state_machine_policy",
    "resolve_name",
    "normalize",
    "sub_text",
    "task_states",
    "Lit",
    "Par",
    "SubText",
    "ANY",
    "WildcardName",
    "pieces_of",
]

# Actions that have no resource-level permissions: "Resource": "*" is the only valid form.
RESOURCE_STAR_ACTIONS = frozenset(
    {
        # Step Functions' own logging to CloudWatch Logs goes through log *delivery* APIs,
        # which take no resource ARN (Step Functions developer guide, "IAM policies for logging").
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
        # X-Ray tracing: no resource types at all.
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
    }
)

LOGGING_ACTIONS = (
    "logs:CreateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:DescribeLogGroups",
    "logs:DescribeResourcePolicies",
    "logs:GetLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:UpdateLogDelivery",
)
TRACING_ACTIONS = (
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:PutTelemetryRecords",
    "xray:PutTraceSegments",
)

STATES_PREFIX = "arn:aws:states:::"
# An IAM role ARN (paths allowed; group 1 is the role name), in the regex syntax Python and CloudFormation's
# AllowedPattern share: the one copy deploy's check and the template's parameter constraint use.
ROLE_ARN_PATTERN = r"arn:aws[a-z-]*:iam::[0-9]{12}:role/(?:[A-Za-z0-9_+=,.@/-]*/)?([A-Za-z0-9_+=,.@-]{1,64})"
ARN_HEAD = "arn:${AWS::Partition}"
REGIONAL = "${AWS::Region}:${AWS::AccountId}"


class PolicyError(ExporterError, ValueError):
    """A state uses an integration whose permissions this module cannot derive."""


# ---------------------------------------------------------------------------
# Context
# ---------------------------------------------------------------------------


@dataclass
class PolicyContext:
    """What the policy needs from the template.

    ``params``: DAG param name → the value in the template: ``{"Ref": "GlueJobName"}`` for a
    param that is a template parameter, or its literal default (a string) otherwise.
    ``logging`` / ``tracing``: add the statements CloudWatch Logs delivery / X-Ray need.
    After the call, ``usages`` maps each param used in a resource to how it was used
    (``sagemaker-name``, ``lambda-function``, ``glue-job``, ``iam-role``), so the template
    can constrain those parameters; ``warnings`` says where a name could only be ``*``.
    """

    params: Mapping[str, Any] = field(default_factory=dict)
    # The export's expression → typed references table (``ExportResult.origins``).
    origins: Mapping[str, list[Any]] = field(default_factory=dict)
    logging: bool = False
    tracing: bool = False
    usages: dict[str, set[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # DynamoDB table name in the definition → the ARN the template grants on (the table actually used).
    tables: Mapping[str, Any] = field(default_factory=dict)

    def use(self, param: str, how: str) -> None:
        self.usages.setdefault(param, set()).add(how)


# ---------------------------------------------------------------------------
# Names: literal pieces, params, and run-time parts
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Lit:
    text: str


@dataclass(frozen=True)
class Par:
    name: str


@dataclass(frozen=True)
class SubText:
    """A param's value in the template as ``Fn::Sub`` text (e.g. ``s3://${DataBucket}/${DataKey}``)."""

    text: str


class WildcardName(PolicyError):
    """A literal name holds ``*`` or ``?``: in an IAM resource it would match other resources too."""


def _refuse_wildcards(text: str, what: str) -> None:
    if "*" in text or "?" in text:
        raise WildcardName(
            f"{what} {text!r} contains '*' or '?', which an IAM policy reads as a wildcard: "
            "the permission would cover every resource it matches"
        )


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()
Piece = Any  # Lit | Par | ANY


def _normal(pieces: list[Piece]) -> list[Piece]:
    out: list[Piece] = []
    for p in pieces:
        if isinstance(p, Lit) and not p.text:
            continue
        if out and isinstance(p, Lit) and isinstance(out[-1], Lit):
            out[-1] = Lit(out[-1].text + p.text)
        elif out and p is ANY and out[-1] is ANY:
            continue
        else:
            out.append(p)
    return out


def normalize(pieces: list[Piece]) -> list[Piece]:
    """Adjacent literals joined, empty ones and repeated run-time parts dropped (so equal names compare equal)."""
    return _normal(pieces)


class _Resolver:
    """Follows a Parameters value back to literals and params: expressions to the typed references they
    were translated from (``origins``, no parsing of intrinsic functions), paths through the Pass states
    that filled them."""

    def __init__(self, definition: dict[str, Any], origins: Mapping[str, list[Any]] | None = None):
        # expression → the typed reference (not an upstream result) it came from; upstream result → expression
        self.typed: dict[str, Any] = {}
        self.paths: dict[Any, str] = {}  # ResultRef → expression
        for expr, refs in (origins or {}).items():
            for ref in refs:
                if type(ref).__name__ == "ResultRef":  # (retraining stays unimported here, see pieces_of)
                    self.paths.setdefault(ref, expr)
                else:
                    self.typed.setdefault(expr, ref)
        self.producers: list[tuple[str, Any]] = []  # (ResultPath, Parameters or Result)
        for state in _walk_states(definition):
            if state.get("Type") == "Pass" and isinstance(state.get("ResultPath"), str):
                body = state.get("Parameters", state.get("Result"))
                if isinstance(body, dict):
                    self.producers.append((state["ResultPath"], body))

    def field(self, parameters: Any, key: str) -> list[Piece] | None:
        """The pieces of ``parameters[key]`` (or ``key.$``); ``None`` when the field is absent."""
        if not isinstance(parameters, dict):
            return None
        if key in parameters:
            value = parameters[key]
            return (
                [Lit(value)]
                if isinstance(value, str)
                else [Lit(str(value))]
                if isinstance(value, (int, float))
                else [ANY]
            )
        if f"{key}.$" in parameters:
            return self.expr(parameters[f"{key}.$"])
        return None

    def expr(self, expr: Any, depth: int = 0) -> list[Piece]:
        if not isinstance(expr, str) or depth > 8:
            return [ANY]
        if expr in self.typed:
            return pieces_of(self.typed[expr], lambda ref: self.expr(self.paths.get(ref), depth + 1))
        if re.fullmatch(r"\$(\.[A-Za-z0-9_]+)+", expr):  # a path some Pass state may have filled
            found: list[list[Piece]] = []
            for result_path, body in self.producers:
                if expr.startswith(result_path + "."):
                    keys = expr[len(result_path) + 1 :].split(".")
                    value = _lookup(self, body, keys, depth)
                    if value is not None:
                        found.append(value)
            if found and all(f == found[0] for f in found):
                return found[0]
        return [ANY]


def _lookup(resolver: _Resolver, body: Any, keys: list[str], depth: int) -> list[Piece] | None:
    for key in keys[:-1]:
        if not isinstance(body, dict) or key not in body:
            return None
        body = body[key]
    if not isinstance(body, dict):
        return None
    last = keys[-1]
    if last in body:
        value = body[last]
        return [Lit(value)] if isinstance(value, str) else None
    if f"{last}.$" in body:
        return resolver.expr(body[f"{last}.$"], depth + 1)
    return None


def pieces_of(value: Any, follow: Callable[[Any], list[Piece]] | None = None) -> list[Piece]:
    """A typed request value (literal or reference) → name pieces, read from the references themselves.

    ``follow``: the pieces of an upstream result (where the definition's data flow says what it holds).
    """
    # Lazy: importing retraining imports Airflow, which the CLI configures (quiet logging) before loading DAGs.
    from retraining.refs import Format, ParamRef, ResultRef, RunUniqueName

    if isinstance(value, ResultRef) and follow is not None:
        return follow(value)
    if isinstance(value, str):
        return [Lit(value)]
    if isinstance(value, bool) or value is None:
        return [ANY]
    if isinstance(value, (int, float)):
        return [Lit(str(value))]
    if isinstance(value, ParamRef):
        return [Par(value.name)]
    if isinstance(value, Format):
        literals = value.template.split("{}")
        pieces: list[Piece] = [Lit(literals[0])]
        for arg, literal in zip(value.args, literals[1:], strict=True):
            pieces += [*pieces_of(arg, follow), Lit(literal)]
        return _normal(pieces)
    if isinstance(value, RunUniqueName):
        return _normal([*pieces_of(value.prefix, follow), Lit("-"), ANY])
    return [ANY]  # an upstream result or anything else known only at run time


def resolve_name(
    definition: dict[str, Any], parameters: Any, key: str, origins: Mapping[str, list[Any]] | None = None
) -> list[Piece] | None:
    """The pieces of one Parameters field (see the module docstring); ``None`` when absent."""
    return _Resolver(definition, origins).field(parameters, key)


def sub_text(pieces: list[Piece], context: PolicyContext, *, lower: bool = False, usage: str | None = None) -> str:
    """Pieces → text for ``Fn::Sub``: params as ``${Logical}`` (or their literal), run-time parts as ``*``."""
    out = []
    for piece in _normal(pieces):
        if isinstance(piece, Lit):
            _refuse_wildcards(piece.text, "the literal")
            text = piece.text.lower() if lower else piece.text
            out.append(text.replace("${", "${!"))
        elif isinstance(piece, Par):
            value = context.params.get(piece.name)
            if isinstance(value, dict) and set(value) == {"Ref"}:
                out.append("${" + value["Ref"] + "}")
                if usage:
                    context.use(piece.name, usage)
            elif isinstance(value, SubText):
                out.append(value.text)
                if usage:
                    context.use(piece.name, usage)
            elif isinstance(value, str):
                _refuse_wildcards(value, f"param {piece.name!r}")
                text = value.lower() if lower else value
                out.append(text.replace("${", "${!"))
            else:
                out.append("*")
        else:
            out.append("*")
    text = "".join(out)
    return re.sub(r"\*+", "*", text) or "*"


# ---------------------------------------------------------------------------
# The policy
# ---------------------------------------------------------------------------


class _Statements:
    def __init__(self) -> None:
        self._by_key: dict[tuple[Any, ...], dict[str, Any]] = {}

    def add(
        self,
        sid: str,
        actions: tuple[str, ...] | list[str],
        resources: list[Any],
        condition: dict[str, Any] | None = None,
    ) -> None:
        for action in actions:
            if action == "*" or action.endswith(":*"):
                raise PolicyError(f"refusing wildcard action {action!r}")
        if any(r == "*" for r in resources) and not set(actions) <= RESOURCE_STAR_ACTIONS:
            raise PolicyError(f"refusing Resource '*' for {sorted(actions)}: they support resource-level permissions")
        key = (tuple(sorted(set(actions))), json.dumps(condition, sort_keys=True))
        statement = self._by_key.get(key)
        if statement is None:
            statement = {"Sid": sid, "Effect": "Allow", "Action": sorted(set(actions)), "Resource": []}
            if condition:
                statement["Condition"] = condition
            self._by_key[key] = statement
        for resource in resources:
            if resource not in statement["Resource"]:
                statement["Resource"].append(resource)

    def document(self) -> dict[str, Any]:
        statements = list(self._by_key.values())
        seen: dict[str, int] = {}
        for s in sorted(statements, key=lambda s: (s["Sid"], s["Action"])):
            n = seen.get(s["Sid"], 0)
            seen[s["Sid"]] = n + 1
            if n:
                s["Sid"] = f"{s['Sid']}{n + 1}"
            s["Resource"] = sorted(s["Resource"], key=lambda r: json.dumps(r, sort_keys=True))
        return {"Version": "2012-10-17", "Statement": sorted(statements, key=lambda s: s["Sid"])}


def _sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


def _sagemaker_arn(kind: str, name: str) -> dict[str, str]:
    return _sub(f"{ARN_HEAD}:sagemaker:{REGIONAL}:{kind}/{name}")


def state_machine_policy(definition: dict[str, Any], context: PolicyContext) -> dict[str, Any]:
    """The state machine role's policy document for ``definition`` (see the module docstring)."""
    resolver = _Resolver(definition, context.origins)
    out = _Statements()
    for name, state in _walk_named_states(definition):
        if state.get("Type") != "Task":
            continue
        resource = state.get("Resource", "")
        params = state.get("Parameters") if isinstance(state.get("Parameters"), dict) else {}
        _Task(name, resource, params, resolver, context, out).grant()
    if context.logging:
        out.add("CloudWatchLogsDelivery", LOGGING_ACTIONS, ["*"])
    if context.tracing:
        out.add("XRayTracing", TRACING_ACTIONS, ["*"])
    return out.document()


class _Task:
    def __init__(
        self,
        name: str,
        resource: str,
        params: dict[str, Any],
        resolver: _Resolver,
        context: PolicyContext,
        out: _Statements,
    ):
        self.name, self.resource, self.params = name, resource, params
        self.resolver, self.context, self.out = resolver, context, out

    # -- names -----------------------------------------------------------------
    def pieces(self, key: str, required: bool = True) -> list[Piece] | None:
        pieces = self.resolver.field(self.params, key)
        if pieces is None and required:
            raise PolicyError(f"state {self.name!r} ({self.resource}) has no {key}: cannot scope its permissions")
        return pieces

    def name_text(self, key: str, *, lower: bool = False, usage: str | None = None) -> str:
        try:
            text = sub_text(self.pieces(key) or [ANY], self.context, lower=lower, usage=usage)
        except WildcardName as err:
            raise WildcardName(f"state {self.name!r}, field {key}: {err}", "use a name without '*' or '?'") from None
        if text == "*":
            self.context.warnings.append(
                f"state {self.name!r}: {key} is only known at run time; "
                "its permission covers every name of that resource type"
            )
        return text

    def sagemaker(self, kind: str, key: str) -> dict[str, str]:
        return _sagemaker_arn(kind, self.name_text(key, lower=True, usage="sagemaker-name"))

    def role(self, key: str) -> None:
        pieces = self.pieces(key, required=False)
        if pieces is None:
            return
        pieces = _normal(pieces)
        if (
            len(pieces) == 1
            and isinstance(pieces[0], Par)
            and isinstance(self.context.params.get(pieces[0].name), dict)
        ):
            self.context.use(pieces[0].name, "iam-role")
            arn: Any = self.context.params[pieces[0].name]
        elif len(pieces) == 1 and isinstance(pieces[0], Lit):
            arn = pieces[0].text
        else:
            text = sub_text(pieces, self.context, usage="iam-role")
            if "*" in text:
                text = f"{ARN_HEAD}:iam::${{AWS::AccountId}}:role/*"
                self.context.warnings.append(
                    f"state {self.name!r}: {key} is only known at run time; "
                    "iam:PassRole covers every role of the account"
                )
            arn = _sub(text)
        self.out.add(
            "PassRoleToSageMaker",
            ["iam:PassRole"],
            [arn],
            {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        )

    def tags(self, sid: str, resources: list[Any]) -> None:
        """CreateX with Tags in the request also needs sagemaker:AddTags on what it creates."""
        if "Tags" in self.params or "Tags.$" in self.params:
            self.out.add(sid, ["sagemaker:AddTags"], resources)

    # -- integrations --------------------------------------------------------------
    def grant(self) -> None:
        resource = self.resource
        if resource.startswith("arn:aws:lambda:") or re.match(r"arn:\$\{AWS::Partition\}:lambda:", resource):
            self.out.add("LambdaInvoke", ["lambda:InvokeFunction"], [resource])
            return
        if not resource.startswith(STATES_PREFIX):
            raise PolicyError(
                f"state {self.name!r}: resource {resource!r} is not a service integration this exporter knows"
            )
        integration = resource[len(STATES_PREFIX) :]
        handler = _HANDLERS.get(integration)
        if handler is None and integration.startswith(("aws-sdk:", "states:startExecution")):
            iam_sdk.grant_sdk_call(self, integration)
            return
        if handler is None:
            raise PolicyError(
                f"state {self.name!r}: no least-privilege policy is known for {resource!r}; "
                "add it to exporters.iam._HANDLERS with the actions and resources it needs"
            )
        handler(self)

    def glue_start(self, sync: bool) -> None:
        job = _sub(f"{ARN_HEAD}:glue:{REGIONAL}:job/{self.name_text('JobName', usage='glue-job')}")
        if sync:
            # .sync: start, poll the run, and stop it when the state is stopped.
            actions = ["glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"]
            self.out.add("GlueJobRunSync", actions, [job])
        else:
            self.out.add("GlueStartJobRun", ["glue:StartJobRun"], [job])

    def training_job(self, sync: bool) -> None:
        job = self.sagemaker("training-job", "TrainingJobName")
        if sync:
            self.out.add(
                "SageMakerTrainingJobSync",
                ["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob"],
                [job],
            )
            # .sync tags the job it starts (MANAGED_BY_AWS=STARTED_BY_STEP_FUNCTIONS): AddTags on those jobs only.
            self.out.add("SageMakerTrainingJobTags", ["sagemaker:AddTags"], [job])
            # .sync waits on the job through this managed EventBridge rule.
            rule = _sub(f"{ARN_HEAD}:events:{REGIONAL}:rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule")
            self.out.add(
                "SageMakerTrainingJobEvents", ["events:PutTargets", "events:PutRule", "events:DescribeRule"], [rule]
            )
        else:
            self.out.add("SageMakerCreateTrainingJob", ["sagemaker:CreateTrainingJob"], [job])
            self.tags("SageMakerTrainingJobTags", [job])
        self.role("RoleArn")

    def create_model(self) -> None:
        model = self.sagemaker("model", "ModelName")
        self.out.add("SageMakerCreateModel", ["sagemaker:CreateModel"], [model])
        self.tags("SageMakerModelTags", [model])
        self.role("ExecutionRoleArn")

    def create_endpoint_config(self) -> None:
        config = self.sagemaker("endpoint-config", "EndpointConfigName")
        self.out.add("SageMakerCreateEndpointConfig", ["sagemaker:CreateEndpointConfig"], [config])
        self.tags("SageMakerEndpointConfigTags", [config])

    def endpoint_change(self, action: str) -> None:
        # CreateEndpoint/UpdateEndpoint authorize on the endpoint and on the config it will serve.
        endpoint = self.sagemaker("endpoint", "EndpointName")
        config = self.sagemaker("endpoint-config", "EndpointConfigName")
        self.out.add(f"SageMaker{action}", [f"sagemaker:{action}"], [endpoint, config])
        if action == "CreateEndpoint":
            self.tags("SageMakerEndpointTags", [endpoint])

    def describe(self, action: str, kind: str, key: str) -> None:
        self.out.add(f"SageMaker{action}", [f"sagemaker:{action}"], [self.sagemaker(kind, key)])

    def lambda_invoke(self) -> None:
        pieces = _normal(self.pieces("FunctionName") or [ANY])
        if len(pieces) == 1 and isinstance(pieces[0], Lit) and pieces[0].text.startswith("arn:"):
            function: Any = pieces[0].text
        else:
            name = sub_text(pieces, self.context, usage="lambda-function")
            if name == "*":
                self.context.warnings.append(
                    f"state {self.name!r}: FunctionName is only known at run time; "
                    "lambda:InvokeFunction covers every function"
                )
            function = _sub(f"{ARN_HEAD}:lambda:{REGIONAL}:function:{name}")
        self.out.add("LambdaInvoke", ["lambda:InvokeFunction"], [function])

    def dynamodb_item(self, action: str) -> None:
        name = self.name_text("TableName")
        table = self.context.tables.get(name) or _sub(f"{ARN_HEAD}:dynamodb:{REGIONAL}:table/{name}")
        self.out.add("DynamoDBRunSlots", [f"dynamodb:{action}"], [table])


_HANDLERS = {
    "dynamodb:updateItem": lambda t: t.dynamodb_item("UpdateItem"),
    "dynamodb:getItem": lambda t: t.dynamodb_item("GetItem"),
    "glue:startJobRun.sync": lambda t: t.glue_start(True),
    "glue:startJobRun": lambda t: t.glue_start(False),
    "sagemaker:createTrainingJob.sync": lambda t: t.training_job(True),
    "sagemaker:createTrainingJob": lambda t: t.training_job(False),
    "sagemaker:createModel": lambda t: t.create_model(),
    "sagemaker:createEndpointConfig": lambda t: t.create_endpoint_config(),
    "sagemaker:createEndpoint": lambda t: t.endpoint_change("CreateEndpoint"),
    "sagemaker:updateEndpoint": lambda t: t.endpoint_change("UpdateEndpoint"),
    "aws-sdk:sagemaker:describeEndpoint": lambda t: t.describe("DescribeEndpoint", "endpoint", "EndpointName"),
    "aws-sdk:sagemaker:describeEndpointConfig": lambda t: t.describe(
        "DescribeEndpointConfig", "endpoint-config", "EndpointConfigName"
    ),
    "aws-sdk:sagemaker:describeModel": lambda t: t.describe("DescribeModel", "model", "ModelName"),
    "aws-sdk:sagemaker:describeTrainingJob": lambda t: t.describe(
        "DescribeTrainingJob", "training-job", "TrainingJobName"
    ),
    "lambda:invoke": lambda t: t.lambda_invoke(),
}


# ---------------------------------------------------------------------------
# Walking the definition
# ---------------------------------------------------------------------------


def _walk_named_states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in (definition.get("States") or {}).items():
        yield name, state
        for branch in state.get("Branches") or []:  # Parallel
            yield from _walk_named_states(branch)
        for key in ("ItemProcessor", "Iterator"):  # Map (both spellings)
            if isinstance(state.get(key), dict):
                yield from _walk_named_states(state[key])


def _walk_states(definition: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for _, state in _walk_named_states(definition):
        yield state


def task_states(definition: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every Task state, nested ones included, as (name, state)."""
    return [(n, s) for n, s in _walk_named_states(definition) if s.get("Type") == "Task"]


# Any other aws-sdk integration (generic SDK calls, S3 operators, sensors' checks).
from exporters import iam_sdk  # noqa: E402
