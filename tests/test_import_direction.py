"""The layers point one way: authoring (retraining) <- exporter (exporters) <- UI plugin (stepfunctions_ui).

The local AWS emulator (localaws) stands beside them and imports none of them; nothing imports the UI
plugin but Airflow's plugin loader (``plugins/stepfunctions_view.py`` and the entry point); DAG files
import only the authoring package. Checked two ways: statically, every ``import`` statement of every
module (function-level ones included), and at run time, in a fresh interpreter, which of this repository's
packages are in ``sys.modules`` after importing every module of a package.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("retraining", "exporters", "stepfunctions_ui", "localaws")
# What each top-level folder of this repository may import of the others.
ALLOWED = {
    "retraining": set(),
    "exporters": {"retraining"},
    "stepfunctions_ui": {"exporters", "retraining"},
    "localaws": set(),
    "dags": {"retraining"},
    "plugins": {"stepfunctions_ui"},
    "lambda": set(),
    "glue": set(),
}


def modules_of(folder: str) -> list[Path]:
    return sorted(path for path in (ROOT / folder).rglob("*.py") if "__pycache__" not in path.parts)


def first_party_imports(path: Path) -> set[tuple[str, int]]:
    """(package, line) of every import of one of this repo's packages in ``path``, at any depth."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update((name.split(".")[0], node.lineno) for name in names if name.split(".")[0] in PACKAGES)
    return found


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_static_imports_point_one_way(folder):
    assert modules_of(folder), f"no modules under {folder}/"
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {package}"
        for path in modules_of(folder)
        for package, line in sorted(first_party_imports(path))
        if package != folder and package not in ALLOWED[folder]
    ]
    allowed = sorted(ALLOWED[folder]) or "none of this repo"
    assert not wrong, f"{folder}/ may import only {allowed}:\n" + "\n".join(wrong)


def test_the_scan_sees_function_level_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from exporters import deploy\n    import localaws.run as r\n")
    assert first_party_imports(module) == {("exporters", 2), ("localaws", 3)}


LOADED_AFTER_IMPORT = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(info.name)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[2:]))))
"""


@pytest.mark.parametrize("package", ["retraining", "exporters", "localaws"])
def test_runtime_imports_point_one_way(package):
    """Importing every module of ``package`` loads no package it must not depend on."""
    answer = subprocess.run(
        [sys.executable, "-c", LOADED_AFTER_IMPORT, package, *PACKAGES],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert answer.returncode == 0, answer.stderr[-3000:]
    loaded = set(json.loads(answer.stdout.strip().splitlines()[-1]))
    assert loaded == {package} | ALLOWED[package], f"importing all of {package} loaded {sorted(loaded)}"
