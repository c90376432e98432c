"""``deploy``/``start``/``executions``/``diff`` against the moto server over HTTP (``--endpoint-url``).

What moto 5.2.5 lacks, and how these tests handle it (a botocore ``Stubber`` answers that
one call; every other call still goes to moto):

- ``PublishStateMachineVersion`` and ``ListStateMachineVersions`` are not implemented
  (HTTP 500). The normal deploy path never needs them (``create``/``update_state_machine``
  with ``publish=True`` work); versions are counted by describing ``<arn>:<n>``.
  ``publish_state_machine_version`` (deploy's recovery path: right revision, no alias)
  is stubbed in ``test_recovers_a_missing_alias_by_publishing_the_current_revision``.
- ``StartExecution`` on an alias ARN: moto cannot resolve ``...:stateMachine:name:live``
  (StateMachineDoesNotExist; nor can it start a version ARN), so ``start`` on the alias is
  stubbed; ``start`` of a state machine without alias runs on moto. ``executions`` lists
  executions started on the unqualified ARN, as moto keeps them.
- IAM roles are not checked by moto's Step Functions (only the ARN's shape) nor is their
  trust policy: ``deploy`` itself checks the role exists with ``iam:GetRole`` (moto has
  IAM); "the service cannot assume the role" is stubbed on ``create_state_machine``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from exporters import concurrency
from exporters import deploy as dep
from exporters import schedule as schedule_module
from exporters.__main__ import main
from exporters.aws_clients import AwsClients

ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "model_retraining"
REGION = "us-east-1"
SECRET = "s3cr3t-from-an-airflow-connection"


# -- helpers ----------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def quiet_logs():
    """The moto server's request log (werkzeug) and botocore's INFO lines would land in the stderr we check."""
    loggers = [logging.getLogger(name) for name in ("werkzeug", "botocore")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    yield
    for logger, level in zip(loggers, levels, strict=False):
        logger.setLevel(level)


def cli(capsys, *argv: str, clients: AwsClients | None = None) -> tuple[int, str, str]:
    """Run ``python -m exporters ARGV`` in-process (its ``main``), optionally on given AWS clients."""
    capsys.readouterr()
    try:
        code = main(list(argv), clients=clients)
    except SystemExit as exit:  # argparse usage errors
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def load(dags_folder: Path = ROOT / "dags"):
    from exporters.loader import load_dag

    return load_dag(DAG_ID, dags_folder)


def fresh_definition(dags_folder: Path = ROOT / "dags") -> dict[str, Any]:
    from exporters.api import export_result

    return export_result(DAG_ID, dags_folder).definition


def changed_dags(tmp_path: Path, old: str, new: str) -> Path:
    """A dags folder holding model_retraining.py with one edit."""
    source = (ROOT / "dags" / f"{DAG_ID}.py").read_text()
    assert old in source
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / f"{DAG_ID}.py").write_text(source.replace(old, new, 1))
    return folder


THRESHOLD_0_10 = 'Param(0.10, type="number"'
THRESHOLD_0_25 = 'Param(0.25, type="number"'


def make_role(aws, name: str, principal: str) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": principal}, "Action": "sts:AssumeRole"}],
    }
    return aws.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


def make_run_slot_table(aws, name: str = concurrency.DEFAULT_TABLE) -> None:
    """The DynamoDB table the retraining DAG's max_active_runs guard needs (the template would create it)."""
    aws.client("dynamodb").create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": concurrency.LOCK_KEY, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": concurrency.LOCK_KEY, "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def roles(aws) -> dict[str, str]:
    make_run_slot_table(aws)
    return {
        "sfn": make_role(aws, "RetrainingStatesRole", "states.amazonaws.com"),
        "scheduler": make_role(aws, "RetrainingSchedulerRole", "scheduler.amazonaws.com"),
    }


@pytest.fixture
def deploy_args(aws, roles) -> list[str]:
    return ["--endpoint-url", aws.endpoint_url, "--role-arn", roles["sfn"], "--schedule-role-arn", roles["scheduler"]]


def arns(aws) -> tuple[str, str]:
    arn = f"arn:aws:states:{REGION}:123456789012:stateMachine:{DAG_ID}"
    return arn, f"{arn}:live"


