"""Any AWS SDK call: ``AwsSdkCallOperator`` in Airflow and as ``arn:aws:states:::aws-sdk:...`` in Step Functions.

The DAG ``tests/export_dags/good/aws_sdk_calls.py`` writes an S3 object, reads its head, copies it and
records it in DynamoDB. It runs with ``dag.test()`` against the moto server, and its export runs in
moto's ASL interpreter; both must end in the same run state, task states, attempts, results and data.
"""

from __future__ import annotations

import json

import pytest

from tests.export14_harness import Interpreter, airflow_run, export_checked, load, template_policy

TASKS = ["write_report", "inspect_report", "publish_report", "register_model"]


@pytest.fixture(scope="module")
def dag():
    return load("aws_sdk_calls")


@pytest.fixture(scope="module")
def definition(dag):
    return export_checked(dag)


def _prepare(client, with_bucket: bool = True) -> None:
    if with_bucket:
        client("s3").create_bucket(Bucket="sdk-demo")
    client("dynamodb").create_table(
        TableName="model-registry",
        KeySchema=[{"AttributeName": "run", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "run", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _data(client) -> dict:
    s3 = client("s3")
    objects = {}
    for bucket in s3.list_buckets()["Buckets"]:
        for item in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
            body = s3.get_object(Bucket=bucket["Name"], Key=item["Key"])["Body"].read().decode()
            objects[f"{bucket['Name']}/{item['Key']}"] = body
    items = client("dynamodb").scan(TableName="model-registry")["Items"]
    return {"objects": objects, "items": sorted(items, key=lambda i: i["run"]["S"])}


def test_the_export_is_one_sdk_task_per_call(definition):
    states = definition["States"]
    assert [states[t]["Resource"] for t in TASKS] == [
        "arn:aws:states:::aws-sdk:s3:putObject",
        "arn:aws:states:::aws-sdk:s3:headObject",
        "arn:aws:states:::aws-sdk:s3:copyObject",
        "arn:aws:states:::aws-sdk:dynamodb:putItem",
    ]
    assert states["inspect_report"]["ResultSelector"] == {
        "ContentLength.$": "$.ContentLength",
        "ContentType.$": "$.ContentType",
        "ETag.$": "$.ETag",
    }
    assert states["register_model"]["Parameters"]["Item"]["etag"] == {"S.$": "$.inspect_report.ETag"}


def test_iam_is_the_actions_permissions_on_the_named_resources(dag):
    statements = {s["Sid"]: s for s in template_policy(dag)["Statement"]}
    assert statements["S3PutObject"]["Action"] == ["s3:PutObject"]
    assert statements["S3PutObject"]["Resource"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}/reports/${RunLabel}.json"},
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}/reports/latest.json"},
    ]
    # HeadObject and the copy's read are authorised by s3:GetObject, on that key only.
    assert statements["S3HeadObject"]["Action"] == ["s3:GetObject"]
    assert statements["S3HeadObject"]["Resource"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}/reports/${RunLabel}.json"}
    ]
    assert statements["DynamoDbPutItem"] == {
        "Sid": "DynamoDbPutItem",
        "Effect": "Allow",
        "Action": ["dynamodb:PutItem"],
        "Resource": [{"Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${Table}"}],
    }
    assert all("*" not in json.dumps(s["Resource"]) for s in statements.values() if not s["Sid"].startswith("Cloud"))


@pytest.mark.parametrize("with_bucket", [True, False], ids=["bucket-exists", "bucket-missing"])
def test_airflow_and_the_exported_machine_do_the_same(aws, airflow_db, dag, definition, with_bucket):
    _prepare(aws.client, with_bucket)
    airflow = airflow_run(dag, {"run_label": "r1"})
    airflow_data = _data(aws.client)

    with Interpreter() as sfn:
        _prepare(sfn.client, with_bucket)
        machine = sfn.create(definition)
        exported = sfn.run(machine, TASKS, {"run_label": "r1"})
        exported_data = _data(sfn.client)

    assert exported == airflow
    assert exported.attempts == airflow.attempts
    assert exported_data == airflow_data
    if with_bucket:
        assert airflow.state == "success"
        assert airflow_data["objects"] == {
            "sdk-demo/reports/r1.json": '{"status": "trained"}',
            "sdk-demo/reports/latest.json": '{"status": "trained"}',
        }
        assert exported.results["inspect_report"] == airflow.results["inspect_report"]
        assert airflow.results["inspect_report"]["ContentLength"] == len('{"status": "trained"}')
        assert exported.results["publish_report"] == airflow.results["publish_report"]
    else:
        assert airflow.state == "failed"
        assert airflow.tasks == {t: "failed" if t == "write_report" else "not run" for t in TASKS}
        assert airflow.attempts["write_report"] == 2  # retries=1, on both sides
        assert exported.error.startswith("S3.")


def test_an_unknown_action_or_parameter_fails_the_export_naming_the_task():
    from airflow.sdk import DAG

    from exporters.compiler import compile_dag
    from exporters.errors import ExportError
    from retraining.aws_sdk import AwsSdkCallOperator

    with DAG("bad_sdk_calls", schedule=None) as bad:
        AwsSdkCallOperator(task_id="typo", service="s3", action="put_objekt", request={"Bucket": "b"})
        AwsSdkCallOperator(task_id="bad_field", service="s3", action="PutObject", request={"Bukket": "b", "Key": "k"})
        AwsSdkCallOperator(task_id="no_service", service="s4", action="PutObject")
        AwsSdkCallOperator(
            task_id="secret", service="secretsmanager", action="GetSecretValue", request={"SecretId": "x"}
        )
    with pytest.raises(ExportError) as raised:
        compile_dag(bad)
    text = str(raised.value)
    assert "typo" in text and "has no API action 'put_objekt'" in text and "PutObject" in text
    assert "bad_field" in text and "['Bukket']" in text
    assert "no_service" in text and "'s4' is not an AWS service" in text
    assert "secret" in text and "returns secrets" in text


def test_construction_refuses_what_cannot_be_an_aws_call():
    from retraining.aws_sdk import AwsSdkCallOperator

    with pytest.raises(ValueError, match="task 'x': service 'S3!'"):
        AwsSdkCallOperator(task_id="x", service="S3!", action="PutObject")
    with pytest.raises(ValueError, match="task 'x': action 'put object'"):
        AwsSdkCallOperator(task_id="x", service="s3", action="put object")
    with pytest.raises(ValueError, match="contain Jinja"):
        AwsSdkCallOperator(task_id="x", service="s3", action="PutObject", request={"Key": "{{ ds }}"})
