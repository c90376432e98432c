"""Deploy an exported DAG straight to AWS with boto3 (for teams without a CloudFormation pipeline).

``deploy`` is idempotent: it compares what is deployed with a fresh export and only
calls AWS to change what differs.

- State machine (STANDARD, named after the DAG id unless ``name`` is given, tagged
  ``airflow-dag-id``): created with ``publish=True``, or updated in place with
  ``publish=True`` when the definition or role differ. A version is published only on
  a change; the alias ``live`` is then created or moved to 100% of the new version.
- EventBridge Scheduler schedule (group ``default``, named after the state machine):
  the DAG's schedule (``exporters.schedule.translate_schedule``), target the ``live``
  alias, input the DAG params' defaults as constant JSON, flexible time window OFF.
  Created, or updated only when it differs; a paused (DISABLED) schedule stays paused.
  When the DAG has no schedule, a schedule this command created is deleted.
- Roles are never created here. State machine role: ``role_arn``, else the deployed
  state machine's role, else the IAM role named by convention
  (``<name>-sfn-role``); schedule role likewise (``<name>-scheduler-role``). When
  none exists the error says to deploy the CloudFormation template or pass the ARN.
- The run-slot table of a DAG with ``max_active_runs`` (``exporters.concurrency``) is never
  created here either: ``concurrency_table`` (``--concurrency-table``), else the table the
  export names (``airflow-run-slots``); it must exist (the template creates one), and the
  deployed definition names it. Nor is the cleanup of runs that time out or are stopped (an
  EventBridge rule and a small release machine, in the template): without one, the report warns.

``deploy`` runs six steps, each a function of its own: ``export_for_deploy`` (load, export,
validate, translate the schedule: all before any AWS call), ``inspect_deployed`` (what exists,
whose it is), ``resolve_roles``, ``apply_state_machine``, ``apply_alias``, ``apply_schedule``
(then ``check_run_slot_cleanup`` for a DAG with ``max_active_runs``).
It returns a ``DeployReport`` and prints nothing; the CLI prints the report.

Nothing is read from Airflow connections; the only data sent are the exported
definition, the params' defaults and names/tags.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from exporters import concurrency
from exporters.api import export_dag_object
from exporters.aws_clients import IAM_ROLE_ARN_RE, AwsClients, AwsCommandError, error_code
from exporters.loader import load_dag
from exporters.quotas import compact_json
from exporters.run_clock import SCHEDULER_PLACEHOLDER, schedule_input
from exporters.schedule import ScheduleError, ScheduleSpec, translate_schedule
from exporters.validation import validate_definition

ALIAS = "live"
DAG_ID_TAG = "airflow-dag-id"
MANAGED_BY_TAG = "managed-by"
MANAGED_BY = "airflow-sfn-exporter"
SCHEDULE_GROUP = "default"
STATE_MACHINE_ROLE_SUFFIX = "sfn-role"
SCHEDULE_ROLE_SUFFIX = "scheduler-role"
STATES_PRINCIPAL = "states.amazonaws.com"
SCHEDULER_PRINCIPAL = "scheduler.amazonaws.com"

NAME_RE = re.compile(r"^[0-9A-Za-z_-]{1,80}$")
TABLE_NAME_RE = re.compile(r"^[0-9A-Za-z_.-]{3,255}$")

# Exit codes of ``diff``.
NO_DRIFT, DRIFT, NOT_DEPLOYED = 0, 3, 4

TEMPLATE_HELP = "deploy the project's CloudFormation template (it creates the roles) or pass"


class DeployError(AwsCommandError):
    """The deploy cannot go ahead (``reason``); ``fix`` says what to do."""


class NotDeployed(DeployError):
    """The state machine does not exist in this account/region."""


# -- names ----------------------------------------------------------------------
def _short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def state_machine_name(dag_id: str) -> str:
    """A valid Step Functions name (1-80 chars of ``[0-9A-Za-z_-]``) for ``dag_id``.

    The DAG id itself when it is valid; otherwise other characters become ``-`` and a
    short hash of the DAG id is appended, so ``a.b`` and ``a-b`` never collide.
    """
    if NAME_RE.match(dag_id):
        return dag_id
    cleaned = re.sub(r"[^0-9A-Za-z_-]", "-", dag_id).strip("-") or "dag"
    return f"{cleaned[:71]}-{_short_hash(dag_id)}"


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise DeployError(
            f"invalid state machine name {name!r}", "use 1-80 characters of letters, digits, _ and - (--name)"
        )
    return name


def schedule_name(sm_name: str) -> str:
    """The EventBridge Scheduler schedule name (1-64 chars) for a state machine name."""
    return sm_name if len(sm_name) <= 64 else f"{sm_name[:55]}-{_short_hash(sm_name)}"


def convention_role_name(sm_name: str, suffix: str) -> str:
    """The IAM role name looked up when no role ARN is given (IAM role names are at most 64 chars)."""
    name = f"{sm_name}-{suffix}"
    if len(name) <= 64:
        return name
    keep = 64 - len(suffix) - 1 - 9
    return f"{sm_name[:keep]}-{_short_hash(sm_name)}-{suffix}"


@dataclass(frozen=True)
class Target:
    """Where a state machine lives: its ARN and the ``live`` alias ARN."""

    name: str
    arn: str

    @property
    def alias_arn(self) -> str:
        return f"{self.arn}:{ALIAS}"


def locate(clients: AwsClients, name: str) -> Target:
    ident = clients.identity()
    arn = f"arn:{ident.partition}:states:{clients.region}:{ident.account}:stateMachine:{check_name(name)}"
    return Target(name, arn)


# -- definitions ----------------------------------------------------------------
def parse_definition(definition: str | dict[str, Any]) -> dict[str, Any]:
    """A definition as parsed JSON (deployed definitions come back as strings, formatting may differ)."""
    return json.loads(definition) if isinstance(definition, str) else json.loads(json.dumps(definition))


def pretty(definition: str | dict[str, Any]) -> str:
    return json.dumps(parse_definition(definition), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def definition_hash(definition: str | dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(parse_definition(definition), sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def version_number(version_arn: str | None) -> str:
    return version_arn.rsplit(":", 1)[-1] if version_arn else "?"


# -- AWS look-ups -----------------------------------------------------------------
def _describe(sfn: Any, arn: str) -> dict[str, Any] | None:
    try:
        return sfn.describe_state_machine(stateMachineArn=arn)
    except Exception as err:
        if error_code(err) == "StateMachineDoesNotExist":
            return None
        raise


def _describe_alias(sfn: Any, alias_arn: str) -> dict[str, Any] | None:
    try:
        return sfn.describe_state_machine_alias(stateMachineAliasArn=alias_arn)
    except Exception as err:
        if error_code(err) in ("ResourceNotFound", "ResourceNotFoundException", "StateMachineDoesNotExist"):
            return None
        raise


def _get_schedule(scheduler: Any, name: str) -> dict[str, Any] | None:
    try:
        return scheduler.get_schedule(Name=name, GroupName=SCHEDULE_GROUP)
    except Exception as err:
        if error_code(err) in ("ResourceNotFoundException", "ResourceNotFound"):
            return None
        raise


def _tags(sfn: Any, arn: str) -> dict[str, str]:
    return {t["key"]: t["value"] for t in sfn.list_tags_for_resource(resourceArn=arn).get("tags", [])}


def _single_version(alias: dict[str, Any] | None) -> str | None:
    """The version an alias routes 100% of executions to (None when absent or split)."""
    routes = (alias or {}).get("routingConfiguration") or []
    if len(routes) == 1 and int(routes[0].get("weight", 0)) == 100:
        return routes[0]["stateMachineVersionArn"]
    return None


def deployed_definition(clients: AwsClients, name: str) -> tuple[Target, dict[str, Any], str]:
    """The definition that runs: the ``live`` alias's version, else the state machine's current one.

    Returns (target, described state machine or version, label); raises ``NotDeployed``.
    """
    target = locate(clients, name)
    sfn = clients.sfn
    current = _describe(sfn, target.arn)
    if current is None:
        raise NotDeployed(
            f"state machine {name!r} is not deployed in {clients.region} (account {clients.identity().account})",
            "run `python -m exporters deploy DAG_ID` first (or pass --name/--region for the right one)",
        )
    version_arn = _single_version(_describe_alias(sfn, target.alias_arn))
    if version_arn:
        version = _describe(sfn, version_arn)
        if version is not None:
            return target, version, f"{name} (alias {ALIAS} = version {version_number(version_arn)})"
    return target, current, f"{name} (current revision)"


# -- roles ------------------------------------------------------------------------
def _role_name(arn: str, flag: str) -> str:
    match = IAM_ROLE_ARN_RE.match(arn)
    if not match:
        raise DeployError(f"{flag} {arn!r} is not an IAM role ARN", "pass arn:aws:iam::<account>:role/<name>")
    return match.group(1)


def _trusts(role: dict[str, Any], principal: str) -> bool | None:
    document = role.get("AssumeRolePolicyDocument")
    if document is None:
        return None
    if isinstance(document, str):
        try:
            document = json.loads(unquote(document))
        except ValueError:
            return None
    return principal in json.dumps(document)


def resolve_role(
    clients: AwsClients,
    *,
    given: str | None,
    deployed: str | None,
    convention: str,
    flag: str,
    principal: str,
    what: str,
    notes: list[str],
) -> str:
    """A role ARN that exists: ``given``, else ``deployed``, else the convention-named role."""
    iam = clients.iam
    ident = clients.identity()
    candidate = given or deployed
    if candidate:
        name = _role_name(candidate, flag)
    else:
        name = convention
        candidate = f"arn:{ident.partition}:iam::{ident.account}:role/{convention}"
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except Exception as err:
        code = error_code(err)
        if code == "NoSuchEntity":
            if given:
                raise DeployError(
                    f"the {what} role {given} ({flag}) does not exist in account {ident.account}",
                    f"create it (trusting {principal}) or pass {flag} with an existing role",
                ) from None
            if deployed:
                raise DeployError(
                    f"the deployed {what} uses role {deployed}, which no longer exists", f"{TEMPLATE_HELP} {flag}"
                ) from None
            raise DeployError(
                f"no {what} role: none given and no IAM role named {convention!r} in account {ident.account}",
                f"{TEMPLATE_HELP} {flag} ARN (a role {principal} can assume)",
            ) from None
        if code in ("AccessDenied", "AccessDeniedException") and (given or deployed):
            notes.append(f"could not check the {what} role {candidate} (no iam:GetRole permission); using it as given")
            return candidate
        if code in ("AccessDenied", "AccessDeniedException"):
            raise DeployError(
                f"no {what} role given and the convention role {convention!r} cannot be looked up "
                "(no iam:GetRole permission)",
                f"pass {flag}",
            ) from None
        raise
    if _trusts(role, principal) is False:
        notes.append(f"warning: role {role['Arn']} does not trust {principal}; the {what} will fail to assume it")
    return role["Arn"]


# -- schedule ---------------------------------------------------------------------
def schedule_spec(dag: Any) -> ScheduleSpec | None:
    """The DAG's schedule as an EventBridge Scheduler spec (None: no schedule); ``DeployError`` when impossible."""
    try:
        return translate_schedule(dag)
    except ScheduleError as err:
        no_schedule = "pass --no-schedule to deploy only the state machine and trigger it yourself"
        raise DeployError(err.reason, f"{err.fix}, or {no_schedule}" if err.fix else no_schedule) from None


