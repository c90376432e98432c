"""XComArgs (``task.output``, ``task.output["key"]``) in operator fields: exported where Step Functions keeps
that value, refused with the reason where it does not.

The differential: ``dag.test()`` of ``xcom_args`` against the moto server and its export in moto's ASL
interpreter create the same Glue job, run it, hand its run id to the sensor (``run_etl.output``) and to our
SDK call (``run_etl.output["glue_job_run_id"]``), and write the same objects: one named by that world's run
id, and the SDK call's ``ETag`` (``mark_run.output["ETag"]``, ``multiple_outputs=True``) as a stock field.
"""

from __future__ import annotations

import pytest

from tests.export14_harness import Interpreter, airflow_run, export_checked, load

TASKS = ["run_etl", "wait_for_etl", "mark_run", "record_etag"]


def _prepare(client) -> None:
    client("iam").create_role(RoleName="GlueRole", AssumeRolePolicyDocument="{}")
    client("s3").create_bucket(Bucket="xcom-demo")


def _world(client) -> tuple[list[str], dict[str, str]]:
    """The job's run ids, and each object's body."""
    runs = [r["Id"] for r in client("glue").get_job_runs(JobName="churn-etl-xcom")["JobRuns"]]
    s3 = client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="xcom-demo").get("Contents", [])]
    return runs, {k: s3.get_object(Bucket="xcom-demo", Key=k)["Body"].read().decode() for k in keys}


def test_results_wired_by_xcomargs_reach_the_same_fields(aws, airflow_db):
    dag = load("xcom_args")
    definition = export_checked(dag)
    _prepare(aws.client)
    airflow = airflow_run(dag)
    airflow_runs, airflow_objects = _world(aws.client)
    with Interpreter() as sfn:
        _prepare(sfn.client)
        exported = sfn.run(sfn.create(definition), TASKS)
        exported_runs, exported_objects = _world(sfn.client)

    assert airflow.state == "success" and set(airflow.tasks.values()) == {"success"}, airflow
    assert exported == airflow
    (airflow_run_id,) = airflow_runs
    (exported_run_id,) = exported_runs
    # Each world wrote an object named by its own run id, and the ETag of that object under etags/latest.
    for run_id, objects in ((airflow_run_id, airflow_objects), (exported_run_id, exported_objects)):
        assert sorted(objects) == sorted(["etags/latest", run_id])
        assert objects[run_id] == "done"
    assert exported_objects["etags/latest"] == airflow_objects["etags/latest"]
    assert airflow.results["run_etl"] == airflow_run_id
    assert exported.results["run_etl"] == {"JobRunId": exported_run_id}
    assert airflow.results["mark_run"]["ETag"] == airflow_objects["etags/latest"]


def _problems(build) -> dict[str, str]:
    from airflow.sdk import DAG

    from exporters.api import export_dag_object
    from exporters.errors import ExportError

    with DAG("xcomarg_refusals", schedule=None) as dag:
        build()
    with pytest.raises(ExportError) as raised:
        export_dag_object(dag)
    return {p.task_id: f"{p.reason} -> {p.fix}" for p in raised.value.problems}


def test_xcomargs_without_a_kept_value_are_refused_with_the_reason():
    from airflow.providers.amazon.aws.operators.lambda_function import LambdaInvokeFunctionOperator
    from airflow.providers.amazon.aws.operators.s3 import S3CreateObjectOperator

    from retraining.aws_sdk import AwsSdkCallOperator

    def build():
        head = AwsSdkCallOperator(
            task_id="head", service="s3", action="HeadObject", request={"Bucket": "b", "Key": "k"}
        )
        stock_lambda = LambdaInvokeFunctionOperator(task_id="stock_lambda", function_name="f", payload="{}")
        # XCom "ETag" is never pushed: head has no multiple_outputs=True.
        S3CreateObjectOperator(task_id="no_such_xcom", s3_bucket="b", s3_key="k", data=head.output["ETag"])
        # The stock Lambda operator returns the payload as a string; Step Functions keeps it parsed.
        S3CreateObjectOperator(task_id="not_kept_whole", s3_bucket="b", s3_key="k", data=stock_lambda.output)
        S3CreateObjectOperator(
            task_id="mapped_xcom", s3_bucket="b", s3_key="k", data=head.output.map(lambda answer: answer["ETag"])
        )

    problems = _problems(build)
    assert (
        "head.output['ETag']: Airflow pulls the XCom named 'ETag', which 'head' does not push"
        in (problems["no_such_xcom"])
    )
    assert "multiple_outputs=True" in problems["no_such_xcom"]
    assert "stock_lambda.output: the result of 'stock_lambda' is not kept whole" in problems["not_kept_whole"]
    assert ".map()" in problems["mapped_xcom"] and "no Step Functions translation" in problems["mapped_xcom"]


def test_our_operators_requests_take_xcomargs_as_airflow_stores_them():
    """Our operators keep an XComArg in their request as tagged opaque text; the export reads it back."""
    from airflow.sdk import DAG

    from exporters.api import export_dag_object
    from exporters.serialized import serialize
    from retraining import LambdaInvokeOperator
    from retraining.aws_sdk import AwsSdkCallOperator

    with DAG("xcomarg_requests", schedule=None) as dag:
        answer = LambdaInvokeOperator(task_id="answer", function_name="f", payload={}, multiple_outputs=True)
        head = AwsSdkCallOperator(
            task_id="head", service="s3", action="HeadObject", request={"Bucket": "b", "Key": "k"}
        )
        LambdaInvokeOperator(
            task_id="use",
            function_name="g",
            payload={"whole": answer.output, "field": answer.output["score"], "etag": head.output, "n": 1},
        )
    assert "PlainXComArg" in str(serialize(dag))
    states = export_dag_object(dag).definition["States"]
    assert states["use"]["Parameters"]["Payload"] == {
        "whole.$": "$.answer.Payload",
        "field.$": "$.answer.Payload.score",
        "etag.$": "$.head",
        "n": 1,
    }
