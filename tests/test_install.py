"""The distribution installs into a team's own Airflow: build the wheel, install it into a fresh virtualenv
holding only Airflow and the Amazon provider (versions from constraints.txt), and use it from outside this
repository (no PYTHONPATH, an empty plugins folder, a DAGs folder with a copy of the retraining DAG):

- ``airflow plugins`` lists the Step Functions view, found through the ``airflow.plugins`` entry point;
- the DAG parses (``DagBag``: no import error, every task there);
- the console script ``airflow-stepfunctions export`` writes the same bytes as ``python -m exporters export``
  run from this repository.

Slow by nature: installing Airflow into the virtualenv is most of it (figures in docs/benchmarks.md); pip
needs PyPI, the machine's package mirror or its cache. The virtualenv is built once per session, in a
temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import RETRAINING_TASK_IDS

ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "model_retraining"
PINNED = ("apache-airflow", "apache-airflow-providers-amazon")
PARSE_DAGS = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "dags": {d: [t.task_id for t in dag.tasks] for d, dag in bag.dags.items()}}))
"""
WHERE_FROM = """
import json, retraining, exporters, stepfunctions_ui
print(json.dumps([retraining.__file__, exporters.__file__, stepfunctions_ui.__file__]))
"""


def pinned_requirements() -> list[str]:
    """``name==version`` of Airflow and the provider, from constraints.txt."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() in PINNED:
            pins[name.strip().lower()] = f"{name.strip()}=={version.strip()}"
    assert set(pins) == set(PINNED), f"constraints.txt pins {sorted(pins)}"
    return [pins[name] for name in PINNED]


def run(command: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> dict[str, Path]:
    """A fresh virtualenv with Airflow, the provider and the built wheel; folders outside the repository."""
    base = tmp_path_factory.mktemp("install")
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("AIRFLOW")}
    wheels = base / "wheels"
    # The wheel, built from a clean copy of what the distribution holds: a build inside the repository
    # would leave build/ and *.egg-info there, and a stale build/lib could slip deleted modules into it.
    source = base / "source"
    for package in ("retraining", "exporters", "stepfunctions_ui"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    # pip fetches the build backend pinned in pyproject.toml.
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheels), str(source)], env=clean, cwd=base)
    (wheel,) = wheels.glob("airflow_retraining_stepfunctions-*.whl")

    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    constraints = ["-c", str(ROOT / "constraints.txt")]
    run([*pip, *pinned_requirements(), *constraints], env=clean, cwd=base, timeout=1200)
    run([*pip, str(wheel), *constraints], env=clean, cwd=base)

    dags, plugins, home = base / "dags", base / "plugins", base / "airflow-home"
    for folder in (dags, plugins, home):
        folder.mkdir()
    shutil.copy(ROOT / "dags" / f"{DAG_ID}.py", dags / f"{DAG_ID}.py")
    env = dict(
        clean,
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(plugins),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
    )
    return {"base": base, "venv": env_dir, "python": python, "wheel": wheel, "dags": dags, "env": env}


def test_the_wheel_holds_the_three_packages_and_the_templates_only(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"retraining", "exporters", "stepfunctions_ui"}
    assert any(name.startswith("stepfunctions_ui/templates/") and name.endswith(".html") for name in names)
    (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(installed["wheel"]).read(entry_points).decode()
    assert "[airflow.plugins]" in text and "stepfunctions_view = stepfunctions_ui.plugin:" in text
    assert "airflow-stepfunctions = exporters.__main__:main" in text


def test_the_packages_come_from_the_virtualenv_not_the_repository(installed):
    result = run([str(installed["python"]), "-c", WHERE_FROM], env=installed["env"], cwd=installed["base"])
    for path in json.loads(result.stdout):
        assert Path(path).is_relative_to(installed["venv"]), path


def test_airflow_lists_the_plugin_through_its_entry_point(installed):
    airflow = installed["venv"] / "bin" / "airflow"
    result = run(
        [str(airflow), "plugins", "--output", "json"], env=installed["env"], cwd=installed["base"], timeout=300
    )
    plugins = json.loads(result.stdout[result.stdout.index("[") :])
    ours = [plugin for plugin in plugins if plugin["name"] == "stepfunctions_view"]
    assert len(ours) == 1, plugins
    assert "stepfunctions_ui.plugin" in json.dumps(ours[0])


def test_the_dag_outside_the_repository_parses(installed):
    result = run(
        [str(installed["python"]), "-c", PARSE_DAGS, str(installed["dags"])],
        env=installed["env"],
        cwd=installed["base"],
        timeout=300,
    )
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == {}
    assert sorted(parsed["dags"][DAG_ID]) == sorted(RETRAINING_TASK_IDS)


def test_the_console_script_exports_the_same_bytes_as_the_repository(installed, tmp_path):
    script = installed["venv"] / "bin" / "airflow-stepfunctions"
    run([str(script), "export", DAG_ID, "--out", str(tmp_path / "installed")], env=installed["env"], cwd=tmp_path)
    repo_env = dict(os.environ, PYTHONPATH=str(ROOT))
    run(
        [sys.executable, "-m", "exporters", "export", DAG_ID, "--dags-folder", str(ROOT / "dags")]
        + ["--out", str(tmp_path / "repository")],
        env=repo_env,
        cwd=ROOT,
    )
    for name in ("state_machine.asl.json", "template.json"):
        installed_bytes = (tmp_path / "installed" / DAG_ID / name).read_bytes()
        assert installed_bytes == (tmp_path / "repository" / DAG_ID / name).read_bytes(), name


PLUGINS_AND_ERRORS = """
import json
from airflow import plugins_manager
info = plugins_manager.get_plugin_info(attrs_to_dump=["source"])
print(json.dumps({"plugins": [[p["name"], str(p["source"])] for p in info],
                  "errors": plugins_manager.get_import_errors()}))
"""


def test_the_repositorys_plugin_file_stands_aside_for_the_entry_point(installed, tmp_path):
    """Both registrations present (the repository's plugins folder and the installed wheel): loaded once, no error."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(ROOT / "plugins" / "stepfunctions_view.py", plugins / "stepfunctions_view.py")
    env = dict(installed["env"], AIRFLOW__CORE__PLUGINS_FOLDER=str(plugins))
    result = run([str(installed["python"]), "-c", PLUGINS_AND_ERRORS], env=env, cwd=installed["base"], timeout=300)
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    ours = [source for name, source in loaded["plugins"] if name == "stepfunctions_view"]
    assert len(ours) == 1 and "airflow-retraining-stepfunctions" in ours[0], loaded
    assert loaded["errors"] == {}
