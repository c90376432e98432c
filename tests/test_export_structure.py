"""The Step Functions export of the retraining DAG and of small DAGs covering each graph shape.

Every definition produced here passes both our validator and cfn-lint
(``tests.asl_check.assert_valid``). The retraining DAG's definition is also
compared with ``tests/golden/model_retraining.asl.json``; regenerate it with

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_export_structure.py -k golden

Exporter defects found while writing these tests stay as regression tests at
the end (DAGs in ``tests/export_dags/gaps/``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.asl_check import assert_valid

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden" / "model_retraining.asl.json"
GOOD = HERE / "export_dags" / "good"
GAPS = HERE / "export_dags" / "gaps" / "known_gaps.py"
STRUCTURES = GOOD / "structures.py"

AWS_STAGES = ("extract_transform_load", "train_model", "check_metrics", "create_model", "create_endpoint_config")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
@cache
def load(dag_id: str, source: Path | None = None) -> Any:
    from exporters.loader import load_dag
    from tests.conftest import ROOT as REPO

    return load_dag(dag_id, dags_folder=source or REPO / "dags")


def export(dag_id: str, source: Path | None = None):
    """Export (DAG loading excluded from nothing: cached) and check the definition with both validators."""
    from exporters.api import export_dag_object

    result = export_dag_object(load(dag_id, source))
    assert_valid(result.definition)
    return result


def walk(machine: dict[str, Any], choose=lambda state: state["Choices"][0]["Next"]) -> list[str]:
    """State names from StartAt following Next (Choice: ``choose``), until a terminal state or a loop."""
    states = machine["States"]
    order: list[str] = []
    name = machine["StartAt"]
    while name is not None and name not in order:
        order.append(name)
        state = states[name]
        if state["Type"] == "Choice":
            name = choose(state)
        else:
            name = state.get("Next")
    return order


def all_states(machine: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every (name, state), Parallel branches included, depth first."""
    out = []
    for name, state in machine["States"].items():
        out.append((name, state))
        for branch in state.get("Branches", []):
            out.extend(all_states(branch))
    return out


def succeeding(state: dict[str, Any]) -> str:
    """At a Choice, where a run whose tasks all succeed goes (a branch: its last rule, i.e. the rule's own test)."""
    targets = (state["Choices"][-1]["Next"], state.get("Default"))
    return next(t for t in targets if t and "failed" not in t and t != "model_accuracy_too_low")


def flat(machine: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every state by name, Parallel branches included (names are unique across the machine)."""
    return dict(all_states(machine))


def expected_retry(task: Any) -> list[dict[str, Any]]:
    """Retry as the task's Airflow settings say (Airflow 3: True deserialises to multiplier 2.0)."""
    if not task.retries:
        return []
    retry = {
        "ErrorEquals": ["States.ALL"],
        "IntervalSeconds": int(task.retry_delay.total_seconds()),
        "MaxAttempts": task.retries,
        "BackoffRate": 2.0 if task.retry_exponential_backoff else 1.0,
    }
    if task.retry_exponential_backoff and task.max_retry_delay:
        retry["MaxDelaySeconds"] = int(task.max_retry_delay.total_seconds())
    return [retry]


# ---------------------------------------------------------------------------
# the retraining DAG
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def retraining():
    return export("model_retraining")


@pytest.fixture(scope="module")
def retraining_dag():
    return load("model_retraining")


def test_golden_definition(retraining):
    text = retraining.to_json()
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text)
    assert GOLDEN.exists(), "no golden file: run with UPDATE_GOLDEN=1 once and review the diff"
    assert text == GOLDEN.read_text(), (
        "the export of model_retraining changed; if intended, regenerate with UPDATE_GOLDEN=1 and review the diff"
    )


def test_stage_order_through_next(retraining):
    happy = walk(retraining.definition, choose=succeeding)
    assert happy == [
        "Acquire run slot",  # max_active_runs=1
        "Param defaults",
        "Apply params",
        "extract_transform_load",
        "train_model",
        "check_metrics",
        "accuracy_check: find validation:error",
        "accuracy_check: read validation:error",
        "accuracy_check",
        "create_model",
        "create_endpoint_config",
        "update_endpoint",
        "Release run slot",
        "Done",
    ]
    # One attempt of the deploy: a single-branch Parallel, so the task's retries re-run all of it.
    deploy = retraining.definition["States"]["update_endpoint"]
    assert deploy["Next"] == "Release run slot"
    assert walk(deploy["Branches"][0]) == [
        "update_endpoint: request",
        "update_endpoint: endpoint exists?",
        "update_endpoint: UpdateEndpoint",
        "update_endpoint: wait",
        "update_endpoint: DescribeEndpoint",
        "update_endpoint: InService?",
        "update_endpoint: deployed",
    ]
    rejected = walk(retraining.definition, choose=lambda state: state["Default"])
    assert rejected[-5:] == [
        "accuracy_check",
        "model_accuracy_too_low",
        "Release run slot after failure",  # max_active_runs=1
        "Step Functions error?",
        "Run failed, slot released",
    ]