def _as_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return datetime.fromtimestamp(value.timestamp(), tz=UTC)
    raise TypeError(f"not a date: {value!r}")


def _timezone_name(tz: Any) -> str:
    if not tz:
        return "UTC"
    return str(getattr(tz, "name", None) or tz)


def _same_instant(a: Any, b: Any) -> bool:
    a, b = _as_datetime(a), _as_datetime(b)
    if a is None or b is None:
        return a is b
    return abs((a - b).total_seconds()) < 1


def desired_schedule(
    spec: Any, *, name: str, dag_id: str, alias_arn: str, role_arn: str, payload: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """The ``create_schedule`` arguments (State excluded) for a ScheduleSpec."""
    request: dict[str, Any] = {
        "Name": name,
        "GroupName": SCHEDULE_GROUP,
        "ScheduleExpression": spec.expression,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {"Arn": alias_arn, "RoleArn": role_arn, "Input": json.dumps(payload, sort_keys=True)},
        "Description": f"Airflow DAG {dag_id} (python -m exporters deploy)"[:512],
        "ActionAfterCompletion": "NONE",
    }
    tz = getattr(spec, "timezone", None)
    if tz:  # None for rate(...) expressions
        request["ScheduleExpressionTimezone"] = _timezone_name(tz)
    start = _as_datetime(getattr(spec, "start_date", None))
    if start is not None and start > now:  # a past StartDate is rejected, and meaningless
        request["StartDate"] = start
    end = _as_datetime(getattr(spec, "end_date", None))
    if end is not None:
        request["EndDate"] = end
    return request


def schedule_differences(existing: dict[str, Any], desired: dict[str, Any], now: datetime) -> list[str]:
    """Names of the fields that differ (empty: nothing to update)."""
    changed = []
    for key in ("ScheduleExpression", "Description"):
        if (existing.get(key) or "") != (desired.get(key) or ""):
            changed.append(key)
    if (existing.get("ScheduleExpressionTimezone") or "UTC") != (desired.get("ScheduleExpressionTimezone") or "UTC"):
        changed.append("ScheduleExpressionTimezone")
    if (existing.get("FlexibleTimeWindow") or {}).get("Mode") != "OFF":
        changed.append("FlexibleTimeWindow")
    have, want = existing.get("Target") or {}, desired["Target"]
    if have.get("Arn") != want["Arn"]:
        changed.append("Target.Arn")
    if have.get("RoleArn") != want["RoleArn"]:
        changed.append("Target.RoleArn")
    try:
        same_input = json.loads(have.get("Input") or "null") == json.loads(want["Input"])
    except ValueError:
        same_input = False
    if not same_input:
        changed.append("Target.Input")
    deployed_start = _as_datetime(existing.get("StartDate"))
    if "StartDate" in desired:
        if not _same_instant(deployed_start, desired["StartDate"]):
            changed.append("StartDate")
    elif deployed_start is not None and deployed_start > now:
        changed.append("StartDate")
    if not _same_instant(existing.get("EndDate"), desired.get("EndDate")):
        changed.append("EndDate")
    return changed


def _targets(schedule: dict[str, Any], target: Target) -> bool:
    arn = (schedule.get("Target") or {}).get("Arn") or ""
    return arn == target.arn or arn.startswith(target.arn + ":")


# -- deploy: the report -------------------------------------------------------------
@dataclass(frozen=True)
class StateMachineOutcome:
    action: str  # created | updated | unchanged
    changed: tuple[str, ...]  # what an update changed: "definition", "role"
    version_arn: str  # the version the alias now routes to
    tagged: bool  # our tags were added to a state machine that lacked them


@dataclass(frozen=True)
class AliasOutcome:
    action: str  # created | moved | unchanged
    previous_version_arn: str | None  # where a moved alias pointed before


@dataclass(frozen=True)
class ScheduleOutcome:
    action: str  # created | updated | unchanged | deleted | none | skipped
    name: str
    expression: str = ""  # "cron(...) UTC": what the schedule runs on
    changes: tuple[str, ...] = ()  # fields an update changed
    state: str = "ENABLED"  # a paused (DISABLED) schedule stays paused


@dataclass(frozen=True)
class DeployReport:
    """What ``deploy`` did, for the CLI (or any caller) to show; ``deploy`` itself prints nothing."""

    dag_id: str
    state_machine_name: str
    state_machine_arn: str
    alias_arn: str
    where: str  # "us-east-1, account 123456789012[, endpoint URL]"
    export_warnings: tuple[str, ...]
    state_machine: StateMachineOutcome
    alias: AliasOutcome
    schedule: ScheduleOutcome
    notes: tuple[str, ...]
    children: tuple[DeployReport, ...] = ()  # the nested pipelines it starts, deployed before it

    @property
    def version_arn(self) -> str:
        return self.state_machine.version_arn

    @property
    def changed(self) -> bool:
        return (
            self.state_machine.action != "unchanged"
            or self.state_machine.tagged
            or self.alias.action != "unchanged"
            or self.schedule.action in ("created", "updated", "deleted")
            or any(child.changed for child in self.children)
        )


# -- deploy: the steps ----------------------------------------------------------------
@dataclass(frozen=True)
class Export:
    """Step 1's output: the validated export of the DAG and what deploying it needs, before any AWS call."""

    dag_id: str
    state_machine_name: str
    definition: dict[str, Any]
    text: str  # the definition as sent: compact JSON (the 1 MB definition quota counts whitespace too)
    warnings: tuple[str, ...]
    schedule: ScheduleSpec | None  # None: the DAG has no schedule, or schedules are not managed
    manage_schedule: bool
    payload: dict[str, Any]  # the params' defaults: the scheduled executions' input

    @property
    def version_description(self) -> str:
        return f"Airflow DAG {self.dag_id}, definition sha256:{definition_hash(self.definition)[:16]}"


@dataclass(frozen=True)
class Deployed:
    """Step 2's output: what exists in AWS for this state machine (after the ownership checks)."""

    target: Target
    state_machine: dict[str, Any] | None
    schedule: dict[str, Any] | None  # ours (it starts this state machine); None when absent or not managed


def export_for_deploy(dag: Any, *, name: str | None = None, with_schedule: bool = True) -> Export:
    """Step 1, validate and export: everything that can fail without AWS, so a bad DAG changes nothing."""
    from exporters.compiler import param_defaults  # the compiler imports Airflow: start/executions never need it

    result = export_dag_object(dag)
    problems = validate_definition(result.definition)
    if problems:
        raise DeployError(
            f"the exported definition of DAG {dag.dag_id!r} is invalid:\n" + "\n".join(f"  - {p}" for p in problems),
            "this is an exporter bug: report it with the DAG file",
        )
    return Export(
        dag_id=dag.dag_id,
        state_machine_name=check_name(name) if name else state_machine_name(dag.dag_id),
        definition=result.definition,
        text=compact_json(result.definition),
        warnings=tuple(result.warnings),
        schedule=schedule_spec(dag) if with_schedule else None,
        manage_schedule=with_schedule,
        payload=schedule_input(param_defaults(dag), result.definition, SCHEDULER_PLACEHOLDER),
    )


def inspect_deployed(clients: AwsClients, export: Export) -> Deployed:
    """Step 2, look up what is deployed; refuse a state machine or schedule that belongs to something else."""
    target = locate(clients, export.state_machine_name)
    sfn = clients.sfn
    current = _describe(sfn, target.arn)
    if current is not None:
        owner = _tags(sfn, target.arn).get(DAG_ID_TAG)
        if owner is not None and owner != export.dag_id:
            raise DeployError(
                f"state machine {target.name!r} already exists for Airflow DAG {owner!r} (tag {DAG_ID_TAG})",
                f"pass --name to deploy {export.dag_id!r} under another name",
            )
        if current.get("type", "STANDARD") != "STANDARD":
            raise DeployError(
                f"state machine {target.name!r} exists as type {current['type']}; exports need STANDARD",
                "delete it or pass --name",
            )
    schedule = None
    if export.manage_schedule:
        schedule = _get_schedule(clients.scheduler, schedule_name(target.name))
        if schedule is not None and not _targets(schedule, target):
            if export.schedule is not None:
                raise DeployError(
                    f"schedule {schedule_name(target.name)!r} already exists "
                    f"and starts {schedule.get('Target', {}).get('Arn')}",
                    "pass --name to deploy under another name, or delete that schedule",
                )
            schedule = None  # someone else's: never touched
    return Deployed(target, current, schedule)


def resolve_roles(
    clients: AwsClients,
    export: Export,
    deployed: Deployed,
    *,
    role_arn: str | None,
    schedule_role_arn: str | None,
    notes: list[str],
) -> tuple[str, str | None]:
    """Step 3, the roles: the state machine's, and the schedule's when there is a schedule to deploy."""
    role = resolve_role(
        clients,
        given=role_arn,
        deployed=(deployed.state_machine or {}).get("roleArn"),
        convention=convention_role_name(export.state_machine_name, STATE_MACHINE_ROLE_SUFFIX),
        flag="--role-arn",
        principal=STATES_PRINCIPAL,
        what="state machine",
        notes=notes,
    )
    if export.schedule is None:
        return role, None
    schedule_role = resolve_role(
        clients,
        given=schedule_role_arn,
        deployed=(deployed.schedule or {}).get("Target", {}).get("RoleArn"),
        convention=convention_role_name(export.state_machine_name, SCHEDULE_ROLE_SUFFIX),
        flag="--schedule-role-arn",
        principal=SCHEDULER_PRINCIPAL,
        what="schedule",
        notes=notes,
    )
    return role, schedule_role


def resolve_run_slot_table(clients: AwsClients, export: Export, table: str | None, notes: list[str]) -> Export:
    """Step 3b, the run-slot table of a DAG with max_active_runs: it must exist; the definition names it."""
    if not concurrency.has_guard(export.definition):
        if table:
            notes.append(f"--concurrency-table {table} ignored: DAG {export.dag_id!r} sets no max_active_runs limit")
        return export
    name = table or concurrency.DEFAULT_TABLE
    flag = "--concurrency-table"
    if not TABLE_NAME_RE.match(name):
        raise DeployError(f"invalid DynamoDB table name {name!r} ({flag})", "use 3-255 of letters, digits, _ . -")
    try:
        clients.client("dynamodb").describe_table(TableName=name)
    except Exception as err:
        code = error_code(err)
        if code in ("ResourceNotFoundException", "ResourceNotFound"):
            raise DeployError(
                f"DAG {export.dag_id!r} sets max_active_runs: its run slots need the DynamoDB table {name!r}, "
                f"which does not exist in {clients.region}",
                f"deploy the CloudFormation template (it creates the table) and pass {flag} with the table it names, "
                f"or create it (partition key {concurrency.LOCK_KEY}, a string; on-demand) or pass {flag} NAME",
            ) from None
        if code in ("AccessDenied", "AccessDeniedException"):
            notes.append(f"could not check the run-slot table {name} (no dynamodb:DescribeTable permission); using it")
        else:
            raise
    if name == concurrency.DEFAULT_TABLE:
        return export
    definition = concurrency.with_table(export.definition, name)
    text = json.dumps(definition, indent=2, ensure_ascii=False) + "\n"
    return replace(export, definition=definition, text=text)


RULE_PAGES = 20  # EventBridge rules looked through for the run-slot cleanup (100 a page)


def check_run_slot_cleanup(clients: AwsClients, export: Export, state_machine_arn: str, notes: list[str]) -> None:
    """Step 7, a DAG with max_active_runs: a warning when no EventBridge rule frees the slot of a run that ended unseen.

    An execution that times out or is stopped runs none of its states, so only the template's cleanup
    (an EventBridge rule on the execution's status starting a small release machine) gives its slot back.
    ``deploy`` creates no rule (it would need roles, which it never creates); it says when none exists.
    """
    if not concurrency.has_guard(export.definition):
        return
    events = clients.client("events")
    try:
        pages = events.get_paginator("list_rules").paginate(PaginationConfig={"MaxItems": RULE_PAGES * 100})
        for page in pages:
            for rule in page.get("Rules", []):
                if rule.get("State") == "ENABLED" and _frees_run_slots(rule.get("EventPattern"), state_machine_arn):
                    targets = events.list_targets_by_rule(Rule=rule["Name"]).get("Targets", [])
                    if any(":states:" in target.get("Arn", "") for target in targets):
                        return
    except Exception as err:
        if error_code(err) in ("AccessDenied", "AccessDeniedException"):
            notes.append("could not look for the run-slot cleanup rule (no events:ListRules permission)")
            return
        raise
    notes.append(
        f"warning: no enabled EventBridge rule gives back the run slot of an execution of "
        f"{export.state_machine_name} that times out or is stopped (none of its states runs then): such an "
        f"execution keeps its slot (max_active_runs), and later runs wait queued behind it until their bound. "
        f"The CloudFormation template written by `python -m exporters export {export.dag_id}` has the rule and "
        f"its release state machine (RunSlotCleanupRule, RunSlotCleanup): deploy it, or create the same for "
        f"this state machine"
    )


def _frees_run_slots(pattern_text: str | None, state_machine_arn: str) -> bool:
    """Whether an EventBridge event pattern matches this state machine's TIMED_OUT and ABORTED status changes."""
    try:
        pattern = json.loads(pattern_text or "")
        detail = pattern.get("detail", {})
        statuses, machines = detail.get("status", []), detail.get("stateMachineArn", [])
    except (ValueError, AttributeError):
        return False
    if "aws.states" not in pattern.get("source", []) or not {"TIMED_OUT", "ABORTED"} <= set(statuses):
        return False
    for machine in machines:
        if machine == state_machine_arn:
            return True
        if isinstance(machine, dict) and state_machine_arn.startswith(str(machine.get("prefix", "\0"))):
            return True
    return False


def apply_state_machine(clients: AwsClients, export: Export, deployed: Deployed, role: str) -> StateMachineOutcome:
    """Step 4, the state machine: create it, or update it in place when its definition or role differ.

    A version is published only with a change; when nothing changed the version is the one ``live`` runs
    (or, when ``live`` does not run the current revision, that revision published now).
    """
    sfn, target, current = clients.sfn, deployed.target, deployed.state_machine
    if current is None:
        answer = sfn.create_state_machine(
            name=target.name,
            definition=export.text,
            roleArn=role,
            type="STANDARD",
            tags=[{"key": DAG_ID_TAG, "value": export.dag_id}, {"key": MANAGED_BY_TAG, "value": MANAGED_BY}],
            publish=True,
            versionDescription=export.version_description,
        )
        return StateMachineOutcome("created", (), _published(answer), tagged=False)
    tagged = _ensure_tags(sfn, target.arn, export.dag_id)
    changed = tuple(
        what
        for what, differs in (
            ("definition", parse_definition(current["definition"]) != export.definition),
            ("role", current.get("roleArn") != role),
        )
        if differs
    )
    if changed:
        answer = sfn.update_state_machine(
            stateMachineArn=target.arn,
            definition=export.text,
            roleArn=role,
            publish=True,
            versionDescription=export.version_description,
        )
        return StateMachineOutcome("updated", changed, _published(answer), tagged)
    live_version = _single_version(_describe_alias(sfn, target.alias_arn))
    live = _describe(sfn, live_version) if live_version else None
    if live is not None and parse_definition(live["definition"]) == export.definition and live.get("roleArn") == role:
        return StateMachineOutcome("unchanged", (), live_version, tagged)
    # The current revision is right but ``live`` does not run it (first deploy interrupted, alias moved by
    # hand): publish it. Idempotent: AWS returns the existing version when there is one.
    request = {"stateMachineArn": target.arn, "description": export.version_description}
    if current.get("revisionId"):
        request["revisionId"] = current["revisionId"]
    return StateMachineOutcome("unchanged", (), _published(sfn.publish_state_machine_version(**request)), tagged)


def apply_alias(clients: AwsClients, export: Export, target: Target, version_arn: str) -> AliasOutcome:
    """Step 5, the ``live`` alias: created, or moved to 100% of ``version_arn`` when it routes elsewhere."""
    sfn = clients.sfn
    alias = _describe_alias(sfn, target.alias_arn)
    routing = [{"stateMachineVersionArn": version_arn, "weight": 100}]
    if alias is None:
        sfn.create_state_machine_alias(
            name=ALIAS, routingConfiguration=routing, description=f"What runs for Airflow DAG {export.dag_id}"
        )
        return AliasOutcome("created", None)
    live_version = _single_version(alias)
    if live_version == version_arn:
        return AliasOutcome("unchanged", None)
    sfn.update_state_machine_alias(stateMachineAliasArn=target.alias_arn, routingConfiguration=routing)
    return AliasOutcome("moved", live_version)


def apply_schedule(
    clients: AwsClients,
    export: Export,
    deployed: Deployed,
    schedule_role: str | None,
    *,
    now: datetime,
    notes: list[str],
) -> ScheduleOutcome:
    """Step 6, the EventBridge Scheduler schedule: created, updated when it differs, or deleted (no schedule)."""
    name = schedule_name(deployed.target.name)
    if not export.manage_schedule:
        return ScheduleOutcome("skipped", name)
    scheduler, existing = clients.scheduler, deployed.schedule
    if export.schedule is None:
        if existing is None:
            return ScheduleOutcome("none", name)
        scheduler.delete_schedule(Name=name, GroupName=SCHEDULE_GROUP)
        return ScheduleOutcome("deleted", name)
    desired = desired_schedule(
        export.schedule,
        name=name,
        dag_id=export.dag_id,
        alias_arn=deployed.target.alias_arn,
        role_arn=schedule_role,
        payload=export.payload,
        now=now,
    )
    expression = " ".join(filter(None, (desired["ScheduleExpression"], desired.get("ScheduleExpressionTimezone"))))
    notes.extend(f"schedule note: {caveat}" for caveat in getattr(export.schedule, "notes", ()) or ())
    if existing is None:
        scheduler.create_schedule(**desired, State="ENABLED")
        return ScheduleOutcome("created", name, expression)
    state = existing.get("State") or "ENABLED"
    differences = schedule_differences(existing, desired, now)
    if not differences:
        return ScheduleOutcome("unchanged", name, expression, state=state)
    request = dict(desired, State=state)
    retry = (existing.get("Target") or {}).get("RetryPolicy")
    if retry:
        request["Target"] = dict(request["Target"], RetryPolicy=retry)
    scheduler.update_schedule(**request)
    return ScheduleOutcome("updated", name, expression, tuple(differences), state)


def deploy(
    dag_id: str,
    *,
    clients: AwsClients,
    dags_folder: str | Path | None = None,
    name: str | None = None,
    role_arn: str | None = None,
    schedule_role_arn: str | None = None,
    with_schedule: bool = True,
    dag: Any = None,
    now: datetime | None = None,
    concurrency_table: str | None = None,
) -> DeployReport:
    """Create or update the state machine, its ``live`` alias and its schedule; return what was done.

    Raises an ``ExporterError`` (``DeployError``, ``DagLoadError``, ``ExportError``, ``ScheduleError``)
    before any change when the DAG, the names or the roles are wrong.

    Nested pipelines: the DAGs this one starts with ``TriggerDagRunOperator`` (and theirs) are deployed
    first, each under its own DAG's name (where the parent's definition finds it) with its own roles and
    schedule, as ``deploy`` of that DAG would; their reports are in ``children``. All are exported and
    validated before any AWS call.
    """
    from exporters.converters_nested import nested_children  # the converters import Airflow: only when deploying

    parent = dag if dag is not None else load_dag(dag_id, dags_folder)
    export = export_for_deploy(parent, name=name, with_schedule=with_schedule)
    children = [export_for_deploy(nested.dag, with_schedule=with_schedule) for nested in nested_children(parent)]
    # Every run-slot table (max_active_runs) is checked before anything is deployed.
    notes: dict[str, list[str]] = {item.dag_id: [] for item in [*children, export]}
    children = [
        resolve_run_slot_table(
            clients, child, concurrency_table if concurrency.has_guard(child.definition) else None, notes[child.dag_id]
        )
        for child in children
    ]
    export = resolve_run_slot_table(clients, export, concurrency_table, notes[export.dag_id])
    child_reports = tuple(
        _deploy_export(clients, child, role_arn=None, schedule_role_arn=None, now=now, notes=notes[child.dag_id])
        for child in children
    )
    report = _deploy_export(
        clients, export, role_arn=role_arn, schedule_role_arn=schedule_role_arn, now=now, notes=notes[export.dag_id]
    )
    return replace(report, dag_id=dag_id, children=child_reports)


def _deploy_export(
    clients: AwsClients,
    export: Export,
    *,
    role_arn: str | None,
    schedule_role_arn: str | None,
    now: datetime | None,
    notes: list[str],
) -> DeployReport:
    """Steps 2-6 for one exported DAG (its run-slot table already resolved)."""
    deployed = inspect_deployed(clients, export)
    role, schedule_role = resolve_roles(
        clients, export, deployed, role_arn=role_arn, schedule_role_arn=schedule_role_arn, notes=notes
    )
    state_machine = apply_state_machine(clients, export, deployed, role)
    alias = apply_alias(clients, export, deployed.target, state_machine.version_arn)
    schedule = apply_schedule(clients, export, deployed, schedule_role, now=now or datetime.now(UTC), notes=notes)
    check_run_slot_cleanup(clients, export, deployed.target.arn, notes)
    return DeployReport(
        dag_id=export.dag_id,
        state_machine_name=export.state_machine_name,
        state_machine_arn=deployed.target.arn,
        alias_arn=deployed.target.alias_arn,
        where=f"{clients.region}, account {clients.identity().account}"
        + (f", endpoint {clients.endpoint_label}" if clients.endpoint_label else ""),
        export_warnings=export.warnings,
        state_machine=state_machine,
        alias=alias,
        schedule=schedule,
        notes=tuple(notes),
    )


def _published(answer: dict[str, Any]) -> str:
    version_arn = answer.get("stateMachineVersionArn")
    if not version_arn:  # pragma: no cover - AWS always returns it with publish=True
        raise DeployError("AWS did not return the published version ARN", "run deploy again")
    return version_arn


def _ensure_tags(sfn: Any, arn: str, dag_id: str) -> bool:
    """Add our tags to an existing state machine when missing; True when it did."""
    tags = _tags(sfn, arn)
    wanted = {DAG_ID_TAG: dag_id, MANAGED_BY_TAG: MANAGED_BY}
    missing = [{"key": k, "value": v} for k, v in wanted.items() if tags.get(k) != v]
    if missing:
        sfn.tag_resource(resourceArn=arn, tags=missing)
    return bool(missing)


# -- start / executions / diff ----------------------------------------------------
def start(
    clients: AwsClients, name: str, payload: dict[str, Any] | None = None, execution_name: str | None = None
) -> dict[str, Any]:
    """Start an execution of the ``live`` alias (or of the state machine when it has no alias)."""
    target = locate(clients, name)
    sfn = clients.sfn
    if _describe_alias(sfn, target.alias_arn) is not None:
        arn = target.alias_arn
    elif _describe(sfn, target.arn) is not None:
        arn = target.arn
    else:
        raise NotDeployed(
            f"state machine {name!r} is not deployed in {clients.region}",
            "run `python -m exporters deploy DAG_ID` first",
        )
    request = {"stateMachineArn": arn, "input": json.dumps(payload if payload is not None else {})}
    if execution_name:
        request["name"] = execution_name
    return sfn.start_execution(**request)


def executions(clients: AwsClients, name: str, limit: int = 20) -> list[dict[str, Any]]:
    """The most recent executions of the state machine (all versions/aliases), newest first."""
    target = locate(clients, name)
    sfn = clients.sfn
    if _describe(sfn, target.arn) is None:
        raise NotDeployed(
            f"state machine {name!r} is not deployed in {clients.region}",
            "run `python -m exporters deploy DAG_ID` first",
        )
    found: list[dict[str, Any]] = []
    token = None
    while len(found) < limit:
        request: dict[str, Any] = {"stateMachineArn": target.arn, "maxResults": min(limit, 100)}
        if token:
            request["nextToken"] = token
        page = sfn.list_executions(**request)
        found.extend(page.get("executions", []))
        token = page.get("nextToken")
        if not token:
            break
    found.sort(key=lambda e: e.get("startDate") or datetime.min.replace(tzinfo=UTC), reverse=True)
    return found[:limit]


def format_executions(items: list[dict[str, Any]]) -> str:
    def when(value: Any) -> str:
        dt = _as_datetime(value)
        return dt.strftime("%Y-%m-%d %H:%M:%S UTC") if dt else "-"

    rows = [("STATUS", "STARTED", "STOPPED", "VERSION", "NAME")]
    for e in items:
        version = e.get("stateMachineAliasArn", "").rsplit(":", 1)[-1] if e.get("stateMachineAliasArn") else ""
        if e.get("stateMachineVersionArn"):
            number = version_number(e["stateMachineVersionArn"])
            version = f"{version} v{number}".strip() if version else f"v{number}"
        rows.append(
            (
                e.get("status", "?"),
                when(e.get("startDate")),
                when(e.get("stopDate")),
                version or "-",
                e.get("name", "?"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)).rstrip() for r in rows)


@dataclass(frozen=True)
class DiffResult:
    code: int  # NO_DRIFT | DRIFT
    text: str  # unified diff of pretty, key-sorted JSON; empty without drift
    deployed_label: str  # which deployed definition was compared: "name (alias live = version 3)"


def diff_definitions(deployed: str | dict[str, Any], fresh: dict[str, Any], *, label: str, dag_id: str) -> DiffResult:
    """Compare a deployed definition (as AWS returns it) with a fresh export."""
    if parse_definition(deployed) == fresh:
        return DiffResult(NO_DRIFT, "", label)
    lines = difflib.unified_diff(
        pretty(deployed).splitlines(keepends=True),
        pretty(fresh).splitlines(keepends=True),
        fromfile=f"deployed: {label}",
        tofile=f"export: DAG {dag_id}",
    )
    return DiffResult(DRIFT, "".join(lines), label)


def diff(
    clients: AwsClients,
    dag_id: str,
    *,
    name: str | None = None,
    dags_folder: str | Path | None = None,
    dag: Any = None,
    definition: dict[str, Any] | None = None,
    concurrency_table: str | None = None,
) -> DiffResult:
    """The deployed definition (``live``'s version, else the current revision) against a fresh export.

    ``definition``: an export already made (the UI has one); else ``dag`` or the DAG loaded from
    ``dags_folder`` is exported. Raises ``NotDeployed`` before loading anything when nothing is deployed.
    """
    sm_name = check_name(name) if name else state_machine_name(dag_id)
    _, deployed, label = deployed_definition(clients, sm_name)
    if definition is None:
        definition = export_dag_object(dag if dag is not None else load_dag(dag_id, dags_folder)).definition
    if concurrency_table and concurrency.has_guard(definition):  # the table deploy was told to use
        definition = concurrency.with_table(definition, concurrency_table)
    return diff_definitions(deployed["definition"], definition, label=label, dag_id=dag_id)
