"""Generic AWS SDK calls (AwsSdkCallOperator): S3 and DynamoDB requests that are plain data with references."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Param

from retraining.aws_sdk import AwsSdkCallOperator
from retraining.refs import Format, ParamRef, ResultRef

with DAG(
    dag_id="aws_sdk_calls",
    schedule=None,
    params={
        "bucket": Param("sdk-demo", type="string"),
        "run_label": Param("first", type="string"),
        "table": Param("model-registry", type="string"),
    },
    default_args={"retries": 1, "retry_delay": timedelta(seconds=5)},
) as aws_sdk_calls:
    write_report = AwsSdkCallOperator(
        task_id="write_report",
        service="s3",
        action="put_object",
        request={
            "Bucket": ParamRef("bucket"),
            "Key": Format("reports/{}.json", ParamRef("run_label")),
            "Body": '{"status": "trained"}',
            "ContentType": "application/json",
        },
        result_fields=("ETag",),
    )
    inspect_report = AwsSdkCallOperator(
        task_id="inspect_report",
        service="s3",
        action="HeadObject",
        request={"Bucket": ParamRef("bucket"), "Key": Format("reports/{}.json", ParamRef("run_label"))},
        result_fields=("ContentLength", "ContentType", "ETag"),
    )
    publish_report = AwsSdkCallOperator(
        task_id="publish_report",
        service="s3",
        action="copyObject",
        request={
            "Bucket": ParamRef("bucket"),
            "Key": "reports/latest.json",
            "CopySource": Format("{}/reports/{}.json", ParamRef("bucket"), ParamRef("run_label")),
        },
        result_fields=("CopyObjectResult.ETag",),
    )
    register_model = AwsSdkCallOperator(
        task_id="register_model",
        service="dynamodb",
        action="PutItem",
        request={
            "TableName": ParamRef("table"),
            "Item": {
                "run": {"S": ParamRef("run_label")},
                "etag": {"S": ResultRef("inspect_report", "ETag")},
                "size": {"S": Format("{}", ResultRef("inspect_report", "ContentLength"))},
            },
        },
    )
    write_report >> inspect_report >> publish_report >> register_model
