"""References, the metric rule and the DAG's shape: no AWS involved."""

from __future__ import annotations

import copy
import hashlib
import json
import operator
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from retraining import (
    AwsStageOperator,
    Format,
    GlueJobRunOperator,
    MetricChoiceOperator,
    MetricRule,
    ParamRef,
    ResultRef,
    RunUniqueName,
    SageMakerCreateModelOperator,
)
from retraining.refs import MAX_NAME_PREFIX, SAGEMAKER_NAME_MAX, UnresolvedReferenceError, iter_refs
from tests.conftest import ROOT

# SageMaker's own constraint on resource names: this pattern AND at most 63 characters.
SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
WHEN = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
AWS_STAGES = (
    "extract_transform_load",
    "train_model",
    "check_metrics",
    "create_model",
    "create_endpoint_config",
    "update_endpoint",
)


def valid_sagemaker_name(name: str) -> bool:
    return len(name) <= SAGEMAKER_NAME_MAX and bool(SAGEMAKER_NAME.match(name))


class _Ti:
    def __init__(self, results: dict[str, Any]):
        self.results = results

    def xcom_pull(self, task_ids: str, **_: Any) -> Any:
        return self.results.get(task_ids)


def _context(params=None, results=None, run_id="manual__2026-03-01T10:00:00+00:00", logical_date=WHEN, **extra):
    return {
        "params": dict(params or {}),
        "ti": _Ti(results or {}),
        "run_id": run_id,
        "logical_date": logical_date,
        **extra,
    }


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags["model_retraining"]


# --- RunUniqueName ------------------------------------------------------------------------------


def _prefixes() -> list[str]:
    shapes = []
    for length in range(1, MAX_NAME_PREFIX + 1):
        shapes.append("a" * length)
        shapes.append(("Z9-" * length)[:length].rstrip("-") or "Z")
    shapes += ["churn-xgb", "a--b", "A1-b2-C3", "x" * MAX_NAME_PREFIX, ("ab-" * 20)[: MAX_NAME_PREFIX - 1] + "z"]
    return shapes


def test_run_unique_name_is_always_a_valid_sagemaker_name():
    run_ids = [
        "manual__2026-03-01T10:00:00+00:00",
        "scheduled__2026-03-01T10:00:00+00:00",
        "manual__2026-03-01T10:00:00.123456+00:00",
        "backfill__2026-01-01T00:00:00+00:00",
        "a" * 250,
        "ünïcode-run",
    ]
    seen: dict[tuple[str, str], str] = {}
    for prefix in _prefixes():
        for run_id in run_ids:
            name = RunUniqueName(ParamRef("p")).resolve(_context({"p": prefix}, run_id=run_id))
            assert valid_sagemaker_name(name), (prefix, run_id, name)
            assert name == f"{prefix}-20260301100000-{hashlib.sha1(run_id.encode()).hexdigest()[:6]}"
            seen[(prefix, run_id)] = name
    # Different runs, different names; the same run (a retry) gets the same name.
    assert len(set(seen.values())) == len(seen)
    assert RunUniqueName("churn-xgb").resolve(_context(run_id=run_ids[0])) == seen[("churn-xgb", run_ids[0])]


def test_longest_prefix_fills_the_63_characters_exactly_in_airflow():
    name = RunUniqueName("p" * MAX_NAME_PREFIX).resolve(_context())
    assert len(name) == MAX_NAME_PREFIX + 22
    assert len(name) <= SAGEMAKER_NAME_MAX


def test_run_unique_name_without_logical_date_uses_the_data_interval_then_zeros():
    start = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    with_interval = RunUniqueName("m").resolve(_context(logical_date=None, data_interval_start=start))
    assert with_interval.startswith("m-20260506070809-")
    neither = RunUniqueName("m").resolve(_context(logical_date=None))
    assert re.fullmatch(r"m-00000000000000-[0-9a-f]{6}", neither)