def test_stage_resources(retraining):
    states = flat(retraining.definition)
    assert states["extract_transform_load"]["Resource"] == "arn:aws:states:::glue:startJobRun.sync"
    assert states["train_model"]["Resource"] == "arn:aws:states:::sagemaker:createTrainingJob.sync"
    assert states["check_metrics"]["Resource"] == "arn:aws:states:::lambda:invoke"
    assert states["create_model"]["Resource"] == "arn:aws:states:::sagemaker:createModel"
    assert states["create_endpoint_config"]["Resource"] == "arn:aws:states:::sagemaker:createEndpointConfig"
    assert states["update_endpoint: UpdateEndpoint"]["Resource"] == "arn:aws:states:::sagemaker:updateEndpoint"
    assert states["update_endpoint: CreateEndpoint"]["Resource"] == "arn:aws:states:::sagemaker:createEndpoint"
    assert (
        states["update_endpoint: DescribeEndpoint"]["Resource"] == "arn:aws:states:::aws-sdk:sagemaker:describeEndpoint"
    )
    assert retraining.integrations == sorted(
        {s["Resource"] for _, s in all_states(retraining.definition) if s["Type"] == "Task"}
    )


def test_glue_request_uses_params(retraining, retraining_dag):
    params = retraining.definition["States"]["extract_transform_load"]["Parameters"]
    assert params["JobName.$"] == "$.params.glue_job_name"
    assert params["Arguments"] == {
        "--S3_SOURCE.$": "$.params.s3_source",
        "--S3_DEST.$": "$.params.s3_dest",
        "--TRAIN_KEY": "train/",
        "--VAL_KEY": "validation/",
    }


def test_training_result_selector_keeps_only_listed_fields(retraining, retraining_dag):
    state = retraining.definition["States"]["train_model"]
    assert state["ResultSelector"] == {
        "TrainingJobName.$": "$.TrainingJobName",
        "TrainingJobStatus.$": "$.TrainingJobStatus",
        "FinalMetricDataList.$": "$.FinalMetricDataList",
        "ModelArtifacts": {"S3ModelArtifacts.$": "$.ModelArtifacts.S3ModelArtifacts"},
        "AlgorithmSpecification": {"TrainingImage.$": "$.AlgorithmSpecification.TrainingImage"},
    }
    kept = set()

    def leaves(obj: dict[str, Any], prefix: str = "") -> None:
        for key, value in obj.items():
            if isinstance(value, dict):
                leaves(value, f"{prefix}{key}.")
            else:
                kept.add(prefix + key.removesuffix(".$"))

    leaves(state["ResultSelector"])
    assert kept == set(retraining_dag.get_task("train_model").result_fields)
    # Whatever downstream states read of train_model's result is kept.
    text = json.dumps(retraining.definition)
    used = set(re.findall(r"\$\.train_model\.([A-Za-z0-9.]+)", text))
    assert used and used <= kept, used - kept


def test_unique_names_come_from_the_execution_name(retraining):
    states = flat(retraining.definition)
    job_name = states["train_model"]["Parameters"]["TrainingJobName.$"]
    model_name = states["create_model"]["Parameters"]["ModelName.$"]
    for expr, prefix in ((job_name, "$.params.training_job_prefix"), (model_name, "$.params.model_prefix")):
        assert expr.startswith("States.Format(") and prefix in expr and "$$.Execution.Name" in expr
    # The endpoint config and the deploy step use the very same name as create_model.
    assert states["create_endpoint_config"]["Parameters"]["EndpointConfigName.$"] == model_name
    assert states["update_endpoint: request"]["Parameters"]["EndpointConfigName.$"] == model_name


def test_metric_check_lambda_sends_the_same_payload(retraining, retraining_dag):
    state = retraining.definition["States"]["check_metrics"]
    assert state["Parameters"] == {
        "FunctionName.$": "$.params.metric_function_name",
        "Payload": {"TrainingJobName.$": "$.train_model.TrainingJobName"},
    }
    assert set(retraining_dag.get_task("check_metrics").request["Payload"]) == {
        k.removesuffix(".$") for k in state["Parameters"]["Payload"]
    }