def version_exists(aws, arn: str, number: int) -> bool:
    # moto has no ListStateMachineVersions: a version exists when ``<arn>:<n>`` can be described.
    try:
        aws.client("stepfunctions").describe_state_machine(stateMachineArn=f"{arn}:{number}")
        return True
    except aws.client("stepfunctions").exceptions.StateMachineDoesNotExist:
        return False


def live_version(aws) -> str:
    _, alias_arn = arns(aws)
    routes = aws.client("stepfunctions").describe_state_machine_alias(stateMachineAliasArn=alias_arn)[
        "routingConfiguration"
    ]
    assert len(routes) == 1 and routes[0]["weight"] == 100
    return routes[0]["stateMachineVersionArn"]


def recording_clients(endpoint_url: str) -> tuple[AwsClients, list[str]]:
    """Clients on moto that record every operation they call."""
    clients = AwsClients(endpoint_url=endpoint_url)
    calls: list[str] = []
    for service in ("stepfunctions", "scheduler", "iam", "sts"):
        clients.client(service).meta.events.register("before-call", lambda model, **_: calls.append(model.name))
    return clients, calls


class StubOneCall:
    """A client whose ``operation`` is answered by a botocore Stubber; every other call goes to moto."""

    def __init__(self, real: Any, operation: str):
        self._real = real
        self._operation = operation
        self.stubbed = boto3.client(
            real.meta.service_model.service_name, region_name=REGION, endpoint_url="http://stubbed.invalid"
        )
        self.stubber = Stubber(self.stubbed)
        self.stubber.activate()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stubbed if name == self._operation else self._real, name)


MUTATIONS = {
    "CreateStateMachine",
    "UpdateStateMachine",
    "PublishStateMachineVersion",
    "CreateStateMachineAlias",
    "UpdateStateMachineAlias",
    "TagResource",
    "UntagResource",
    "CreateSchedule",
    "UpdateSchedule",
    "DeleteSchedule",
}


# -- deploy -----------------------------------------------------------------------------------
def test_deploy_creates_state_machine_live_alias_and_schedule(aws, capsys, deploy_args, roles):
    code, out, err = cli(capsys, "deploy", DAG_ID, *deploy_args)
    assert code == 0, err
    arn, alias_arn = arns(aws)
    sfn = aws.client("stepfunctions")

    described = sfn.describe_state_machine(stateMachineArn=arn)
    assert json.loads(described["definition"]) == fresh_definition()
    assert described["roleArn"] == roles["sfn"]
    assert described["type"] == "STANDARD"
    tags = {t["key"]: t["value"] for t in sfn.list_tags_for_resource(resourceArn=arn)["tags"]}
    assert tags["airflow-dag-id"] == DAG_ID
    assert live_version(aws) == f"{arn}:1" and not version_exists(aws, arn, 2)

    schedule = aws.client("scheduler").get_schedule(Name=DAG_ID)
    spec = schedule_module.translate_schedule(load())
    assert schedule["ScheduleExpression"] == spec.expression
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["State"] == "ENABLED"
    assert schedule["Target"]["Arn"] == alias_arn
    assert schedule["Target"]["RoleArn"] == roles["scheduler"]
    payload = json.loads(schedule["Target"]["Input"])
    assert payload["threshold"] == 0.10 and payload["endpoint_name"] == "churn-endpoint"
    assert payload == json.loads(
        json.dumps(fresh_definition()["States"]["Param defaults"]["Parameters"]["param_defaults"])
    )
    assert "StartDate" not in schedule or schedule["StartDate"] is None  # the DAG's start_date is in the past

    assert "state machine: created, version 1" in out
    assert "alias live -> version 1: created" in out
    assert f"schedule {DAG_ID}: created, {spec.expression} UTC -> alias live" in out
    assert concurrency.has_guard(
        json.loads(described["definition"])
    )  # max_active_runs=1: the run-slot guard, on the table that exists


