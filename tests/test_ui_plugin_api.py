"""The Step Functions view plugin through Airflow's own API server app (FastAPI test client).

Real parts: Airflow's ``create_app`` with the plugin loaded from ``plugins/``, the Simple auth
manager's users, tokens and roles (``/auth/token``), DAGs serialized into the session's DB as the
DAG processor does, the CLI (``python -m exporters``) as the reference for what the view must
show, a moto server for the deployed comparison and for a real run whose console links the
public task-instance links API returns.

The Simple auth manager has no per-DAG permissions (every role reads every DAG), so the users
without access to a DAG come from ``RestrictedAuthManager`` below: the Simple auth manager with
two extra users whose DAG access it refuses. Everything else (login, tokens, roles) is the Simple
auth manager's own.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

from tests.conftest import RETRAINING_TASK_IDS, ROOT

VIEW = "/stepfunctions"
DAG_ID = "model_retraining"
BAD_DAG = "ui_not_exportable"
GONE_DAG = "ui_file_deleted"
HOSTILE_DAG = "ui_hostile_names"
PASSWORDS = {"admin": "admin-pw", "viewer": "viewer-pw", "outsider": "outsider-pw", "limited": "limited-pw"}
CHOICE_RULE = "accuracy_check.value &lt; params.threshold"
SECRET = "wJalrXUtnFEMI-K7MDENG-not-a-real-secret"


class RestrictedAuthManager(SimpleAuthManager):
    """Simple auth manager, except: ``outsider`` may read no DAG, ``limited`` may not read ``ui_not_exportable``."""

    def is_authorized_dag(self, *, method, user, access_entity=None, details=None):
        if user.username == "outsider":
            return False
        if user.username == "limited" and details is not None and details.id == BAD_DAG:
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)


NOT_EXPORTABLE = f'''
import datetime
from airflow.sdk import DAG
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from retraining import GlueJobRunOperator, ParamRef


def tidy(**_):
    return None


with DAG("{BAD_DAG}", schedule=None, start_date=datetime.datetime(2026, 1, 1), params={{"glue_job_name": "etl"}}):
    etl = GlueJobRunOperator(task_id="etl", job_name=ParamRef("glue_job_name"))
    clean = PythonOperator(task_id="tidy_up", python_callable=tidy)
    notify = BashOperator(task_id="notify", bash_command="echo done")
    etl >> clean >> notify
'''

HOSTILE = f'''
import datetime
from airflow.sdk import DAG
from retraining import (FailRunOperator, LambdaInvokeOperator, MetricChoiceOperator, MetricRule,
                        ParamRef, ResultRef)

with DAG("{HOSTILE_DAG}", schedule=None, start_date=datetime.datetime(2026, 1, 1), params={{"fn": "f"}}):
    check = LambdaInvokeOperator(task_id="check", function_name=ParamRef("fn"), payload={{}})
    choose = MetricChoiceOperator(task_id="choose", rule=MetricRule(
        metrics=ResultRef("check", "metrics"), metric="<script>alert(1)</script>", comparison="<",
        threshold=0.5, if_true="ok", if_false="bad"))
    ok = FailRunOperator(task_id="ok", error="<img src=x onerror=alert(2)>", cause="c")
    bad = FailRunOperator(task_id="bad", error="Bad", cause="c")
    check >> choose >> [ok, bad]
'''

GONE = f'''
import datetime
from airflow.sdk import DAG
from retraining import GlueJobRunOperator

with DAG("{GONE_DAG}", schedule=None, start_date=datetime.datetime(2026, 1, 1)):
    GlueJobRunOperator(task_id="etl", job_name="etl")
'''


@pytest.fixture(scope="module")
def ui(airflow_db, tmp_path_factory):
    """Airflow's API server app with the plugin, users admin/viewer (Simple roles) and outsider/limited."""
    home = tmp_path_factory.mktemp("ui-auth")
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    dags = tmp_path_factory.mktemp("ui-dags")
    (dags / f"{BAD_DAG}.py").write_text(NOT_EXPORTABLE)
    (dags / f"{HOSTILE_DAG}.py").write_text(HOSTILE)
    (dags / f"{GONE_DAG}.py").write_text(GONE)

    with pytest.MonkeyPatch.context() as env:
        env.setenv("AIRFLOW__CORE__AUTH_MANAGER", f"{__name__}.RestrictedAuthManager")
        env.setenv(
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin,viewer:viewer,outsider:viewer,limited:viewer"
        )
        env.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
        env.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
        env.delenv("AIRFLOW_CONN_AWS_DEFAULT", raising=False)
        # Store a re-parsed DAG at once (Airflow's default skips writes within 30 s of the last one).
        env.setenv("AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL", "0")

        from airflow.api_fastapi.app import create_app, purge_cached_app
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
        from fastapi.testclient import TestClient

        from stepfunctions_ui import aws, service

        DagBundlesManager().sync_bundles_to_db()
        for folder in (ROOT / "dags", dags):
            bag = DagBag(str(folder))
            assert not bag.import_errors, bag.import_errors
            sync_bag_to_db(bag, "dags-folder", None)
        (dags / f"{GONE_DAG}.py").unlink()  # Airflow still knows the DAG; its file is gone
        service.CACHE.clear()
        aws.clear_cache()
        purge_cached_app()
        with TestClient(create_app("core")) as client:
            client.dags_folder = dags
            client.tokens = {user: _token(client, user) for user in PASSWORDS}
            yield client
        purge_cached_app()