def test_choice_finds_the_metric_by_name_and_compares_with_the_threshold_param(retraining):
    states = flat(retraining.definition)
    find = states["accuracy_check: find validation:error"]
    matches = "$.check_metrics.Payload.trainingMetrics[?(@.MetricName == 'validation:error')].Value"
    assert "trainingMetrics[0]" not in matches
    # A missing metric is a choice (IsPresent), never a runtime error reading it.
    assert find["Choices"] == [
        {"Not": {"Variable": matches, "IsPresent": True}, "Next": "accuracy_check: failed: MetricRuleNotEvaluable"}
    ]
    assert find["Default"] == "accuracy_check: read validation:error"
    read = states["accuracy_check: read validation:error"]
    assert read["Parameters"] == {"metric": "validation:error", "value.$": f"States.ArrayGetItem({matches}, 0)"}
    assert read["ResultPath"] == "$.accuracy_check" and read["Next"] == "accuracy_check"

    choice = states["accuracy_check"]
    assert choice["Type"] == "Choice"
    value = "$.accuracy_check.value"
    failed = "accuracy_check: failed: MetricRuleNotEvaluable"
    assert choice["Choices"] == [
        {"Not": {"Variable": value, "IsNumeric": True}, "Next": failed},
        {"Not": {"Variable": "$.params.threshold", "IsNumeric": True}, "Next": failed},
        {"Variable": value, "NumericLessThanPath": "$.params.threshold", "Next": "create_model"},
    ]
    assert choice["Default"] == "model_accuracy_too_low"
    # Airflow fails the branch task (AirflowFailException, no retry); nothing else would run: the run fails
    # with that error, once the run slot (max_active_runs=1) is given back.
    assert states[failed]["Result"]["Error"] == "MetricRuleNotEvaluable"
    assert states[failed]["Next"] == "Release run slot after failure"


def test_default_branch_fails_like_the_fail_run_operator(retraining, retraining_dag):
    fail = retraining.definition["States"]["model_accuracy_too_low"]
    task = retraining_dag.get_task("model_accuracy_too_low")
    # Recorded, then the run slot (max_active_runs=1) is given back and the run fails with this error and cause.
    assert fail["Result"] == {"Error": "ModelAccuracyTooLow", "Cause": task.cause}
    assert fail["Next"] == "Release run slot after failure"
    assert retraining.definition["States"]["Run failed, slot released"] == {
        "Type": "Fail",
        "Comment": "The run's failure, as recorded before the slot was given back",
        "ErrorPath": "$.error.Error",
        "CausePath": "$.error.Cause",
    }
    assert task.error == "ModelAccuracyTooLow"


def test_endpoint_update_or_create_then_poll_until_in_service(retraining, retraining_dag):
    states = flat(retraining.definition)
    probe = states["update_endpoint: endpoint exists?"]
    assert probe["Resource"] == "arn:aws:states:::aws-sdk:sagemaker:describeEndpoint"
    assert probe["Next"] == "update_endpoint: UpdateEndpoint"
    # Any DescribeEndpoint error goes to a Choice: create only when the endpoint is not found,
    # otherwise the attempt fails with the error's cause (and the task's retries re-run the attempt).
    assert [c["Next"] for c in probe["Catch"]] == ["update_endpoint: endpoint missing?"]
    missing = states["update_endpoint: endpoint missing?"]
    assert missing["Type"] == "Choice"
    not_found = missing["Choices"][0]
    assert not_found["Next"] == "update_endpoint: CreateEndpoint"
    assert "Could not find endpoint" in not_found["StringMatches"]
    assert states[missing["Default"]]["Type"] == "Fail"
    for name in ("update_endpoint: UpdateEndpoint", "update_endpoint: CreateEndpoint"):
        assert states[name]["Next"] == "update_endpoint: wait"
        assert states[name]["Parameters"] == {
            "EndpointName.$": "$.update_endpoint.EndpointName",
            "EndpointConfigName.$": "$.update_endpoint.EndpointConfigName",
        }
    assert states["update_endpoint: wait"] == {
        "Type": "Wait",
        "Seconds": 30,
        "Next": "update_endpoint: DescribeEndpoint",
    }
    assert states["update_endpoint: DescribeEndpoint"]["Next"] == "update_endpoint: InService?"
    check = states["update_endpoint: InService?"]
    in_service = check["Choices"][0]
    assert {"Variable": "$.update_endpoint.Endpoint.EndpointStatus", "StringEquals": "InService"} in in_service["And"]
    waiting = next(rule for rule in check["Choices"] if "Or" in rule)
    assert {r["StringEquals"] for r in waiting["Or"]} >= {"Creating", "Updating"}
    assert all(r["Variable"] == "$.update_endpoint.Endpoint.EndpointStatus" for r in waiting["Or"])
    # Still working: count the poll, then back to the Wait (a loop).
    assert walk({"StartAt": waiting["Next"], "States": states})[:2] == [waiting["Next"], "update_endpoint: wait"]
    assert states[check["Default"]]["Type"] == "Fail"


def test_deploy_execution_timeout_bounds_the_wait_loop(retraining, retraining_dag):
    """update_endpoint's execution_timeout (1 h) = at most 3600 / poll_interval polls, then a Fail."""
    states = flat(retraining.definition)
    task = retraining_dag.get_task("update_endpoint")
    max_polls = int(task.execution_timeout.total_seconds()) // int(task.poll_interval)
    check = states["update_endpoint: InService?"]
    limit = next(rule for rule in check["Choices"] if rule.get("Variable", "").endswith(".Polls.value"))
    assert limit["NumericGreaterThanEquals"] == max_polls == 120
    timed_out = states[limit["Next"]]
    assert timed_out["Type"] == "Fail" and timed_out["Error"] == "EndpointDeployTimeout"
    assert "3600 s" in timed_out["Cause"] and "execution_timeout" in timed_out["Cause"]
    # The limit is checked before the "still working" rule, else the loop would never stop.
    rules = [rule.get("Next") for rule in check["Choices"]]
    waiting = next(rule["Next"] for rule in check["Choices"] if "Or" in rule)
    assert rules.index(limit["Next"]) < rules.index(waiting)


