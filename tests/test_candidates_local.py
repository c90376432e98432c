"""``dag.test()`` of the real ``model_retraining_candidates`` DAG on the local backend, then its export.

Real Spark ETL, one real XGBoost training job per hyperparameter set, the real
``select_best_candidate`` Lambda (run by the backend), real serving. One Airflow run, shared by the
assertions: it trained every candidate, picked the one with the lowest validation error the
backend recorded, and the endpoint serves exactly that candidate's model. Then the exported state
machine (``python -m exporters run model_retraining_candidates --local``: moto's ASL interpreter, its
Map state answered by the same backend) runs on the same data: the same candidates' metrics, the same pick.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import xgboost as xgb
from airflow.dag_processing.dagbag import DagBag
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session

from localaws.churn_data import write_batch
from tests import aws_doubles
from tests.conftest import ROOT
from tests.local_backend import LocalBackend

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DAG_ID = "model_retraining_candidates"
METRIC = "validation:error"
OUTPUT = "s3://retraining-demo/candidates/output/"
VALIDATION = "s3://retraining-demo/candidates/processed/validation/"
ENDPOINT = "churn-candidates"


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    data = tmp_path_factory.mktemp("candidates-backend")
    server = LocalBackend(data, aws_doubles.free_port()).start()
    write_batch(server.s3_path("s3://retraining-demo/raw/churn.csv"), rows=2000, seed=5)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def finished_run(backend, airflow_db):
    """One real run of the DAG against the backend (retries off, quick polling)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RETRAINING_BACKEND", "local")
        mp.setenv("RETRAINING_LOCAL_DATA", str(backend.data_dir))
        mp.setenv("AIRFLOW_CONN_RETRAINING_LOCAL", backend.connection_json())
        mp.delenv("AIRFLOW_CONN_AWS_DEFAULT", raising=False)
        bag = DagBag(str(ROOT / "dags"))
        assert not bag.import_errors, bag.import_errors
        dag = bag.dags[DAG_ID]
        for task in dag.tasks:
            task.retries = 0
            if getattr(task, "is_mapped", False):
                task.partial_kwargs["poll_interval"] = 0.5
            elif hasattr(task, "poll_interval"):
                task.poll_interval = 0.5
        run = dag.test()
    return run


def _xcom(run, task_id: str, map_index: int = -1):
    with create_session() as session:
        row = session.execute(
            XComModel.get_many(
                run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id, map_indexes=map_index, key="return_value"
            ).with_only_columns(XComModel.value)
        ).first()
    return None if row is None else XComModel.deserialize_value(row)


def _recorded_jobs(backend: LocalBackend, stem: str) -> list[dict]:
    """The training jobs the backend ran named ``<stem>-<n>`` (one run's candidates), as DescribeTrainingJob
    shows them, in candidate order."""
    sagemaker = backend.client("sagemaker")
    names = [p.name for p in backend.s3_path(OUTPUT).iterdir() if p.name.rsplit("-", 1)[0] == stem]
    names.sort(key=lambda name: int(name.rsplit("-", 1)[1]))
    return [sagemaker.describe_training_job(TrainingJobName=name) for name in names]


def _airflow_stem(run) -> str:
    """The per-run job name the Airflow run's candidates share (before ``-<map_index>``)."""
    return _xcom(run, "train_candidate", 0)["TrainingJobName"].rsplit("-", 1)[0]


def _metric(job: dict) -> float:
    return {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}[METRIC]


def _booster(backend: LocalBackend, artifact_uri: str) -> xgb.Booster:
    with tarfile.open(fileobj=io.BytesIO(backend.s3_path(artifact_uri).read_bytes()), mode="r:gz") as tar:
        raw = tar.extractfile("xgboost-model").read()
    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    return booster


def test_every_candidate_trained_with_its_own_hyperparameters(backend, finished_run):
    instances = finished_run.get_task_instances()
    states = {(ti.task_id, ti.map_index): ti.state for ti in instances}
    assert finished_run.state == "success", states
    assert [states[("train_candidate", i)] for i in range(3)] == ["success"] * 3
    assert states[("model_accuracy_too_low", -1)] == "skipped"

    stem = _airflow_stem(finished_run)
    jobs = _recorded_jobs(backend, stem)
    # One run's candidates: the same per-run name with the map index appended, in map-index order.
    assert [job["TrainingJobName"] for job in jobs] == [f"{stem}-{i}" for i in range(3)]
    assert stem.startswith("churn-cand-")
    assert [job["HyperParameters"]["max_depth"] for job in jobs] == ["2", "4", "6"]
    assert [job["HyperParameters"]["num_round"] for job in jobs] == ["10", "20", "30"]
    # The base set stays under each candidate's own values.
    assert {job["HyperParameters"]["eval_metric"] for job in jobs} == {"error"}
    assert all(job["TrainingJobStatus"] == "Completed" for job in jobs)
    # Each mapped instance's result is its own job.
    assert [_xcom(finished_run, "train_candidate", i)["TrainingJobName"] for i in range(3)] == [
        job["TrainingJobName"] for job in jobs
    ]


