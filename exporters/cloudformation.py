"""A deployable CloudFormation template for an exported DAG (``OUT/DAG_ID/template.json``).

``build_template(result, dag, ...)`` returns the template as a dict; ``template_json``
serialises it deterministically. The template holds:

* ``AWS::StepFunctions::StateMachine`` with the exported definition, optional
  CloudWatch Logs logging (its own log group) and X-Ray tracing;
* its IAM role, with the least-privilege policy ``exporters.iam`` derives from the
  states actually used;
* the DAG's schedule as an ``AWS::Scheduler::Schedule`` (or a classic
  ``AWS::Events::Rule``), with its own role allowed only ``states:StartExecution`` on
  this state machine (``exporters.schedule`` translates the schedule exactly or fails);
* optionally the ``lambda/`` function and the ``glue/`` job, each with its own role;
* the state machine and role of each DAG it starts with ``TriggerDagRunOperator`` (nested pipelines),
  named as the parent's definition finds them, created before the parent's.

How the DAG's params reach AWS (the single source of truth is the template's parameters):
every string-valued DAG param becomes a template parameter (default: the DAG's default,
constraints from the param's schema). The definition keeps its "Param defaults" state,
but those values become ``${Parameter}`` placeholders filled by ``DefinitionSubstitutions``,
so the state machine itself (console runs, API runs with partial input) and the schedule
use the same values; the schedule's constant input is built from the same placeholders,
so it cannot drift from the definition either. Non-string params (numbers, objects) keep
their DAG defaults, as literals, in both. Nothing is read from Airflow connections.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporters import concurrency, iam
from exporters.api import write_atomically
from exporters.asl import walk_definition
from exporters.errors import ExporterError
from exporters.run_clock import (
    EVENTS_RULE_PATHS,
    EVENTS_RULE_PLACEHOLDER,
    SCHEDULER_PLACEHOLDER,
    reads_scheduled_time,
    schedule_input,
)
from exporters.schedule import ScheduleError, ScheduleSpec, events_rule_expression, translate_schedule

__all__ = ["TEMPLATE_FILE", "TemplateError", "build_template", "template_json", "write_template"]

TEMPLATE_FILE = "template.json"
SCHEDULE_KINDS = ("scheduler", "events-rule", "none")
LOG_LEVELS = ("ALL", "ERROR", "FATAL", "OFF")
INLINE_CODE_LIMIT = 4096  # CloudFormation's limit on Code.ZipFile for Python
TEMPLATE_BODY_LIMIT = 51200  # bytes; larger templates must be deployed from S3
LAMBDA_RUNTIME = "python3.12"
# Relative to the working directory: a project keeps its Lambda and Glue sources beside its DAGs.
DEFAULT_LAMBDA_SOURCE = Path("lambda") / "query_training_status.py"
DEFAULT_GLUE_SCRIPT = Path("glue") / "churn_etl.py"

# Logical ids of the resources this module creates; parameters never take these.
RESOURCE_IDS = {
    "StateMachine",
    "StateMachineRole",
    "StateMachineLogGroup",
    "Schedule",
    "ScheduleRole",
    "ScheduleRule",
    "ScheduleRuleRole",
    "LambdaFunction",
    "LambdaFunctionRole",
    "LambdaFunctionLogGroup",
    "LambdaCodeBucket",
    "LambdaCodeKey",
    "GlueJob",
    "GlueJobRole",
    "GlueScriptBucket",
    "GlueScriptKey",
    "RunSlotTable",
    "RunSlots",
    "RunSlotCleanup",
    "RunSlotCleanupRole",
    "RunSlotCleanupRule",
    "RunSlotCleanupRuleRole",
}
# Substitutions are inserted as raw text into JSON strings (and DefinitionSubstitutions re-scans
# what it inserted): no quote, backslash or control character, and no "${".
JSON_SAFE = r'[^"\\\x00-\x1f]*'
NO_PLACEHOLDER = r"(?!.*\$\{)"
NO_WILDCARDS = r"[^*?]*"  # a '*' in a name would widen the IAM resource it scopes
LOWER_CASE = r"[^A-Z]*"  # SageMaker lower-cases names in ARNs; IAM compares ARNs case-sensitively
LAMBDA_NAME = r"[A-Za-z0-9_-]{1,64}"
S3_BUCKET = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
STATES_PREFIX = iam.STATES_PREFIX
# The run-slot table (max_active_runs): the one this stack creates, or the one the RunSlotTable parameter names.
RUN_SLOT_TABLE_NAME = {"Fn::If": ["CreateRunSlotTable", {"Ref": "RunSlots"}, {"Ref": "RunSlotTable"}]}
RUN_SLOT_TABLE_ARN = {
    "Fn::Sub": [
        "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${Table}",
        {"Table": RUN_SLOT_TABLE_NAME},
    ]
}


class TemplateError(ExporterError, ValueError):
    """The template cannot be built as asked (a missing source file, ambiguous resources, ...)."""


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------


def build_template(
    result: Any,
    dag: Any,
    *,
    schedule_kind: str = "scheduler",
    allow_unsupported_schedule: bool = False,
    include_lambda: bool = False,
    include_glue: bool = False,
    logging_level: str | None = "ERROR",
    tracing: bool = False,
    lambda_source: str | Path | None = None,
    glue_script: str | Path | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The CloudFormation template (a dict) deploying ``result`` (an ``ExportResult`` of ``dag``).

    ``schedule_kind``: ``"scheduler"`` (EventBridge Scheduler, the DAG's timezone kept),
    ``"events-rule"`` (a classic EventBridge rule: UTC only, no start/end date) or ``"none"``.
    ``allow_unsupported_schedule``: export a schedule EventBridge cannot express *without*
    a schedule (and a warning) instead of raising ``ScheduleError``.
    ``logging_level``: ``ALL``/``ERROR``/``FATAL`` log to a new CloudWatch Logs group;
    ``OFF`` or ``None``: no logging. ``tracing``: X-Ray.
    ``include_lambda`` / ``include_glue``: also create the metric-check function
    (``lambda_source``, default ``lambda/query_training_status.py``) / the Glue job
    (``glue_script``'s name is the default S3 key of the script).
    ``now``: the deployment reference time (default: the current time); a StartDate
    already past is left out, since EventBridge rejects one more than 5 minutes old.

    Warnings (schedule caveats, names only known at run time) are appended to
    ``result.warnings``. Raises ``ScheduleError``, ``iam.PolicyError`` or ``TemplateError``.
    """
    if schedule_kind not in SCHEDULE_KINDS:
        raise TemplateError(f"schedule_kind must be one of {', '.join(SCHEDULE_KINDS)}, not {schedule_kind!r}")
    level = "OFF" if logging_level is None else str(logging_level).upper()
    if level not in LOG_LEVELS:
        raise TemplateError(f"logging_level must be one of {', '.join(LOG_LEVELS)} (or None), not {logging_level!r}")
    now = now or dt.datetime.now(dt.UTC)
    builder = _Builder(result, dag, level, tracing, now)
    builder.state_machine()
    builder.nested_pipelines()
    if schedule_kind != "none":
        builder.schedule(schedule_kind, allow_unsupported_schedule)
    if include_lambda:
        builder.lambda_function(Path(lambda_source) if lambda_source else DEFAULT_LAMBDA_SOURCE)
    if include_glue:
        builder.glue_job(Path(glue_script) if glue_script else DEFAULT_GLUE_SCRIPT)
    return builder.finish()