def test_retries_equal_the_dag_settings(retraining, retraining_dag):
    states = flat(retraining.definition)
    for task_id in AWS_STAGES:
        if task_id == "train_model":
            continue
        assert states[task_id]["Retry"] == expected_retry(retraining_dag.get_task(task_id)), task_id
    # Training retries the SageMaker API's errors with the DAG's policy, never a job that ran and failed
    # (TrainingJobFailed is an AirflowFailException; in a retrier States.TaskFailed would match everything).
    assert states["train_model"]["Retry"] == [
        {
            "ErrorEquals": [
                "SageMaker.AmazonSageMakerException",
                "SageMaker.ResourceLimitExceededException",
                "States.Timeout",
            ],
            "IntervalSeconds": 60,
            "MaxAttempts": 2,
            "BackoffRate": 2.0,
            "MaxDelaySeconds": 600,
        }
    ]
    for task_id in ("extract_transform_load", "check_metrics", "create_model", "create_endpoint_config"):
        assert len(states[task_id]["Retry"]) == 1, task_id
    # The deploy's retries re-run a whole attempt (Airflow retries the operator, not one call).
    deploy = retraining_dag.get_task("update_endpoint")
    assert states["update_endpoint"]["Retry"] == expected_retry(deploy)
    for suffix in ("UpdateEndpoint", "CreateEndpoint", "DescribeEndpoint"):
        assert "Retry" not in states[f"update_endpoint: {suffix}"], suffix


def test_timeouts_equal_execution_timeout_and_dagrun_timeout(retraining, retraining_dag):
    states = retraining.definition["States"]
    for task_id in AWS_STAGES:
        timeout = retraining_dag.get_task(task_id).execution_timeout
        if timeout is None:
            assert "TimeoutSeconds" not in states[task_id], task_id
        else:
            assert states[task_id]["TimeoutSeconds"] == int(timeout.total_seconds()), task_id
    assert states["extract_transform_load"]["TimeoutSeconds"] == 90 * 60
    assert states["train_model"]["TimeoutSeconds"] == 4 * 3600
    assert retraining.definition["TimeoutSeconds"] == int(retraining_dag.dagrun_timeout.total_seconds()) == 6 * 3600


def test_param_defaults_state_holds_every_dag_param(retraining, retraining_dag):
    definition = retraining.definition
    assert definition["States"][definition["StartAt"]]["Next"] == "Param defaults"  # after Acquire run slot
    defaults = definition["States"]["Param defaults"]["Parameters"]["param_defaults"]
    assert defaults == {name: retraining_dag.params[name] for name in retraining_dag.params}
    apply = definition["States"]["Apply params"]
    assert apply["Parameters"] == {"params.$": "States.JsonMerge($.param_defaults, $$.Execution.Input, false)"}
    # Every param reference in the definition names a DAG param.
    referenced = set(re.findall(r"\$\.params\.([A-Za-z0-9_]+)", json.dumps(definition)))
    assert referenced and referenced <= set(defaults)


def test_state_names_are_task_ids_and_short(retraining, retraining_dag):
    names = [name for name, _ in all_states(retraining.definition)]
    assert len(names) == len(set(names))
    assert all(len(name) <= 80 for name in names)
    for task_id in retraining_dag.task_ids:
        assert task_id in names


def test_max_active_runs_is_a_run_slot_guard_not_a_warning(retraining):
    assert not any("max_active_runs" in w for w in retraining.warnings)
    assert retraining.definition["StartAt"] == "Acquire run slot"


def test_export_is_deterministic_in_process(retraining):
    from exporters.api import export_dag_object

    again = export_dag_object(load("model_retraining"))
    assert again.to_json() == retraining.to_json()