@pytest.mark.parametrize(
    "prefix",
    ["p" * (MAX_NAME_PREFIX + 1), "churn_xgb", "-churn", "churn-", "churn xgb", "", "chürn", "churn.xgb"],
)
def test_unusable_prefix_is_rejected_with_its_value(prefix):
    with pytest.raises(ValueError) as caught:
        RunUniqueName(ParamRef("p")).resolve(_context({"p": prefix}))
    message = str(caught.value)
    assert repr(prefix) in message
    assert f"1-{MAX_NAME_PREFIX} characters" in message


def test_dag_prefix_params_match_the_name_limit(dag):
    """A prefix the trigger accepts must never fail at run time, and one that would fail is refused."""
    from airflow.sdk.definitions.param import ParamValidationError

    for name in ("training_job_prefix", "model_prefix"):
        param = copy.copy(dag.params.get_param(name))
        longest = "a-" * (MAX_NAME_PREFIX // 2) + "a" * (MAX_NAME_PREFIX % 2 or 1)
        longest = longest[: MAX_NAME_PREFIX - 1] + "z"
        assert len(longest) == MAX_NAME_PREFIX
        assert param.resolve(value=longest) == longest
        assert valid_sagemaker_name(RunUniqueName(longest).resolve(_context()))
        with pytest.raises(ParamValidationError):
            param.resolve(value=longest + "z")
        with pytest.raises(ValueError):
            RunUniqueName(longest + "z").resolve(_context())


# --- Format / ParamRef / ResultRef --------------------------------------------------------------


def test_format_builds_the_string():
    ref = Format("{}train/{}", ParamRef("dest"), "x")
    assert ref.resolve(_context({"dest": "s3://b/p/"})) == "s3://b/p/train/x"
    assert list(iter_refs(ref)) == [ref, ParamRef("dest")]


@pytest.mark.parametrize(
    ("template", "args", "expected"),
    [
        ("{}train/", (), "1 '{}' placeholders but 0 values"),
        ("{}train/", ("a", "b"), "1 '{}' placeholders but 2 values"),
        ("s3://b/train/", (ParamRef("x"),), "0 '{}' placeholders but 1 values"),
        ("{}/{}/{}", ("a",), "3 '{}' placeholders but 1 values"),
    ],
)
def test_format_placeholder_count_mismatch(template, args, expected):
    with pytest.raises(ValueError) as caught:
        Format(template, *args)
    assert expected in str(caught.value)
    assert repr(template) in str(caught.value)


def test_format_rejects_jinja():
    with pytest.raises(ValueError, match="Jinja"):
        Format("{{ ds }}{}", "x")


def test_param_ref_to_an_undefined_param_lists_the_defined_ones():
    with pytest.raises(UnresolvedReferenceError) as caught:
        ParamRef("treshold").resolve(_context({"threshold": 0.1, "s3_dest": "s3://b/"}))
    assert "'treshold'" in str(caught.value)
    assert "['s3_dest', 'threshold']" in str(caught.value)


def test_result_ref_reads_nested_fields():
    ref = ResultRef("train_model", "ModelArtifacts", "S3ModelArtifacts")
    results = {"train_model": {"ModelArtifacts": {"S3ModelArtifacts": "s3://b/model.tar.gz"}}}
    assert ref.resolve(_context(results=results)) == "s3://b/model.tar.gz"


def test_result_ref_missing_field_names_task_and_available_fields():
    ref = ResultRef("train_model", "TrainingJobName")
    with pytest.raises(UnresolvedReferenceError) as caught:
        ref.resolve(_context(results={"train_model": {"JobName": "x", "TrainingJobStatus": "Completed"}}))
    message = str(caught.value)
    assert "'train_model'" in message
    assert "'TrainingJobName'" in message
    assert "['JobName', 'TrainingJobStatus']" in message


def test_result_ref_missing_nested_field_says_where():
    ref = ResultRef("train_model", "ModelArtifacts", "S3ModelArtifacts")
    with pytest.raises(UnresolvedReferenceError) as caught:
        ref.resolve(_context(results={"train_model": {"ModelArtifacts": {"Other": 1}}}))
    message = str(caught.value)
    assert "'S3ModelArtifacts'" in message
    assert "in ModelArtifacts" in message
    assert "['Other']" in message


def test_result_ref_without_upstream_result():
    with pytest.raises(UnresolvedReferenceError, match="task 'train_model' has no result in this run"):
        ResultRef("train_model", "TrainingJobName").resolve(_context())


def test_result_ref_needs_a_field():
    with pytest.raises(ValueError, match="needs the name of the field"):
        ResultRef("train_model")


# --- MetricRule ----------------------------------------------------------------------------------

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}


