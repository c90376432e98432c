"""The Step Functions view in a real browser: Airflow's API server, the Airflow UI, headless Chromium.

The test starts its own Airflow (temp ``AIRFLOW_HOME``, SQLite, a free port): ``airflow db
migrate``, ``airflow dags reserialize`` (what the DAG processor writes, done once), then
``airflow api-server`` with this repo's ``dags/`` and ``plugins/``. A Node script
(``tests/browser/stepfunctions_view.js``, ``playwright-core`` driving ``/usr/bin/chromium``; no
browser is downloaded) logs in on the Simple auth manager's login page, opens the
``model_retraining`` DAG's "Step Functions" tab, reads the graph, downloads the definition and
takes screenshots. The test checks the graph's stages and Choice, compares the download with
``python -m exporters export model_retraining``, and copies the screenshot to
``docs/screenshots/stepfunctions-view.png`` for the README.

Every process started here runs in its own process group and is stopped (SIGTERM, then SIGKILL)
at the end; every wait has a deadline. Needs ``make browser-deps`` (``make test`` runs it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_DIR = ROOT / "tests" / "browser"
DRIVER = BROWSER_DIR / "stepfunctions_view.js"
OUTPUT = ROOT / "tests" / "output" / "browser"
README_SCREENSHOT = ROOT / "docs" / "screenshots" / "stepfunctions-view.png"
DAG_ID = "model_retraining"
USER, PASSWORD = "admin", "browser-test-password"
STAGES = [
    "extract_transform_load",
    "train_model",
    "check_metrics",
    "create_model",
    "create_endpoint_config",
    "update_endpoint",
    "model_accuracy_too_low",
]
CHOICE = "accuracy_check"
CHOICE_RULE = "accuracy_check.value < params.threshold"
SERVER_START_SECONDS = 120
DRIVER_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_group(process: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``grace`` seconds."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # children that outlived their parent
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def _kill_browsers_using(profile: Path) -> None:
    """Chromium processes on our private profile dir (only ours use it), should the driver have died mid-run."""
    marker = f"--user-data-dir={profile}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _require_browser_deps() -> None:
    missing = []
    if not CHROMIUM.exists():
        missing.append(str(CHROMIUM))
    if shutil.which("node") is None:
        missing.append("node")
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        missing.append("tests/browser/node_modules/playwright-core")
    if missing:
        pytest.fail(f"browser test dependencies missing ({', '.join(missing)}): run `make browser-deps`", pytrace=False)


@pytest.fixture(scope="module")
def airflow_server(tmp_path_factory):
    """``airflow api-server`` on a free port, in a fresh Airflow home, with the DAG serialized."""
    _require_browser_deps()
    home = tmp_path_factory.mktemp("browser-airflow-home")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": "browser-test-jwt-secret-" + "x" * 40,
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join([str(ROOT)]),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        }
    )
    airflow = [sys.executable, "-m", "airflow"]
    for argv in (["db", "migrate"], ["dags", "reserialize"]):
        done = subprocess.run([*airflow, *argv], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, f"airflow {' '.join(argv)} failed:\n{done.stderr[-3000:]}"

    log_path = OUTPUT / "api-server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [*airflow, "api-server", "--port", str(port), "--host", "127.0.0.1", "--workers", "1"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while not _http_ok(f"{base}/api/v2/monitor/health"):
            if server.poll() is not None:
                pytest.fail(
                    f"airflow api-server exited ({server.returncode}); log: {log_path}\n{log_path.read_text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"airflow api-server not up after {SERVER_START_SECONDS} s; log: {log_path}")
            time.sleep(0.5)
        yield {"base": base, "env": env}
    finally:
        _stop_group(server)


def test_the_view_in_the_airflow_ui(airflow_server, tmp_path):
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    downloads = OUTPUT
    for stale in downloads.glob("downloaded-*"):
        stale.unlink()
    config = {
        "baseUrl": airflow_server["base"],
        "username": USER,
        "password": PASSWORD,
        "dagId": DAG_ID,
        "outDir": str(downloads),
        "userDataDir": str(profile),
        "executablePath": str(CHROMIUM),
        "timeoutMs": 30000,
    }
    driver = subprocess.Popen(
        ["node", str(DRIVER), json.dumps(config)],
        cwd=BROWSER_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = driver.communicate(timeout=DRIVER_SECONDS)
    except subprocess.TimeoutExpired:
        _stop_group(driver, grace=5)
        out, err = driver.communicate()
        pytest.fail(f"the browser driver did not finish within {DRIVER_SECONDS} s:\n{err[-3000:]}")
    finally:
        _stop_group(driver, grace=5)
        _kill_browsers_using(profile)
    assert driver.returncode == 0, f"browser driver failed:\n{err[-4000:]}"
    seen = json.loads(out.strip().splitlines()[-1])

    # The DAG's tab in the Airflow UI shows the plugin's page.
    assert any("Step Functions" in tab for tab in seen["tabs"]), seen["tabs"]
    assert seen["dagIdShown"] == DAG_ID and seen["status"] == "exportable"

    # The graph: the seven stages and the Choice, with its rule on an edge.
    nodes = set(seen["nodes"])
    for stage in STAGES:
        assert stage in nodes, (stage, seen["nodes"])
    assert CHOICE in nodes and "Choice" in nodes
    assert CHOICE_RULE in seen["edgeLabels"], seen["edgeLabels"]
    assert "Acquire run slot" in nodes  # max_active_runs=1: the run-slot guard

    # No AWS connection in this Airflow: the comparison says so (quickly, no hang).
    assert seen["deployedState"] == "not-connected", seen["deployedText"]
    assert "Not connected" in seen["deployedText"]

    # The downloaded definition is the CLI's export, byte for byte.
    assert seen["downloadName"] == f"{DAG_ID}.asl.json"
    cli_out = tmp_path / "cli"
    env = {**airflow_server["env"], "AIRFLOW_HOME": str(tmp_path / "cli-home")}
    done = subprocess.run(
        [sys.executable, "-m", "exporters", "export", DAG_ID, "--out", str(cli_out)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert Path(seen["downloadPath"]).read_bytes() == (cli_out / DAG_ID / "state_machine.asl.json").read_bytes()

    # The overview (Browse menu entry) lists it as exportable.
    assert seen["overviewStatus"] == "exportable"

    # Screenshots: kept under tests/output/browser/, the tab's one copied for the README.
    screenshot = Path(seen["screenshot"])
    assert screenshot.stat().st_size > 20_000
    README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(screenshot, README_SCREENSHOT)