def test_export_is_byte_identical_across_fresh_processes(tmp_path):
    """Two CLI runs in fresh interpreters (different hash seeds) write the same bytes, equal to the golden file."""
    runs = []
    for seed in ("0", "4242"):
        out = tmp_path / f"seed{seed}"
        env = dict(os.environ, PYTHONHASHSEED=seed)
        cmd = [sys.executable, "-m", "exporters", "export", "model_retraining", "--out", str(out)]
        runs.append((out, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
    files = []
    for out, proc in runs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr.decode()
        files.append((out / "model_retraining" / "state_machine.asl.json").read_bytes())
    assert files[0] == files[1]
    assert files[0] == GOLDEN.read_bytes()


def test_validators_reject_a_broken_copy(retraining):
    """The two validators are not vacuous: a dangling StartAt is caught by both."""
    from exporters.validation import validate_definition
    from tests.asl_check import cfn_lint_state_machine

    broken = json.loads(retraining.to_json())
    broken["StartAt"] = "no such state"
    assert any("StartAt" in p for p in validate_definition(broken))
    assert any("no such state" in p for p in cfn_lint_state_machine(broken))


# ---------------------------------------------------------------------------
# small DAGs: one per shape
# ---------------------------------------------------------------------------
def run_path(machine: dict[str, Any]) -> list[str]:
    """The states a run where every task succeeds goes through (gates take their Default: run the task)."""
    return walk(machine, choose=lambda state: state.get("Default") or state["Choices"][-1]["Next"])


def test_fan_out_fan_in_becomes_parallel_with_merged_outputs():
    result = export("fan_out_fan_in", STRUCTURES)
    states = result.definition["States"]
    assert run_path(result.definition)[:7] == [
        "Param defaults",
        "Apply params",
        "start",
        "Parallel: check, glue_a, glue_b",
        "join: all_success?",
        "join",
        "report",  # ungated: join's upstream_failed ends the run at its own gate, so report only ever follows success
    ]
    parallel = states["Parallel: check, glue_a, glue_b"]
    assert parallel["Type"] == "Parallel"
    assert [b["StartAt"] for b in parallel["Branches"]] == ["check", "glue_a", "glue_b"]
    for branch in parallel["Branches"]:
        task = branch["States"][branch["StartAt"]]
        assert task["End"] is True and task["ResultPath"] == f"$.{branch['StartAt']}"
        # A failing branch is recorded, never stops its siblings (Airflow runs them to the end).
        (catch,) = task["Catch"]
        assert catch["ErrorEquals"] == ["States.ALL"] and catch["ResultPath"] == f"$.ti_{branch['StartAt']}"
    assert parallel["ResultSelector"] == {
        "merged.$": "States.JsonMerge(States.JsonMerge($[0], $[1], false), $[2], false)"
    }
    assert parallel["ResultPath"] == "$" and parallel["OutputPath"] == "$.merged"
    # join (all_success) runs only if every branch succeeded; otherwise nothing else can run: the run fails.
    gate = states["join: all_success?"]
    assert gate["Default"] == "join"
    assert gate["Choices"] == [
        {
            "Or": [{"Variable": f"$.ti_{t}.Error", "IsPresent": True} for t in ("check", "glue_a", "glue_b")],
            "Next": "Run failed",
        }
    ]
    assert states["join"] == {"Type": "Pass", "ResultPath": None, "Next": "report"}
    # After the fan-in every branch's result is readable.
    payload = states["report"]["Parameters"]["Payload"]
    assert payload["run_a.$"] == "$.glue_a.JobRunId" and payload["run_b.$"] == "$.glue_b.JobRunId"
    assert payload["label.$"] == "States.Format('runs {} and {}', $.glue_a.JobName, $.glue_b.JobName)"
    assert result.warnings == []


def test_run_failed_names_the_failed_task_and_its_error():
    states = export("fan_out_fan_in", STRUCTURES).definition["States"]
    choice = states["Run failed"]
    assert [rule["Variable"] for rule in choice["Choices"]] == [
        f"$.ti_{t}.Error" for t in ("check", "glue_a", "glue_b")
    ]
    for rule in choice["Choices"]:
        fail = states[rule["Next"]]
        task = rule["Variable"].split(".")[1]
        assert fail == {"Type": "Fail", "ErrorPath": f"$.{task}.Error", "CausePath": f"$.{task}.Cause"}


def test_two_roots_run_side_by_side_until_they_meet():
    result = export("two_roots", STRUCTURES)
    assert run_path(result.definition)[:5] == [
        "Param defaults",
        "Apply params",
        "Parallel: root_a, root_b",
        "meet: all_success?",
        "meet",
    ]
    parallel = result.definition["States"]["Parallel: root_a, root_b"]
    assert [b["StartAt"] for b in parallel["Branches"]] == ["root_a", "root_b"]


def test_nested_fan_out_nests_parallel_states():
    result = export("nested_fan_out", STRUCTURES)
    states = result.definition["States"]
    assert run_path(result.definition)[:6] == [
        "Param defaults",
        "Apply params",
        "start",
        "Parallel: a, b",
        "end: all_success?",
        "end",
    ]
    branch_a, branch_b = states["Parallel: a, b"]["Branches"]
    assert run_path(branch_a) == ["a", "Parallel: a1, a2", "a_join: all_success?", "a_join"]
    assert [b["StartAt"] for b in branch_a["States"]["Parallel: a1, a2"]["Branches"]] == ["a1", "a2"]
    assert branch_a["States"]["a_join"]["End"] is True
    # a_join is read by end's gate: when a1 or a2 failed it is marked upstream_failed.
    assert branch_a["States"]["a_join: upstream_failed"]["Result"] == "upstream_failed"
    assert walk(branch_b) == ["b"]


def test_branch_becomes_choice_and_both_branches_join():
    result = export("branch_join", STRUCTURES)
    states = result.definition["States"]
    choice = states["choose"]
    assert choice["Type"] == "Choice"
    assert choice["Choices"][-1] == {
        "Variable": "$.choose.value",
        "NumericGreaterThanEqualsPath": "$.params.threshold",
        "Next": "deploy",
    }
    assert choice["Default"] == "skip"
    # A failure of deploy can only fail the run (announce, join and after would be upstream_failed):
    # left uncaught, as plain states as before.
    assert "Catch" not in states["deploy"]
    assert states["deploy"]["Next"] == "announce"
    assert states["announce"]["Next"] == "join"
    assert states["skip"]["Next"] == "join"
    assert states["join"]["Next"] == "after" and states["after"]["End"] is True
    assert walk(result.definition, choose=succeeding)[-4:] == [
        "deploy",
        "announce",
        "join",
        "after",
    ]
    assert walk(result.definition, choose=lambda s: s["Default"])[-3:] == ["skip", "join", "after"]


def test_branch_straight_to_the_join():
    result = export("branch_to_join", STRUCTURES)
    states = result.definition["States"]
    gate = states["gate"]
    assert gate["Choices"][-1] == {"Variable": "$.gate.value", "NumericGreaterThan": 0.2, "Next": "retrain"}
    assert gate["Default"] == "join"
    assert states["retrain"]["Next"] == "join"
    assert states["join"]["End"] is True


def test_not_series_parallel_graph_is_exported_in_waves_each_task_gated_by_its_own_upstream():
    result = export("n_shape", STRUCTURES)
    states = result.definition["States"]
    assert run_path(result.definition)[:4] == ["Param defaults", "Apply params", "Parallel: a, b", "Parallel: c, d"]
    dag = load("n_shape", STRUCTURES)
    first, second = states["Parallel: a, b"], states["Parallel: c, d"]
    assert [b["StartAt"] for b in first["Branches"]] == ["a", "b"]
    assert [b["StartAt"] for b in second["Branches"]] == ["c: all_success?", "d: all_success?"]
    gates = {b["StartAt"]: b["States"][b["StartAt"]] for b in second["Branches"]}
    # c depends on a only: b failing does not stop c (Airflow runs it).
    assert json.dumps(gates["c: all_success?"]).count("$.ti_") == 1 and "$.ti_a" in json.dumps(gates["c: all_success?"])
    assert {"$.ti_a", "$.ti_b"} <= set(re.findall(r"\$\.ti_[a-z]", json.dumps(gates["d: all_success?"])))
    assert sorted(t.task_id for t in dag.tasks) == ["a", "b", "c", "d"]
    assert result.warnings == []


def test_failure_handler_runs_beside_the_tasks_it_watches():
    result = export("failure_handler", STRUCTURES)
    states = result.definition["States"]
    work = states["work"]
    # work's failure is recorded and the run goes on to its downstream tasks, done and the handler notify.
    assert work["Catch"] == [{"ErrorEquals": ["States.ALL"], "Next": work["Next"], "ResultPath": "$.ti_work"}]
    assert work["Retry"][0]["MaxAttempts"] == 1  # retries first, then the handler
    parallel = states[work["Next"]]
    done, notify = parallel["Branches"]
    assert done["States"]["done: all_success?"]["Default"] == "done"
    gate = notify["States"]["notify: one_failed?"]
    assert gate["Choices"] == [{"Variable": "$.ti_work.Error", "IsPresent": True, "Next": "notify"}]
    assert gate["Default"] == "notify: skipped"
    # The run's state comes from the leaves: done upstream_failed or notify failed -> the run failed.
    run_state = states[parallel["Next"]]
    assert run_state["Type"] == "Choice" and run_state["Default"] == "Done"
    assert "Catch" not in states["start"]


def test_empty_operator_becomes_pass():
    result = export("empty_only", STRUCTURES)
    assert result.definition["States"]["nothing_to_do"] == {"Type": "Pass", "ResultPath": None, "End": True}
    assert result.definition["States"]["Param defaults"]["Parameters"] == {"param_defaults": {}}


def test_retry_and_timeout_settings():
    result = export("retries_timeouts", STRUCTURES)
    states = result.definition["States"]
    assert states["exponential"]["Retry"] == [
        {
            "ErrorEquals": ["States.ALL"],
            "IntervalSeconds": 20,
            "MaxAttempts": 4,
            "BackoffRate": 2.0,
            "MaxDelaySeconds": 300,
        }
    ]
    assert states["exponential"]["TimeoutSeconds"] == 1800
    # Without exponential backoff Airflow ignores max_retry_delay: constant delay.
    assert states["linear"]["Retry"] == [
        {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 45, "MaxAttempts": 3, "BackoffRate": 1.0}
    ]
    assert "TimeoutSeconds" not in states["linear"]
    assert "Retry" not in states["no_retries"]
    assert states["never_reached_in_practice"] == {"Type": "Fail", "Error": "Stop", "Cause": "end of the chain"}
    assert result.definition["TimeoutSeconds"] == 45 * 60


def test_long_task_ids_give_short_unique_state_names(tmp_path):
    """Task ids up to Airflow's limit still give state names of at most 80 characters, all distinct."""
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    from exporters.api import export_dag_object
    from retraining import ParamRef, SageMakerDeployEndpointOperator

    stem = "a_really_long_task_id_" * 5
    with DAG(dag_id="long_names", schedule=None, params={"endpoint": "e"}) as dag:
        first = EmptyOperator(task_id=stem + "first")
        left = EmptyOperator(task_id=stem + "left")
        right = SageMakerDeployEndpointOperator(
            task_id=stem + "right", request={"EndpointName": ParamRef("endpoint"), "EndpointConfigName": "c"}
        )
        last = EmptyOperator(task_id=stem + "last")
        first >> [left, right] >> last
    result = export_dag_object(dag)
    assert_valid(result.definition)
    names = [name for name, _ in all_states(result.definition)]
    assert all(len(n) <= 80 for n in names), [n for n in names if len(n) > 80]
    assert len(names) == len(set(names))


def test_stock_provider_operators_export_without_rewriting():
    result = export("stock_operators", GOOD / "stock_operators.py")
    states = flat(result.definition)
    assert walk(result.definition)[:10] == [
        "Param defaults",
        "Apply params",
        "etl",
        "train_model",
        # check_if_job_exists=True (the default): describe the name first (tests/test_export_14_stock.py)
        "train_model: job exists?",
        "train_model: create job under a new name",
        "check_metrics",
        "create_model",
        "create_endpoint_config",
        "update_endpoint",
    ]
    etl = states["etl"]
    assert etl["Resource"] == "arn:aws:states:::glue:startJobRun.sync"
    assert etl["Parameters"] == {
        "JobName.$": "$.params.glue_job_name",
        "Arguments": {"--S3_DEST.$": "$.params.s3_dest", "--TRAIN_KEY": "train/"},
    }

    train = states["train_model: create job"]
    assert train["Resource"] == "arn:aws:states:::sagemaker:createTrainingJob.sync"
    assert train["Parameters"]["TrainingJobName.$"] == "$.params.training_job_name"
    assert train["Parameters"]["RoleArn.$"] == "$.params.role_arn"
    channel = train["Parameters"]["InputDataConfig"][0]["DataSource"]["S3DataSource"]
    assert channel["S3Uri.$"] == "States.Format('{}train/', $.params.s3_dest)"
    assert train["Parameters"]["ResourceConfig"] == {
        "InstanceType": "ml.m5.large",
        "InstanceCount": 1,
        "VolumeSizeInGB": 30,
    }
    assert "TrainingJobName.$" in train["ResultSelector"]

    check = states["check_metrics"]
    assert check["Resource"] == "arn:aws:states:::lambda:invoke"
    # The JSON payload string is parsed; the XCom pull of ['Training']['TrainingJobName'] reads the training result.
    assert check["Parameters"] == {
        "FunctionName.$": "$.params.function_name",
        "Payload": {"TrainingJobName.$": "$.train_model.Training.TrainingJobName"},
    }
    model = states["create_model"]
    assert model["Resource"] == "arn:aws:states:::sagemaker:createModel"
    assert model["Parameters"]["ModelName.$"] == "States.Format('{}-model', $.params.model_prefix)"
    assert model["Parameters"]["PrimaryContainer"] == {
        "Image.$": "$.train_model.Training.AlgorithmSpecification.TrainingImage",
        "ModelDataUrl.$": "$.train_model.Training.ModelArtifacts.S3ModelArtifacts",
    }
    assert states["create_endpoint_config"]["Resource"] == "arn:aws:states:::sagemaker:createEndpointConfig"
    assert states["update_endpoint: UpdateEndpoint"]["Resource"] == "arn:aws:states:::sagemaker:updateEndpoint"
    assert states["update_endpoint: wait"]["Seconds"] == 20  # check_interval
    # default_args retries apply to stock operators as to ours.
    for task_id in ("etl", "train_model: create job", "check_metrics", "create_model", "create_endpoint_config"):
        assert states[task_id]["Retry"] == [
            {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 30, "MaxAttempts": 1, "BackoffRate": 1.0}
        ]


# ---------------------------------------------------------------------------
# the extension point
# ---------------------------------------------------------------------------
@pytest.fixture
def publish_operator_class():
    from exporters import converters

    dag = load("custom_operator", GOOD / "custom_operator.py")
    cls = type(dag.get_task("publish"))
    yield cls
    converters._REGISTRY.pop(cls, None)


def test_registering_a_converter_makes_a_custom_operator_exportable(publish_operator_class):
    from exporters.api import export_dag_object
    from exporters.converters import Fragment, register
    from exporters.errors import ExportError

    dag = load("custom_operator", GOOD / "custom_operator.py")
    with pytest.raises(ExportError) as err:
        export_dag_object(dag)
    assert [p.task_id for p in err.value.problems] == ["publish"]
    assert "PublishEventOperator has no Step Functions converter" in err.value.problems[0].reason
    assert "register" in err.value.problems[0].fix

    @register(publish_operator_class)
    def convert_publish(task, ctx):
        request = {
            "Entries": [
                {"EventBusName": task.bus, "DetailType": task.detail_type, "Detail": task.detail, "Source": "airflow"}
            ]
        }
        state = ctx.task_state(task, "arn:aws:states:::events:putEvents", ctx.parameters(task, request))
        return Fragment.single(state, ctx.layout(task))

    result = export_dag_object(dag)
    assert_valid(result.definition)
    state = result.definition["States"]["publish"]
    assert state["Resource"] == "arn:aws:states:::events:putEvents"
    entry = state["Parameters"]["Entries"][0]
    assert entry["EventBusName.$"] == "$.params.bus" and entry["Detail"] == {"model": "churn"}
    assert result.integrations == ["arn:aws:states:::events:putEvents"]


# ---------------------------------------------------------------------------
# exporter defects found while writing these tests (fixed; kept as regression tests)
# ---------------------------------------------------------------------------
def test_gap_state_names_unique_across_parallel_branches():
    from exporters.api import export_dag_object

    result = export_dag_object(load("gap_parallel_deploys", GAPS))
    names = [name for name, _ in all_states(result.definition)]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})