def _has_distributed_map(definition: dict[str, Any]) -> bool:
    return any(
        (state.get("ItemProcessor") or {}).get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED"
        for _, _, state in walk_definition(definition)
        if isinstance(state, dict)
    )


def _distributed_map_policy() -> dict[str, Any]:
    """What a Distributed Map needs (Step Functions developer guide, "IAM policies for using Distributed Map
    states"): start child executions of this state machine, describe and stop them. A policy of its own, so
    it can name the state machine (the role cannot: the state machine depends on it)."""
    return {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyName": "DistributedMapChildExecutions",
            "Roles": [{"Ref": "StateMachineRole"}],
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "StartChildExecutions",
                        "Effect": "Allow",
                        "Action": ["states:StartExecution"],
                        "Resource": [{"Ref": "StateMachine"}],
                    },
                    {
                        "Sid": "ManageChildExecutions",
                        "Effect": "Allow",
                        "Action": ["states:DescribeExecution", "states:StopExecution"],
                        "Resource": [
                            {
                                "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:"
                                "execution:${StateMachine.Name}/*"
                            }
                        ],
                    },
                ],
            },
        },
    }


def template_json(template: dict[str, Any]) -> str:
    """Deterministic JSON (indent 2): mapping keys sorted, except the state machine definition,
    which keeps the exporter's state order (as in ``state_machine.asl.json``), and the top-level
    sections, which keep CloudFormation's conventional order."""
    order = ["AWSTemplateFormatVersion", "Description", "Metadata", "Parameters", "Conditions", "Resources", "Outputs"]
    top = {key: _sorted(template[key]) for key in order if key in template}
    for key in sorted(set(template) - set(order)):
        top[key] = _sorted(template[key])
    return json.dumps(top, indent=2, ensure_ascii=False) + "\n"


def write_template(template: dict[str, Any], out: str | Path, dag_id: str) -> Path:
    """Write ``out/dag_id/template.json`` atomically; returns the path."""
    target = Path(out) / dag_id / TEMPLATE_FILE
    write_atomically(target, template_json(template))
    return target


def _sorted(value: Any, *, keep: bool = False) -> Any:
    if isinstance(value, dict):
        if keep:
            return value
        is_machine = value.get("Type") == "AWS::StepFunctions::StateMachine"
        out = {}
        for key in sorted(value):
            if is_machine and key == "Properties":
                props = value[key]
                out[key] = {k: (props[k] if k == "Definition" else _sorted(props[k])) for k in sorted(props)}
            else:
                out[key] = _sorted(value[key])
        return out
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


# ---------------------------------------------------------------------------
# DAG params carried by template parameters
# ---------------------------------------------------------------------------


def _s3_uri(value: str) -> re.Match | None:
    """``s3://bucket/key`` by the rules DAG params use: (bucket, key) groups, or None."""
    # Lazy: retraining imports Airflow, which the CLI configures (quiet logging) before loading DAGs.
    from retraining.s3 import S3_BUCKET_PATTERN, S3_KEY_PATTERN

    return re.match(f"^s3://({S3_BUCKET_PATTERN})/({S3_KEY_PATTERN})$", value)


@dataclass(frozen=True)
class _Carried:
    """The template parameter(s) carrying one string DAG param: ``logical``, or for an S3 URI
    ``logical`` (its bucket) and ``key``, so IAM can scope S3 grants to the key prefix."""

    logical: str
    key: str | None = None

    def logicals(self) -> list[str]:
        return [self.logical] if self.key is None else [self.logical, self.key]

    def text(self) -> str:
        """The param's value as placeholder text (``Fn::Sub`` / ``DefinitionSubstitutions``)."""
        return f"${{{self.logical}}}" if self.key is None else f"s3://${{{self.logical}}}/${{{self.key}}}"

    def policy_value(self) -> Any:
        return {"Ref": self.logical} if self.key is None else iam.SubText(self.text())


def _template_params(defaults: dict[str, Any]) -> dict[str, _Carried]:
    """Every string-valued DAG param → its template parameter(s), with logical ids no resource takes."""
    carried: dict[str, _Carried] = {}
    taken = set(RESOURCE_IDS)

    def fresh(logical: str) -> str:
        while logical in taken:
            logical += "Param"
        taken.add(logical)
        return logical

    for name, value in defaults.items():
        if not isinstance(value, str):
            continue
        logical = "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name) if part) or "Param"
        if not logical[0].isalpha():
            logical = "P" + logical
        if _s3_uri(value):
            carried[name] = _Carried(fresh(logical + "Bucket"), fresh(logical + "Key"))
        else:
            carried[name] = _Carried(fresh(logical))
    return carried


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, key = _s3_uri(uri).groups()  # type: ignore[union-attr]
    return bucket, key


# ---------------------------------------------------------------------------
# The builder
# ---------------------------------------------------------------------------