def _choice(comparison: str = "<", threshold: Any = ParamRef("threshold")) -> MetricChoiceOperator:
    return MetricChoiceOperator(
        task_id="accuracy_check",
        rule=MetricRule(
            metrics=ResultRef("check_metrics", "trainingMetrics"),
            metric="validation:error",
            comparison=comparison,
            threshold=threshold,
            if_true="create_model",
            if_false="model_accuracy_too_low",
        ),
    )


def _metrics_context(metrics: Any, threshold: Any = 0.1):
    return _context({"threshold": threshold}, {"check_metrics": {"statusCode": 200, "trainingMetrics": metrics}})


@pytest.mark.parametrize(
    ("comparison", "value", "expected"),
    [
        ("<", 0.1, False),
        ("<", 0.0999, True),
        ("<", 0.1001, False),
        ("<=", 0.1, True),
        ("<=", 0.1001, False),
        ("<=", 0.0999, True),
        (">", 0.1, False),
        (">", 0.1001, True),
        (">", 0.0999, False),
        (">=", 0.1, True),
        (">=", 0.0999, False),
        (">=", 0.1001, True),
        ("==", 0.1, True),
        ("==", 0.1001, False),
        ("==", 0.0999, False),
    ],
)
def test_each_comparison_at_and_around_the_boundary(comparison, value, expected):
    # A decoy metric listed first, whose value would give the opposite answer.
    decoy = next(v for v in (0.0, 0.1, 1.0) if OPS[comparison](v, 0.1) != expected)
    metrics = [{"MetricName": "train:error", "Value": decoy}, {"MetricName": "validation:error", "Value": value}]

    branch = _choice(comparison).choose_branch(_metrics_context(metrics, threshold=0.1))

    assert branch == ("create_model" if expected else "model_accuracy_too_low")
    assert _choice(comparison).rule.evaluate(metrics, 0.1) == (expected, value)


def test_integer_threshold_and_values_are_numbers():
    metrics = [{"MetricName": "validation:error", "Value": 0}]
    assert _choice("<").choose_branch(_metrics_context(metrics, threshold=1)) == "create_model"


def test_missing_metric_lists_the_reported_names():
    from airflow.sdk.exceptions import AirflowFailException

    metrics = [{"MetricName": "train:error", "Value": 0.01}, {"MetricName": "validation:auc", "Value": 0.9}]
    with pytest.raises(AirflowFailException) as caught:
        _choice().choose_branch(_metrics_context(metrics))
    message = str(caught.value)
    assert "'accuracy_check'" in message
    assert "validation:error < ParamRef('threshold')" in message
    assert "metric 'validation:error' not found" in message
    assert "['train:error', 'validation:auc']" in message


def test_no_metrics_at_all_says_so():
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="not found; the check reported: no metrics"):
        _choice().choose_branch(_metrics_context([]))


@pytest.mark.parametrize("value", ["0.05", None, True, float("nan"), float("inf"), [0.05]])
def test_non_numeric_metric_value_is_an_error(value):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as caught:
        _choice().choose_branch(_metrics_context([{"MetricName": "validation:error", "Value": value}]))
    assert "metric 'validation:error' has a non-numeric value" in str(caught.value)
    assert repr(value) in str(caught.value)


def test_metrics_that_are_not_a_list_is_an_error():
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="expected a list of metrics, got dict"):
        _choice().choose_branch(_metrics_context({"validation:error": 0.05}))


def test_non_numeric_threshold_at_run_time_is_an_error():
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="threshold 'abc' is not a number"):
        _choice().choose_branch(_metrics_context([{"MetricName": "validation:error", "Value": 0.05}], threshold="abc"))