def test_redeploy_without_changes_calls_no_update(aws, capsys, deploy_args):
    assert cli(capsys, "deploy", DAG_ID, *deploy_args)[0] == 0
    arn, alias_arn = arns(aws)
    alias_before = aws.client("stepfunctions").describe_state_machine_alias(stateMachineAliasArn=alias_arn)
    schedule_before = aws.client("scheduler").get_schedule(Name=DAG_ID)

    # Second run without role flags: the deployed roles are kept.
    clients, calls = recording_clients(aws.endpoint_url)
    code, out, err = cli(capsys, "deploy", DAG_ID, "--endpoint-url", aws.endpoint_url, clients=clients)
    assert code == 0, err
    assert not MUTATIONS & set(calls), calls
    assert "Done: nothing to change." in out
    assert "state machine: unchanged, version 1" in out and "alias live -> version 1: unchanged" in out

    assert live_version(aws) == f"{arn}:1" and not version_exists(aws, arn, 2)
    alias_after = aws.client("stepfunctions").describe_state_machine_alias(stateMachineAliasArn=alias_arn)
    assert alias_after["updateDate"] == alias_before["updateDate"]
    assert (
        aws.client("scheduler").get_schedule(Name=DAG_ID)["LastModificationDate"]
        == schedule_before["LastModificationDate"]
    )


def test_changed_dag_updates_in_place_publishes_a_version_and_moves_live(aws, capsys, deploy_args, tmp_path):
    assert cli(capsys, "deploy", DAG_ID, *deploy_args)[0] == 0
    arn, alias_arn = arns(aws)
    changed = changed_dags(tmp_path, THRESHOLD_0_10, THRESHOLD_0_25)

    clients, calls = recording_clients(aws.endpoint_url)
    code, out, err = cli(
        capsys, "deploy", DAG_ID, "--endpoint-url", aws.endpoint_url, "--dags-folder", str(changed), clients=clients
    )
    assert code == 0, err
    assert "CreateStateMachine" not in calls and calls.count("UpdateStateMachine") == 1
    assert "state machine: updated (definition), version 2" in out
    assert "alias live -> version 2: moved from version 1" in out
    assert f"schedule {DAG_ID}: updated (Target.Input)" in out

    sfn = aws.client("stepfunctions")
    assert [m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]] == [arn]  # in place
    assert json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"]) == fresh_definition(changed)
    assert live_version(aws) == f"{arn}:2" and not version_exists(aws, arn, 3)
    old = json.loads(sfn.describe_state_machine(stateMachineArn=f"{arn}:1")["definition"])
    assert old["States"]["Param defaults"]["Parameters"]["param_defaults"]["threshold"] == 0.10
    schedule = aws.client("scheduler").get_schedule(Name=DAG_ID)
    assert json.loads(schedule["Target"]["Input"])["threshold"] == 0.25
    assert schedule["Target"]["Arn"] == alias_arn

    # ... and deploying the changed DAG again is a no-op.
    code, out, _ = cli(capsys, "deploy", DAG_ID, "--endpoint-url", aws.endpoint_url, "--dags-folder", str(changed))
    assert code == 0 and "nothing to change" in out and not version_exists(aws, arn, 3)


def test_recovers_a_missing_alias_by_publishing_the_current_revision(aws, capsys, roles):
    """A state machine with the right definition but no ``live`` alias (e.g. an interrupted first deploy)."""
    sfn = aws.client("stepfunctions")
    created = sfn.create_state_machine(
        name=DAG_ID, definition=json.dumps(fresh_definition()), roleArn=roles["sfn"], publish=True
    )
    arn = created["stateMachineArn"]
    clients = AwsClients(endpoint_url=aws.endpoint_url)
    # moto has no PublishStateMachineVersion: stubbed. AWS's answer for a revision already
    # published is the existing version (the API is idempotent), here version 1.
    proxy = StubOneCall(clients.sfn, "publish_state_machine_version")
    proxy.stubber.add_response(
        "publish_state_machine_version",
        {"stateMachineVersionArn": f"{arn}:1", "creationDate": datetime.now(UTC)},
        {"stateMachineArn": arn, "description": ANY},
    )
    clients = AwsClients(endpoint_url=aws.endpoint_url, overrides={"stepfunctions": proxy})
    code, out, err = cli(capsys, "deploy", DAG_ID, "--schedule-role-arn", roles["scheduler"], clients=clients)
    assert code == 0, err
    proxy.stubber.assert_no_pending_responses()
    assert live_version(aws) == f"{arn}:1" and not version_exists(aws, arn, 2)
    assert "state machine: unchanged" in out and "alias live -> version 1: created" in out
    assert "tags added: airflow-dag-id=model_retraining" in out
    tags = {t["key"]: t["value"] for t in sfn.list_tags_for_resource(resourceArn=arn)["tags"]}
    assert tags["airflow-dag-id"] == DAG_ID  # adopted


