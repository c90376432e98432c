"""``python -m exporters export|graph|validate`` and the Python API with the same verbs."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.asl_check import assert_valid
from tests.conftest import RETRAINING_TASK_IDS

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHOICE_LABEL = "accuracy_check.value < params.threshold"


def run_all(commands: dict[str, list[str]]) -> dict[str, subprocess.CompletedProcess]:
    """Run ``python -m exporters ...`` commands side by side (each loads Airflow in a fresh interpreter)."""
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
    done = {}
    for key, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        done[key] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return done


def run(*args: str) -> subprocess.CompletedProcess:
    return run_all({"one": list(args)})["one"]


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli")
    runs = run_all(
        {
            "export": ["export", "model_retraining", "--out", str(out)],
            "svg": ["graph", "model_retraining", "--format", "svg", "--out", str(out)],
            "png": ["graph", "model_retraining", "--format", "png", "--out", str(out)],
        }
    )
    return out, runs


# ---------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------
def test_export_writes_the_definition(cli):
    out, runs = cli
    assert runs["export"].returncode == 0, runs["export"].stderr
    target = out / "model_retraining" / "state_machine.asl.json"
    definition = json.loads(target.read_text())
    assert definition["StartAt"] == "Acquire run slot"  # max_active_runs=1
    assert_valid(definition)
    assert sorted(p.name for p in target.parent.iterdir() if p.name.endswith(".json") or p.name.startswith(".")) == [
        "state_machine.asl.json",
        "template.json",
    ]  # no temp files left
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no temp file left behind


def test_export_prints_a_one_screen_summary(cli):
    out, runs = cli
    stdout = runs["export"].stdout
    target = out / "model_retraining" / "state_machine.asl.json"
    definition = json.loads(target.read_text())
    lines = stdout.splitlines()
    assert len(lines) <= 25
    assert lines[0] == f"Exported DAG 'model_retraining' -> {target}"
    states_line = next(line for line in lines if " states: " in line)
    assert states_line.strip().startswith(f"{len(definition['States'])} states: ")
    for task_id in RETRAINING_TASK_IDS:
        assert task_id in states_line
    integrations_line = next(line for line in lines if line.strip().startswith("integrations: "))
    for resource in (
        "arn:aws:states:::glue:startJobRun.sync",
        "arn:aws:states:::sagemaker:createTrainingJob.sync",
        "arn:aws:states:::lambda:invoke",
        "arn:aws:states:::sagemaker:createModel",
        "arn:aws:states:::sagemaker:createEndpointConfig",
        "arn:aws:states:::sagemaker:updateEndpoint",
        "arn:aws:states:::sagemaker:createEndpoint",
        "arn:aws:states:::aws-sdk:sagemaker:describeEndpoint",
    ):
        assert resource in integrations_line
    assert "arn:aws:states:::dynamodb:updateItem" in integrations_line  # max_active_runs=1: the run-slot guard
    assert runs["export"].stderr.strip() == ""


def test_export_summary_says_when_there_are_no_warnings(tmp_path):
    result = run(
        "export",
        "fan_out_fan_in",
        "--dags-folder",
        str(ROOT / "tests" / "export_dags" / "good"),
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "warnings: none" in result.stdout
    assert (tmp_path / "fan_out_fan_in" / "state_machine.asl.json").exists()


# ---------------------------------------------------------------------------
# graph
# ---------------------------------------------------------------------------
def test_graph_svg(cli):
    out, runs = cli
    assert runs["svg"].returncode == 0, runs["svg"].stderr
    target = out / "model_retraining" / "state_machine.svg"
    assert str(target) in runs["svg"].stdout
    root = ET.fromstring(target.read_bytes())  # well-formed XML
    assert root.tag.endswith("svg")
    texts = [t.text or "" for t in root.iter() if t.tag.endswith("text")]
    for task_id in RETRAINING_TASK_IDS:
        assert any(task_id in text for text in texts), task_id
    assert CHOICE_LABEL in texts
    assert "Default" in texts
    # max_active_runs=1: the low-metric path records ModelAccuracyTooLow, gives the run slot back, then fails.
    assert any("Run failed, slot released" in text for text in texts)


def test_graph_png(cli):
    out, runs = cli
    assert runs["png"].returncode == 0, runs["png"].stderr
    data = (out / "model_retraining" / "state_machine.png").read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 10_000


def test_graph_rejects_an_unknown_format():
    result = run("graph", "model_retraining", "--format", "gif")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


# ---------------------------------------------------------------------------
# validate
# ---------------------------------------------------------------------------
def test_validate_a_good_file(cli):
    out, _ = cli
    result = run("validate", str(out / "model_retraining" / "state_machine.asl.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout and "invalid" not in result.stdout


@pytest.fixture
def broken_files(cli, tmp_path):
    out, _ = cli
    definition = json.loads((out / "model_retraining" / "state_machine.asl.json").read_text())
    dangling = json.loads(json.dumps(definition))
    dangling["States"]["create_model"]["Next"] = "deploy_everything"
    no_choices = json.loads(json.dumps(definition))
    del no_choices["States"]["accuracy_check"]["Choices"]
    files = {
        "dangling": tmp_path / "dangling.json",
        "no_choices": tmp_path / "no_choices.json",
        "not_json": tmp_path / "not.json",
    }
    files["dangling"].write_text(json.dumps(dangling))
    files["no_choices"].write_text(json.dumps(no_choices))
    files["not_json"].write_text("{ not json")
    return files


def test_validate_names_the_state_and_field_of_a_dangling_next(broken_files):
    result = run("validate", str(broken_files["dangling"]))
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "invalid" in output
    assert "States.create_model" in output and "'deploy_everything'" in output


def test_validate_names_a_choice_without_choices(broken_files):
    result = run("validate", str(broken_files["no_choices"]))
    assert result.returncode == 1
    assert "States.accuracy_check.Choices" in result.stdout + result.stderr


def test_validate_non_json_and_missing_files(broken_files, tmp_path):
    assert run("validate", str(broken_files["not_json"])).returncode == 1
    missing = run("validate", str(tmp_path / "missing.json"))
    assert missing.returncode == 1
    assert "no such file" in missing.stdout + missing.stderr


# ---------------------------------------------------------------------------
# errors: one message with its reason and fix, exit 1, never a traceback
# ---------------------------------------------------------------------------
def test_an_error_is_printed_once_with_reason_and_fix(tmp_path):
    source = (ROOT / "dags" / "model_retraining.py").read_text()
    assert 'schedule="0 * * * *"' in source
    dags = tmp_path / "dags"
    dags.mkdir()
    # cron fires when EITHER day field matches; EventBridge cannot say that.
    (dags / "model_retraining.py").write_text(source.replace('schedule="0 * * * *"', 'schedule="0 6 1 * MON"'))
    result = run("export", "model_retraining", "--dags-folder", str(dags), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: DAG 'model_retraining': schedule '0 6 1 * MON'"), lines
    assert "cannot be exported to EventBridge" in lines[0], lines
    assert lines[-1].startswith("  fix: "), lines
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_lambda_and_glue_sources_are_paths_the_user_gives(tmp_path):
    runs = run_all(
        {
            "given": ["export", "model_retraining", "--out", str(tmp_path / "given")]
            + ["--with-lambda", "lambda/query_training_status.py", "--with-glue", "glue/churn_etl.py"],
            "missing": ["export", "model_retraining", "--out", str(tmp_path / "missing")]
            + ["--with-lambda", str(tmp_path / "no_such_handler.py")],
        }
    )
    assert runs["given"].returncode == 0, runs["given"].stderr
    template = json.loads((tmp_path / "given" / "model_retraining" / "template.json").read_text())
    types = {resource["Type"] for resource in template["Resources"].values()}
    assert {"AWS::Lambda::Function", "AWS::Glue::Job"} <= types
    missing = runs["missing"]
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert f"error: --with-lambda {tmp_path / 'no_such_handler.py'}: no such file" in missing.stderr
    assert not (tmp_path / "missing").exists()


def test_the_exception_base_carries_reason_and_fix():
    from exporters.aws_clients import AwsCommandError
    from exporters.deploy import DeployError, NotDeployed
    from exporters.errors import DagLoadError, ExporterError, ExportError, Problem
    from exporters.schedule import ScheduleError

    for cls in (ExportError, DagLoadError, ScheduleError, AwsCommandError, DeployError, NotDeployed):
        assert issubclass(cls, ExporterError), cls
    err = DeployError("state machine 'x' is not deployed", "run deploy first")
    assert (err.reason, err.fix) == ("state machine 'x' is not deployed", "run deploy first")
    assert str(err) == "state machine 'x' is not deployed\n  fix: run deploy first"
    problem = Problem("train", "no converter", "register one")
    assert str(ExportError("d", [problem])).endswith("- task 'train': no converter -> register one")


# ---------------------------------------------------------------------------
# the Python API: same verbs, plain data
# ---------------------------------------------------------------------------
API_SCRIPT = r"""
import json, sys
from exporters import export, validate, graph
definition = export("model_retraining")
problems = validate(definition)
svg = graph("model_retraining", fmt="svg")
png = graph(definition, fmt="png")
print(json.dumps({
    "export": type(definition).__name__, "states": len(definition["States"]),
    "validate": type(problems).__name__, "problems": problems,
    "svg": type(svg).__name__, "svg_ok": b"<svg" in svg and b"accuracy_check.value &lt; params.threshold" in svg,
    "png": type(png).__name__, "png_ok": png.startswith(b"\x89PNG\r\n\x1a\n"),
}))
"""


def test_api_verbs_return_dict_list_bytes():
    """``from exporters import export, validate, graph`` as a notebook would, in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", API_SCRIPT], cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {
        "export": "dict",
        "states": report["states"],
        "validate": "list",
        "problems": [],
        "svg": "bytes",
        "svg_ok": True,
        "png": "bytes",
        "png_ok": True,
    }
    assert report["states"] > 10