def test_gap_success_path_never_enters_a_failure_handler():
    from exporters.api import export_dag_object

    result = export_dag_object(load("gap_handler_named_done", GAPS))
    states = flat(result.definition)
    in_service = states["deploy: InService?"]["Choices"][0]["Next"]
    assert states[in_service]["Type"] == "Succeed"
    names = [name for name, _ in all_states(result.definition)]
    assert len(names) == len(set(names))
    # The handler (task id "Done") runs only when work failed; the run's own end is another state.
    assert states["Done: one_failed?"]["Default"] != "Done"


def test_result_ref_to_a_task_that_is_not_upstream_is_refused():
    """A sibling's result is not in a Parallel branch's state data: refused (our operators, via ``references``)."""
    from exporters.api import export_dag_object
    from exporters.errors import ExportError

    with pytest.raises(ExportError) as err:
        export_dag_object(load("gap_sibling_result_ref", GAPS))
    (problem,) = err.value.problems
    assert problem.task_id == "consumer"
    assert "reads the result of 'producer', which is not upstream of it" in problem.reason
    assert "producer >> consumer" in problem.fix


def test_gap_stock_xcom_pull_of_a_task_that_is_not_upstream_is_refused():
    from exporters.api import export_dag_object
    from exporters.errors import ExportError

    with pytest.raises(ExportError) as err:
        export_dag_object(load("gap_sibling_xcom_pull_stock", GAPS))
    assert [p.task_id for p in err.value.problems] == ["consumer"]