def test_missing_metric_check_result_is_an_error():
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="task 'check_metrics' has no result"):
        _choice().choose_branch(_context({"threshold": 0.1}))


@pytest.mark.parametrize("comparison", ["lt", "=", "!=", "<>", "=<", ""])
def test_invalid_comparison_is_rejected_at_construction(comparison):
    with pytest.raises(ValueError) as caught:
        _choice(comparison)
    assert repr(comparison) in str(caught.value)
    assert "<, <=, >, >=, ==" in str(caught.value)


@pytest.mark.parametrize("threshold", ["0.1", None, True, float("nan"), [0.1]])
def test_non_numeric_threshold_is_rejected_at_construction(threshold):
    with pytest.raises(ValueError, match="is not a number"):
        _choice(threshold=threshold)


def test_literal_threshold_is_accepted():
    rule = _choice(threshold=0.25).rule
    assert rule.evaluate([{"MetricName": "validation:error", "Value": 0.2}], rule.threshold) == (True, 0.2)


def test_same_branch_on_both_sides_is_rejected():
    with pytest.raises(ValueError, match="must be different"):
        MetricRule(metrics=ResultRef("c", "m"), metric="m", comparison="<", threshold=1, if_true="a", if_false="a")


def test_dag_rule_is_inspectable(dag):
    check = dag.task_dict["accuracy_check"]
    rule = check.rule
    assert rule.metric == "validation:error"
    assert rule.comparison == "<"
    assert rule.threshold == ParamRef("threshold")
    assert rule.metrics == ResultRef("check_metrics", "trainingMetrics")
    assert rule.if_true == "create_model"
    assert rule.if_false == "model_accuracy_too_low"
    assert str(rule) == "validation:error < ParamRef('threshold')"
    assert check.references == [ResultRef("check_metrics", "trainingMetrics"), ParamRef("threshold")]
    # Both branches are real downstream tasks of the choice.
    assert check.downstream_task_ids == {rule.if_true, rule.if_false}


# --- The DAG -------------------------------------------------------------------------------------


def test_dag_graph_and_schedule(dag):
    assert dag.dag_id == "model_retraining"
    assert dag.schedule == "0 * * * *"
    assert dag.timetable.expression == "0 * * * *"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert {t.task_id: t.downstream_task_ids for t in dag.tasks} == {
        "extract_transform_load": {"train_model"},
        "train_model": {"check_metrics"},
        "check_metrics": {"accuracy_check"},
        "accuracy_check": {"create_model", "model_accuracy_too_low"},
        "model_accuracy_too_low": set(),
        "create_model": {"create_endpoint_config"},
        "create_endpoint_config": {"update_endpoint"},
        "update_endpoint": set(),
    }
    assert [t.task_id for t in dag.topological_sort()][:4] == [
        "extract_transform_load",
        "train_model",
        "check_metrics",
        "accuracy_check",
    ]


def test_aws_stages_retry_and_are_declarative(dag):
    stages = {t.task_id for t in dag.tasks if isinstance(t, AwsStageOperator)}
    assert stages == set(AWS_STAGES)
    for task_id in AWS_STAGES:
        task = dag.task_dict[task_id]
        assert task.retries >= 1, task_id
        assert isinstance(task.request, dict) and task.request, task_id
    # The choice and the fail state must not retry: their outcome is final.
    assert dag.task_dict["model_accuracy_too_low"].retries == 0


def test_every_reference_points_at_a_param_or_an_upstream_task(dag):
    for task in dag.tasks:
        refs = getattr(task, "references", [])
        ancestors = task.get_flat_relative_ids(upstream=True)
        for ref in refs:
            if isinstance(ref, ParamRef):
                assert ref.name in dag.params, (task.task_id, ref)
            elif isinstance(ref, ResultRef):
                assert ref.task_id in ancestors, (task.task_id, ref)
                produced = dag.task_dict[ref.task_id]
                if getattr(produced, "result_fields", ()):
                    dotted = ".".join(ref.path)
                    assert dotted in produced.result_fields, (task.task_id, ref)