def test_roles_found_by_convention(aws, capsys):
    make_run_slot_table(aws)
    make_role(aws, f"{DAG_ID}-sfn-role", "states.amazonaws.com")
    make_role(aws, f"{DAG_ID}-scheduler-role", "scheduler.amazonaws.com")
    code, out, err = cli(capsys, "deploy", DAG_ID, "--endpoint-url", aws.endpoint_url)
    assert code == 0, err
    arn, _ = arns(aws)
    assert (
        aws.client("stepfunctions")
        .describe_state_machine(stateMachineArn=arn)["roleArn"]
        .endswith(f":role/{DAG_ID}-sfn-role")
    )
    assert (
        aws.client("scheduler")
        .get_schedule(Name=DAG_ID)["Target"]["RoleArn"]
        .endswith(f":role/{DAG_ID}-scheduler-role")
    )


def test_custom_name_and_a_dag_without_schedule_removes_our_schedule(aws, capsys, deploy_args, tmp_path):
    code, _, err = cli(capsys, "deploy", DAG_ID, *deploy_args, "--name", "churn-retraining")
    assert code == 0, err
    assert (
        aws.client("scheduler")
        .get_schedule(Name="churn-retraining")["Target"]["Arn"]
        .endswith(":stateMachine:churn-retraining:live")
    )

    unscheduled = changed_dags(tmp_path, 'schedule="0 * * * *"', "schedule=None")
    code, out, err = cli(
        capsys,
        "deploy",
        DAG_ID,
        "--endpoint-url",
        aws.endpoint_url,
        "--name",
        "churn-retraining",
        "--dags-folder",
        str(unscheduled),
    )
    assert code == 0, err
    assert "schedule churn-retraining: deleted (the DAG has no schedule)" in out
    assert aws.client("scheduler").list_schedules()["Schedules"] == []


def test_a_paused_schedule_stays_paused(aws, capsys, deploy_args, tmp_path):
    assert cli(capsys, "deploy", DAG_ID, *deploy_args)[0] == 0
    scheduler = aws.client("scheduler")
    current = scheduler.get_schedule(Name=DAG_ID)
    keep = (
        "Name",
        "GroupName",
        "ScheduleExpression",
        "ScheduleExpressionTimezone",
        "FlexibleTimeWindow",
        "Target",
        "Description",
    )
    scheduler.update_schedule(**{k: current[k] for k in keep}, State="DISABLED")

    changed = changed_dags(tmp_path, THRESHOLD_0_10, THRESHOLD_0_25)
    code, out, _ = cli(capsys, "deploy", DAG_ID, "--endpoint-url", aws.endpoint_url, "--dags-folder", str(changed))
    assert code == 0
    assert "is DISABLED (paused); left as it is" in out
    assert scheduler.get_schedule(Name=DAG_ID)["State"] == "DISABLED"


def test_rate_schedule_and_its_redeploy(aws, capsys, deploy_args, tmp_path):
    hourly = changed_dags(tmp_path, 'schedule="0 * * * *"', "schedule=timedelta(hours=1)")
    code, out, err = cli(capsys, "deploy", DAG_ID, *deploy_args, "--dags-folder", str(hourly))
    assert code == 0, err
    schedule = aws.client("scheduler").get_schedule(Name=DAG_ID)
    assert schedule["ScheduleExpression"] == schedule_module.translate_schedule(load(hourly)).expression
    assert schedule["ScheduleExpression"].startswith("rate(")
    code, out, _ = cli(capsys, "deploy", DAG_ID, "--endpoint-url", aws.endpoint_url, "--dags-folder", str(hourly))
    assert code == 0 and "nothing to change" in out