class _Builder:
    def __init__(self, result: Any, dag: Any, level: str, tracing: bool, now: dt.datetime):
        self.result = result
        self.dag = dag
        self.dag_id = dag.dag_id
        self.level = level
        self.tracing = tracing
        self.now = now
        self.warnings: list[str] = []
        self.parameters: dict[str, dict[str, Any]] = {}
        self.resources: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.depends: list[str] = []
        self.conditions: dict[str, Any] = {}
        self.schedule_source: str | None = None
        if "${" in json.dumps(result.definition):
            raise TemplateError(
                f"DAG {self.dag_id!r}: the definition contains '${{', "
                "which DefinitionSubstitutions would treat as a placeholder"
            )
        # Lazy: the compiler imports Airflow, which the CLI configures (quiet logging) before loading DAGs.
        from exporters.compiler import param_defaults

        self.param_values = param_defaults(dag)
        self.template_params = _template_params(self.param_values)
        self.context = iam.PolicyContext(
            params={
                name: (self.template_params[name].policy_value() if name in self.template_params else value)
                for name, value in self.param_values.items()
            },
            origins=result.origins,
            logging=level != "OFF",
            tracing=tracing,
            tables={concurrency.DEFAULT_TABLE: RUN_SLOT_TABLE_ARN},
        )

    # -- DAG params → template parameters --------------------------------------
    def _template_parameters(self) -> None:
        for name, carried in self.template_params.items():
            param = self.dag.params.get_param(name)
            schema = dict(getattr(param, "schema", {}) or {})
            description = (getattr(param, "description", None) or "").strip()
            if carried.key is not None:
                self._s3_parameters(name, carried, schema, description)
                continue
            lookaheads, notes = self._constraints(name)
            self._add_parameter(
                name,
                carried.logical,
                self.param_values[name],
                description,
                notes,
                pattern=_allowed_pattern(schema.get("pattern"), lookaheads),
                constraint=(f"must match {schema['pattern']} and " if schema.get("pattern") else "must ")
                + "contain no double quote, backslash, control character or '${'"
                + (f"; {'; '.join(notes)}" if notes else ""),
                schema=schema,
            )

    def _constraints(self, name: str) -> tuple[list[str], list[str]]:
        """The lookaheads a param's template value needs for how the policies use it, and why."""
        lookaheads = [JSON_SAFE]
        notes = []
        used = self.context.usages.get(name, set())
        if used & {"sagemaker-name", "lambda-function", "glue-job", "glue-catalog", "s3-location", "dynamodb-table"}:
            lookaheads.append(NO_WILDCARDS)
            notes.append("no '*' or '?': it scopes IAM permissions")
        if "sagemaker-name" in used:
            lookaheads.append(LOWER_CASE)
            notes.append("lower case: SageMaker ARNs carry lower-cased names and the IAM policy is scoped on them")
        if "lambda-function" in used:
            lookaheads.append(LAMBDA_NAME)
            notes.append("a function name (not an ARN)")
        if "iam-role" in used:
            lookaheads.append(iam.ROLE_ARN_PATTERN)
            notes.append("a role ARN: iam:PassRole is granted on exactly this role")
        return lookaheads, notes

    def _s3_parameters(self, name: str, carried: _Carried, schema: dict[str, Any], description: str) -> None:
        """An S3 URI param as two template parameters, bucket and key, each constrained to AWS's rules."""
        # Lazy: retraining imports Airflow, which the CLI configures (quiet logging) before loading DAGs.
        from retraining.s3 import S3_BUCKET_PATTERN, S3_KEY_PATTERN, S3_PREFIX_KEY_PATTERN

        bucket, key = _split_s3(self.param_values[name])
        own = f"; the whole URI must match {schema['pattern']}" if schema.get("pattern") else ""
        self._add_parameter(
            name,
            carried.logical,
            bucket,
            description,
            ["the bucket of the S3 URI"],
            pattern=f"^{S3_BUCKET_PATTERN}$",
            constraint="must be an S3 bucket name (3-63 of a-z 0-9 . -, no '..', not an IP address)" + own,
        )
        prefix = key.endswith("/")
        self._add_parameter(
            name,
            carried.key,
            key,
            description,
            [f"the key {'prefix ' if prefix else ''}of the S3 URI inside that bucket"],
            pattern=f"^{S3_PREFIX_KEY_PATTERN if prefix else S3_KEY_PATTERN}$",
            constraint="must be a key"
            + (" prefix ending with '/'" if prefix else "")
            + ": segments of A-Z a-z 0-9 ! _ . ( ) = + -, none empty, '.' or '..'"
            + own,
        )

    def _add_parameter(
        self,
        name: str,
        logical: str,
        default: str,
        description: str,
        notes: list[str],
        *,
        pattern: str,
        constraint: str,
        schema: dict[str, Any] | None = None,
    ) -> None:
        about = f"DAG param {name}" + (f"; {'; '.join(notes)}" if notes else "")
        spec: dict[str, Any] = {
            "Type": "String",
            "Default": default,
            "Description": (f"{description} ({about})" if description else about)[:4000],
            "AllowedPattern": pattern,
            "ConstraintDescription": constraint,
        }
        schema = schema or {}
        if isinstance(schema.get("minLength"), int):
            spec["MinLength"] = schema["minLength"]
        if isinstance(schema.get("maxLength"), int):
            spec["MaxLength"] = schema["maxLength"]
        if isinstance(schema.get("enum"), list) and all(isinstance(v, str) for v in schema["enum"]):
            spec["AllowedValues"] = list(schema["enum"])
        if not re.fullmatch(pattern, default):
            raise TemplateError(
                f"DAG {self.dag_id!r}: param {name!r} default {default!r} breaks the template constraint "
                f"({constraint})",
                f"change the default of param {name!r}",
            )
        self.parameters[logical] = spec

    # -- the state machine -------------------------------------------------------
    def state_machine(self) -> None:
        # The definition with each template-carried param default replaced by its placeholder(s),
        # which DefinitionSubstitutions fill with the template parameters.
        definition = (
            self.result.definition_with_param_defaults(
                {name: carried.text() for name, carried in self.template_params.items()}
            )
            if self.template_params
            else self.result.definition
        )
        substitutions = {logical: {"Ref": logical} for c in self.template_params.values() for logical in c.logicals()}
        if concurrency.has_guard(definition):
            definition = concurrency.with_table(definition, concurrency.TABLE_PLACEHOLDER)
            substitutions[concurrency.TABLE_PLACEHOLDER[2:-1]] = RUN_SLOT_TABLE_NAME

        policy = iam.state_machine_policy(self.result.definition, self.context)
        self.warnings.extend(self.context.warnings)
        self.resources["StateMachineRole"] = _role(
            "states.amazonaws.com",
            f"Runs the Step Functions state machine exported from DAG {self.dag_id}",
            {"StateMachinePermissions": policy},
        )
        if _has_distributed_map(self.result.definition):
            self.resources["StateMachineDistributedMapPolicy"] = _distributed_map_policy()
        props: dict[str, Any] = {
            "StateMachineType": "STANDARD",
            "RoleArn": {"Fn::GetAtt": ["StateMachineRole", "Arn"]},
            "Definition": definition,
        }
        if substitutions:
            props["DefinitionSubstitutions"] = substitutions
        if self.level != "OFF":
            self.resources["StateMachineLogGroup"] = {
                "Type": "AWS::Logs::LogGroup",
                "Properties": {
                    # /aws/vendedlogs/ keeps Step Functions' log delivery within the resource-policy size limit.
                    "LogGroupName": {"Fn::Sub": f"/aws/vendedlogs/states/${{AWS::StackName}}-{_safe(self.dag_id)}"},
                    "RetentionInDays": 30,
                },
            }
            props["LoggingConfiguration"] = {
                "Level": self.level,
                "IncludeExecutionData": False,  # params and results stay out of the logs
                "Destinations": [
                    {"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": ["StateMachineLogGroup", "Arn"]}}}
                ],
            }
        if self.tracing:
            props["TracingConfiguration"] = {"Enabled": True}
        self.resources["StateMachine"] = {"Type": "AWS::StepFunctions::StateMachine", "Properties": props}
        self.outputs["StateMachineArn"] = {"Description": "The state machine's ARN", "Value": {"Ref": "StateMachine"}}
        self.outputs["StateMachineName"] = {
            "Description": "The state machine's name",
            "Value": {"Fn::GetAtt": ["StateMachine", "Name"]},
        }
        if concurrency.has_guard(self.result.definition):
            self._run_slots()

    def _run_slots(self) -> None:
        """max_active_runs: the run-slot table (or the one named) and the cleanup of runs that end unseen."""
        self.parameters["RunSlotTable"] = {
            "Type": "String",
            "Default": "",
            "Description": "Existing DynamoDB table (key LockName, a string) holding the DAG's run slots "
            "(max_active_runs); empty: this stack creates one",
            "AllowedPattern": "^$|^[a-zA-Z0-9_.-]{3,255}$",
            "ConstraintDescription": "a DynamoDB table name (3-255 of letters, digits, _ . -) or empty",
        }
        self.conditions["CreateRunSlotTable"] = {"Fn::Equals": [{"Ref": "RunSlotTable"}, ""]}
        self.resources["RunSlots"] = {
            "Type": "AWS::DynamoDB::Table",
            "Condition": "CreateRunSlotTable",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",  # run slots are live counters: nothing to keep
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": concurrency.LOCK_KEY, "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": concurrency.LOCK_KEY, "KeyType": "HASH"}],
            },
        }
        release = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ReleaseRunSlot",
                    "Effect": "Allow",
                    "Action": ["dynamodb:UpdateItem"],
                    "Resource": [RUN_SLOT_TABLE_ARN],
                }
            ],
        }
        self.resources["RunSlotCleanupRole"] = _role(
            "states.amazonaws.com",
            f"Gives back the run slot of an execution of DAG {self.dag_id} that timed out, was stopped or failed",
            {"ReleaseRunSlot": release},
        )
        self.resources["RunSlotCleanup"] = {
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {
                "StateMachineType": "STANDARD",
                "RoleArn": {"Fn::GetAtt": ["RunSlotCleanupRole", "Arn"]},
                "Definition": concurrency.cleanup_definition(concurrency.TABLE_PLACEHOLDER, self.dag_id),
                "DefinitionSubstitutions": {concurrency.TABLE_PLACEHOLDER[2:-1]: RUN_SLOT_TABLE_NAME},
            },
        }
        self.resources["RunSlotCleanupRuleRole"] = _role(
            "events.amazonaws.com",
            f"Lets EventBridge start the run-slot cleanup of DAG {self.dag_id}",
            {
                "StartRunSlotCleanup": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "StartExecution",
                            "Effect": "Allow",
                            "Action": ["states:StartExecution"],
                            "Resource": [{"Ref": "RunSlotCleanup"}],
                        }
                    ],
                }
            },
        )
        self.resources["RunSlotCleanupRule"] = {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Description": f"An execution of DAG {self.dag_id} ended without giving back its run slot"[:512],
                "State": "ENABLED",
                "EventPattern": {
                    "source": ["aws.states"],
                    "detail-type": ["Step Functions Execution Status Change"],
                    "detail": {
                        "status": ["FAILED", "TIMED_OUT", "ABORTED"],
                        # Executions of the state machine, of its versions and of its alias.
                        "stateMachineArn": [{"Ref": "StateMachine"}, {"prefix": {"Fn::Sub": "${StateMachine}:"}}],
                    },
                },
                "Targets": [
                    {
                        "Id": "RunSlotCleanup",
                        "Arn": {"Ref": "RunSlotCleanup"},
                        "RoleArn": {"Fn::GetAtt": ["RunSlotCleanupRuleRole", "Arn"]},
                    }
                ],
            },
        }
        self.outputs["RunSlotTableName"] = {
            "Description": "The DynamoDB table holding the DAG's run slots (max_active_runs)",
            "Value": RUN_SLOT_TABLE_NAME,
        }

    # -- nested pipelines ----------------------------------------------------------
    def nested_pipelines(self) -> None:
        """The state machine (and role) of each DAG this one starts with TriggerDagRunOperator, and theirs.

        Each is named as the parent's definition computes the child's ARN (``state_machine_name``), keeps
        its DAG's param defaults as literals (a trigger's conf overrides them per execution) and gets its own
        least-privilege role; the parent's state machine depends on them, so the stack creates them first.
        """
        # Lazy: these import Airflow (the DAG loader, the compiler), which the CLI configures before loading DAGs.
        from exporters.api import export_dag_object
        from exporters.compiler import param_defaults
        from exporters.converters_nested import nested_children
        from exporters.deploy import state_machine_name

        for nested in nested_children(self.dag):
            child_id, child = nested.dag_id, nested.dag
            result = export_dag_object(child)
            if "${" in json.dumps(result.definition):
                raise TemplateError(
                    f"DAG {child_id!r} (started by {self.dag_id!r}): its definition contains '${{', "
                    "which CloudFormation would treat as a placeholder"
                )
            logical = "Pipeline" + "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", child_id) if p)
            while logical in self.resources or logical + "Role" in self.resources or logical in self.parameters:
                logical += "X"
            # A param the triggers' conf sets keeps its scope when they set it to the child's own default (a
            # literal, or the parent's param default, as the parent's own role is scoped); any other value
            # (another literal, or one only a run knows) widens what it scopes to '*', so no start is denied.
            params = param_defaults(child)
            per_run = set()
            for key in nested.conf_keys & set(params):
                known, value = nested.known_conf_value(key)
                if not known or value != params[key]:
                    params[key] = None
                    per_run.add(key)
            context = iam.PolicyContext(
                params=params, origins=result.origins, logging=self.level != "OFF", tracing=self.tracing
            )
            policy = iam.state_machine_policy(result.definition, context)
            self.warnings.extend(f"nested DAG {child_id!r}: {w}" for w in (*result.warnings, *context.warnings))
            if per_run:
                self.warnings.append(
                    f"nested DAG {child_id!r}: params {sorted(per_run)} are set by the trigger's conf in DAG "
                    f"{self.dag_id!r} to values other than its defaults (or only a run knows): permissions its role "
                    "scopes by them cover any value"
                )
            self.resources[f"{logical}Role"] = _role(
                "states.amazonaws.com",
                f"Runs the state machine of DAG {child_id}, started by DAG {self.dag_id}",
                {"StateMachinePermissions": policy},
            )
            props: dict[str, Any] = {
                "StateMachineName": state_machine_name(child_id),
                "StateMachineType": "STANDARD",
                "RoleArn": {"Fn::GetAtt": [f"{logical}Role", "Arn"]},
                "Definition": result.definition,
            }
            if self.level != "OFF":
                self.resources[f"{logical}LogGroup"] = {
                    "Type": "AWS::Logs::LogGroup",
                    "Properties": {
                        "LogGroupName": {"Fn::Sub": f"/aws/vendedlogs/states/${{AWS::StackName}}-{_safe(child_id)}"},
                        "RetentionInDays": 30,
                    },
                }
                props["LoggingConfiguration"] = {
                    "Level": self.level,
                    "IncludeExecutionData": False,
                    "Destinations": [
                        {"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": [f"{logical}LogGroup", "Arn"]}}}
                    ],
                }
            if self.tracing:
                props["TracingConfiguration"] = {"Enabled": True}
            self.resources[logical] = {"Type": "AWS::StepFunctions::StateMachine", "Properties": props}
            self.depends.append(logical)
            self.outputs[f"{logical}Arn"] = {
                "Description": f"The state machine of nested DAG {child_id}",
                "Value": {"Ref": logical},
            }

    # -- the schedule ------------------------------------------------------------
    def schedule(self, kind: str, allow_unsupported: bool) -> None:
        notes: list[str] = []
        spec = translate_schedule(self.dag, allow_unsupported=allow_unsupported, warnings=notes)
        self.warnings.extend(notes)
        if spec is None:
            return
        self.warnings.extend(spec.notes)
        if spec.end_date is not None and spec.end_date <= self.now:
            self.warnings.append(
                f"schedule {spec.source}: end_date has passed, Airflow schedules no more runs: no schedule is exported"
            )
            return
        try:
            if kind == "events-rule":
                self._events_rule(spec)
            else:
                self._scheduler(spec)
        except ScheduleError as err:
            if not allow_unsupported:
                raise
            self.warnings.append(
                f"{err}; exported WITHOUT a schedule (allow_unsupported_schedule): trigger executions another way"
            )
            for logical in ("Schedule", "ScheduleRole", "ScheduleRule", "ScheduleRuleRole"):
                self.resources.pop(logical, None)
            return
        self.schedule_source = spec.source

    def _start_date(self, spec: ScheduleSpec) -> dt.datetime | None:
        if spec.start_date is None:
            return None
        if spec.start_date > self.now:
            return spec.start_date
        if spec.kind == "rate":
            step = _rate_step(spec.expression)
            ahead = self.now - spec.start_date
            next_run = spec.start_date + -(-ahead // step) * step
            self.warnings.append(
                f"schedule {spec.source}: start_date {ScheduleSpec.iso(spec.start_date)} has passed, "
                "so no StartDate is set "
                f"and {spec.expression} counts from when the schedule is created; Airflow counts from start_date "
                f"(next run {ScheduleSpec.iso(next_run)}): set StartDate to such a time to keep Airflow's phase"
            )
        return None

    def _input(self, time_placeholder: str) -> dict[str, Any]:
        """The schedule's input: the DAG's param defaults, the template's values for its parameters, and
        (when the machine reads schedule-time values) ``time_placeholder``, which EventBridge fills with the
        time it was due to fire."""

        def escape(value: Any) -> Any:
            if isinstance(value, str):
                return value.replace("${", "${!")
            if isinstance(value, dict):
                return {k: escape(v) for k, v in value.items()}
            if isinstance(value, list):
                return [escape(v) for v in value]
            return value

        payload = {name: escape(value) for name, value in self.param_values.items()}
        for name, carried in self.template_params.items():
            payload[name] = carried.text()
        payload = schedule_input(payload, self.result.definition, time_placeholder)
        return _sub(json.dumps(payload, sort_keys=True, separators=(", ", ": ")))

    def _scheduler(self, spec: ScheduleSpec) -> None:
        props: dict[str, Any] = {
            "Description": f"Airflow schedule of DAG {self.dag_id}: {spec.source}"[:512],
            "ScheduleExpression": spec.expression,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED",
            "Target": {
                "Arn": {"Ref": "StateMachine"},
                "RoleArn": {"Fn::GetAtt": ["ScheduleRole", "Arn"]},
                "Input": self._input(SCHEDULER_PLACEHOLDER),
            },
        }
        if spec.timezone:
            props["ScheduleExpressionTimezone"] = spec.timezone
        start = self._start_date(spec)
        if start is not None:
            props["StartDate"] = ScheduleSpec.iso(start)
        if spec.end_date is not None:
            props["EndDate"] = ScheduleSpec.iso(spec.end_date)
        self.resources["ScheduleRole"] = _role(
            "scheduler.amazonaws.com",
            f"Lets EventBridge Scheduler start executions of the state machine of DAG {self.dag_id}",
            {"StartStateMachineExecution": _start_execution_policy()},
        )
        self.resources["Schedule"] = {"Type": "AWS::Scheduler::Schedule", "Properties": props}
        self.outputs["ScheduleArn"] = {
            "Description": "The EventBridge Scheduler schedule",
            "Value": {"Fn::GetAtt": ["Schedule", "Arn"]},
        }

    def _events_rule_input(self) -> dict[str, Any]:
        """A rule target's input; with the event's ``time`` (when the rule fired) when the machine reads it."""
        if not reads_scheduled_time(self.result.definition):
            return {"Input": self._input(EVENTS_RULE_PLACEHOLDER)}
        return {
            "InputTransformer": {
                "InputPathsMap": dict(EVENTS_RULE_PATHS),
                "InputTemplate": self._input(EVENTS_RULE_PLACEHOLDER),
            }
        }

    def _events_rule(self, spec: ScheduleSpec) -> None:
        expression = events_rule_expression(spec)
        if spec.start_date is not None and spec.start_date > self.now:
            raise ScheduleError(
                self.dag_id,
                spec.source,
                f"start_date {ScheduleSpec.iso(spec.start_date)} is in the future "
                "and EventBridge rules have no start date",
                "use the EventBridge Scheduler (the default), which has StartDate",
            )
        if spec.end_date is not None:
            raise ScheduleError(
                self.dag_id,
                spec.source,
                f"end_date {ScheduleSpec.iso(spec.end_date)}: EventBridge rules have no end date",
                "use the EventBridge Scheduler (the default), which has EndDate",
            )
        self._start_date(spec)  # the rate-phase warning, if any
        self.resources["ScheduleRuleRole"] = _role(
            "events.amazonaws.com",
            f"Lets the EventBridge rule start executions of the state machine of DAG {self.dag_id}",
            {"StartStateMachineExecution": _start_execution_policy()},
        )
        self.resources["ScheduleRule"] = {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Description": f"Airflow schedule of DAG {self.dag_id}: {spec.source} (UTC)"[:512],
                "ScheduleExpression": expression,
                "State": "ENABLED",
                "Targets": [
                    {
                        "Id": "StateMachine",
                        "Arn": {"Ref": "StateMachine"},
                        "RoleArn": {"Fn::GetAtt": ["ScheduleRuleRole", "Arn"]},
                        **self._events_rule_input(),
                    }
                ],
            },
        }
        self.outputs["ScheduleRuleArn"] = {
            "Description": "The EventBridge rule",
            "Value": {"Fn::GetAtt": ["ScheduleRule", "Arn"]},
        }

    # -- the Lambda function -----------------------------------------------------
    def _single_name(self, integration_prefix: str, key: str, what: str) -> tuple[Any, list[iam.Piece]]:
        """The one name every ``integration_prefix`` state uses for ``key``, as a template value."""
        found = []
        for state_name, state in iam.task_states(self.result.definition):
            resource = state.get("Resource", "")
            if resource.startswith(STATES_PREFIX + integration_prefix):
                pieces = iam.resolve_name(self.result.definition, state.get("Parameters"), key, self.result.origins)
                found.append((state_name, tuple(iam.normalize(pieces or [iam.ANY]))))
        if not found:
            raise TemplateError(
                f"DAG {self.dag_id!r} has no {integration_prefix} state: nothing for the {what} to serve"
            )
        names = {pieces for _, pieces in found}
        if len(names) > 1:
            raise TemplateError(
                f"DAG {self.dag_id!r}: the {integration_prefix} states use different {key}s; "
                f"one {what} cannot serve them"
            )
        pieces = list(next(iter(names)))
        carried = self.template_params.get(pieces[0].name) if isinstance(pieces[0], iam.Par) else None
        if len(pieces) == 1 and carried is not None and carried.key is None:
            return {"Ref": carried.logical}, pieces
        if len(pieces) == 1 and isinstance(pieces[0], iam.Lit):
            return pieces[0].text, pieces
        raise TemplateError(
            f"DAG {self.dag_id!r}: the {key} of state {found[0][0]!r} is only known at run time; "
            f"cannot create that {what}"
        )

    def lambda_function(self, source: Path) -> None:
        function_name, pieces = self._single_name("lambda:invoke", "FunctionName", "Lambda function")
        if not source.is_file():
            raise TemplateError(f"Lambda source {source} does not exist")
        code = source.read_text()
        if not re.search(r"^def lambda_handler\(", code, re.M):
            raise TemplateError(f"{source} has no lambda_handler function")
        name_sub = iam.sub_text(pieces, self.context)
        log_group_name = _sub(f"/aws/lambda/{name_sub}")
        if len(code.encode()) <= INLINE_CODE_LIMIT:
            # Small single-file handler: inline (CloudFormation writes it to index.py).
            code_prop: dict[str, Any] = {"ZipFile": code}
            handler = "index.lambda_handler"
        else:
            self.parameters["LambdaCodeBucket"] = {
                "Type": "String",
                "Description": (
                    f"S3 bucket holding the zip of {source.name} "
                    f"({len(code)} characters: over the {INLINE_CODE_LIMIT}-character inline limit)"
                ),
                "AllowedPattern": f"^{S3_BUCKET}$",
            }
            self.parameters["LambdaCodeKey"] = {
                "Type": "String",
                "Description": f"S3 key of that zip ({source.name} at its root)",
                "Default": f"lambda/{source.stem}.zip",
                "MinLength": 1,
            }
            code_prop = {"S3Bucket": {"Ref": "LambdaCodeBucket"}, "S3Key": {"Ref": "LambdaCodeKey"}}
            handler = f"{source.stem}.lambda_handler"
        statements = []
        training_jobs = self._training_job_resources()
        if training_jobs:
            # The handler calls DescribeTrainingJob on the jobs this state machine starts.
            statements.append(
                {
                    "Sid": "DescribeTrainingJobs",
                    "Effect": "Allow",
                    "Action": ["sagemaker:DescribeTrainingJob"],
                    "Resource": training_jobs,
                }
            )
        else:
            self.warnings.append(
                "the Lambda function gets no SageMaker permission: the state machine starts no training job"
            )
        statements.append(
            {
                "Sid": "WriteOwnLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [
                    {
                        "Fn::Sub": (
                            "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:"
                            f"log-group:/aws/lambda/{name_sub}:*"
                        )
                    }
                ],
            }
        )
        self.resources["LambdaFunctionRole"] = _role(
            "lambda.amazonaws.com",
            f"Execution role of the Lambda function of DAG {self.dag_id}",
            {"FunctionPermissions": {"Version": "2012-10-17", "Statement": statements}},
        )
        self.resources["LambdaFunctionLogGroup"] = {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {"LogGroupName": log_group_name, "RetentionInDays": 30},
        }
        self.resources["LambdaFunction"] = {
            "Type": "AWS::Lambda::Function",
            # Its log group exists first, so the function never needs logs:CreateLogGroup.
            "DependsOn": ["LambdaFunctionLogGroup"],
            "Properties": {
                "FunctionName": function_name,
                "Description": f"{source.name}, called by the state machine of DAG {self.dag_id}"[:256],
                "Runtime": LAMBDA_RUNTIME,
                "Handler": handler,
                "Role": {"Fn::GetAtt": ["LambdaFunctionRole", "Arn"]},
                "Code": code_prop,
                "Timeout": 30,
                "MemorySize": 256,
            },
        }
        self.depends.append("LambdaFunction")
        self.outputs["LambdaFunctionArn"] = {
            "Description": "The Lambda function",
            "Value": {"Fn::GetAtt": ["LambdaFunction", "Arn"]},
        }

    def _training_job_resources(self) -> list[Any]:
        """The training-job ARNs the state machine's policy lets it create."""
        found: list[Any] = []
        policies = self.resources["StateMachineRole"]["Properties"]["Policies"]
        for statement in (s for p in policies for s in p["PolicyDocument"]["Statement"]):
            if "sagemaker:CreateTrainingJob" in statement["Action"]:
                found.extend(r for r in statement["Resource"] if r not in found)
        return found

    # -- the Glue job ------------------------------------------------------------------
    def glue_job(self, script: Path) -> None:
        requests = _glue_requests(self.dag)
        if not requests:
            raise TemplateError(
                f"DAG {self.dag_id!r} has no Glue job run task: nothing for the Glue job to serve",
                "leave out --with-glue (include_glue)",
            )
        job_name = self._glue_job_name(requests)
        locations = self._glue_locations(requests, _declared_s3_arguments(script))
        self._glue_script_parameters(script, next((loc.default_bucket for loc in locations), None))
        self.resources["GlueJobRole"] = _role(
            "glue.amazonaws.com",
            f"Role of the Glue job of DAG {self.dag_id}",
            {"GlueJobPermissions": {"Version": "2012-10-17", "Statement": _glue_statements(locations)}},
        )
        self.resources["GlueJob"] = {
            "Type": "AWS::Glue::Job",
            "Properties": {
                "Name": job_name,
                "Description": f"{script.name}, run by the state machine of DAG {self.dag_id}",
                "Role": {"Fn::GetAtt": ["GlueJobRole", "Arn"]},
                "Command": {
                    "Name": "glueetl",
                    "PythonVersion": "3",
                    "ScriptLocation": {"Fn::Sub": "s3://${GlueScriptBucket}/${GlueScriptKey}"},
                },
                "GlueVersion": "5.0",
                "WorkerType": "G.1X",
                "NumberOfWorkers": 2,
                "Timeout": 60,
                "ExecutionProperty": {"MaxConcurrentRuns": 2},
                "DefaultArguments": {"--job-language": "python"},
            },
        }
        self.depends.append("GlueJob")
        self.outputs["GlueJobName"] = {"Description": "The Glue job", "Value": {"Ref": "GlueJob"}}

    def _glue_job_name(self, requests: list[tuple[str, dict[str, Any]]]) -> Any:
        """The one job name every Glue task runs, as a template value (from the tasks' typed requests)."""
        names = {tuple(iam.pieces_of(request.get("JobName"))) for _, request in requests}
        if len(names) > 1:
            raise TemplateError(
                f"DAG {self.dag_id!r}: the Glue tasks run different jobs; one Glue job cannot serve them",
                "export one template per job, or leave out --with-glue",
            )
        pieces = list(next(iter(names)))
        try:
            iam.sub_text(pieces, self.context, usage="glue-job")  # wildcards refused, the param constrained
        except iam.WildcardName as err:
            raise TemplateError(f"task {requests[0][0]!r}, field JobName: {err}", "use a job name without '*' or '?'")
        carried = self.template_params.get(pieces[0].name) if isinstance(pieces[0], iam.Par) else None
        if len(pieces) == 1 and carried is not None and carried.key is None:
            return {"Ref": carried.logical}
        if len(pieces) == 1 and isinstance(pieces[0], iam.Lit):
            return pieces[0].text
        raise TemplateError(
            f"DAG {self.dag_id!r}: the JobName of task {requests[0][0]!r} is only known at run time; "
            "cannot create that Glue job",
            "name the job with a literal or a string param",
        )

    def _glue_locations(
        self, requests: list[tuple[str, dict[str, Any]]], declared: dict[str, str]
    ) -> list[_S3Location]:
        """Every S3 location the Glue tasks pass, with the access the script declares for its argument."""
        locations: list[_S3Location] = []
        for task_id, request in requests:
            arguments = request.get("Arguments") or {}
            for argument, value in sorted(arguments.items()):
                location = self._s3_location(task_id, argument, iam.pieces_of(value))
                access = declared.get(argument)
                if location is None:
                    if access is not None:
                        raise TemplateError(
                            f"task {task_id!r}: Glue argument {argument!r} is declared {access!r} in the script's "
                            f"S3_ARGUMENTS but its value {value!s} is not an s3:// URI",
                            "pass an s3://bucket/prefix/ URI, or remove it from S3_ARGUMENTS",
                        )
                    continue
                if access is None:
                    raise TemplateError(
                        f"task {task_id!r}: Glue argument {argument!r} is an S3 location, but the Glue script does "
                        "not declare whether it reads or writes it, so its role cannot be scoped",
                        f"add {argument!r}: 'read' (or 'write') to S3_ARGUMENTS in the Glue script",
                    )
                locations.append(location.with_access(access))
        return locations

    def _s3_location(self, task_id: str, argument: str, pieces: list[Any]) -> _S3Location | None:
        """The bucket and key prefix an argument's value names (template text), or None if it is no S3 URI."""
        pieces = iam.normalize(pieces)
        head = pieces[0] if pieces else None
        if isinstance(head, iam.Par) and isinstance(self.param_values.get(head.name), str):
            default = self.param_values[head.name]
        elif isinstance(head, iam.Lit):
            default = head.text
        else:
            return None
        if not default.startswith("s3://"):
            return None
        where = f"task {task_id!r}, Glue argument {argument!r}"
        try:
            text = iam.sub_text(pieces, self.context)
        except iam.WildcardName as err:
            raise TemplateError(f"{where}: {err}", "name an S3 prefix without '*' or '?'") from None
        bucket, _, key = text[len("s3://") :].partition("/")
        if not bucket or "*" in bucket or "${!" in bucket or not key or key.startswith("*"):
            raise TemplateError(
                f"{where}: {default!r} does not name a key prefix inside a bucket "
                "(a whole bucket, or a bucket known only at run time)",
                "pass s3://bucket/prefix/ so the Glue role can be scoped to that prefix",
            )
        if "*" in key:
            self.warnings.append(
                f"{where}: part of the S3 key is only known at run time; access is scoped to the part before it"
            )
        return _S3Location(bucket, key.split("*")[0], "read", default[len("s3://") :].partition("/")[0])

    def _glue_script_parameters(self, script: Path, default_bucket: str | None) -> None:
        self.parameters["GlueScriptBucket"] = {
            "Type": "String",
            "Description": f"S3 bucket holding the Glue script {script.name}",
            "AllowedPattern": f"^{S3_BUCKET}$",
            **({"Default": default_bucket} if default_bucket else {}),
        }
        self.parameters["GlueScriptKey"] = {
            "Type": "String",
            "Description": f"S3 key of the Glue script ({script.name})",
            "Default": f"scripts/{script.name}",
            "AllowedPattern": f"^{NO_WILDCARDS}$",
            "MinLength": 1,
        }

    # -- assembling ----------------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        self._template_parameters()
        if self.depends:
            self.resources["StateMachine"]["DependsOn"] = sorted(self.depends)
        size = len(template_json(self._assemble({})).encode())
        if size > TEMPLATE_BODY_LIMIT - 2048:  # the warnings added below make it slightly larger
            self.warnings.append(
                f"the template is about {size} bytes; CloudFormation takes at most {TEMPLATE_BODY_LIMIT} bytes inline: "
                "deploy it through S3 (aws cloudformation deploy --s3-bucket ...)"
            )
        for warning in self.warnings:
            if warning not in self.result.warnings:
                self.result.warnings.append(warning)
        metadata: dict[str, Any] = {"DagId": self.dag_id, "Schedule": self.schedule_source or "none"}
        if self.result.warnings:  # the export's and the template's, as the CLI prints them
            metadata["Warnings"] = list(self.result.warnings)
        return self._assemble(metadata)

    def _assemble(self, metadata: dict[str, Any]) -> dict[str, Any]:
        description = f"Step Functions state machine exported from Airflow DAG '{self.dag_id}'"
        if getattr(self.dag, "description", None):
            description += f": {self.dag.description}"
        template: dict[str, Any] = {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Description": description[:1024],
            "Metadata": {"AirflowExport": metadata},
        }
        if self.parameters:
            template["Parameters"] = self.parameters
        if self.conditions:
            template["Conditions"] = self.conditions
        template["Resources"] = self.resources
        template["Outputs"] = self.outputs
        return template


