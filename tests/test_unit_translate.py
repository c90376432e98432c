"""Unit tests of reference translation (``exporters.translate``): each reference becomes a path or an
intrinsic function that, evaluated by moto's ASL interpreter, gives the value Airflow resolves for it.

Airflow's side is the references' own ``resolve`` (what rendering a stage's request does); the Step
Functions side is the translator's ``Parameters`` in a ``Pass`` state, run on input laid out as the
exported machine lays it out (``$.params``, ``$.<task_id>``).

moto 5.2.5's interpreter cannot parse the backslash escapes AWS defines for quotes, braces and
backslashes in intrinsic-function strings ("token recognition error"), nor a quote escaped inside a
bracketed path, so text needing them is checked against AWS's escaping rule here, not executed.
"""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from moto import mock_aws

from exporters import asl
from exporters.translate import (
    Dynamic,
    NotUpstream,
    ResultLayout,
    TranslationError,
    Translator,
    intrinsic_string,
    path_of,
)
from retraining.refs import Format, ParamRef, ResultRef, RunUniqueName, resolve_value

ROLE = "arn:aws:iam::123456789012:role/StepFunctionsRole"
# Text an intrinsic function or a path takes without escapes (see above for the escaped ones).
TEXTS = ["plain", "comma, and (parens)", "ünïcødé ✓", "$.not-a-path", "a;b=c&d", ""]
PARAMS = {"name": "churn", "threshold": 0.1, "count": 3, "flag": True, "tricky": "a'b{c}d\\e"}
RESULT = {"JobName": "etl", "Nested": {"key with space": "v", "it's": 7}, "List": [1, 2]}


class _Ti:
    def xcom_pull(self, task_ids: str) -> Any:
        return {"extract": RESULT}.get(task_ids)


def translator(is_upstream=None) -> Translator:
    return Translator(PARAMS, {"extract": ResultLayout(key="extract")}, is_upstream=is_upstream)


def airflow_value(request: dict[str, Any]) -> Any:
    return resolve_value(request, {"params": PARAMS, "ti": _Ti(), "run_id": "manual__1"})


def step_functions_value(request: dict[str, Any]) -> Any:
    """The translated request evaluated by moto's interpreter (one Pass state, one execution)."""
    machine = asl.StateMachine().add(asl.Pass("evaluate", parameters=translator().parameters(request)))
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(name="refs", definition=machine.to_json(), roleArn=ROLE)["stateMachineArn"]
        state = {"params": PARAMS, "extract": RESULT}
        execution = sfn.start_execution(stateMachineArn=arn, name="run-1", input=json.dumps(state))
        for _ in range(400):
            described = sfn.describe_execution(executionArn=execution["executionArn"])
            if described["status"] != "RUNNING":
                break
            time.sleep(0.05)
    assert described["status"] == "SUCCEEDED", described
    return json.loads(described["output"])


def test_references_evaluate_in_step_functions_to_what_airflow_resolves():
    request = {
        "Name": ParamRef("name"),
        "Threshold": ParamRef("threshold"),
        "Count": ParamRef("count"),
        "Flag": ParamRef("flag"),
        "Job": ResultRef("extract", "JobName"),
        "Spaced": ResultRef("extract", "Nested", "key with space"),
        "Whole": ResultRef("extract", "Nested"),
        "Joined": Format("{}/{}/x", ParamRef("name"), ResultRef("extract", "JobName")),
        "Numbers": Format("n={} c={}", ParamRef("count"), 42),
        "FromParam": Format("{} and {}", ParamRef("tricky"), "literal"),
        "Literals": {f"t{i}": text for i, text in enumerate([*TEXTS, "it's", "{braces}", "back\\slash"])},
        "Formats": {f"f{i}": Format(text + "{}", text) for i, text in enumerate(TEXTS)},
        "Mixed": [ParamRef("name"), "literal", ResultRef("extract", "JobName")],
        "Nested": {"Deeper": {"Value": ParamRef("count"), "Fixed": [1, {"a": "b"}]}},
    }
    assert step_functions_value(request) == airflow_value(request)


def test_a_run_unique_name_is_a_valid_sagemaker_name_in_both():
    sfn = step_functions_value({"Name": RunUniqueName("churn-model"), "FromParam": RunUniqueName(ParamRef("name"))})
    assert sfn["Name"].startswith("churn-model-") and sfn["FromParam"].startswith("churn-")
    assert all(len(name) <= 63 for name in sfn.values())  # the MD5 of the execution name: 32 hex characters


def test_dynamic_values_get_the_dollar_key_suffix_and_literals_stay():
    out = translator().parameters({"A": ParamRef("name"), "B": "x", "C": {"D": ResultRef("extract", "JobName")}})
    assert out == {"A.$": "$.params.name", "B": "x", "C": {"D.$": "$.extract.JobName"}}


@pytest.mark.parametrize(
    ("parts", "path"),
    [
        (("params", "name"), "$.params.name"),
        (("a b",), "$['a b']"),
        (("it's",), "$['it\\'s']"),
        (("1st",), "$['1st']"),
    ],
)
def test_paths_quote_what_is_not_a_plain_key(parts, path):
    assert path_of(*parts) == path


def test_intrinsic_strings_escape_quotes_braces_and_backslashes():
    assert intrinsic_string("a'b{c}\\d") == "'a\\'b\\{c\\}\\\\d'"


def test_result_layouts_place_prefixed_renamed_and_aliased_fields():
    layouts = {
        "check": ResultLayout(key="check", prefix=("Payload",)),
        "model": ResultLayout(
            key="model", fields=frozenset({"ModelArn"}), aliases={"ModelName": ParamRef("name")}, paths={"X": ("y",)}
        ),
    }
    t = Translator(PARAMS, layouts)
    assert t.expr(ResultRef("check", "metric")) == Dynamic("$.check.Payload.metric")
    assert t.expr(ResultRef("model", "ModelName")) == Dynamic("$.params.name")
    assert t.expr(ResultRef("model", "X", "z")) == Dynamic("$.model.y.z")
    with pytest.raises(TranslationError, match=r"field 'Other' is not kept in Step Functions .*'ModelArn'"):
        t.expr(ResultRef("model", "Other"))


def test_what_cannot_be_translated_says_why():
    t = translator(is_upstream=lambda target, reader: False)
    with pytest.raises(TranslationError, match="the DAG has no param 'missing'"):
        t.expr(ParamRef("missing"))
    with pytest.raises(TranslationError, match="cannot be an argument of States.Format"):
        t.expr(Format("{}", None))
    with pytest.raises(TranslationError, match="is not upstream"):
        Translator(PARAMS, {}).expr(ResultRef("nowhere", "x"))
    t.reader = "train"
    with pytest.raises(NotUpstream) as caught:
        t.expr(ResultRef("extract", "JobName"))
    assert caught.value.fix == "add extract >> train (directly or through other tasks)"