def _token(client, user: str) -> str:
    answer = client.post("/auth/token", json={"username": user, "password": PASSWORDS[user]})
    assert answer.status_code == 201, answer.text
    return answer.json()["access_token"]


def get(client, path: str, user: str | None = None, **kwargs):
    headers = dict(kwargs.pop("headers", {}))
    if user:
        headers["Authorization"] = f"Bearer {client.tokens[user]}"
    return client.get(path, headers=headers, follow_redirects=False, **kwargs)


def dag_routes(dag_id: str) -> list[str]:
    return [
        f"{VIEW}/dags/{dag_id}",
        f"{VIEW}/dags/{dag_id}/definition.json",
        f"{VIEW}/dags/{dag_id}/template.json",
        f"{VIEW}/dags/{dag_id}/graph.svg",
        f"{VIEW}/dags/{dag_id}/deployed",
        f"{VIEW}/api/dags/{dag_id}",
        f"{VIEW}/api/dags/{dag_id}/deployed",
    ]


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT)])}
    return subprocess.run(
        [sys.executable, "-m", "exporters", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


# -- the plugin is registered -------------------------------------------------------------
def test_plugin_registers_the_app_a_dag_tab_and_a_menu_entry(ui):
    plugins = {p["name"]: p for p in get(ui, "/api/v2/plugins", "admin").json()["plugins"]}
    plugin = plugins["stepfunctions_view"]
    assert plugin["fastapi_apps"][0]["url_prefix"] == VIEW
    # The admission gate sits in front of Airflow's router, on the app that serves these requests.
    assert [m["name"] for m in plugin["fastapi_root_middlewares"]] == ["Step Functions view admission"]
    from stepfunctions_ui.admission import AdmissionMiddleware

    assert any(m.cls is AdmissionMiddleware and m.kwargs == {"prefix": VIEW} for m in ui.app.user_middleware)
    views = {v["destination"]: v for v in plugin["external_views"]}
    assert views["dag"]["name"] == "Step Functions" and views["dag"]["href"] == "stepfunctions/dags/{DAG_ID}"
    assert views["nav"]["href"] == "stepfunctions/" and views["nav"]["category"] == "browse"
    assert get(ui, "/api/v2/plugins/importErrors", "admin").json()["import_errors"] == []


# -- authentication -----------------------------------------------------------------------
@pytest.mark.parametrize("path", [f"{VIEW}/", f"{VIEW}/api/dags", f"{VIEW}/static/icon.svg", *dag_routes(DAG_ID)])
def test_every_route_needs_authentication(ui, path):
    answer = get(ui, path)
    assert answer.status_code == 401, (path, answer.status_code, answer.text[:200])
    assert "States" not in answer.text and "extract_transform_load" not in answer.text
    expired = get(ui, path, headers={"Authorization": "Bearer not-a-token"})
    assert expired.status_code in (401, 403) and "extract_transform_load" not in expired.text


def test_a_browser_without_session_is_sent_to_the_login_page(ui):
    answer = get(ui, f"{VIEW}/dags/{DAG_ID}", headers={"Accept": "text/html,application/xhtml+xml"})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/auth/login?next=%2Fstepfunctions%2Fdags%2F{DAG_ID}"
    # The piece of HTML the page fetches is never answered with the login page.
    fragment = get(ui, f"{VIEW}/dags/{DAG_ID}/deployed", headers={"Accept": "text/html"})
    assert fragment.status_code == 401 and "<html" not in fragment.text


def test_the_ui_session_cookie_is_accepted(ui):
    ui.cookies.set("_token", ui.tokens["viewer"])
    try:
        assert get(ui, f"{VIEW}/dags/{DAG_ID}").status_code == 200
    finally:
        ui.cookies.clear()


# -- authorisation ------------------------------------------------------------------------
@pytest.mark.parametrize("path", dag_routes(DAG_ID))
def test_a_user_without_read_access_to_the_dag_gets_403_and_no_export(ui, path):
    answer = get(ui, path, "outsider")
    assert answer.status_code == 403, (path, answer.text[:300])
    assert "extract_transform_load" not in answer.text and "States" not in answer.text


def test_the_overview_lists_only_the_dags_a_user_may_read(ui):
    assert get(ui, f"{VIEW}/api/dags", "outsider").json() == {"dags": [], "total_entries": 0}
    page = get(ui, f"{VIEW}/", "outsider")
    assert page.status_code == 200 and DAG_ID not in page.text
    limited = {row["dag_id"] for row in get(ui, f"{VIEW}/api/dags", "limited").json()["dags"]}
    assert DAG_ID in limited and BAD_DAG not in limited
    assert get(ui, f"{VIEW}/dags/{BAD_DAG}", "limited").status_code == 403
    assert get(ui, f"{VIEW}/dags/{DAG_ID}", "limited").status_code == 200


def test_the_viewer_role_reads_the_view(ui):
    assert get(ui, f"{VIEW}/dags/{DAG_ID}", "viewer").status_code == 200
    assert get(ui, f"{VIEW}/dags/{DAG_ID}/definition.json", "viewer").status_code == 200


# -- DAG ids in URLs ----------------------------------------------------------------------
def test_an_unknown_dag_is_a_404_with_a_message(ui):
    page = get(ui, f"{VIEW}/dags/no_such_dag", "admin")
    assert page.status_code == 404
    assert "No DAG &#39;no_such_dag&#39; in Airflow" in page.text
    api = get(ui, f"{VIEW}/api/dags/no_such_dag", "admin")
    assert api.status_code == 404 and api.json()["detail"].startswith("No DAG 'no_such_dag' in Airflow")


@pytest.mark.parametrize(
    ("raw_path", "status"),
    [
        (f"{VIEW}/dags/%2e%2e", 400),  # ".." as the id
        (f"{VIEW}/dags/%2e", 400),
        (f"{VIEW}/dags/..%2F..%2Fetc%2Fpasswd", 404),  # decoded slashes: no route matches
        (f"{VIEW}/dags/a%20b", 400),
        (f"{VIEW}/dags/%3Cscript%3E", 400),
        (f"{VIEW}/dags/{'x' * 300}", 400),
        (f"{VIEW}/api/dags/..%5C..%5Cwin.ini", 400),
    ],
)
def test_path_tricks_are_rejected(ui, raw_path, status):
    answer = get(ui, raw_path, "admin")
    assert answer.status_code == status, (raw_path, answer.text[:300])
    assert "root:" not in answer.text and "<script>" not in answer.text


# -- the view of the retraining DAG -------------------------------------------------------
def test_the_view_shows_the_graph_with_every_stage_and_the_choice_rule(ui):
    page = get(ui, f"{VIEW}/dags/{DAG_ID}", "admin")
    assert page.status_code == 200
    html = page.text
    svg = html[html.index("<svg") : html.index("</svg>")]
    for task_id in RETRAINING_TASK_IDS:
        assert f">{task_id}</text>" in svg, task_id
    assert CHOICE_RULE in svg
    assert 'data-status="exportable"' in html and ">Exportable<" in html
    assert "Acquire run slot" in svg  # max_active_runs=1: the run-slot guard
    assert "<script>alert" not in html and "<?xml" not in html


def test_the_graph_is_the_cli_rendering(ui, tmp_path):
    done = cli("graph", DAG_ID, "--format", "svg", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    from stepfunctions_ui.service import inline_svg

    expected = inline_svg((tmp_path / DAG_ID / "state_machine.svg").read_text())
    answer = get(ui, f"{VIEW}/dags/{DAG_ID}/graph.svg", "admin")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("image/svg+xml")
    assert answer.text == expected
    assert expected in get(ui, f"{VIEW}/dags/{DAG_ID}", "admin").text


def test_the_definition_download_is_byte_for_byte_the_cli_export(ui, tmp_path):
    done = cli("export", DAG_ID, "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    answer = get(ui, f"{VIEW}/dags/{DAG_ID}/definition.json", "admin")
    assert answer.status_code == 200
    assert answer.headers["content-disposition"] == f'attachment; filename="{DAG_ID}.asl.json"'
    assert answer.content == (tmp_path / DAG_ID / "state_machine.asl.json").read_bytes()
    api = get(ui, f"{VIEW}/api/dags/{DAG_ID}", "admin").json()
    assert api["exportable"] is True and api["problems"] == []
    assert api["definition"] == json.loads(answer.content)
    assert api["stages"][0] == {"task_id": "extract_transform_load", "states": ["extract_transform_load"]}


def test_the_cloudformation_template_downloads_or_says_it_is_unavailable(ui):
    api = get(ui, f"{VIEW}/api/dags/{DAG_ID}", "admin").json()
    answer = get(ui, f"{VIEW}/dags/{DAG_ID}/template.json", "admin")
    page = get(ui, f"{VIEW}/dags/{DAG_ID}", "admin").text
    try:
        import exporters.cloudformation  # noqa: F401
    except ImportError:
        assert api["template_available"] is False
        assert api["template_note"] == "CloudFormation template: not available in this version"
        assert answer.status_code == 404 and answer.json()["detail"] == api["template_note"]
        assert api["template_note"] in page
    else:
        assert api["template_available"] is True, api["template_note"]
        assert answer.status_code == 200
        template = answer.json()
        assert "Resources" in template
        assert answer.headers["content-disposition"] == f'attachment; filename="{DAG_ID}.cfn.json"'
        assert 'id="download-template"' in page


# -- a DAG that cannot be exported --------------------------------------------------------
def test_a_non_exportable_dag_lists_every_offending_task_as_the_cli_does(ui):
    done = cli("export", BAD_DAG, "--dags-folder", str(ui.dags_folder), "--out", "/nonexistent")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    headline = lines[0].removeprefix("error: ")
    reported = [line.removeprefix("  - ") for line in lines[1:]]
    assert len(reported) == 2 and any("tidy_up" in r for r in reported) and any("notify" in r for r in reported)

    api = get(ui, f"{VIEW}/api/dags/{BAD_DAG}", "admin").json()
    assert api["status"] == "not-exportable" and api["exportable"] is False
    assert api["headline"] == headline
    assert api["problems"] == reported
    assert api["definition"] is None

    from markupsafe import escape

    page = get(ui, f"{VIEW}/dags/{BAD_DAG}", "admin")
    assert page.status_code == 200 and ">Not exportable<" in page.text
    for problem in reported:
        assert f"<li>{escape(problem)}</li>" in page.text
    assert "<svg" not in page.text and "no graph: the DAG cannot be exported" in page.text
    assert "Traceback" not in page.text
    download = get(ui, f"{VIEW}/dags/{BAD_DAG}/definition.json", "admin")
    assert download.status_code == 409 and reported[0] in download.json()["detail"]


def test_the_overview_says_which_dags_export(ui):
    rows = {row["dag_id"]: row for row in get(ui, f"{VIEW}/api/dags", "admin").json()["dags"]}
    assert rows[DAG_ID]["exportable"] is True and rows[DAG_ID]["states"] > 7
    assert rows[BAD_DAG]["exportable"] is False and rows[BAD_DAG]["problems"] == 2
    assert rows[GONE_DAG]["status"] == "exportable"  # its file is gone; Airflow's stored version is not
    page = get(ui, f"{VIEW}/", "admin").text
    assert f'href="{VIEW}/dags/{DAG_ID}"' in page
    assert f'data-dag-id="{BAD_DAG}" data-status="not-exportable"' in page


def test_a_dag_whose_file_is_gone_still_shows_the_version_airflow_stored(ui):
    page = get(ui, f"{VIEW}/dags/{GONE_DAG}", "admin")
    assert page.status_code == 200 and ">Exportable<" in page.text and "Traceback" not in page.text
    assert "Exported from DAG version 1" in page.text
    api = get(ui, f"{VIEW}/api/dags/{GONE_DAG}", "admin").json()
    assert api["version"] == 1 and api["definition"]["States"]["etl"]["Parameters"]["JobName"] == "etl"


def test_names_from_the_dag_are_escaped(ui):
    page = get(ui, f"{VIEW}/dags/{HOSTILE_DAG}", "admin")
    assert page.status_code == 200, page.text[:300]
    assert "<script>alert(1)" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(1)" in page.text  # shown, as text


# -- the export cache ---------------------------------------------------------------------
def _reparse(ui, path) -> None:
    """What the DAG processor does when it sees the file changed: parse it, store the new version."""
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    bag = DagBag(str(path))
    assert not bag.import_errors, bag.import_errors
    sync_bag_to_db(bag, "dags-folder", None)


def test_the_view_shows_the_stored_version_until_the_dag_processor_reparses(ui):
    from stepfunctions_ui import service

    path = ui.dags_folder / f"{BAD_DAG}.py"
    first = get(ui, f"{VIEW}/api/dags/{BAD_DAG}", "admin").json()
    builds = service.CACHE.builds
    for _ in range(3):
        assert get(ui, f"{VIEW}/dags/{BAD_DAG}", "admin").status_code == 200
    assert service.CACHE.builds == builds  # warm: nothing rebuilt
    original = path.read_text()
    try:
        # The file changes (a task is renamed): the API server never reads it, the view is unchanged.
        path.write_text(original.replace('task_id="notify"', 'task_id="notify_changed"'))
        after_edit = get(ui, f"{VIEW}/api/dags/{BAD_DAG}", "admin").json()
        assert after_edit == first and service.CACHE.builds == builds
        assert "notify_changed" not in get(ui, f"{VIEW}/dags/{BAD_DAG}", "admin").text
        # The DAG processor re-parses it: a new DAG version, built once.
        _reparse(ui, path)
        reparsed = get(ui, f"{VIEW}/api/dags/{BAD_DAG}", "admin").json()
        # Without runs on it, Airflow updates the stored version in place (same number, new hash).
        assert reparsed["version"] >= first["version"] and reparsed["dag_hash"] != first["dag_hash"]
        assert any("notify_changed" in p for p in reparsed["problems"])
        assert service.CACHE.builds == builds + 1
        get(ui, f"{VIEW}/dags/{BAD_DAG}", "admin")
        assert service.CACHE.builds == builds + 1
    finally:
        path.write_text(original)
        _reparse(ui, path)


def test_a_build_that_hangs_is_killed_and_says_so_while_other_dags_answer(ui, monkeypatch, tmp_path):
    """A compile that never ends runs in its own child process: killed at the bound, the view says so, others answer."""
    from stepfunctions_ui import service

    started = tmp_path / "hung-build-pid"
    real_export = service.export_view

    def export_hanging_on_one_dag(dag):  # runs in a build process (forked from here: it inherits the patch)
        if dag.dag_id == HOSTILE_DAG:
            (tmp_path / "pid.tmp").write_text(str(os.getpid()))
            os.replace(tmp_path / "pid.tmp", started)  # whole, at once: the test reads it as soon as it exists
            time.sleep(3600)
        return real_export(dag)

    monkeypatch.setattr(service, "export_view", export_hanging_on_one_dag)
    monkeypatch.setattr(service, "BUILD_SECONDS", 10.0)
    cache = service.ExportCache()  # empty; its build processes are forked after the patch
    monkeypatch.setattr(service, "CACHE", cache)
    hung: dict = {}
    waiting = threading.Thread(target=lambda: hung.update(page=get(ui, f"{VIEW}/dags/{HOSTILE_DAG}", "viewer")))
    try:
        waiting.start()
        while not started.exists():
            assert waiting.is_alive(), hung
            time.sleep(0.1)
        pid = int(started.read_text())
        # While that build hangs, another DAG's view is built and answers with its export.
        other = get(ui, f"{VIEW}/api/dags/{GONE_DAG}", "viewer")
        assert other.status_code == 200 and other.json()["exportable"] is True
        assert waiting.is_alive()  # the hung build's request was still waiting when the other answered
        waiting.join(timeout=120)
        page = hung["page"]
        assert page.status_code == 200 and 'data-status="load-error"' in page.text, page.text[:500]
        assert f"The export of DAG &#39;{HOSTILE_DAG}&#39; (version 1" in page.text
        assert "could not be built: stopped after 10 s" in page.text and "Traceback" not in page.text
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # killed and reaped
        # The answer is kept (no rebuild on every request) and the JSON route says the same.
        builds = cache.builds
        api = get(ui, f"{VIEW}/api/dags/{HOSTILE_DAG}", "viewer").json()
        assert api["status"] == "load-error" and "stopped after 10 s" in api["load_error"]
        assert cache.builds == builds
    finally:
        waiting.join(timeout=120)
        cache.stop()


def spin_forever() -> None:
    while True:
        pass


def test_a_build_is_bounded_by_the_cpu_it_uses_not_by_the_time_it_waits():
    """A busy machine may keep a niced build waiting for the CPU: only CPU used (or a stuck build) ends it."""
    from stepfunctions_ui import service

    process = service.BuildProcess()
    try:
        # Sleeping uses no CPU: 2 s of waiting is within a 0.5 s CPU bound, and the process answers.
        assert process.run(time.sleep, 2, timeout=60, cpu_limit=0.5) is None
        spinner = process.run(os.getpid, timeout=60)
        with pytest.raises(service.ChildFailed, match=r"stopped after using 1 s of CPU"):
            process.run(spin_forever, timeout=60, cpu_limit=1)
        with pytest.raises(ProcessLookupError):
            os.kill(spinner, 0)  # killed and reaped
        assert process.run(os.getpid, timeout=60) not in (spinner, os.getpid())  # a new one takes the next build
        with pytest.raises(service.ChildFailed, match=r"stopped after 1 s"):  # stuck: the wall-clock bound
            process.run(time.sleep, 30, timeout=1, cpu_limit=60)
    finally:
        process.stop()


def test_a_build_process_killed_while_idle_is_replaced_for_the_next_build():
    from stepfunctions_ui import service

    process = service.BuildProcess()
    try:
        first = process.run(os.getpid, timeout=60)
        assert first != os.getpid()
        os.kill(first, signal.SIGKILL)  # e.g. the kernel's OOM killer, between two builds
        while Path(f"/proc/{first}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            time.sleep(0.05)
        second = process.run(os.getpid, timeout=60)
        assert second not in (first, os.getpid())
        with pytest.raises(service.ChildFailed, match="ZeroDivisionError"):  # its own error, by name
            process.run(divmod, 1, 0, timeout=60)
        assert process.run(os.getpid, timeout=60) == second  # an error in a build does not end the process
    finally:
        process.stop()


def test_a_connection_the_server_closes_is_closed_though_a_build_process_was_forked_meanwhile():
    from stepfunctions_ui import service

    server_end, client_end = socket.socketpair()
    process = service.BuildProcess()
    try:
        assert process.run(os.getpid, timeout=60) != os.getpid()  # forked while the connection is open
        server_end.close()
        client_end.settimeout(30)
        assert client_end.recv(1) == b""  # the client sees the close: the build process kept no copy
    finally:
        process.stop()
        client_end.close()


# -- the comparison with what is deployed -------------------------------------------------
def deployed(ui, user: str = "admin") -> dict:
    """The comparison's answer once AWS answered ("pending" is a first answer while AWS is slower than 3 s)."""
    deadline = time.monotonic() + 30
    while True:
        answer = get(ui, f"{VIEW}/api/dags/{DAG_ID}/deployed", user)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        if body["state"] != "pending" or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def test_without_an_aws_connection_the_view_says_not_connected(ui, monkeypatch):
    from stepfunctions_ui import aws

    monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT", raising=False)
    aws.clear_cache()
    answer = deployed(ui)
    assert answer["state"] == "not-connected"
    assert "no Airflow connection 'aws_default'" in answer["message"]
    fragment = get(ui, f"{VIEW}/dags/{DAG_ID}/deployed", "admin").text
    assert "Not connected" in fragment


def _silent_server() -> tuple[socket.socket, int]:
    """A TCP port that accepts connections and never answers (a blackholed AWS)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return server, server.getsockname()[1]


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_unreachable_aws_answers_quickly_and_shows_no_secret(ui, monkeypatch, kind):
    from stepfunctions_ui import aws

    server = None
    if kind == "silent":
        server, port = _silent_server()
    else:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]  # closed once we leave: connection refused
    connection = {
        "conn_type": "aws",
        "login": "AKIAEXAMPLEKEYID",
        "password": SECRET,
        "extra": {
            "region_name": "eu-west-1",
            "endpoint_url": f"http://127.0.0.1:{port}",
            "aws_session_token": SECRET + "-token",
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
    aws.clear_cache()
    try:
        # An answer without waiting for AWS: "unreachable", or "pending" while it is silent (no wall-clock
        # assertion: on a loaded machine the request's own work stretches past the 3 s bound).
        answer = get(ui, f"{VIEW}/api/dags/{DAG_ID}/deployed", "admin")
        assert answer.status_code == 200
        assert answer.json()["state"] in ("unreachable", "pending"), answer.json()
        body = deployed(ui)
        assert body["state"] == "unreachable", body
        assert body["region"] == "eu-west-1" and "AWS is unreachable" in body["message"]
        responses = [answer.text] + [
            get(ui, p, "admin").text for p in dag_routes(DAG_ID) if not p.endswith("template.json")
        ]
        responses.append(get(ui, f"{VIEW}/", "admin").text)
        for text in responses:
            assert SECRET not in text and "AKIAEXAMPLEKEYID" not in text and f"127.0.0.1:{port}" not in text
            assert "Traceback" not in text
    finally:
        if server is not None:
            server.close()
        aws.clear_cache()


def test_the_deployed_definition_is_compared_with_the_export(ui, aws):
    from stepfunctions_ui import aws as compare

    compare.clear_cache()
    definition = get(ui, f"{VIEW}/dags/{DAG_ID}/definition.json", "admin").text
    role = aws.create_role("StatesRole")
    sfn = aws.client("stepfunctions")

    assert deployed(ui)["state"] == "not-deployed"

    arn = sfn.create_state_machine(name=DAG_ID, definition=definition, roleArn=role)["stateMachineArn"]
    compare.clear_cache()
    answer = deployed(ui)
    assert answer["state"] == "in-sync", answer
    assert answer["region"] == "us-east-1" and answer["diff"] == ""

    changed = json.loads(definition)
    changed["States"]["accuracy_check"]["Choices"][-1]["Next"] = "model_accuracy_too_low"  # the rule itself
    sfn.update_state_machine(stateMachineArn=arn, definition=json.dumps(changed))
    compare.clear_cache()
    answer = deployed(ui)
    assert answer["state"] == "drift", answer
    assert '-          "Next": "model_accuracy_too_low"' in answer["diff"]
    assert '+          "Next": "create_model"' in answer["diff"]
    fragment = get(ui, f"{VIEW}/dags/{DAG_ID}/deployed", "admin").text
    assert "Drift" in fragment and 'id="deployed-diff"' in fragment
    compare.clear_cache()


# -- operator extra links -----------------------------------------------------------------
class _Key:
    dag_id, task_id, run_id, map_index = DAG_ID, "t", "r", -1


@pytest.fixture
def dag_tasks():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(ROOT / "dags")).dags[DAG_ID].task_dict


@pytest.mark.parametrize(
    ("task_id", "result", "expected"),
    [
        (
            "extract_transform_load",
            {"JobName": "churn-etl", "JobRunId": "jr_0123", "JobRunState": "SUCCEEDED"},
            "https://console.aws.amazon.com/gluestudio/home?region=eu-central-1#/job/churn-etl/run/jr_0123",
        ),
        (
            "train_model",
            {"TrainingJobName": "churn-xgb-1"},
            "https://console.aws.amazon.com/sagemaker/home?region=eu-central-1#/jobs/churn-xgb-1",
        ),
        (
            "create_model",
            {"ModelName": "churn-model-1"},
            "https://console.aws.amazon.com/sagemaker/home?region=eu-central-1#/models/churn-model-1",
        ),
        (
            "update_endpoint",
            {"EndpointName": "churn-endpoint"},
            "https://console.aws.amazon.com/sagemaker/home?region=eu-central-1#/endpoints/churn-endpoint",
        ),
    ],
)
def test_console_links_use_the_task_result_and_the_connections_region(
    monkeypatch, dag_tasks, task_id, result, expected
):
    from retraining import links

    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws", "extra": {"region_name": "eu-central-1"}})
    )
    monkeypatch.setenv("RETRAINING_BACKEND", "auto")
    monkeypatch.setattr(links, "task_result", lambda ti_key: result)
    (link,) = dag_tasks[task_id].operator_extra_links
    assert link.get_link(dag_tasks[task_id], ti_key=_Key()) == expected


def test_console_links_in_china_use_the_china_console(monkeypatch, dag_tasks):
    from retraining import links

    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws", "extra": {"region_name": "cn-north-1"}})
    )
    monkeypatch.setattr(links, "task_result", lambda ti_key: {"ModelName": "m"})
    (link,) = dag_tasks["create_model"].operator_extra_links
    assert (
        link.get_link(dag_tasks["create_model"], ti_key=_Key())
        == "https://console.amazonaws.cn/sagemaker/home?region=cn-north-1#/models/m"
    )


def test_local_backend_runs_link_the_endpoint_to_its_local_status_page(monkeypatch, dag_tasks):
    from retraining import links

    monkeypatch.setenv("RETRAINING_BACKEND", "local")
    monkeypatch.setenv(
        "AIRFLOW_CONN_RETRAINING_LOCAL",
        json.dumps({"conn_type": "aws", "extra": {"endpoint_url": "http://127.0.0.1:4777"}}),
    )
    monkeypatch.setattr(links, "task_result", lambda ti_key: {"EndpointName": "churn-endpoint", "ModelName": "m"})
    (endpoint,) = dag_tasks["update_endpoint"].operator_extra_links
    assert (
        endpoint.get_link(dag_tasks["update_endpoint"], ti_key=_Key())
        == "http://127.0.0.1:4777/endpoints/churn-endpoint"
    )
    (model,) = dag_tasks["create_model"].operator_extra_links
    assert model.get_link(dag_tasks["create_model"], ti_key=_Key()) == ""  # no local page for models


def test_a_real_run_shows_console_links_on_its_task_instances(ui, aws):
    """``dag.test()`` on moto: the worker stores each link; the public links API (what the UI calls) returns it."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(str(ROOT / "dags")).dags[DAG_ID]
    for task in dag.tasks:
        if hasattr(task, "poll_interval"):
            task.poll_interval = 0.05
        task.retries = 0
    aws.create_glue_job("churn-etl")
    aws.create_metric_function("query-training-status")
    aws.client("s3").create_bucket(Bucket="retraining-demo")
    role = aws.create_role()
    run = dag.test(run_conf={"sagemaker_role_arn": role})
    assert run.state == "success"

    def links(task_id: str) -> dict[str, str | None]:
        answer = get(ui, f"/api/v2/dags/{DAG_ID}/dagRuns/{run.run_id}/taskInstances/{task_id}/links", "viewer")
        assert answer.status_code == 200, answer.text
        return answer.json()["extra_links"]

    console = "https://console.aws.amazon.com"
    glue = links("extract_transform_load")["AWS Glue job run"]
    assert glue.startswith(f"{console}/gluestudio/home?region=us-east-1#/job/churn-etl/run/")
    training = links("train_model")["SageMaker training job"]
    assert training.startswith(f"{console}/sagemaker/home?region=us-east-1#/jobs/churn-xgb-")
    model = links("create_model")["SageMaker model"]
    assert model.startswith(f"{console}/sagemaker/home?region=us-east-1#/models/churn-model-")
    assert (
        links("update_endpoint")["SageMaker endpoint"]
        == f"{console}/sagemaker/home?region=us-east-1#/endpoints/churn-endpoint"
    )
    assert (
        links("check_metrics")["Lambda function"]
        == f"{console}/lambda/home?region=us-east-1#/functions/query-training-status"
    )
    assert links("accuracy_check") == {}


# -- one front end: the view's export is the CLI's, byte for byte ------------------------------
def test_every_corpus_dag_exports_from_airflows_stored_form_as_the_cli_exports_it(ui, tmp_path):
    """Each DAG of the test corpus, stored as the DAG processor stores it, exports in the view as the CLI does.

    Byte for byte, except where the CLI says the DAG sets a stock operator's setting Airflow does
    not store (e.g. ``check_interval``): then the view says which settings it shows as defaults.
    """
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    from exporters import serialized
    from exporters.__main__ import main as cli_main
    from exporters.api import export_view
    from exporters.converters_nested import nested_children
    from stepfunctions_ui import service
    from tests import golden_corpus

    sources = [*golden_corpus.SOURCES, *sorted((ROOT / "tests" / "export_dags" / "cfn_dags").glob("*.py"))]
    identical, lossy = [], {}
    for source in sources:
        bag = DagBag(str(source))
        assert not bag.import_errors, bag.import_errors
        sync_bag_to_db(bag, "dags-folder", None)
        for dag_id, dag in sorted(bag.dags.items()):
            with golden_corpus.team_converters(dag):
                service.CACHE.stop()  # build processes forked from now on have the team's converters registered
                parsed = serialized.load(dag)
                not_kept = parsed.not_kept_notes() if export_view(parsed) else []
                # Only stock operators (Airflow's or a provider's) have settings Airflow does not store.
                assert all(t.operator_class_paths[0].startswith("airflow.") for t in parsed.tasks if t.not_kept)
                view = get(ui, f"{VIEW}/dags/{dag_id}/definition.json", "viewer")
                template = get(ui, f"{VIEW}/dags/{dag_id}/template.json", "viewer")
                assert view.status_code == 200, (dag_id, view.text[:500])
                if not_kept:
                    assumed = [
                        w
                        for w in get(ui, f"{VIEW}/api/dags/{dag_id}", "viewer").json()["warnings"]
                        if "Airflow's serialized DAG does not keep" in w
                    ]
                    # Every task the CLI reads a setting of that Airflow does not store, the view names.
                    assert {w.split(" (")[0] for w in not_kept} <= {w.split(" (")[0] for w in assumed}, dag_id
                    lossy[dag_id] = not_kept
                    continue
                out = tmp_path / "cli"
                if cli_main(["export", dag_id, "--dags-folder", str(source), "--out", str(out)]) == 0:
                    assert view.content == (out / dag_id / "state_machine.asl.json").read_bytes(), dag_id
                    assert template.status_code == 200, (dag_id, template.text[:500])
                    # A nested pipeline's template holds its children: as stored (view) or parsed (CLI).
                    if not any(child.dag_id in lossy for child in nested_children(dag)):
                        assert template.content == (out / dag_id / "template.json").read_bytes(), dag_id
                else:  # the CLI refuses its template (custom_operator: no IAM policy for putEvents); the ASL agrees
                    assert view.text == golden_corpus.export_text(dag), dag_id
                    assert template.status_code == 404 and "could not be built" in template.json()["detail"]
            identical.append(dag_id)
    assert {"model_retraining", "long_request", "custom_operator", "aws_sdk_calls"} <= set(identical), identical
    assert "stock_operators" in lossy, lossy  # check_interval=20, operation='update'


def test_a_request_longer_than_airflows_template_field_limit_is_exported_whole(ui):
    """Airflow stores the ``request`` template field truncated; the export reads ``retraining_export``."""
    from airflow.models.serialized_dag import SerializedDagModel

    from tests.export_dags.good.long_request import ARGUMENTS

    _reparse(ui, ROOT / "tests" / "export_dags" / "good" / "long_request.py")
    assert get(ui, f"{VIEW}/dags/long_request", "admin").status_code == 200
    stored = SerializedDagModel.get_dag("long_request")
    (etl,) = stored.tasks
    assert str(etl.request).startswith("Truncated. You can change this behaviour in [core]max_templated_field_length")
    arguments = get(ui, f"{VIEW}/api/dags/long_request", "admin").json()["definition"]["States"]["etl"]["Parameters"]
    assert {k: v for k, v in arguments["Arguments"].items() if k in ARGUMENTS} == ARGUMENTS
    assert arguments["Arguments"]["--RUN_LABEL.$"] == "$.params.run_label"
    assert arguments["Arguments"]["--TRAIN.$"] == "States.Format('{}-train', $.params.run_label)"
