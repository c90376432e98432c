"""What cannot be exported: every offending task is listed at once, with the reason and what to use instead.

DAG files in ``tests/export_dags/unsupported/`` each hold one untranslatable
construct (``many_bad.py`` several); ``tests/export_dags/broken/`` holds a file
that fails to import. The CLI must exit 1, print the problems on stderr and
write nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DAGS = Path(__file__).resolve().parent / "export_dags"
UNSUPPORTED = DAGS / "unsupported"
BROKEN = DAGS / "broken"
GOOD = DAGS / "good"

MANY_BAD_TASKS = {"wait_a_bit", "shell_step", "dated_etl", "python_step", "taskflow_step"}


@cache
def load(dag_id: str, source: Path) -> Any:
    from exporters.loader import load_dag

    return load_dag(dag_id, dags_folder=source)


def export_error(dag_id: str, file: str):
    from exporters.api import export_dag_object
    from exporters.errors import ExportError

    with pytest.raises(ExportError) as err:
        export_dag_object(load(dag_id, UNSUPPORTED / file))
    assert err.value.dag_id == dag_id
    return err.value


# (file, dag id, task id, fragments of the reason, fragments of the fix)
CORPUS = [
    pytest.param(
        "python_operator.py",
        "bad_python_operator",
        "score_in_python",
        ["PythonOperator", "no Step Functions converter"],
        ["Lambda function", "LambdaInvokeFunctionOperator"],
        id="PythonOperator",
    ),
    pytest.param(
        "task_decorator.py",
        "bad_task_decorator",
        "summarize",
        ["no Step Functions converter"],
        ["arbitrary Python", "Lambda function"],
        id="@task",
    ),
    pytest.param(
        "bash_operator.py",
        "bad_bash_operator",
        "copy_files",
        ["BashOperator", "no Step Functions converter"],
        ["Glue job", "Lambda function", "ECS task"],
        id="BashOperator",
    ),
    pytest.param(
        "sensor.py",
        "bad_sensor",
        "wait_an_hour",
        ["TimeDeltaSensor", "no Step Functions converter"],
        ["register a converter", "Wait"],
        id="sensor",
    ),
    pytest.param(
        "branch_target_runs_on_failure.py",
        "bad_branch_target_runs_on_failure",
        "choose",
        ["when it ends failed", "run only when it chooses them"],
        ["after the join", "all_success"],
        id="branch target that runs when the branch task fails",
    ),
]


@pytest.mark.parametrize("file, dag_id, task_id, reason_parts, fix_parts", CORPUS)
def test_unsupported_construct_is_reported(file, dag_id, task_id, reason_parts, fix_parts):
    error = export_error(dag_id, file)
    assert [p.task_id for p in error.problems] == [task_id]
    problem = error.problems[0]
    for part in reason_parts:
        assert part in problem.reason, (part, problem.reason)
    for part in fix_parts:
        assert part in problem.fix, (part, problem.fix)
    # The message carries it all too (this is what the CLI prints).
    text = str(error)
    assert f"task {task_id!r}" in text and problem.reason in text and problem.fix in text


def test_free_form_jinja_and_filters_are_refused_per_field():
    error = export_error("bad_free_jinja", "free_jinja.py")
    problems = {p.task_id: p for p in error.problems}
    assert set(problems) == {"etl_for_day", "check_filtered"}
    assert "field 'job_name'" in problems["etl_for_day"].reason
    assert "free-form Jinja '{{ macros.ds_add(ds, 1) }}'" in problems["etl_for_day"].reason  # {{ ds }} itself exports
    assert "field 'function_name'" in problems["check_filtered"].reason
    assert "Jinja filter" in problems["check_filtered"].reason and "| upper" in problems["check_filtered"].reason
    for problem in problems.values():
        assert "{{ params.NAME }}" in problem.fix and "ParamRef" in problem.fix


def test_several_bad_tasks_are_listed_in_one_error():
    error = export_error("many_bad", "many_bad.py")
    assert {p.task_id for p in error.problems} == MANY_BAD_TASKS
    assert len(error.problems) == len(MANY_BAD_TASKS)
    assert all(p.reason and p.fix for p in error.problems)
    text = str(error)
    assert f"({len(MANY_BAD_TASKS)} problem(s))" in text
    for task_id in MANY_BAD_TASKS:
        assert f"task {task_id!r}" in text
    assert "fine_glue" not in text


def test_api_export_raises_and_writes_nothing(tmp_path):
    from exporters import ExportError, export

    out = tmp_path / "out"
    with pytest.raises(ExportError) as err:
        export("many_bad", dags_folder=UNSUPPORTED, out=out)
    assert {p.task_id for p in err.value.problems} == MANY_BAD_TASKS
    assert not out.exists()


def test_unknown_dag_id_lists_the_available_dags():
    from exporters.errors import DagLoadError
    from exporters.loader import load_dag

    with pytest.raises(DagLoadError) as err:
        load_dag("no_such_dag", dags_folder=GOOD)
    text = str(err.value)
    assert "'no_such_dag' not found" in text
    for dag_id in ("fan_out_fan_in", "branch_join", "stock_operators", "n_shape"):
        assert dag_id in text


def test_import_error_names_the_file():
    from exporters.errors import DagLoadError
    from exporters.loader import load_dag

    with pytest.raises(DagLoadError) as err:
        load_dag("never_loaded", dags_folder=BROKEN)
    text = str(err.value)
    assert "import_error.py" in text
    assert "NoSuchOperator" in text


def test_missing_dags_folder_is_a_clear_error(tmp_path):
    from exporters.errors import DagLoadError
    from exporters.loader import load_dag

    with pytest.raises(DagLoadError, match="does not exist"):
        load_dag("model_retraining", dags_folder=tmp_path / "nowhere")


# ---------------------------------------------------------------------------
# the CLI: exit 1, problems on stderr, nothing written
# ---------------------------------------------------------------------------
def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """The failing CLI commands, run side by side (each is a fresh interpreter loading Airflow)."""
    base = tmp_path_factory.mktemp("cli_errors")
    existing = base / "existing"
    old_file = existing / "many_bad" / "state_machine.asl.json"
    old_file.parent.mkdir(parents=True)
    old_file.write_text('{"old": "definition"}\n')
    before = _snapshot(existing)
    fresh = base / "fresh"
    commands = {
        "many_bad": ["export", "many_bad", "--dags-folder", str(UNSUPPORTED), "--out", str(existing)],
        "python": ["export", "bad_python_operator", "--dags-folder", str(UNSUPPORTED), "--out", str(fresh)],
        "unknown": ["export", "no_such_dag", "--dags-folder", str(GOOD), "--out", str(fresh)],
        "broken": ["export", "never_loaded", "--dags-folder", str(BROKEN), "--out", str(fresh)],
    }
    procs = {
        key: subprocess.Popen(
            [sys.executable, "-m", "exporters", *args],
            cwd=ROOT,
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for key, args in commands.items()
    }
    results = {key: (proc, *proc.communicate(timeout=300)) for key, proc in procs.items()}
    return {"results": results, "existing": existing, "before": before, "fresh": fresh}


def test_cli_lists_every_problem_on_stderr_and_exits_1(cli_runs):
    proc, stdout, stderr = cli_runs["results"]["many_bad"]
    assert proc.returncode == 1
    assert "cannot export DAG 'many_bad'" in stderr
    for task_id in MANY_BAD_TASKS:
        assert f"task {task_id!r}" in stderr
    assert "Exported" not in stdout


def test_cli_failure_leaves_an_existing_definition_unchanged(cli_runs):
    assert _snapshot(cli_runs["existing"]) == cli_runs["before"]  # same files, bytes and mtimes; no temp files


def test_cli_failure_creates_no_output(cli_runs):
    proc, stdout, stderr = cli_runs["results"]["python"]
    assert proc.returncode == 1
    assert "task 'score_in_python'" in stderr
    assert not (cli_runs["fresh"] / "bad_python_operator").exists()


def test_cli_unknown_dag_lists_available_dags(cli_runs):
    proc, stdout, stderr = cli_runs["results"]["unknown"]
    assert proc.returncode == 1
    assert "'no_such_dag' not found" in stderr and "fan_out_fan_in" in stderr and "stock_operators" in stderr
    assert "Traceback" not in stderr


def test_cli_import_error_names_the_file(cli_runs):
    proc, stdout, stderr = cli_runs["results"]["broken"]
    assert proc.returncode == 1
    error_line = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert error_line and "never_loaded" in error_line[0]
    assert "import_error.py: ImportError" in stderr and "NoSuchOperator" in stderr
    assert not cli_runs["fresh"].exists() or not any(cli_runs["fresh"].rglob("*.json"))


# ---------------------------------------------------------------------------
# defects found while writing these tests (see the report)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "file, dag_id", [("all_done.py", "bad_all_done"), ("branch_default_join.py", "bad_branch_default_join")]
)
def test_every_trigger_rule_and_branch_join_exports_now(file, dag_id):
    """Refused before the failure model; every trigger rule is gated on recorded outcomes now."""
    from exporters.api import export_dag_object
    from tests.asl_check import assert_valid

    result = export_dag_object(load(dag_id, UNSUPPORTED / file))
    assert_valid(result.definition)
