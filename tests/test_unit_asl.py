"""Unit tests of the typed ASL model (``exporters.asl``): what each state serialises to, in which key order,
what it can go to next, and that a machine built from it runs in moto's ASL interpreter as written."""

from __future__ import annotations

import json
import time

import boto3
from moto import mock_aws

from exporters import asl
from exporters.validation import validate_definition

ROLE = "arn:aws:iam::123456789012:role/StepFunctionsRole"


def test_a_task_serialises_every_field_in_a_fixed_order():
    task = asl.Task(
        "train",
        resource="arn:aws:states:::sagemaker:createTrainingJob.sync",
        comment="stage 2",
        parameters={"TrainingJobName.$": "$.params.name"},
        result_selector={"Name.$": "$.TrainingJobName"},
        result_path="$.train",
        timeout_seconds=600,
        retry=[asl.Retry(["States.ALL"], interval_seconds=30, max_attempts=2, backoff_rate=1.0)],
        catch=[asl.Catch(["States.ALL"], "handler")],
        next="deploy",
    )
    out = task.to_dict()
    assert list(out) == [
        "Type",
        "Comment",
        "Resource",
        "Parameters",
        "ResultSelector",
        "ResultPath",
        "TimeoutSeconds",
        "Retry",
        "Catch",
        "Next",
    ]
    assert out["Retry"] == [
        {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 30, "MaxAttempts": 2, "BackoffRate": 1.0}
    ]
    assert out["Catch"] == [{"ErrorEquals": ["States.ALL"], "Next": "handler", "ResultPath": "$.error"}]
    assert task.successors() == ["deploy", "handler"]


def test_result_path_unset_null_and_set_are_three_different_things():
    assert "ResultPath" not in asl.Pass("p").to_dict()
    assert asl.Pass("p", result_path=None).to_dict()["ResultPath"] is None  # discard the result: JSON null
    assert asl.Pass("p", result_path="$.x").to_dict()["ResultPath"] == "$.x"


def test_max_delay_appears_only_when_set():
    assert "MaxDelaySeconds" not in asl.Retry(["States.ALL"]).to_dict()
    assert asl.Retry(["States.ALL"], max_delay_seconds=60).to_dict()["MaxDelaySeconds"] == 60


def test_end_next_and_states_that_never_chain():
    assert asl.Pass("a").to_dict()["End"] is True
    assert asl.Pass("a", next="b").to_dict() == {"Type": "Pass", "Next": "b"}
    for terminal in (asl.Succeed("s", next="x"), asl.Fail("f", error="E", cause="why", next="x")):
        out = terminal.to_dict()
        assert "Next" not in out and "End" not in out and terminal.successors() == []
    assert asl.Fail("f", error="E", cause="c", cause_path="$.error.Cause").to_dict() == {
        "Type": "Fail",
        "Error": "E",
        "CausePath": "$.error.Cause",
    }
    assert asl.Wait("w", seconds=5, next="n").to_dict() == {"Type": "Wait", "Seconds": 5, "Next": "n"}
    assert asl.Wait("w", seconds_path="$.delay").to_dict() == {"Type": "Wait", "SecondsPath": "$.delay", "End": True}


def test_choice_rules_nest_and_only_top_level_rules_lead_somewhere():
    low = asl.ChoiceRule(variable="$.m", operator="NumericLessThan", value=0.1)
    present = asl.ChoiceRule(variable="$.m", operator="IsPresent", value=True)
    choice = asl.Choice(
        "check",
        choices=[
            asl.ChoiceRule(and_=[present, low], next="deploy"),
            asl.ChoiceRule(not_=present, next="missing"),
            asl.ChoiceRule(or_=[low, low], next="deploy"),
        ],
        default="too_low",
    )
    out = choice.to_dict()
    assert out["Choices"][0] == {
        "And": [{"Variable": "$.m", "IsPresent": True}, {"Variable": "$.m", "NumericLessThan": 0.1}],
        "Next": "deploy",
    }
    assert out["Choices"][1] == {"Not": {"Variable": "$.m", "IsPresent": True}, "Next": "missing"}
    assert out["Default"] == "too_low" and "End" not in out
    assert choice.successors() == ["deploy", "missing", "deploy", "too_low"]


def test_branches_are_sub_machines_without_top_level_fields():
    branch = asl.StateMachine([asl.Pass("b1")], comment="not shown", timeout_seconds=5)
    parallel = asl.Parallel("fan", branches=[branch], result_path="$.fan", next="join")
    out = parallel.to_dict()
    assert out["Branches"] == [{"StartAt": "b1", "States": {"b1": {"Type": "Pass", "End": True}}}]
    assert list(out) == ["Type", "Branches", "ResultPath", "Next"]


def test_the_machine_json_is_deterministic_and_keeps_non_ascii():
    def build() -> asl.StateMachine:
        machine = asl.StateMachine(comment="Modèle ✓", timeout_seconds=3600)
        return machine.add(asl.Pass("start", next="end"), asl.Succeed("end"))

    text = build().to_json()
    assert text == build().to_json() and text.endswith("}\n") and "Modèle ✓" in text
    assert list(json.loads(text)) == ["Comment", "StartAt", "TimeoutSeconds", "States"]
    assert json.loads(asl.StateMachine([asl.Succeed("x")], start_at="x").to_json())["StartAt"] == "x"


def test_a_machine_built_from_the_model_runs_as_written_in_motos_interpreter():
    """Parameters with a path, a Choice on the result, both ends: serialised, validated, then executed."""
    machine = asl.StateMachine(comment="unit").add(
        asl.Pass("shape", parameters={"metric.$": "$.m", "threshold": 0.1}, result_path="$.shaped", next="check"),
        asl.Choice(
            "check",
            choices=[asl.ChoiceRule(variable="$.shaped.metric", operator="NumericLessThan", value=0.1, next="ok")],
            default="too_high",
        ),
        asl.Succeed("ok"),
        asl.Fail("too_high", error="MetricTooHigh", cause="the metric is not below the threshold"),
    )
    definition = machine.to_dict()
    assert validate_definition(definition) == []
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(name="unit", definition=machine.to_json(), roleArn=ROLE)["stateMachineArn"]
        outcomes = {}
        for name, metric in (("good", 0.05), ("bad", 0.5)):
            execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps({"m": metric}))
            for _ in range(200):
                described = sfn.describe_execution(executionArn=execution["executionArn"])
                if described["status"] != "RUNNING":
                    break
                time.sleep(0.05)
            outcomes[name] = described
    assert outcomes["good"]["status"] == "SUCCEEDED"
    assert json.loads(outcomes["good"]["output"])["shaped"] == {"metric": 0.05, "threshold": 0.1}
    assert outcomes["bad"]["status"] == "FAILED" and outcomes["bad"]["error"] == "MetricTooHigh"
