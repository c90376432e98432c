"""max_active_runs on Step Functions: the exported run-slot guard, executed on the moto server.

The DAGs (``tests/export_dags/concurrency/run_slots.py``, max_active_runs=1) each wait for an
S3 key of their own, so a test decides when a run ends. The exported machines run in moto's
ASL interpreter over HTTP (the session's moto server, its Step Functions execution switched
on for these tests); the guard's ``dynamodb:updateItem`` calls reach moto's DynamoDB, and
S3 is moto's. Nothing is mocked.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from exporters import concurrency
from tests.conftest import ROOT

DAGS = ROOT / "tests" / "export_dags" / "concurrency"
ROLE = "arn:aws:iam::123456789012:role/StepFunctions"
BUCKET = "run-slots-demo"
PATIENCE = 60.0  # seconds before a test gives up waiting (the machine is shared: runs can be slow)


@pytest.fixture(scope="module")
def exported():
    from airflow.dag_processing.dagbag import DagBag

    from exporters.api import export_dag_object

    bag = DagBag(str(DAGS))
    assert not bag.import_errors, bag.import_errors
    return {dag_id: (dag, export_dag_object(dag)) for dag_id, dag in bag.dags.items()}


@pytest.fixture
def account(aws, moto_server, monkeypatch):
    """A clean moto account executing state machines, with the run-slot table and the bucket."""
    # The interpreter calls the services on localhost:$MOTO_PORT (moto.settings.moto_server_port).
    monkeypatch.setenv("MOTO_PORT", moto_server.rsplit(":", 1)[1])
    config_url = f"{moto_server}/moto-api/config"
    before = json.loads(urllib.request.urlopen(config_url).read())

    def set_config(value):
        body = json.dumps(value).encode()
        request = urllib.request.Request(
            config_url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        urllib.request.urlopen(request).read()

    set_config({"stepfunctions": {"execute_state_machine": True}})
    try:
        aws.client("s3").create_bucket(Bucket=BUCKET)
        aws.client("dynamodb").create_table(
            TableName=concurrency.DEFAULT_TABLE,
            AttributeDefinitions=[{"AttributeName": concurrency.LOCK_KEY, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": concurrency.LOCK_KEY, "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield Account(aws)
    finally:
        set_config({"stepfunctions": before.get("stepfunctions", {"execute_state_machine": False})})


class Account:
    def __init__(self, aws):
        self.sfn = aws.client("stepfunctions")
        self.s3 = aws.client("s3")
        self.dynamodb = aws.client("dynamodb")

    def create(self, name: str, definition: dict) -> str:
        return self.sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)[
            "stateMachineArn"
        ]

    def start(self, machine: str, name: str, payload: dict) -> str:
        return self.sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(payload))["executionArn"]

    def describe(self, execution: str) -> dict:
        return self.sfn.describe_execution(executionArn=execution)

    def history(self, execution: str) -> list[dict]:
        return self.sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]

    def entered(self, execution: str) -> set[str]:
        return {
            e["stateEnteredEventDetails"]["name"] for e in self.history(execution) if "stateEnteredEventDetails" in e
        }

    def slot_refusals(self, execution: str) -> int:
        return sum(
            1
            for e in self.history(execution)
            if e.get("taskFailedEventDetails", {}).get("error") == concurrency.SLOT_TAKEN
        )

    def slots(self, dag_id: str) -> tuple[int, set[str]]:
        """(count, holders) of the DAG's run-slot item."""
        item = self.dynamodb.get_item(
            TableName=concurrency.DEFAULT_TABLE, Key={concurrency.LOCK_KEY: {"S": dag_id}}, ConsistentRead=True
        ).get("Item", {})
        count = int(item.get(concurrency.COUNT, {}).get("N", "0"))
        return count, {name for name in item if name.startswith("arn:")}

    def wait_for(self, check, what: str):
        give_up = time.monotonic() + PATIENCE
        while not (answer := check()):
            if time.monotonic() > give_up:
                pytest.fail(f"still waiting after {PATIENCE}s for {what}")
            time.sleep(0.1)
        return answer

    def wait_until_done(self, execution: str) -> dict:
        return self.wait_for(
            lambda: (d := self.describe(execution))["status"] != "RUNNING" and d, f"{execution} to end"
        )


def test_second_run_waits_queued_until_the_first_gives_its_slot_back(exported, account):
    _, result = exported["one_at_a_time"]
    machine = account.create("one_at_a_time", result.definition)
    first = account.start(machine, "run-a", {"key": "a"})
    second = account.start(machine, "run-b", {"key": "b"})
    keys = {first: "a", second: "b"}

    holders = account.wait_for(lambda: account.slots("one_at_a_time")[1], "a run to take the slot")
    assert len(holders) == 1
    holder = holders.pop()
    waiter = second if holder == first else first
    # The other run is queued: it asks again and again and runs nothing meanwhile.
    account.wait_for(
        lambda: account.slot_refusals(waiter) >= 2,
        f"the queued run to be refused twice: {[e['type'] for e in account.history(waiter)]}",
    )
    assert account.describe(waiter)["status"] == "RUNNING"
    assert concurrency.ACQUIRE in account.entered(waiter)
    assert "Param defaults" not in account.entered(waiter)
    assert account.slots("one_at_a_time") == (1, {holder})

    account.s3.put_object(Bucket=BUCKET, Key=keys[holder], Body=b"go")
    assert account.wait_until_done(holder)["status"] == "SUCCEEDED"
    assert concurrency.RELEASE in account.entered(holder)
    # Released on success: the queued run takes the slot and runs.
    account.wait_for(lambda: account.slots("one_at_a_time") == (1, {waiter}), "the queued run to take the slot")
    account.s3.put_object(Bucket=BUCKET, Key=keys[waiter], Body=b"go")
    assert account.wait_until_done(waiter)["status"] == "SUCCEEDED"
    assert account.slots("one_at_a_time") == (0, set())


