"""Triggering through Airflow's REST API (what the UI's trigger form calls) and the hourly schedule."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from tests.conftest import ROOT


def rest_api_client():
    """Airflow's own REST API app (FastAPI test client) with the DAG serialized as the dag-processor would."""
    os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "True"
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(str(ROOT / "dags"))
    assert not bag.import_errors
    sync_bag_to_db(bag, "dags-folder", None)

    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    with TestClient(create_app("core")) as client:
        yield client
    os.environ.pop("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", None)


@pytest.fixture(scope="module")
def api(airflow_db):
    yield from rest_api_client()


def test_trigger_form_shows_every_param_typed_with_its_default(api):
    answer = api.get("/api/v2/dags/model_retraining/details")
    assert answer.status_code == 200, answer.text
    params = answer.json()["params"]
    assert params["threshold"]["value"] == 0.10
    assert params["threshold"]["schema"]["type"] == "number"
    assert params["training_instance_count"]["schema"]["type"] == "integer"
    assert params["hyperparameters"]["value"]["objective"] == "binary:logistic"
    for name in (
        "glue_job_name",
        "s3_source",
        "s3_dest",
        "training_job_prefix",
        "model_prefix",
        "endpoint_name",
        "metric_function_name",
        "sagemaker_role_arn",
    ):
        assert params[name]["value"], name
        assert params[name]["schema"]["type"] == "string", name


def test_trigger_with_params_creates_a_run_carrying_them(api):
    answer = api.post(
        "/api/v2/dags/model_retraining/dagRuns",
        json={"logical_date": None, "conf": {"threshold": 0.05, "endpoint_name": "churn-canary"}},
    )
    assert answer.status_code == 200, answer.text
    run = answer.json()
    assert run["conf"] == {"threshold": 0.05, "endpoint_name": "churn-canary"}
    assert run["state"] == "queued"
    listed = api.get(f"/api/v2/dags/model_retraining/dagRuns/{run['dag_run_id']}").json()
    assert listed["conf"]["endpoint_name"] == "churn-canary"


@pytest.mark.parametrize(
    ("conf", "param", "why"),
    [
        ({"threshold": "abc"}, "threshold", "is not of type 'number'"),
        ({"threshold": -1}, "threshold", "less than the minimum"),
        ({"training_job_prefix": "bad_prefix"}, "training_job_prefix", "does not match"),
        ({"model_prefix": "x" * 31}, "model_prefix", "does not match"),
        ({"training_instance_count": 0}, "training_instance_count", "less than the minimum"),
        ({"s3_dest": "s3://bucket/no-trailing-slash"}, "s3_dest", "does not match"),
        ({"hyperparameters": {"num_round": 100}}, "hyperparameters", "is not of type 'string'"),
    ],
)
def test_params_violating_their_schema_are_rejected_with_the_param_named(api, conf, param, why):
    answer = api.post("/api/v2/dags/model_retraining/dagRuns", json={"logical_date": None, "conf": conf})
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert f"param {param}" in detail and why in detail


def test_hourly_cron_produces_runs_on_the_hour():
    """Airflow's own scheduling API (the timetable the scheduler asks) on the serialized DAG."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.timetables.base import TimeRestriction

    dag = DagBag(str(ROOT / "dags")).dags["model_retraining"]
    scheduled = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    timetable = scheduled.timetable
    import pendulum

    start = pendulum.datetime(2026, 3, 1, 10, 17, tz="UTC")

    # As the scheduler does with catchup: from the start date, one run per hour on the hour.
    restriction = TimeRestriction(earliest=start, latest=None, catchup=True)
    infos, last = [], None
    for _ in range(4):
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        infos.append(info)
        last = info.data_interval
    assert [i.logical_date for i in infos] == [dt.datetime(2026, 3, 1, h, 0, tzinfo=dt.UTC) for h in (11, 12, 13, 14)]

    # The DAG's real setting, catchup=False: never a backlog; the next run is the latest hour at most.
    info = timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=dag.start_date, latest=None, catchup=False),
    )
    now = dt.datetime.now(dt.UTC)
    assert info.logical_date.minute == 0 and info.logical_date.second == 0
    assert now - dt.timedelta(hours=1) <= info.logical_date <= now + dt.timedelta(hours=1)
    assert scheduled.max_active_runs == 1 and scheduled.catchup is False