def test_params_have_defaults_and_types(dag):
    assert set(dag.params) >= {
        "glue_job_name",
        "s3_source",
        "s3_dest",
        "training_output",
        "training_job_prefix",
        "model_prefix",
        "endpoint_name",
        "metric_function_name",
        "threshold",
        "training_image",
        "sagemaker_role_arn",
        "hyperparameters",
    }
    for name in dag.params:
        param = dag.params.get_param(name)
        assert param.has_value, name
        assert "type" in param.schema, name
    # The defaults themselves satisfy the schemas.
    resolved = copy.deepcopy(dag.params).validate()
    assert resolved["threshold"] == 0.1
    assert resolved["endpoint_name"] == "churn-endpoint"
    assert dag.params.get_param("threshold").schema["type"] == "number"


@pytest.mark.parametrize(
    ("conf", "param"),
    [
        ({"threshold": "abc"}, "threshold"),
        ({"threshold": -0.5}, "threshold"),
        ({"training_job_prefix": "churn_xgb"}, "training_job_prefix"),
        ({"model_prefix": "m" * (MAX_NAME_PREFIX + 1)}, "model_prefix"),
        ({"s3_dest": "s3://retraining-demo/processed"}, "s3_dest"),
        ({"endpoint_instance_count": 0}, "endpoint_instance_count"),
        ({"hyperparameters": {"num_round": 100}}, "hyperparameters"),
        ({"sagemaker_role_arn": "SageMakerExecutionRole"}, "sagemaker_role_arn"),
    ],
)
def test_trigger_conf_violating_a_schema_is_rejected(dag, conf, param):
    from airflow.sdk.definitions.param import ParamValidationError

    params = copy.deepcopy(dag.params)
    with pytest.raises(ParamValidationError) as caught:
        params.update(conf)
        params.validate()
    assert f"param {param}" in str(caught.value)


def test_overlong_endpoint_name_is_rejected_at_trigger(dag):
    from airflow.sdk.definitions.param import ParamValidationError

    name = "churn" + "-e" * 30  # 65 characters, matches the pattern
    assert len(name) > SAGEMAKER_NAME_MAX and not valid_sagemaker_name(name)
    params = copy.deepcopy(dag.params)
    with pytest.raises(ParamValidationError, match="endpoint_name"):
        params.update({"endpoint_name": name})
        params.validate()


def test_triggering_the_dag_with_a_bad_param_fails_before_any_task(airflow_db, dag):
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError) as caught:
        dag.test(run_conf={"threshold": "abc"})
    assert "param threshold" in str(caught.value)
    assert "'abc'" in str(caught.value)


def test_dag_file_imports_nothing_heavy():
    code = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(sys.argv[1])
heavy = ("pandas", "pyspark", "xgboost", "sagemaker", "exporters", "numpy")
print(json.dumps({
    "errors": {str(k): str(v) for k, v in bag.import_errors.items()},
    "dags": sorted(bag.dags),
    "heavy": sorted(m for m in sys.modules if m.split(".")[0] in heavy),
}))
"""
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)])
    done = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "dags")], env=env, capture_output=True, text=True, check=True
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert report["dags"] == ["model_retraining", "model_retraining_candidates"]
    assert report["heavy"] == []


# --- A result reference to a task that is not upstream ----------------------------------------


def test_reading_a_result_that_is_not_upstream_is_refused_by_the_exporter():
    from airflow.sdk import DAG

    from exporters.api import export_dag_object
    from exporters.errors import ExportError

    with DAG(dag_id="refs_not_wired", schedule=None, start_date=WHEN) as small:
        GlueJobRunOperator(task_id="train_model", job_name="j")
        model = SageMakerCreateModelOperator(
            task_id="create_model",
            request={"ModelName": "m", "PrimaryContainer": {"ModelDataUrl": ResultRef("train_model", "Url")}},
        )
    assert model.upstream_results_used == ["train_model"]
    with pytest.raises(ExportError) as caught:
        export_dag_object(small)
    (problem,) = caught.value.problems
    assert problem.task_id == "create_model"
    assert "'train_model', which is not upstream" in problem.reason and "train_model >> create_model" in problem.fix