def test_a_failed_run_gives_its_slot_back_and_keeps_its_error(exported, account):
    _, result = exported["fails_fast"]
    machine = account.create("fails_fast", result.definition)
    run = account.start(machine, "run-fails", {"key": "never"})
    ended = account.wait_until_done(run)
    assert ended["status"] == "FAILED"
    entered = account.entered(run)
    assert concurrency.RELEASE_AFTER_FAILURE in entered and concurrency.FAILED in entered
    # The run ends with the sensor's own error, as without the guard.
    assert ended["error"] == "SensorTimeout" and "wait_for_go" in ended["cause"], ended
    assert account.slots("fails_fast") == (0, set())
    # The next run is not blocked.
    account.s3.put_object(Bucket=BUCKET, Key="now", Body=b"go")
    again = account.start(machine, "run-again", {"key": "now"})
    assert account.wait_until_done(again)["status"] == "SUCCEEDED"
    assert account.slots("fails_fast") == (0, set())


def test_timed_out_run_is_released_by_the_cleanup_and_a_queued_run_gives_up_naming_the_limit(exported, account):
    from moto.events.models import EventPattern

    from exporters.cloudformation import build_template

    dag, result = exported["times_out"]
    machine = account.create("times_out", result.definition)
    first = account.start(machine, "run-slow", {"key": "never"})
    account.wait_for(lambda: account.slots("times_out")[1] == {first}, "the first run to take the slot")
    queued = account.start(machine, "run-queued", {"key": "never"})

    # The queued run waits at most dagrun_timeout, then fails naming the limit (not "timed out").
    gave_up = account.wait_until_done(queued)
    assert gave_up["status"] == "FAILED", gave_up
    assert gave_up["error"] == "RunSlotWaitTimedOut"
    assert "max_active_runs=1" in gave_up["cause"] and "dagrun_timeout" in gave_up["cause"]
    assert "Param defaults" not in account.entered(queued)

    # The execution's own timeout is not visible to the machine: the slot stays taken ...
    assert account.wait_until_done(first)["status"] == "TIMED_OUT"
    assert account.slots("times_out") == (1, {first})

    # ... until the template's EventBridge rule starts its cleanup state machine with the status-change event.
    template = build_template(result, dag, schedule_kind="none", logging_level="OFF")
    rule = template["Resources"]["RunSlotCleanupRule"]["Properties"]
    pattern = json.loads(
        json.dumps(rule["EventPattern"])
        .replace(json.dumps({"Ref": "StateMachine"}), json.dumps(machine))
        .replace(json.dumps({"Fn::Sub": "${StateMachine}:"}), json.dumps(machine + ":"))
    )
    event = {
        "version": "0",
        "id": "315c1398-40ff-a850-213b-158f73e60175",
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": "123456789012",
        "time": "2026-11-29T12:00:00Z",
        "region": "us-east-1",
        "resources": [first],
        "detail": {
            "executionArn": first,
            "stateMachineArn": machine,
            "name": "run-slow",
            "status": "TIMED_OUT",
            "startDate": 1,
            "stopDate": 2,
        },
    }
    # moto's EventBridge matching (moto has no TestEventPattern API): the rule fires for this event only.
    rule_pattern = EventPattern(json.dumps(pattern), pattern)
    assert rule_pattern.matches_event(event)
    for status in ("SUCCEEDED", "RUNNING"):  # runs that end well, or not yet, are not the cleanup's business
        assert not rule_pattern.matches_event({**event, "detail": {**event["detail"], "status": status}})
    other_machine = {**event, "detail": {**event["detail"], "stateMachineArn": machine + "-other"}}
    assert not rule_pattern.matches_event(other_machine)
    cleanup = template["Resources"]["RunSlotCleanup"]["Properties"]
    definition = json.loads(
        json.dumps(cleanup["Definition"]).replace(concurrency.TABLE_PLACEHOLDER, "airflow-run-slots")
    )
    cleaner = account.create("times_out-cleanup", definition)
    released = account.wait_until_done(account.start(cleaner, "cleanup-1", event))
    assert released["status"] == "SUCCEEDED"
    assert account.slots("times_out") == (0, set())
    # The rule may fire for a run that released its slot itself (it failed): releasing twice changes nothing.
    again = account.wait_until_done(account.start(cleaner, "cleanup-2", event))
    assert again["status"] == "SUCCEEDED"
    assert account.slots("times_out") == (0, set())
