"""Hostile trigger params: traversal through S3 URIs or the Glue job name is refused when the run is triggered.

Driven through Airflow's own REST API (the call the UI's trigger form makes), on the DAG as the
dag-processor serializes it: a refused trigger answers 400 naming the param, and no run is created.
"""

from __future__ import annotations

import re

import pytest

from tests.test_trigger_and_schedule import rest_api_client

DAG_RUNS = "/api/v2/dags/model_retraining/dagRuns"

HOSTILE_URIS = [
    "s3://retraining-demo//tmp/x/",  # absolute key
    "s3://retraining-demo/../../etc/",
    "s3://retraining-demo/processed/../../x/",
    "s3://retraining-demo/./processed/",
    "s3://retraining-demo/a/..",
    "s3://../etc/",  # bucket named ".."
    "s3://./x/",
    "s3://retraining..demo/x/",
    "s3://retraining-demo/%2e%2e/x/",
    "s3://retraining-demo/a\\..\\..\\x/",
    "s3://retraining-demo/x/\n",
    "s3://retraining-demo/*/",  # an IAM wildcard in the prefix the Glue role is scoped to
    "s3://127.0.0.1/x/",
    "s3://Retraining-Demo/x/",
    "s3:///etc/",
    "s3://retraining-demo/",  # a whole bucket (where the raw data and served models also live)
    "s3://retraining-demo",
]
HOSTILE_JOB_NAMES = ["../../x/evil", "/abs/path/evil", "etl-*", "etl?", "churn.etl", "churn-etl\n", " churn-etl", ""]
S3_PARAMS = ("s3_source", "s3_dest", "training_output")


@pytest.fixture(scope="module")
def api(airflow_db):
    yield from rest_api_client()


def run_count(api) -> int:
    answer = api.get(DAG_RUNS, params={"limit": 1})
    assert answer.status_code == 200, answer.text
    return answer.json()["total_entries"]


def refused(api, conf: dict, param: str) -> None:
    before = run_count(api)
    answer = api.post(DAG_RUNS, json={"logical_date": None, "conf": conf})
    assert answer.status_code == 400, (conf, answer.status_code, answer.text)
    detail = answer.json()["detail"]
    assert f"param {param}" in detail and "does not match" in detail, detail
    assert run_count(api) == before, f"a run was created for {conf}"


@pytest.mark.parametrize("param", S3_PARAMS)
@pytest.mark.parametrize("uri", HOSTILE_URIS)
def test_s3_uri_that_could_leave_its_prefix_or_name_a_whole_bucket_is_refused_at_trigger_time(api, param, uri):
    refused(api, {param: uri}, param)


@pytest.mark.parametrize("name", HOSTILE_JOB_NAMES)
def test_glue_job_name_that_is_a_path_or_a_wildcard_is_refused_at_trigger_time(api, name):
    refused(api, {"glue_job_name": name}, "glue_job_name")


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("metric_function_name", "../../x/evil"),
        ("metric_function_name", "/abs/evil"),
        ("metric_function_name", "check-*"),
        ("metric_function_name", "query-training-status\n"),
        ("sagemaker_role_arn", "arn:aws:iam::123456789012:role/*"),
        ("sagemaker_role_arn", "arn:aws:iam::123456789012:role/Sage Maker"),
        ("sagemaker_role_arn", "arn:aws:iam::123456789012:role/SageMakerExecutionRole\n"),
    ],
)
def test_function_and_role_names_that_are_paths_or_wildcards_are_refused_at_trigger_time(api, param, value):
    refused(api, {param: value}, param)


def test_ordinary_uris_and_names_are_still_accepted(api):
    conf = {
        "s3_source": "s3://my-data.example-bucket/raw/2026/churn.csv",
        "s3_dest": "s3://my-data.example-bucket/processed/v2/",
        "training_output": "s3://my-data.example-bucket/output",
        "glue_job_name": "churn_etl-v2",
    }
    answer = api.post(DAG_RUNS, json={"logical_date": None, "conf": conf})
    assert answer.status_code == 200, answer.text
    assert answer.json()["conf"] == conf


def test_every_s3_param_of_the_dag_carries_a_traversal_proof_pattern(api):
    """Any param whose default is an S3 URI (not only the three above) refuses every traversal form."""
    params = api.get("/api/v2/dags/model_retraining/details").json()["params"]
    s3_params = {name for name, p in params.items() if str(p["value"]).startswith("s3://")}
    assert s3_params == set(S3_PARAMS)
    for name in s3_params:
        pattern = params[name]["schema"]["pattern"]
        assert re.search(pattern, params[name]["value"]), name
        for uri in HOSTILE_URIS:
            assert not re.search(pattern, uri), (name, uri)


@pytest.mark.parametrize("name", ["etl-*", "../../x/evil", "/abs/path/evil"])
def test_glue_operator_refuses_a_literal_job_name_when_the_dag_is_parsed(name):
    from retraining import GlueJobRunOperator

    with pytest.raises(ValueError, match=r"task 'etl': job_name .* is not a valid Glue job name"):
        GlueJobRunOperator(task_id="etl", job_name=name)


def test_glue_operator_fails_without_retrying_when_a_param_names_a_path(airflow_db, tmp_path):
    """A DAG whose param has no pattern: the operator itself refuses the resolved name before any AWS call."""
    import pendulum
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.sdk import DAG, Param

    from retraining import GlueJobRunOperator, ParamRef

    failures: dict[str, BaseException] = {}
    with DAG(
        "hostile_glue_name",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        params={"job": Param("churn-etl", type="string")},
    ) as dag:
        GlueJobRunOperator(
            task_id="etl",
            job_name=ParamRef("job"),
            retries=3,
            aws_conn_id="no_such_connection",
            on_failure_callback=[lambda context: failures.update({context["ti"].task_id: context["exception"]})],
        )
    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(str(tmp_path))
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)  # dag.test() runs the DAG as stored
    run = dag.test(run_conf={"job": "../../x/evil"})
    (ti,) = run.get_task_instances()
    assert (run.state, ti.state, ti.try_number) == ("failed", "failed", 1)
    assert "'../../x/evil' is not a valid Glue job name" in str(failures["etl"])