def test_gap_failure_handler_also_catches_failures_upstream_of_the_watched_task():
    from exporters.api import export_dag_object

    result = export_dag_object(load("gap_handler_upstream_failure", GAPS))
    states = result.definition["States"]
    # prepare's failure is recorded; work is then marked upstream_failed, which on_failure (one_failed) sees.
    assert [c["ResultPath"] for c in states["prepare"]["Catch"]] == ["$.ti_prepare"]
    work_gate = states["work: all_success?"]
    assert work_gate["Choices"][0]["Next"] == "work: upstream_failed"
    handler_gate = states["on_failure: one_failed?"]
    assert "$.ti_work" in json.dumps(handler_gate["Choices"]) and handler_gate["Choices"][0]["Next"] == "on_failure"


def test_gap_backoff_multiplier_is_kept():
    from exporters.api import export_dag_object

    result = export_dag_object(load("gap_backoff_multiplier", GAPS))
    assert result.definition["States"]["etl"]["Retry"][0]["BackoffRate"] == 3.0


def test_gap_stock_endpoint_create_falls_back_to_update():
    from exporters.api import export_dag_object

    result = export_dag_object(load("gap_stock_fields", GAPS))
    resources = {s["Resource"] for _, s in all_states(result.definition) if s["Type"] == "Task"}
    assert "arn:aws:states:::sagemaker:updateEndpoint" in resources


def _exported_or_refused(dag_id: str, task_id: str, check) -> None:
    """Either the field is translated (check passes) or the export names the task: never silently dropped."""
    from exporters.api import export_dag_object
    from exporters.errors import ExportError

    try:
        result = export_dag_object(load(dag_id, GAPS))
    except ExportError as err:
        assert task_id in [p.task_id for p in err.problems]
        return
    check(result.definition["States"][task_id])


def test_gap_stock_glue_run_job_kwargs_not_dropped():
    def check(state):
        assert state["Parameters"].get("NumberOfWorkers") == 10 and state["Parameters"].get("WorkerType") == "G.1X"

    _exported_or_refused("gap_stock_fields", "sized_etl", check)


def test_gap_stock_lambda_qualifier_not_dropped():
    def check(state):
        assert state["Parameters"].get("Qualifier") == "live" or ":live" in str(state["Parameters"].get("FunctionName"))

    _exported_or_refused("gap_stock_fields", "aliased_check", check)
