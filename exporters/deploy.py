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

Nothing is read from Airflow connections; the only data sent are the exported
definition, the params' defaults and names/tags.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exporters.aws_clients import AwsClients, AwsCommandError, error_code

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
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/(?:[\w+=,.@/-]*/)?([\w+=,.@-]{1,64})$")

# Exit codes of ``diff``.
NO_DRIFT, DRIFT, NOT_DEPLOYED = 0, 3, 4

TEMPLATE_HELP = "deploy the project's CloudFormation template (it creates the roles) or pass"


class DeployError(AwsCommandError):
    """The deploy cannot go ahead; the message says what to do."""


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
        raise DeployError(f"invalid state machine name {name!r}: use 1-80 characters of letters, digits, _ and -")
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
def normalize(definition: str | dict[str, Any]) -> dict[str, Any]:
    """A definition as parsed JSON (deployed definitions come back as strings, formatting may differ)."""
    return json.loads(definition) if isinstance(definition, str) else json.loads(json.dumps(definition))


def pretty(definition: str | dict[str, Any]) -> str:
    return json.dumps(normalize(definition), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def definition_hash(definition: str | dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(normalize(definition), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _version_number(version_arn: str | None) -> str:
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
            f"state machine {name!r} is not deployed in {clients.region} (account {clients.identity().account}): "
            "run `python -m exporters deploy DAG_ID` first (or pass --name/--region for the right one)"
        )
    version_arn = _single_version(_describe_alias(sfn, target.alias_arn))
    if version_arn:
        version = _describe(sfn, version_arn)
        if version is not None:
            return target, version, f"{name} (alias {ALIAS} = version {_version_number(version_arn)})"
    return target, current, f"{name} (current revision)"


# -- roles ------------------------------------------------------------------------
def _role_name(arn: str, flag: str) -> str:
    match = ROLE_ARN_RE.match(arn)
    if not match:
        raise DeployError(f"{flag} {arn!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
    return match.group(1)


def _trusts(role: dict[str, Any], principal: str) -> bool | None:
    document = role.get("AssumeRolePolicyDocument")
    if document is None:
        return None
    if isinstance(document, str):
        from urllib.parse import unquote

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
                    f"the {what} role {given} ({flag}) does not exist in account {ident.account}: "
                    f"create it (trusting {principal}) or {flag} with an existing role"
                ) from None
            if deployed:
                raise DeployError(
                    f"the deployed {what} uses role {deployed}, which no longer exists: {TEMPLATE_HELP} {flag}"
                ) from None
            raise DeployError(
                f"no {what} role: none given and no IAM role named {convention!r} in account {ident.account}; "
                f"{TEMPLATE_HELP} {flag} ARN (a role {principal} can assume)"
            ) from None
        if code in ("AccessDenied", "AccessDeniedException") and (given or deployed):
            notes.append(f"could not check the {what} role {candidate} (no iam:GetRole permission); using it as given")
            return candidate
        if code in ("AccessDenied", "AccessDeniedException"):
            raise DeployError(
                f"no {what} role given and the convention role {convention!r} cannot be looked up "
                "(no iam:GetRole permission): "
                f"pass {flag}"
            ) from None
        raise
    if _trusts(role, principal) is False:
        notes.append(f"warning: role {role['Arn']} does not trust {principal}; the {what} will fail to assume it")
    return role["Arn"]


# -- schedule ---------------------------------------------------------------------
def translate(dag: Any) -> Any:
    """The DAG's ScheduleSpec (None: no schedule). ``ScheduleError`` becomes a DeployError."""
    try:
        from exporters.schedule import ScheduleError, translate_schedule
    except ImportError as err:  # pragma: no cover - depends on the checkout
        raise DeployError(
            f"schedule translation is unavailable ({err}); pass --no-schedule to deploy only the state machine"
        ) from None
    try:
        return translate_schedule(dag)
    except ScheduleError as err:
        raise DeployError(
            f"cannot translate the schedule of DAG {dag.dag_id!r} to EventBridge Scheduler: {err}\n"
            "  change the DAG's schedule, or pass --no-schedule and trigger it yourself"
        ) from None


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


# -- deploy -----------------------------------------------------------------------
@dataclass
class DeployReport:
    dag_id: str
    state_machine_arn: str
    alias_arn: str
    state_machine: str  # created | updated | unchanged
    version_arn: str | None
    alias: str  # created | moved | unchanged
    schedule_name: str | None = None
    schedule: str = "skipped"  # created | updated | unchanged | deleted | skipped | none
    schedule_changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tagged: bool = False  # tags added to an existing state machine

    @property
    def changed(self) -> bool:
        return (
            (self.state_machine, self.alias) != ("unchanged", "unchanged")
            or self.schedule in ("created", "updated", "deleted")
            or self.tagged
        )


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
    say: Callable[[str], None] = print,
    now: datetime | None = None,
) -> DeployReport:
    """Create or update the state machine, its ``live`` alias and its schedule. Raises ``DeployError``."""
    from exporters.loader import load_dag, prepare_environment

    prepare_environment()  # the exporter imports the project's operators (plugins/)
    from exporters.api import export_dag_object
    from exporters.compiler import param_defaults
    from exporters.validate import validate_definition

    now = now or datetime.now(UTC)
    sm_name = check_name(name) if name else state_machine_name(dag_id)

    # Everything that can fail without AWS first: nothing is changed on a bad DAG.
    dag = dag if dag is not None else load_dag(dag_id, dags_folder)
    result = export_dag_object(dag)
    definition = result.definition
    problems = validate_definition(definition)
    if problems:
        raise DeployError(
            "the exported definition is invalid (an exporter bug, please report it):\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    spec = translate(dag) if with_schedule else None
    payload = param_defaults(dag)

    target = locate(clients, sm_name)
    sfn = clients.sfn
    where = f"{clients.region}, account {clients.identity().account}" + (
        f", endpoint {clients.endpoint_label}" if clients.endpoint_label else ""
    )
    say(f"Deploying DAG {dag_id!r} as state machine {sm_name!r} ({where})")
    for warning in result.warnings:
        say(f"  export warning: {warning}")

    notes: list[str] = []
    current = _describe(sfn, target.arn)
    if current is not None:
        owner = _tags(sfn, target.arn).get(DAG_ID_TAG)
        if owner is not None and owner != dag_id:
            raise DeployError(
                f"state machine {sm_name!r} already exists for Airflow DAG {owner!r} (tag {DAG_ID_TAG}): "
                f"pass --name to deploy {dag_id!r} under another name"
            )
        if current.get("type", "STANDARD") != "STANDARD":
            raise DeployError(
                f"state machine {sm_name!r} exists as type {current['type']}; "
                "exports need STANDARD: delete it or pass --name"
            )
    schedule_existing = _get_schedule(clients.scheduler, schedule_name(sm_name)) if with_schedule else None

    role = resolve_role(
        clients,
        given=role_arn,
        deployed=(current or {}).get("roleArn"),
        convention=convention_role_name(sm_name, STATE_MACHINE_ROLE_SUFFIX),
        flag="--role-arn",
        principal=STATES_PRINCIPAL,
        what="state machine",
        notes=notes,
    )
    schedule_role = None
    if spec is not None:
        deployed_schedule_role = (
            (schedule_existing or {}).get("Target", {}).get("RoleArn")
            if schedule_existing and _targets(schedule_existing, target)
            else None
        )
        schedule_role = resolve_role(
            clients,
            given=schedule_role_arn,
            deployed=deployed_schedule_role,
            convention=convention_role_name(sm_name, SCHEDULE_ROLE_SUFFIX),
            flag="--schedule-role-arn",
            principal=SCHEDULER_PRINCIPAL,
            what="schedule",
            notes=notes,
        )
    if schedule_existing is not None and not _targets(schedule_existing, target) and (spec is not None):
        raise DeployError(
            f"schedule {schedule_name(sm_name)!r} already exists "
            f"and starts {schedule_existing.get('Target', {}).get('Arn')}: "
            "pass --name to deploy under another name, or delete that schedule"
        )

    # -- state machine ----------------------------------------------------------
    digest = definition_hash(definition)
    version_description = f"Airflow DAG {dag_id}, definition sha256:{digest[:16]}"
    text = result.to_json()
    version_arn: str | None = None
    if current is None:
        answer = sfn.create_state_machine(
            name=sm_name,
            definition=text,
            roleArn=role,
            type="STANDARD",
            tags=[{"key": DAG_ID_TAG, "value": dag_id}, {"key": MANAGED_BY_TAG, "value": MANAGED_BY}],
            publish=True,
            versionDescription=version_description,
        )
        version_arn = answer.get("stateMachineVersionArn")
        sm_action = "created"
    elif normalize(current["definition"]) != definition or current.get("roleArn") != role:
        changed = [
            what
            for what, differs in (
                ("definition", normalize(current["definition"]) != definition),
                ("role", current.get("roleArn") != role),
            )
            if differs
        ]
        answer = sfn.update_state_machine(
            stateMachineArn=target.arn,
            definition=text,
            roleArn=role,
            publish=True,
            versionDescription=version_description,
        )
        version_arn = answer.get("stateMachineVersionArn")
        sm_action = f"updated ({', '.join(changed)})"
    else:
        sm_action = "unchanged"
    tagged = current is not None and _ensure_tags(sfn, target.arn, dag_id)

    # -- alias -------------------------------------------------------------------
    alias = _describe_alias(sfn, target.alias_arn)
    live_version = _single_version(alias)
    if version_arn is None:
        live = _describe(sfn, live_version) if live_version else None
        if live is not None and normalize(live["definition"]) == definition and live.get("roleArn") == role:
            version_arn = live_version
        else:
            # The current revision is right but ``live`` does not run it (first deploy interrupted,
            # alias moved by hand): publish it. Idempotent: returns the existing version when there is one.
            request = {"stateMachineArn": target.arn, "description": version_description}
            if current and current.get("revisionId"):
                request["revisionId"] = current["revisionId"]
            version_arn = sfn.publish_state_machine_version(**request)["stateMachineVersionArn"]
    if version_arn is None:  # pragma: no cover - AWS always returns it with publish=True
        raise DeployError("AWS did not return the published version ARN; run deploy again")
    routing = [{"stateMachineVersionArn": version_arn, "weight": 100}]
    if alias is None:
        sfn.create_state_machine_alias(
            name=ALIAS, routingConfiguration=routing, description=f"What runs for Airflow DAG {dag_id}"
        )
        alias_action = "created"
    elif live_version != version_arn:
        sfn.update_state_machine_alias(stateMachineAliasArn=target.alias_arn, routingConfiguration=routing)
        alias_action = f"moved from version {_version_number(live_version)}" if live_version else "moved"
    else:
        alias_action = "unchanged"

    say(f"  state machine: {sm_action}, version {_version_number(version_arn)}  {target.arn}")
    if tagged:
        say(f"  tags added: {DAG_ID_TAG}={dag_id}, {MANAGED_BY_TAG}={MANAGED_BY}")
    say(f"  alias {ALIAS} -> version {_version_number(version_arn)}: {alias_action}")

    report = DeployReport(
        dag_id=dag_id,
        state_machine_arn=target.arn,
        alias_arn=target.alias_arn,
        state_machine=sm_action.split(" ")[0],
        version_arn=version_arn,
        alias=alias_action.split(" ")[0],
        notes=notes,
        tagged=tagged,
    )

    # -- schedule ----------------------------------------------------------------
    sched_name = schedule_name(sm_name)
    report.schedule_name = sched_name
    scheduler = clients.scheduler if with_schedule else None
    if not with_schedule:
        report.schedule = "skipped"
        say("  schedule: not touched (--no-schedule)")
    elif spec is None:
        if schedule_existing is not None and _targets(schedule_existing, target):
            scheduler.delete_schedule(Name=sched_name, GroupName=SCHEDULE_GROUP)
            report.schedule = "deleted"
            say(f"  schedule {sched_name}: deleted (the DAG has no schedule)")
        else:
            report.schedule = "none"
            say("  schedule: none (the DAG has no schedule; trigger with `python -m exporters start`)")
    else:
        desired = desired_schedule(
            spec,
            name=sched_name,
            dag_id=dag_id,
            alias_arn=target.alias_arn,
            role_arn=schedule_role,
            payload=payload,
            now=now,
        )
        summary = (
            " ".join(filter(None, (desired["ScheduleExpression"], desired.get("ScheduleExpressionTimezone"))))
            + f" -> alias {ALIAS}"
        )
        for caveat in getattr(spec, "notes", ()) or ():
            notes.append(f"schedule note: {caveat}")
        if schedule_existing is None:
            scheduler.create_schedule(**desired, State="ENABLED")
            report.schedule = "created"
            say(f"  schedule {sched_name}: created, {summary}")
        else:
            differences = schedule_differences(schedule_existing, desired, now)
            state = schedule_existing.get("State") or "ENABLED"
            if differences:
                request = dict(desired, State=state)
                retry = (schedule_existing.get("Target") or {}).get("RetryPolicy")
                if retry:
                    request["Target"] = dict(request["Target"], RetryPolicy=retry)
                scheduler.update_schedule(**request)
                report.schedule = "updated"
                report.schedule_changes = differences
                say(f"  schedule {sched_name}: updated ({', '.join(differences)}), {summary}")
            else:
                report.schedule = "unchanged"
                say(f"  schedule {sched_name}: unchanged, {summary}")
            if state != "ENABLED":
                say(f"  note: schedule {sched_name} is {state} (paused); left as it is")
    for note in notes:
        say(f"  {note}")
    say("Done." if report.changed else "Done: nothing to change.")
    return report


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
            f"state machine {name!r} is not deployed in {clients.region}: run `python -m exporters deploy DAG_ID` first"
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
            f"state machine {name!r} is not deployed in {clients.region}: run `python -m exporters deploy DAG_ID` first"
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
            number = _version_number(e["stateMachineVersionArn"])
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


@dataclass
class DiffResult:
    code: int  # NO_DRIFT | DRIFT
    text: str
    deployed_label: str


def diff(
    clients: AwsClients, dag_id: str, *, name: str | None = None, dags_folder: str | Path | None = None, dag: Any = None
) -> DiffResult:
    """Unified diff (pretty, key-sorted JSON) of the deployed definition against a fresh export."""
    from exporters.loader import load_dag, prepare_environment

    sm_name = check_name(name) if name else state_machine_name(dag_id)
    _, deployed, label = deployed_definition(clients, sm_name)  # NotDeployed before the slower DAG load
    prepare_environment()
    from exporters.api import export_dag_object

    dag = dag if dag is not None else load_dag(dag_id, dags_folder)
    fresh = export_dag_object(dag).definition
    if normalize(deployed["definition"]) == fresh:
        return DiffResult(NO_DRIFT, "", label)
    lines = difflib.unified_diff(
        pretty(deployed["definition"]).splitlines(keepends=True),
        pretty(fresh).splitlines(keepends=True),
        fromfile=f"deployed: {label}",
        tofile=f"export: DAG {dag_id}",
    )
    return DiffResult(DRIFT, "".join(lines), label)