def test_the_lowest_recorded_validation_error_is_picked(backend, finished_run):
    jobs = _recorded_jobs(backend, _airflow_stem(finished_run))
    errors = [_metric(job) for job in jobs]
    best = min(range(3), key=lambda i: (errors[i], i))

    selected = _xcom(finished_run, "select_best")
    assert selected["TrainingJobName"] == jobs[best]["TrainingJobName"]
    assert selected["BestIndex"] == best
    assert selected["ModelArtifacts"] == jobs[best]["ModelArtifacts"]["S3ModelArtifacts"]
    assert [c["Value"] for c in selected["Candidates"]] == errors
    assert {m["MetricName"]: m["Value"] for m in selected["metrics"]}[METRIC] == errors[best] < 0.10


def test_the_endpoint_serves_the_best_candidates_model(backend, finished_run):
    selected = _xcom(finished_run, "select_best")
    sagemaker = backend.client("sagemaker")
    endpoint = sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == selected["ModelArtifacts"]

    rows = []
    for file in sorted(backend.s3_path(VALIDATION).glob("*.csv")):
        rows += [line for line in file.read_text().splitlines() if line]
    features = [row.split(",", 1)[1] for row in rows[:200]]
    status, body, headers = backend.invoke(ENDPOINT, "\n".join(features).encode())
    assert status == 200, body
    assert headers["x-model-name"] == model["ModelName"]
    served = np.array([float(p) for p in body.decode().split()])

    matrix = np.array([[float(v) for v in row.split(",")] for row in features], dtype=np.float32)
    jobs = _recorded_jobs(backend, _airflow_stem(finished_run))
    predicted = [_booster(backend, job["ModelArtifacts"]["S3ModelArtifacts"]).inplace_predict(matrix) for job in jobs]
    # The served predictions are the best candidate's, and not any other candidate's.
    assert np.allclose(served, predicted[selected["BestIndex"]], atol=1e-5)
    for index, other in enumerate(predicted):
        if index != selected["BestIndex"]:
            assert not np.allclose(served, other, atol=1e-5), index


@pytest.fixture(scope="module")
def machine_run(backend, finished_run, tmp_path_factory) -> subprocess.CompletedProcess:
    """The exported state machine run by the CLI a user runs, on the same backend and data, after the Airflow run."""
    out = tmp_path_factory.mktemp("candidates-export")
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "RETRAINING_LOCAL_DATA": str(backend.data_dir),
    }
    argv = ["run", DAG_ID, "--local", "--out", str(out), "--backend-port", str(backend.port), "--time-scale", "0.001"]
    return subprocess.run(
        [sys.executable, "-m", "exporters", *argv],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_the_export_picks_the_same_candidate_for_the_same_metrics(backend, finished_run, machine_run):
    assert machine_run.returncode == 0, machine_run.stdout[-4000:] + machine_run.stderr[-4000:]
    airflow_jobs = _recorded_jobs(backend, _airflow_stem(finished_run))
    airflow_errors = [_metric(job) for job in airflow_jobs]
    airflow_best = min(range(3), key=lambda i: (airflow_errors[i], i))

    # The endpoint now serves the model the state machine created: from which candidate's artifacts?
    sagemaker = backend.client("sagemaker")
    config = sagemaker.describe_endpoint_config(
        EndpointConfigName=sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    )
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    artifact = model["PrimaryContainer"]["ModelDataUrl"]
    assert artifact.startswith(OUTPUT) and artifact.endswith("/output/model.tar.gz"), artifact
    picked = artifact[len(OUTPUT) :].split("/", 1)[0]
    stem, index = picked.rsplit("-", 1)
    assert stem != _airflow_stem(finished_run), "the state machine trained its own candidates"

    machine_jobs = _recorded_jobs(backend, stem)
    assert [job["TrainingJobName"] for job in machine_jobs] == [f"{stem}-{i}" for i in range(3)]
    assert [job["HyperParameters"] for job in machine_jobs] == [job["HyperParameters"] for job in airflow_jobs]
    assert [_metric(job) for job in machine_jobs] == pytest.approx(airflow_errors, abs=1e-6)
    assert int(index) == airflow_best