# ---------------------------------------------------------------------------
# The Glue job's requests and S3 access, from typed data
# ---------------------------------------------------------------------------

S3_ACCESS = ("read", "write")
S3_READ_ACTIONS = ["s3:GetObject"]
S3_WRITE_ACTIONS = ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:PutObject"]


@dataclass(frozen=True)
class _S3Location:
    """An S3 prefix a Glue task passes: bucket and key prefix as ``Fn::Sub`` text, and the script's access."""

    bucket: str
    key: str
    access: str
    default_bucket: str

    def with_access(self, access: str) -> _S3Location:
        return _S3Location(self.bucket, self.key, access, self.default_bucket)

    def objects(self) -> dict[str, str]:
        return {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{self.bucket}/{self.key}*"}


def _glue_requests(dag: Any) -> list[tuple[str, dict[str, Any]]]:
    """(task id, StartJobRun request as the author typed it) for every Glue task: references, not strings."""
    # Lazy: retraining imports Airflow, which the CLI configures (quiet logging) before loading DAGs.
    from exporters.jinja import JinjaTranslationError, jinja_to_ref
    from exporters.serialized import is_a
    from retraining import GlueJobRunOperator

    found = []
    for task in dag.tasks:
        if is_a(task, GlueJobRunOperator):  # also a task of a serialized DAG (exporters.serialized)
            found.append((task.task_id, task.request))
        elif type(task).__name__ == "GlueJobOperator":  # the Amazon provider's: its Jinja read as references
            try:
                request = {
                    "JobName": jinja_to_ref(task.job_name),
                    "Arguments": jinja_to_ref(dict(task.script_args or {})),
                }
            except JinjaTranslationError as err:
                raise TemplateError(f"task {task.task_id!r}: {err}", "use '{{ params.NAME }}' only") from None
            found.append((task.task_id, request))
    return found


def _declared_s3_arguments(script: Path) -> dict[str, str]:
    """The script's ``S3_ARGUMENTS = {"--ARG": "read" | "write", ...}``: which arguments it reads or writes.

    Read from the source (a literal, never executed: a Glue script imports Spark).
    """
    if not script.is_file():
        raise TemplateError(f"Glue script {script} does not exist", "pass the script with --with-glue PATH")
    try:
        tree = ast.parse(script.read_text(), filename=str(script))
    except SyntaxError as err:
        raise TemplateError(f"Glue script {script} does not parse: {err}") from None
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "S3_ARGUMENTS" for t in targets) and node.value is not None:
            try:
                declared = ast.literal_eval(node.value)
            except ValueError:
                declared = None
            if not isinstance(declared, dict) or not all(
                isinstance(k, str) and v in S3_ACCESS for k, v in declared.items()
            ):
                raise TemplateError(
                    f"Glue script {script}: S3_ARGUMENTS must be a literal dict of argument name → 'read' or 'write'"
                )
            return declared
    return {}