def test_untranslatable_schedule_deploys_nothing(aws, capsys, deploy_args, tmp_path):
    both_days = changed_dags(tmp_path, 'schedule="0 * * * *"', 'schedule="0 0 1 * 1"')
    code, _, err = cli(capsys, "deploy", DAG_ID, *deploy_args, "--dags-folder", str(both_days))
    _assert_clean(code, err, "cannot be exported to EventBridge", "fix:", "--no-schedule")
    assert aws.client("stepfunctions").list_state_machines()["stateMachines"] == []


def test_no_airflow_connection_secret_is_printed_or_sent(aws, capsys, deploy_args, monkeypatch):
    connection = {
        "conn_type": "aws",
        "login": "AKIDSECRETLOGIN",
        "password": SECRET,
        "extra": {"aws_session_token": SECRET},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
    code, out, err = cli(capsys, "deploy", DAG_ID, *deploy_args)
    assert code == 0, err
    arn, _ = arns(aws)
    sent = aws.client("stepfunctions").describe_state_machine(stateMachineArn=arn)["definition"]
    sent += aws.client("scheduler").get_schedule(Name=DAG_ID)["Target"]["Input"]
    for secret in (SECRET, "AKIDSECRETLOGIN"):
        assert secret not in out + err + sent


# -- start / executions -----------------------------------------------------------------------
def test_start_runs_the_live_alias_with_the_input(aws, capsys, deploy_args):
    assert cli(capsys, "deploy", DAG_ID, *deploy_args)[0] == 0
    arn, alias_arn = arns(aws)
    clients = AwsClients(endpoint_url=aws.endpoint_url)
    # moto cannot start an alias ARN (it does not resolve ``:live``): StartExecution is
    # stubbed; the alias look-up before it is answered by moto.
    proxy = StubOneCall(clients.sfn, "start_execution")
    execution_arn = f"arn:aws:states:{REGION}:123456789012:execution:{DAG_ID}:run-1"
    proxy.stubber.add_response(
        "start_execution",
        {"executionArn": execution_arn, "startDate": datetime.now(UTC)},
        {"stateMachineArn": alias_arn, "input": json.dumps({"threshold": 0.2, "endpoint_name": "canary"})},
    )
    clients = AwsClients(endpoint_url=aws.endpoint_url, overrides={"stepfunctions": proxy})
    code, out, err = cli(
        capsys, "start", DAG_ID, "--input", '{"threshold": 0.2, "endpoint_name": "canary"}', clients=clients
    )
    assert code == 0, err
    assert out.strip() == execution_arn
    proxy.stubber.assert_no_pending_responses()


def test_start_without_alias_runs_the_state_machine_on_moto(aws, capsys, roles, tmp_path):
    sfn = aws.client("stepfunctions")
    arn = sfn.create_state_machine(name=DAG_ID, definition=json.dumps(fresh_definition()), roleArn=roles["sfn"])[
        "stateMachineArn"
    ]
    source = tmp_path / "input.json"
    source.write_text('{"threshold": 0.3}')
    code, out, err = cli(capsys, "start", DAG_ID, "--endpoint-url", aws.endpoint_url, "--input", f"@{source}")
    assert code == 0, err
    execution = sfn.describe_execution(executionArn=out.strip())
    assert execution["stateMachineArn"] == arn and json.loads(execution["input"]) == {"threshold": 0.3}


@pytest.mark.parametrize("bad", ["{not json", "[1, 2]"])
def test_start_rejects_bad_input_as_usage_error(aws, capsys, bad):
    code, _, err = cli(capsys, "start", DAG_ID, "--endpoint-url", aws.endpoint_url, "--input", bad)
    assert code == 2 and "--input" in err


def test_start_and_executions_when_not_deployed(aws, capsys):
    for command in ("start", "executions"):
        code, _, err = cli(capsys, command, DAG_ID, "--endpoint-url", aws.endpoint_url)
        assert code == 1 and "not deployed" in err and "python -m exporters deploy" in err and "Traceback" not in err


def test_executions_lists_recent_runs_with_status_and_times(aws, capsys, deploy_args):
    assert cli(capsys, "deploy", DAG_ID, *deploy_args)[0] == 0
    code, out, _ = cli(capsys, "executions", DAG_ID, "--endpoint-url", aws.endpoint_url)
    assert code == 0 and "no executions" in out
    arn, _ = arns(aws)
    sfn = aws.client("stepfunctions")
    sfn.start_execution(stateMachineArn=arn, name="first-run", input="{}")
    sfn.start_execution(stateMachineArn=arn, name="second-run", input="{}")
    sfn.stop_execution(executionArn=f"arn:aws:states:{REGION}:123456789012:execution:{DAG_ID}:first-run")

    code, out, err = cli(capsys, "executions", DAG_ID, "--endpoint-url", aws.endpoint_url)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].split() == ["STATUS", "STARTED", "STOPPED", "VERSION", "NAME"]
    rows = {line.split()[-1]: line for line in lines[1:]}
    assert set(rows) == {"first-run", "second-run"}
    assert rows["first-run"].startswith("ABORTED") and rows["first-run"].count("UTC") == 2  # started and stopped
    assert rows["second-run"].startswith("RUNNING") and rows["second-run"].count("UTC") == 1

    code, out, _ = cli(capsys, "executions", DAG_ID, "--endpoint-url", aws.endpoint_url, "--max", "1")
    assert code == 0 and len(out.strip().splitlines()) == 2


