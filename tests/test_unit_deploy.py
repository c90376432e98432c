"""Unit tests of the deploy module's pure parts: names, schedule requests and their differences, diffs,
the AWS error messages (real botocore exceptions) and the CLI's rendering of a deploy report."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore import exceptions as bx

from exporters import deploy as dep
from exporters.aws_clients import IAM_ROLE_ARN_RE, AwsCommandError, command_error
from exporters.cli_deploy import deploy_report_lines
from exporters.schedule import ScheduleSpec

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ALIAS_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:churn:live"
ROLE = "arn:aws:iam::123456789012:role/churn-scheduler-role"


def spec(expression="cron(0 * * * ? *)", timezone="UTC", start=None, end=None) -> ScheduleSpec:
    kind = "rate" if expression.startswith("rate(") else "cron"
    return ScheduleSpec(expression, timezone, start, end, source="'0 * * * *'", kind=kind)


def desired(schedule: ScheduleSpec, payload=None) -> dict:
    return dep.desired_schedule(
        schedule, name="churn", dag_id="churn", alias_arn=ALIAS_ARN, role_arn=ROLE, payload=payload or {}, now=NOW
    )


# -- names ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("arn", "name"),
    [
        ("arn:aws:iam::123456789012:role/churn", "churn"),
        ("arn:aws:iam::123456789012:role/service-role/team/churn-sfn", "churn-sfn"),
        ("arn:aws-cn:iam::123456789012:role/x+y=z,a.b@c_d-e", "x+y=z,a.b@c_d-e"),
    ],
)
def test_role_arn_rule_takes_paths_and_partitions(arn, name):
    assert IAM_ROLE_ARN_RE.match(arn).group(1) == name


@pytest.mark.parametrize(
    "arn",
    ["MyRole", "arn:aws:iam::12345:role/x", "arn:aws:iam::123456789012:user/x", "arn:aws:iam::123456789012:role/"],
)
def test_role_arn_rule_refuses_what_is_not_a_role(arn):
    assert not IAM_ROLE_ARN_RE.match(arn)
    with pytest.raises(dep.DeployError, match="is not an IAM role ARN") as caught:
        dep._role_name(arn, "--role-arn")
    assert "arn:aws:iam::<account>:role/<name>" in caught.value.fix


def test_check_name_says_what_is_allowed():
    assert dep.check_name("churn_retraining-2") == "churn_retraining-2"
    with pytest.raises(dep.DeployError) as caught:
        dep.check_name("no spaces")
    assert caught.value.reason == "invalid state machine name 'no spaces'" and "--name" in caught.value.fix


# -- schedule requests ----------------------------------------------------------------------------
def test_desired_schedule_targets_the_alias_with_the_params_as_input():
    request = desired(spec(), payload={"threshold": 0.1, "b": [1]})
    assert request["Target"] == {"Arn": ALIAS_ARN, "RoleArn": ROLE, "Input": '{"b": [1], "threshold": 0.1}'}
    assert request["FlexibleTimeWindow"] == {"Mode": "OFF"} and request["ScheduleExpressionTimezone"] == "UTC"
    assert "StartDate" not in request and "EndDate" not in request


def test_rates_have_no_timezone_and_only_future_start_dates_are_sent():
    past, future, end = NOW - timedelta(days=1), NOW + timedelta(days=1), NOW + timedelta(days=30)
    assert "ScheduleExpressionTimezone" not in desired(spec("rate(1 hour)", timezone=None))
    assert "StartDate" not in desired(spec(start=past))
    request = desired(spec(start=future, end=end))
    assert (request["StartDate"], request["EndDate"]) == (future, end)


def test_an_identical_schedule_has_no_differences_whatever_the_formatting():
    want = desired(spec(), payload={"a": 1, "b": 2})
    have = json.loads(json.dumps(want, default=str))
    have["Target"]["Input"] = '{"b":2,"a":1}'  # same JSON, other key order and spacing
    have["ScheduleExpressionTimezone"] = None  # AWS's default, UTC
    assert dep.schedule_differences(have, want, NOW) == []


def test_each_changed_field_is_named():
    want = desired(spec(end=NOW + timedelta(days=3)))
    have = {
        "ScheduleExpression": "cron(30 * * * ? *)",
        "ScheduleExpressionTimezone": "Europe/Paris",
        "Description": want["Description"],
        "FlexibleTimeWindow": {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 5},
        "Target": {"Arn": ALIAS_ARN.replace(":live", ""), "RoleArn": "arn:aws:iam::123456789012:role/other"},
        "StartDate": NOW + timedelta(days=1),
    }
    assert dep.schedule_differences(have, want, NOW) == [
        "ScheduleExpression",
        "ScheduleExpressionTimezone",
        "FlexibleTimeWindow",
        "Target.Arn",
        "Target.RoleArn",
        "Target.Input",
        "StartDate",
        "EndDate",
    ]


# -- diffs ------------------------------------------------------------------------------------------
def test_diff_definitions_ignores_formatting_and_shows_changed_lines():
    fresh = {"StartAt": "a", "States": {"a": {"Type": "Pass", "End": True}}}
    same = dep.diff_definitions(json.dumps(fresh, indent=4), fresh, label="churn (current revision)", dag_id="d")
    assert (same.code, same.text) == (dep.NO_DRIFT, "")
    changed = {"StartAt": "a", "States": {"a": {"Type": "Succeed"}}}
    drift = dep.diff_definitions(json.dumps(changed), fresh, label="churn (current revision)", dag_id="d")
    assert drift.code == dep.DRIFT and drift.deployed_label == "churn (current revision)"
    assert drift.text.startswith("--- deployed: churn (current revision)\n+++ export: DAG d\n")
    assert '-      "Type": "Succeed"' in drift.text and '+      "Type": "Pass"' in drift.text


# -- AWS errors as reason and fix -------------------------------------------------------------------
def client_error(code: str, message: str, operation: str = "CreateStateMachine") -> bx.ClientError:
    return bx.ClientError({"Error": {"Code": code, "Message": message}}, operation)


@pytest.mark.parametrize(
    ("err", "reason_part", "fix_part"),
    [
        (bx.NoRegionError(), "no AWS region configured", "--region"),
        (bx.NoCredentialsError(), "no usable AWS credentials", "AWS_PROFILE"),
        (bx.EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), "could not connect to", "network"),
        (client_error("ExpiredTokenException", "expired"), "ExpiredTokenException: expired", "expired"),
        (client_error("AccessDeniedException", "not authorized"), "AccessDeniedException", "lack permission"),
        (client_error("AccessDeniedException", "cannot assume the role"), "AccessDeniedException", "trust policy"),
        (client_error("ThrottlingException", "slow down"), "ThrottlingException", "wait"),
        (client_error("InvalidDefinition", "bad"), "InvalidDefinition", "validate"),
        (client_error("InvalidName", "bad name", "StartExecution"), "AWS StartExecution failed", "names"),
    ],
)
def test_aws_failures_become_a_reason_and_a_fix(err, reason_part, fix_part):
    error = command_error(err)
    assert isinstance(error, AwsCommandError)
    assert reason_part in error.reason and fix_part in error.fix, (error.reason, error.fix)


def test_an_html_error_page_is_not_echoed():
    error = command_error(client_error("502", "<html><body>Bad Gateway</body></html>"), "http://127.0.0.1:4599")
    assert "<html" not in error.reason and "HTML error page" in error.reason and "127.0.0.1:4599" in error.reason


# -- the report, as the CLI prints it -----------------------------------------------------------------
def report(**changes) -> dep.DeployReport:
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:churn"
    values = dict(
        dag_id="churn",
        state_machine_name="churn",
        state_machine_arn=arn,
        alias_arn=f"{arn}:live",
        where="us-east-1, account 123456789012",
        export_warnings=("max_active_runs=1 is not enforced",),
        state_machine=dep.StateMachineOutcome("updated", ("definition", "role"), f"{arn}:3", tagged=True),
        alias=dep.AliasOutcome("moved", f"{arn}:2"),
        schedule=dep.ScheduleOutcome("updated", "churn", "cron(0 * * * ? *) UTC", ("Target.Input",), "DISABLED"),
        notes=("schedule note: DST",),
    )
    values.update(changes)
    return dep.DeployReport(**values)


def test_the_report_lines_say_what_changed():
    lines = deploy_report_lines(report())
    assert lines == [
        "Deploying DAG 'churn' as state machine 'churn' (us-east-1, account 123456789012)",
        "  export warning: max_active_runs=1 is not enforced",
        "  state machine: updated (definition, role), version 3  "
        "arn:aws:states:us-east-1:123456789012:stateMachine:churn",
        "  tags added: airflow-dag-id=churn, managed-by=airflow-sfn-exporter",
        "  alias live -> version 3: moved from version 2",
        "  schedule churn: updated (Target.Input), cron(0 * * * ? *) UTC -> alias live",
        "  note: schedule churn is DISABLED (paused); left as it is",
        "  schedule note: DST",
        "Done.",
    ]


def test_an_unchanged_deploy_says_so():
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:churn"
    quiet = report(
        export_warnings=(),
        state_machine=dep.StateMachineOutcome("unchanged", (), f"{arn}:3", tagged=False),
        alias=dep.AliasOutcome("unchanged", None),
        schedule=dep.ScheduleOutcome("skipped", "churn"),
        notes=(),
    )
    assert not quiet.changed
    assert deploy_report_lines(quiet)[1:] == [
        f"  state machine: unchanged, version 3  {arn}",
        "  alias live -> version 3: unchanged",
        "  schedule: not touched (--no-schedule)",
        "Done: nothing to change.",
    ]
