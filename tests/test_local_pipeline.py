"""``dag.test()`` of the real ``model_retraining`` DAG on the local backend: real Spark ETL, XGBoost, serving.

Scenarios run in order on one backend, as a user's successive runs would:
good data deploys; a strict threshold deploys nothing and the old model keeps
serving; a broken source fails the Glue stage and nothing downstream runs.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.local_backend import LocalBackend

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from tests import aws_doubles

    data = tmp_path_factory.mktemp("local-backend")
    server = LocalBackend(data, aws_doubles.free_port()).start()
    from localaws.churn_data import write_batch

    write_batch(server.s3_path("s3://retraining-demo/raw/churn.csv"), rows=3000, seed=11)
    yield server
    server.stop()


@pytest.fixture
def local_env(backend, monkeypatch):
    monkeypatch.setenv("RETRAINING_BACKEND", "local")
    monkeypatch.setenv("RETRAINING_LOCAL_DATA", str(backend.data_dir))
    monkeypatch.setenv("AIRFLOW_CONN_RETRAINING_LOCAL", backend.connection_json())
    monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT", raising=False)
    return backend


@pytest.fixture
def dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import ROOT

    bag = DagBag(str(ROOT / "dags"))
    dag = bag.dags["model_retraining"]
    for task in dag.tasks:
        if hasattr(task, "poll_interval"):
            task.poll_interval = 0.5
        task.retries = 0
    return dag


def _states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def _validation_rows(backend: LocalBackend) -> list[str]:
    folder = backend.s3_path("s3://retraining-demo/processed/validation/")
    rows: list[str] = []
    for file in sorted(folder.glob("*.csv")):
        rows += [line for line in file.read_text().splitlines() if line]
    return rows


def _endpoint(backend: LocalBackend) -> dict:
    return backend.client("sagemaker").describe_endpoint(EndpointName="churn-endpoint")


def test_good_data_deploys_a_serving_endpoint(local_env, dag):
    run = dag.test()
    states = _states(run)
    assert run.state == "success", states
    assert states["model_accuracy_too_low"] == "skipped"

    sagemaker = local_env.client("sagemaker")
    jobs = [p.name for p in (local_env.data_dir / "s3" / "retraining-demo" / "output").iterdir()]
    assert len(jobs) == 1 and jobs[0].startswith("churn-xgb-")
    job = sagemaker.describe_training_job(TrainingJobName=jobs[0])
    error = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}["validation:error"]
    assert 0 <= error < 0.10

    endpoint = _endpoint(local_env)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"].startswith("churn-model-")

    rows = _validation_rows(local_env)
    features = "\n".join(r.split(",", 1)[1] for r in rows[:50]).encode()
    status, body, headers = local_env.invoke("churn-endpoint", features)
    assert status == 200, body
    predictions = [float(p) for p in body.decode().split()]
    assert len(predictions) == 50 and all(0.0 <= p <= 1.0 for p in predictions)
    labels = [float(r.split(",", 1)[0]) for r in rows[:50]]
    correct = sum((p >= 0.5) == (label == 1.0) for p, label in zip(predictions, labels, strict=False))
    assert correct >= 40, "a model with validation error < 0.10 should classify most rows right"
    assert headers["x-model-name"] == endpoint["EndpointConfigName"]


def test_strict_threshold_deploys_nothing_and_old_model_keeps_serving(local_env, dag):
    before = _endpoint(local_env)
    assert before["EndpointStatus"] == "InService", "runs after the good-data scenario"

    run = dag.test(run_conf={"threshold": 0.0001})
    states = _states(run)
    assert run.state == "failed"
    assert states["accuracy_check"] == "success"
    assert states["model_accuracy_too_low"] == "failed"
    for task in ("create_model", "create_endpoint_config", "update_endpoint"):
        assert states[task] == "skipped"

    after = _endpoint(local_env)
    assert after["EndpointConfigName"] == before["EndpointConfigName"]
    row = _validation_rows(local_env)[0].split(",", 1)[1].encode()
    status, _, headers = local_env.invoke("churn-endpoint", row)
    assert status == 200 and headers["x-model-name"] == before["EndpointConfigName"]


def test_broken_source_fails_the_glue_stage_and_nothing_downstream_runs(local_env, dag):
    broken = local_env.s3_path("s3://retraining-demo/raw/broken.csv")
    broken.write_text("State,Account Length\n")  # wrong header, no rows
    jobs_before = set((local_env.data_dir / "s3" / "retraining-demo" / "output").iterdir())

    run = dag.test(run_conf={"s3_source": "s3://retraining-demo/raw/broken.csv"})
    states = _states(run)
    assert run.state == "failed"
    assert states["extract_transform_load"] == "failed"
    for task in ("train_model", "check_metrics", "accuracy_check", "create_model", "update_endpoint"):
        assert states[task] == "upstream_failed", (task, states)
    assert set((local_env.data_dir / "s3" / "retraining-demo" / "output").iterdir()) == jobs_before

    glue = local_env.client("glue")
    logs = sorted((local_env.data_dir / "logs" / "glue").glob("*.log"), key=lambda p: p.stat().st_mtime)
    run_id = logs[-1].stem
    job_run = glue.get_job_run(JobName="churn-etl", RunId=run_id)["JobRun"]
    assert job_run["JobRunState"] == "FAILED"
    assert "broken.csv" in job_run["ErrorMessage"]


def test_endpoint_status_page_and_ping(local_env):
    with urllib.request.urlopen(f"{local_env.url}/ping") as response:
        assert "churn-endpoint" in json.loads(response.read())["endpoints"]
    with urllib.request.urlopen(f"{local_env.url}/endpoints/churn-endpoint") as response:
        assert b"InService" in response.read()
