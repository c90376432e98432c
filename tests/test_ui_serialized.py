"""Our operators' serialized form: references and rules round-trip exactly; hostile stored data is refused by name."""

from __future__ import annotations

import copy
import json

import pytest

from retraining import Format, MetricRule, ParamRef, ResultRef, RunUniqueName
from retraining.refs import TAG, Opaque, TaggedValueError, from_tagged, to_tagged
from tests.conftest import ROOT

VALUES = [
    ParamRef("threshold"),
    ResultRef("train_model", "ModelArtifacts", "S3ModelArtifacts"),
    Format("{}-{}/x", ParamRef("prefix"), ResultRef("etl", "JobRunId")),
    RunUniqueName(Format("{}-model", ParamRef("model_prefix"))),
    RunUniqueName("churn"),
    MetricRule(ResultRef("check", "metrics"), "validation:error", "<", ParamRef("threshold"), "deploy", "stop"),
    MetricRule(ResultRef("check", "metrics"), "auc", ">=", 0.8, "deploy", "stop"),
    {"b": 1, "a": [ParamRef("x"), ("t", 2)], TAG: "a key that is ours", "n": None, "f": 1.5},
    ("result", "fields"),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_references_and_rules_round_trip_through_json_exactly(value):
    text = json.dumps(to_tagged(value))
    back = from_tagged(json.loads(text))
    assert back == value and type(back) is type(value)
    if isinstance(value, dict):
        assert list(back) == list(value)  # order kept (Airflow's template fields are key-sorted)


def test_a_value_without_json_form_is_kept_as_text_and_named():
    import datetime

    back = from_tagged(json.loads(json.dumps(to_tagged({"When": datetime.date(2026, 1, 2)}))))
    assert back == {"When": Opaque("2026-01-02", "date")}


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        ({TAG: "os.system", "command": "id"}, "unknown tagged value 'os.system'"),
        ({TAG: "ParamRef", "name": 3}, "'name' must be a string"),
        ({TAG: "Format", "template": "{}{}", "args": ["a"]}, "placeholders"),
        ({TAG: "MetricRule", "metric": "m"}, "MetricRule"),
        ({TAG: "tuple", "items": "abc"}, "'items' must be a list"),
    ],
)
def test_hostile_tagged_values_are_refused_with_a_reason(stored, message):
    with pytest.raises(TaggedValueError, match=message):
        from_tagged(stored)


@pytest.fixture(scope="module")
def stored_retraining_dag():
    from exporters.loader import load_dag
    from exporters.serialized import serialize

    return serialize(load_dag("model_retraining", ROOT / "dags"))


def _task(data: dict, task_id: str) -> dict:
    return next(t["__var"] for t in data["dag"]["tasks"] if t["__var"]["task_id"] == task_id)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda t: t.update(retraining_export="{not json"), "its stored export attributes cannot be read"),
        (
            lambda t: t.update(
                retraining_export=json.dumps(
                    {"format": 1, "classes": ["x.Y"], "attributes": {"request": {TAG: "eval", "code": "1"}}}
                )
            ),
            "unknown tagged value 'eval'",
        ),
        (lambda t: t.update(retraining_export=json.dumps({"format": 99})), "format 99"),
    ],
)
def test_a_stored_dag_with_tampered_export_attributes_is_refused_naming_the_task(stored_retraining_dag, change, reason):
    from exporters.api import export_serialized
    from exporters.errors import ExportError

    data = copy.deepcopy(stored_retraining_dag)
    change(_task(data, "train_model"))
    with pytest.raises(ExportError) as err:
        export_serialized(data)
    (problem,) = err.value.problems
    assert problem.task_id == "train_model" and reason in problem.reason


def test_the_stored_form_exports_as_the_parsed_dag(stored_retraining_dag):
    from exporters.api import export_result, export_serialized

    assert (
        export_serialized(stored_retraining_dag).to_json() == export_result("model_retraining", ROOT / "dags").to_json()
    )


def test_unreadable_stored_json_is_a_load_error_not_a_traceback():
    from exporters.api import export_serialized
    from exporters.errors import DagLoadError

    with pytest.raises(DagLoadError, match="DAG 'x': Airflow's serialized form cannot be read"):
        export_serialized({"__version": 3, "dag": {"dag_id": "x", "tasks": "not a list"}})
