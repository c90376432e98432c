"""The Step Functions view lists the local executions of a DAG's machine (``exporters run --local``).

Real parts: Airflow's API server app with the plugin (Simple auth manager, a token), the retraining DAG
serialized into the session's DB, and a real ``python -m exporters run model_retraining --local`` whose
saved history the view lists (a run that fails fast: its Glue job does not exist on the local backend
the command starts and stops).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

VIEW = "/stepfunctions"
DAG_ID = "model_retraining"
PASSWORD = "admin-pw"
EXECUTION = re.compile(r"^local-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """An export dir holding one real local execution of model_retraining (FAILED: no such Glue job)."""
    from tests import aws_doubles

    out = tmp_path_factory.mktemp("ui-exports")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "RETRAINING_LOCAL_DATA": str(out / "data"),
    }
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporters",
            "run",
            DAG_ID,
            "--local",
            "--input",
            json.dumps({"glue_job_name": "no-such-job"}),
            "--out",
            str(out),
            "--backend-port",
            str(aws_doubles.free_port()),
            "--time-scale",
            "0.001",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    return out


@pytest.fixture(scope="module")
def ui(airflow_db, exports, tmp_path_factory):
    home = tmp_path_factory.mktemp("ui-local-auth")
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({"admin": PASSWORD}))
    with pytest.MonkeyPatch.context() as env:
        env.setenv(
            "AIRFLOW__CORE__AUTH_MANAGER",
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        )
        env.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
        env.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
        env.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
        env.setenv("STEPFUNCTIONS_EXPORT_DIR", str(exports))
        from airflow.api_fastapi.app import create_app, purge_cached_app
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
        from fastapi.testclient import TestClient

        from stepfunctions_ui import service

        DagBundlesManager().sync_bundles_to_db()
        sync_bag_to_db(DagBag(str(ROOT / "dags")), "dags-folder", None)
        service.CACHE.clear()
        purge_cached_app()
        with TestClient(create_app("core")) as client:
            answer = client.post("/auth/token", json={"username": "admin", "password": PASSWORD})
            assert answer.status_code == 201, answer.text
            client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
            yield client
        purge_cached_app()


def saved_histories(exports):
    """The histories ``exporters run`` saved (not files planted by the tests)."""
    return sorted(p for p in (exports / DAG_ID / "executions").glob("local-*.json") if EXECUTION.match(p.stem))


def test_the_view_lists_the_local_execution_with_a_link_to_its_history(ui, exports):
    [history_file] = saved_histories(exports)
    history = json.loads(history_file.read_text())
    name = history_file.stem

    page = ui.get(f"{VIEW}/dags/{DAG_ID}")
    assert page.status_code == 200
    assert 'id="local-executions"' in page.text
    link = f"{VIEW}/dags/{DAG_ID}/executions/{name}"
    assert f'href="{link}"' in page.text
    assert "FAILED" in page.text and "Glue.EntityNotFoundException" in page.text
    assert history["startDate"][:19].replace("T", " ") in page.text
    assert f"{history['durationSeconds']:.1f} s" in page.text

    listed = ui.get(f"{VIEW}/api/dags/{DAG_ID}/executions").json()["executions"]
    assert [(e["name"], e["status"]) for e in listed] == [(name, "FAILED")]

    served = ui.get(link)
    assert served.status_code == 200 and served.headers["content-type"].startswith("application/json")
    assert served.json() == history


@pytest.mark.parametrize(
    "name",
    ["local-20260101T000000Z-abcdef", "state_machine.asl", "..%2F..%2Fstate_machine.asl", "local-x", "%2e%2e"],
)
def test_only_saved_execution_histories_are_served(ui, exports, name):
    (exports / DAG_ID / "executions" / "local-x.json").write_text("{}")  # not a name the command writes
    answer = ui.get(f"{VIEW}/dags/{DAG_ID}/executions/{name}")
    assert answer.status_code == 404
    assert "States" not in answer.text


def test_the_history_needs_authentication(ui, exports):
    [history_file] = saved_histories(exports)
    answer = ui.get(
        f"{VIEW}/dags/{DAG_ID}/executions/{history_file.stem}", headers={"Authorization": "Bearer not-a-token"}
    )
    assert answer.status_code in (401, 403)
    assert "events" not in answer.text


def test_a_planted_link_is_neither_listed_nor_served(ui, exports):
    name = "local-20260102T000000Z-0a0b0c"
    link = exports / DAG_ID / "executions" / f"{name}.json"
    link.symlink_to(exports / DAG_ID / "state_machine.asl.json")
    try:
        assert ui.get(f"{VIEW}/dags/{DAG_ID}/executions/{name}").status_code == 404
        listed = ui.get(f"{VIEW}/api/dags/{DAG_ID}/executions").json()["executions"]
        assert name not in [e["name"] for e in listed]
        assert name not in ui.get(f"{VIEW}/dags/{DAG_ID}").text
    finally:
        link.unlink()