# -- diff -------------------------------------------------------------------------------------
def test_diff_identical_changed_and_not_deployed(aws, capsys, deploy_args, tmp_path):
    code, _, err = cli(capsys, "diff", DAG_ID, "--endpoint-url", aws.endpoint_url)
    assert code == dep.NOT_DEPLOYED == 4 and "not deployed" in err

    assert cli(capsys, "deploy", DAG_ID, *deploy_args)[0] == 0
    code, out, _ = cli(capsys, "diff", DAG_ID, "--endpoint-url", aws.endpoint_url)
    assert code == 0 and "no drift" in out

    changed = changed_dags(tmp_path, THRESHOLD_0_10, THRESHOLD_0_25)
    code, out, err = cli(capsys, "diff", DAG_ID, "--endpoint-url", aws.endpoint_url, "--dags-folder", str(changed))
    assert code == dep.DRIFT == 3
    assert "\n--- deployed: model_retraining (alias live = version 1)\n+++ export: DAG model_retraining\n" in "\n" + out
    changed_lines = [
        line[0] + line[1:].strip() for line in out.splitlines() if line[:1] in "+-" and line[:3] not in ("---", "+++")
    ]
    assert changed_lines == ['-"threshold": 0.1,', '+"threshold": 0.25,'], out
    assert "drift" in err


# -- errors: one clear message, never a traceback --------------------------------------------
def _assert_clean(code: int, err: str, *needles: str) -> None:
    assert code == 1, err
    assert err.startswith("error: ")
    assert "Traceback" not in err and "botocore" not in err
    for needle in needles:
        assert needle in err, err


def test_no_region(aws, capsys, monkeypatch, deploy_args):
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    for argv in (("deploy", DAG_ID, *deploy_args), ("start", DAG_ID, "--endpoint-url", aws.endpoint_url)):
        code, _, err = cli(capsys, *argv)
        _assert_clean(code, err, "no AWS region", "--region", "AWS_REGION")
    monkeypatch.setenv("AWS_REGION", REGION)  # read like the AWS CLI v2 does (botocore itself does not)
    code, _, err = cli(capsys, "executions", DAG_ID, "--endpoint-url", aws.endpoint_url)
    assert code == 1 and "not deployed in us-east-1" in err