def test_api_export_writes_like_the_cli(tmp_path):
    from exporters.api import export

    definition = export("model_retraining", out=tmp_path)
    assert isinstance(definition, dict)
    written = tmp_path / "model_retraining" / "state_machine.asl.json"
    assert json.loads(written.read_text()) == definition
    assert written.read_text() == (ROOT / "tests" / "golden" / "model_retraining.asl.json").read_text()
    assert export("model_retraining") == definition


def test_api_validate_reports_problems_as_a_list(tmp_path):
    from exporters.api import export, validate

    definition = export("model_retraining", out=tmp_path)
    assert validate(definition) == []
    broken = json.loads(json.dumps(definition))
    broken["States"]["accuracy_check"]["Choices"] = []
    problems = validate(broken)
    assert isinstance(problems, list)
    assert any("States.accuracy_check.Choices" in p for p in problems)
    assert validate(tmp_path / "model_retraining" / "state_machine.asl.json") == []
    assert validate(str(tmp_path / "nope.json")) == [f"{tmp_path / 'nope.json'}: no such file"]


def test_api_graph_rejects_an_unknown_format():
    from exporters.api import export, graph

    with pytest.raises(ValueError):
        graph(export("model_retraining"), fmt="gif")


HELP_SCRIPT = """
import runpy, sys
sys.argv = ["exporters", *sys.argv[1:]]
try:
    runpy.run_module("exporters", run_name="__main__")
except SystemExit:
    pass
print(sorted({m.split(".")[0] for m in sys.modules} & {"airflow", "retraining"}), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--help"], ["export", "--help"], ["deploy", "--help"], ["run", "--help"]])
def test_cli_argument_parsing_imports_no_airflow(argv):
    """Importing Airflow takes seconds: only the subcommands that load a DAG pay for it, never --help."""
    result = subprocess.run(
        [sys.executable, "-c", HELP_SCRIPT, *argv], cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True
    )
    assert "usage: python -m exporters" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == "[]", result.stderr


def test_package_api_functions_are_not_shadowed_by_submodules():
    """``exporters.validate`` / ``exporters.graph`` stay the API functions once every submodule is imported."""
    importlib.import_module("exporters.validation")
    importlib.import_module("exporters.rendering")
    from exporters import graph, validate

    assert callable(graph)
    assert callable(validate) and validate({"StartAt": "a", "States": {"a": {"Type": "Succeed"}}}) == []
