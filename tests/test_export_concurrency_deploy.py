"""``deploy --concurrency-table``: the run-slot table of a DAG with max_active_runs, on the moto server.

The table is treated like the roles: never created by ``deploy``; named by the flag or the
export's default; a missing table stops the deploy before any change, with a reason and a fix.
"""

from __future__ import annotations

import json

import pytest

from exporters import concurrency
from exporters.__main__ import main
from tests.conftest import ROOT

DAG_ID = "model_retraining"  # max_active_runs=1
DAGS = str(ROOT / "dags")


def _role(aws, name: str, principal: str) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": principal}, "Action": "sts:AssumeRole"}],
    }
    return aws.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


def _table(aws, name: str) -> None:
    aws.client("dynamodb").create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": concurrency.LOCK_KEY, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": concurrency.LOCK_KEY, "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def deploy_args(aws) -> list[str]:
    sfn_role = _role(aws, "StatesRole", "states.amazonaws.com")
    scheduler_role = _role(aws, "SchedulerRole", "scheduler.amazonaws.com")
    return ["--endpoint-url", aws.endpoint_url, "--dags-folder", DAGS, "--role-arn", sfn_role] + [
        "--schedule-role-arn",
        scheduler_role,
    ]


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _tables_named(aws) -> set[str]:
    arn = aws.client("stepfunctions").list_state_machines()["stateMachines"][0]["stateMachineArn"]
    definition = json.loads(aws.client("stepfunctions").describe_state_machine(stateMachineArn=arn)["definition"])
    return {
        state["Parameters"]["TableName"]
        for state in definition["States"].values()
        if state.get("Resource") == concurrency.UPDATE_ITEM
    }


def test_a_missing_run_slot_table_stops_the_deploy_with_reason_and_fix(aws, capsys, deploy_args):
    code, out, err = _cli(capsys, "deploy", DAG_ID, *deploy_args)
    assert code == 1
    assert f"error: DAG {DAG_ID!r} sets max_active_runs" in err and "'airflow-run-slots'" in err
    assert "fix: deploy the CloudFormation template" in err and "--concurrency-table" in err
    assert "Traceback" not in err
    assert aws.client("stepfunctions").list_state_machines()["stateMachines"] == []  # nothing half-done

    code, out, err = _cli(capsys, "deploy", DAG_ID, *deploy_args, "--concurrency-table", "not-there")
    assert code == 1 and "'not-there'" in err
    code, out, err = _cli(capsys, "deploy", DAG_ID, *deploy_args, "--concurrency-table", "bad name*")
    assert code == 1 and "invalid DynamoDB table name" in err


def test_the_named_table_is_the_one_the_deployed_machine_uses_and_diff_knows_it(aws, capsys, deploy_args):
    _table(aws, "team-run-slots")
    code, out, err = _cli(capsys, "deploy", DAG_ID, *deploy_args, "--concurrency-table", "team-run-slots")
    assert code == 0, err
    assert _tables_named(aws) == {"team-run-slots"}

    # A redeploy with the same table changes nothing; diff compares against the same table.
    code, out, err = _cli(capsys, "deploy", DAG_ID, *deploy_args, "--concurrency-table", "team-run-slots")
    assert code == 0 and "Done: nothing to change." in out, out + err
    common = ["--endpoint-url", aws.endpoint_url, "--dags-folder", DAGS]
    assert _cli(capsys, "diff", DAG_ID, *common, "--concurrency-table", "team-run-slots")[0] == 0
    code, out, err = _cli(capsys, "diff", DAG_ID, *common)
    assert code == 3 and '"TableName": "airflow-run-slots"' in out


def test_without_a_rule_freeing_the_slots_of_runs_that_end_unseen_deploy_warns_and_with_one_it_does_not(
    aws, capsys, deploy_args
):
    _table(aws, concurrency.DEFAULT_TABLE)
    code, out, err = _cli(capsys, "deploy", DAG_ID, *deploy_args)
    assert code == 0, err
    assert f"warning: no enabled EventBridge rule gives back the run slot of an execution of {DAG_ID}" in out
    assert "RunSlotCleanupRule" in out and f"python -m exporters export {DAG_ID}" in out

    # The rule the template creates, for this state machine: the warning is gone.
    sfn = aws.client("stepfunctions")
    arn = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
    cleanup = sfn.create_state_machine(
        name=f"{DAG_ID}-run-slot-cleanup",
        definition=json.dumps(concurrency.cleanup_definition(concurrency.DEFAULT_TABLE, DAG_ID)),
        roleArn=_role(aws, "CleanupRole", "states.amazonaws.com"),
    )["stateMachineArn"]
    events = aws.client("events")
    pattern = {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {"status": ["FAILED", "TIMED_OUT", "ABORTED"], "stateMachineArn": [arn, {"prefix": f"{arn}:"}]},
    }
    events.put_rule(Name="run-slot-cleanup", EventPattern=json.dumps(pattern), State="DISABLED")
    events.put_targets(
        Rule="run-slot-cleanup",
        Targets=[{"Id": "cleanup", "Arn": cleanup, "RoleArn": _role(aws, "RuleRole", "events.amazonaws.com")}],
    )
    code, out, err = _cli(capsys, "deploy", DAG_ID, *deploy_args)
    assert code == 0 and "warning: no enabled EventBridge rule" in out, out  # a disabled rule frees nothing
    events.enable_rule(Name="run-slot-cleanup")
    code, out, err = _cli(capsys, "deploy", DAG_ID, *deploy_args)
    assert code == 0 and "EventBridge rule" not in out and "Done: nothing to change." in out, out
    # A rule for another state machine's runs is not one for these.
    other = {**pattern, "detail": {**pattern["detail"], "stateMachineArn": [f"{arn}-other"]}}
    events.put_rule(Name="run-slot-cleanup", EventPattern=json.dumps(other), State="ENABLED")
    code, out, err = _cli(capsys, "deploy", DAG_ID, *deploy_args)
    assert code == 0 and "warning: no enabled EventBridge rule" in out, out