def test_no_credentials(aws, capsys, monkeypatch, tmp_path):
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        empty = tmp_path / name.lower()
        empty.write_text("")
        monkeypatch.setenv(name, str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata wait
    code, _, err = cli(capsys, "executions", DAG_ID, "--endpoint-url", aws.endpoint_url)
    _assert_clean(code, err, "no usable AWS credentials", "AWS_PROFILE")


def test_missing_state_machine_role(aws, capsys, roles):
    # No --role-arn, nothing deployed, no role by convention.
    code, _, err = cli(
        capsys, "deploy", DAG_ID, "--endpoint-url", aws.endpoint_url, "--schedule-role-arn", roles["scheduler"]
    )
    _assert_clean(code, err, "no state machine role", f"{DAG_ID}-sfn-role", "CloudFormation template", "--role-arn")
    # A --role-arn that does not exist.
    missing = "arn:aws:iam::123456789012:role/DoesNotExist"
    code, _, err = cli(
        capsys,
        "deploy",
        DAG_ID,
        "--endpoint-url",
        aws.endpoint_url,
        "--role-arn",
        missing,
        "--schedule-role-arn",
        roles["scheduler"],
    )
    _assert_clean(code, err, missing, "does not exist")
    # Not a role ARN at all.
    code, _, err = cli(capsys, "deploy", DAG_ID, "--endpoint-url", aws.endpoint_url, "--role-arn", "MyRole")
    _assert_clean(code, err, "not an IAM role ARN")
    assert aws.client("stepfunctions").list_state_machines()["stateMachines"] == []  # nothing half-deployed


def test_missing_schedule_role_changes_nothing(aws, capsys, roles):
    code, _, err = cli(capsys, "deploy", DAG_ID, "--endpoint-url", aws.endpoint_url, "--role-arn", roles["sfn"])
    _assert_clean(code, err, "no schedule role", "--schedule-role-arn", "CloudFormation template")
    assert aws.client("stepfunctions").list_state_machines()["stateMachines"] == []
    # --no-schedule deploys the state machine alone.
    code, out, err = cli(
        capsys, "deploy", DAG_ID, "--endpoint-url", aws.endpoint_url, "--role-arn", roles["sfn"], "--no-schedule"
    )
    assert code == 0, err
    assert "not touched (--no-schedule)" in out
    assert aws.client("scheduler").list_schedules()["Schedules"] == []


def test_role_step_functions_cannot_assume(aws, capsys, deploy_args):
    clients = AwsClients(endpoint_url=aws.endpoint_url)
    # moto does not check a role's trust policy: AWS's refusal is stubbed.
    proxy = StubOneCall(clients.sfn, "create_state_machine")
    proxy.stubber.add_client_error(
        "create_state_machine",
        service_error_code="AccessDeniedException",
        service_message="Neither the global service principal states.amazonaws.com, "
        "nor the regional one is authorized to assume the provided role.",
        http_status_code=400,
    )
    clients = AwsClients(endpoint_url=aws.endpoint_url, overrides={"stepfunctions": proxy})
    code, _, err = cli(capsys, "deploy", DAG_ID, *deploy_args, clients=clients)
    _assert_clean(code, err, "CreateStateMachine", "AccessDeniedException", "trust policy", "states.amazonaws.com")


def test_aws_api_error_from_moto(aws, capsys, roles):
    # A schedule of the same name already starting something else: refused before any change.
    aws.client("scheduler").create_schedule(
        Name=DAG_ID,
        ScheduleExpression="rate(1 day)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={
            "Arn": "arn:aws:states:us-east-1:123456789012:stateMachine:someone-else",
            "RoleArn": roles["scheduler"],
        },
    )
    code, _, err = cli(
        capsys,
        "deploy",
        DAG_ID,
        "--endpoint-url",
        aws.endpoint_url,
        "--role-arn",
        roles["sfn"],
        "--schedule-role-arn",
        roles["scheduler"],
    )
    _assert_clean(code, err, "someone-else", "--name")
    assert aws.client("stepfunctions").list_state_machines()["stateMachines"] == []
    # A real moto ClientError, mapped: an execution name Step Functions refuses.
    aws.client("stepfunctions").create_state_machine(
        name=DAG_ID, definition=json.dumps(fresh_definition()), roleArn=roles["sfn"]
    )
    code, _, err = cli(capsys, "start", DAG_ID, "--endpoint-url", aws.endpoint_url, "--execution-name", "bad name?")
    _assert_clean(code, err, "AWS StartExecution failed", "InvalidName")