def _glue_statements(locations: list[_S3Location]) -> list[dict[str, Any]]:
    """The Glue role's statements: its script, listing and reading its prefixes, writing the written ones, logs."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ReadScript",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [{"Fn::Sub": "arn:${AWS::Partition}:s3:::${GlueScriptBucket}/${GlueScriptKey}"}],
        }
    ]
    prefixes_by_bucket: dict[str, list[str]] = {}
    for location in locations:
        keys = prefixes_by_bucket.setdefault(location.bucket, [])
        if location.key not in keys:
            keys.append(location.key)
    for n, (bucket, keys) in enumerate(sorted(prefixes_by_bucket.items()), start=1):
        statements.append(
            {
                "Sid": "ListData" if n == 1 else f"ListData{n}",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [{"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{bucket}"}],
                # Listing only under the prefixes (Spark lists a prefix before reading or overwriting it).
                "Condition": {"StringLike": {"s3:prefix": [{"Fn::Sub": f"{key}*"} for key in sorted(keys)]}},
            }
        )
    for sid, actions, chosen in (
        ("ReadData", S3_READ_ACTIONS, locations),
        ("WriteData", S3_WRITE_ACTIONS, [loc for loc in locations if loc.access == "write"]),
    ):
        resources = sorted({json.dumps(loc.objects(), sort_keys=True) for loc in chosen})
        if resources:
            statements.append(
                {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": [json.loads(r) for r in resources]}
            )
    statements.append(
        {
            "Sid": "WriteGlueLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [
                {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws-glue/*"}
            ],
        }
    )
    return statements


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _role(service: str, description: str, policies: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": description[:1000],
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": service},
                        "Action": "sts:AssumeRole",
                        # Only this account's resources may use the role (confused-deputy protection).
                        "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
                    }
                ],
            },
            # IAM rejects a policy without statements: a role that needs nothing gets no policy.
            "Policies": [
                {"PolicyName": name, "PolicyDocument": document}
                for name, document in sorted(policies.items())
                if document["Statement"]
            ],
        },
    }


def _start_execution_policy() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "StartExecution",
                "Effect": "Allow",
                "Action": ["states:StartExecution"],
                "Resource": [{"Ref": "StateMachine"}],
            }
        ],
    }


def _sub(text: str) -> Any:
    """``Fn::Sub`` when ``text`` has a ``${...}`` variable; otherwise the plain string (``${!`` unescaped)."""
    if re.search(r"\$\{(?!!)", text):
        return {"Fn::Sub": text}
    return text.replace("${!", "${")


def _allowed_pattern(own: str | None, lookaheads: list[str]) -> str:
    """One AllowedPattern: every lookahead must match the whole value, then the param's own pattern."""
    if own:
        body = own[1:-1] if own.startswith("^") and own.endswith("$") and not own.endswith("\\$") else f".*(?:{own}).*"
    else:
        body = ".*"
    return "^" + NO_PLACEHOLDER + "".join(f"(?={look}$)" for look in lookaheads) + f"(?:{body})$"


def _rate_step(expression: str) -> dt.timedelta:
    number, unit = re.fullmatch(r"rate\((\d+) (minute|hour|day)s?\)", expression).groups()  # type: ignore[union-attr]
    return dt.timedelta(**{unit + "s": int(number)})


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text)
