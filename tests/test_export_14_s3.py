"""The provider's S3 operators: each export does what the operator's ``execute()`` does.

Stock parity: ``tests/export_dags/good/s3_operators.py`` runs twice with ``dag.test()`` against the moto
server, and its export runs twice in moto's ASL interpreter; after each run both sides are in the same
run state, task states and attempts, and the buckets hold the same objects. The second run differs from
the first (the bucket exists; the report key exists, and ``replace=False`` refuses it), as in Airflow.
"""

from __future__ import annotations

import pytest

from tests.export14_harness import Interpreter, airflow_run, export_checked, load, template_policy

OPS_TASKS = ["create_bucket", "write_report", "stage_raw", "archive", "clean_raw", "drop_markers"]


def _objects(client) -> dict[str, dict[str, str]]:
    s3 = client("s3")
    out: dict[str, dict[str, str]] = {}
    for bucket in s3.list_buckets()["Buckets"]:
        name = bucket["Name"]
        out[name] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                out[name][item["Key"]] = s3.get_object(Bucket=name, Key=item["Key"])["Body"].read().decode()
    return out


def test_s3_operators_twice_in_airflow_and_in_step_functions(aws, airflow_db):
    dag = load("s3_operators")
    definition = export_checked(dag)
    airflow = [airflow_run(dag, {"label": "r1"})]
    airflow_data = [_objects(aws.client)]
    airflow.append(airflow_run(dag, {"label": "r1"}))
    airflow_data.append(_objects(aws.client))

    with Interpreter() as sfn:
        machine = sfn.create(definition)
        exported = [sfn.run(machine, OPS_TASKS, {"label": "r1"})]
        exported_data = [_objects(sfn.client)]
        exported.append(sfn.run(machine, OPS_TASKS, {"label": "r1"}))
        exported_data.append(_objects(sfn.client))
        calls = sfn.doubles.calls

    assert exported == airflow
    assert [r.attempts for r in exported] == [r.attempts for r in airflow]
    assert exported_data == airflow_data
    assert airflow[0].state == "success"
    assert airflow_data[0] == {
        "s3-ops-demo": {
            # Airflow's Jinja rendering drops the data's trailing newline; the export reproduces it.
            "reports/r1.csv": "metric,value\nvalidation:error,0.05",
            "archive/r1.csv": "a,b\n1,2",
        }
    }
    # Second run: the bucket exists (not created again), the report exists (replace=False): the task fails.
    assert airflow[1].state == "failed"
    assert airflow[1].tasks == {
        "create_bucket": "success",
        "write_report": "failed",
        **{t: "not run" for t in OPS_TASKS[2:]},
    }
    creates = [c for c in calls if c.action == "aws-sdk:s3:createBucket"]
    assert len(creates) == 0  # the last run's calls only: the bucket existed
    put = [c for c in calls if c.action == "aws-sdk:s3:putObject"][0]
    assert put.parameters["IfNoneMatch"] == "*" and "Status Code: 412" in put.cause


@pytest.mark.parametrize("objects", [0, 3, 260], ids=["empty", "some", "more-than-a-round"])
def test_force_delete_bucket_twice(aws, airflow_db, objects):
    dag = load("s3_teardown")
    definition = export_checked(dag)

    def fill(client):
        client("s3").create_bucket(Bucket="s3-ops-demo")
        for i in range(objects):
            client("s3").put_object(Bucket="s3-ops-demo", Key=f"data/{i:04d}.csv", Body=b"x")

    fill(aws.client)
    airflow = [airflow_run(dag), airflow_run(dag)]  # the second finds no bucket: nothing to do
    airflow_data = _objects(aws.client)
    with Interpreter() as sfn:
        fill(sfn.client)
        machine = sfn.create(definition)
        exported = [sfn.run(machine, ["delete_bucket"]), sfn.run(machine, ["delete_bucket"])]
        exported_data = _objects(sfn.client)

    assert exported == airflow == [airflow[0], airflow[0]]
    assert airflow[0].state == "success"
    assert exported_data == airflow_data == {}


def test_iam_is_scoped_to_the_buckets_and_keys(aws):
    statements = {s["Sid"]: s for s in template_policy(load("s3_operators"))["Statement"]}

    def arns(sid):
        return [r["Fn::Sub"] for r in statements[sid]["Resource"]]

    assert arns("S3PutObject") == [
        "arn:${AWS::Partition}:s3:::${Bucket}/archive/${Label}.csv",
        "arn:${AWS::Partition}:s3:::${Bucket}/reports/${Label}.csv",
        "arn:${AWS::Partition}:s3:::s3-ops-demo/raw/${Label}.csv",
    ]
    assert arns("S3CopyObjectRead") == ["arn:${AWS::Partition}:s3:::${Bucket}/raw/${Label}.csv"]
    assert arns("S3CreateBucket") == ["arn:${AWS::Partition}:s3:::${Bucket}"]
    assert statements["S3HeadBucket"]["Action"] == ["s3:ListBucket"]  # HeadBucket and ListObjectsV2
    assert "arn:${AWS::Partition}:s3:::${Bucket}/markers/latest" in arns("S3DeleteObjects")


def test_what_has_no_faithful_translation_is_refused_with_the_reason():
    from airflow.providers.amazon.aws.operators.s3 import (
        S3CreateBucketOperator,
        S3CreateObjectOperator,
        S3DeleteObjectsOperator,
    )
    from airflow.sdk import DAG

    from exporters.compiler import compile_dag
    from exporters.errors import ExportError

    with DAG("s3_refusals", schedule=None) as dag:
        S3CreateObjectOperator(task_id="gzip", s3_bucket="b", s3_key="k", data="x", compression="gzip")
        S3CreateObjectOperator(task_id="binary", s3_bucket="b", s3_key="k", data=b"\xff\xfe")
        S3CreateObjectOperator(task_id="url_and_bucket", s3_bucket="b", s3_key="s3://b/k", data="x")
        S3CreateObjectOperator(task_id="jinja", s3_bucket="b", s3_key="{{ var.value.prefix }}/k", data="x")
        S3DeleteObjectsOperator(task_id="by_date", bucket="b", from_datetime="2026-01-01")
        S3CreateBucketOperator(task_id="namespace", bucket_name="b", bucket_namespace="account-regional")
    with pytest.raises(ExportError) as raised:
        compile_dag(dag)
    problems = {p.task_id: p.reason for p in raised.value.problems}
    assert "Step Functions cannot gzip" in problems["gzip"]
    assert "binary" in problems["binary"]
    assert "must be a relative path" in problems["url_and_bucket"]
    assert "free-form Jinja" in problems["jinja"] and "s3_key" in problems["jinja"]
    assert "LastModified" in problems["by_date"]
    assert "bucket_namespace" in problems["namespace"]