def test_unreachable_endpoint(capsys, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    role = "arn:aws:iam::123456789012:role/RetrainingStatesRole"
    code, _, err = cli(capsys, "deploy", DAG_ID, "--endpoint-url", "http://127.0.0.1:9", "--role-arn", role)
    _assert_clean(code, err, "could not connect to http://127.0.0.1:9", "--endpoint-url")


def test_state_machine_of_another_dag_is_not_overwritten(aws, capsys, roles):
    sfn = aws.client("stepfunctions")
    sfn.create_state_machine(
        name=DAG_ID,
        definition=json.dumps(fresh_definition()),
        roleArn=roles["sfn"],
        tags=[{"key": "airflow-dag-id", "value": "other_dag"}],
    )
    code, _, err = cli(
        capsys, "deploy", DAG_ID, "--endpoint-url", aws.endpoint_url, "--schedule-role-arn", roles["scheduler"]
    )
    _assert_clean(code, err, "other_dag", "--name")


def test_invalid_name(aws, capsys):
    code, _, err = cli(capsys, "start", DAG_ID, "--endpoint-url", aws.endpoint_url, "--name", "no spaces allowed")
    _assert_clean(code, err, "invalid state machine name")


# -- names ------------------------------------------------------------------------------------
def test_names_are_valid_and_do_not_collide():
    assert dep.state_machine_name("model_retraining") == "model_retraining"
    dotted, dashed = dep.state_machine_name("team.model"), dep.state_machine_name("team-model")
    assert dotted != dashed and dep.NAME_RE.match(dotted)
    long = dep.state_machine_name("x." * 200)
    assert dep.NAME_RE.match(long) and len(long) <= 80
    assert len(dep.schedule_name("y" * 80)) <= 64 and dep.schedule_name("y" * 80) != dep.schedule_name("y" * 79 + "z")
    assert len(dep.convention_role_name("z" * 80, dep.SCHEDULE_ROLE_SUFFIX)) <= 64
    assert dep.convention_role_name(DAG_ID, dep.STATE_MACHINE_ROLE_SUFFIX) == f"{DAG_ID}-sfn-role"


# -- the Python API ---------------------------------------------------------------------------
def test_deploy_returns_a_typed_report_and_prints_nothing(aws, capsys, roles, tmp_path):
    clients = AwsClients(endpoint_url=aws.endpoint_url)
    options = {"clients": clients, "role_arn": roles["sfn"], "schedule_role_arn": roles["scheduler"]}
    arn, alias_arn = arns(aws)
    # Parsing is Airflow's (its DagBag may log to stdout once the test session configured logging);
    # what must stay silent is deploy itself.
    dag = load(ROOT / "dags")
    capsys.readouterr()
    report = dep.deploy(DAG_ID, dag=dag, **options)
    assert capsys.readouterr().out == ""
    assert report.state_machine == dep.StateMachineOutcome("created", (), f"{arn}:1", tagged=False)
    assert report.alias == dep.AliasOutcome("created", None)
    assert (report.schedule.action, report.schedule.name) == ("created", DAG_ID)
    assert (report.state_machine_arn, report.alias_arn, report.changed) == (arn, alias_arn, True)
    assert concurrency.has_guard(
        json.loads(aws.client("stepfunctions").describe_state_machine(stateMachineArn=arn)["definition"])
    )

    changed_folder = changed_dags(tmp_path, THRESHOLD_0_10, THRESHOLD_0_25)
    changed = dep.deploy(DAG_ID, dag=load(changed_folder), **options)
    assert changed.state_machine == dep.StateMachineOutcome("updated", ("definition",), f"{arn}:2", tagged=False)
    assert changed.alias == dep.AliasOutcome("moved", f"{arn}:1")
    assert changed.schedule.action == "updated" and changed.schedule.changes == ("Target.Input",)
    again_dag = load(changed_folder)
    capsys.readouterr()
    again = dep.deploy(DAG_ID, dag=again_dag, **options)
    assert not again.changed and again.alias.action == "unchanged" and again.schedule.action == "unchanged"
    assert capsys.readouterr().out == ""
