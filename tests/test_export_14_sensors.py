"""Sensors: the exported poke loop ends as the Airflow sensor does (condition met, timed out, resource failed).

Each scenario runs ``dag.test()`` against the moto server and the export in moto's ASL interpreter, with the
same data or job states on both sides, and compares run state, task states and attempts. In the
interpreter Wait states are recorded, not slept, so the test also asserts the waits of the poke loop.
"""

from __future__ import annotations

import pytest

from tests.export14_harness import Interpreter, airflow_run, export_checked, load

S3_TASKS = ["wait_for_schema", "wait_for_data", "write_marker"]
JOB_TASKS = ["wait_for_training", "wait_for_endpoint", "wait_for_etl"]
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"


def _put_s3(client, keys: list[str]) -> None:
    s3 = client("s3")
    s3.create_bucket(Bucket="sensor-demo")
    for key in keys:
        s3.put_object(Bucket="sensor-demo", Key=key, Body=b"x")


def _keys(client) -> list[str]:
    return sorted(o["Key"] for o in client("s3").list_objects_v2(Bucket="sensor-demo").get("Contents", []))


SCHEMA = ["schema/churn.json", "schema/features.json"]
DATA = ["incoming/2026-11-29/part-0000.csv"]


@pytest.mark.parametrize(
    "present, outcome",
    [
        (SCHEMA + DATA, {"wait_for_schema": "success", "wait_for_data": "success", "write_marker": "success"}),
        (SCHEMA, {"wait_for_schema": "success", "wait_for_data": "failed", "write_marker": "not run"}),
        (SCHEMA[:1] + DATA, {"wait_for_schema": "failed", "wait_for_data": "not run", "write_marker": "not run"}),
    ],
    ids=["all-there", "data-never-comes", "one-schema-file-missing"],
)
def test_s3_key_sensor_in_airflow_and_step_functions(aws, airflow_db, present, outcome):
    dag = load("s3_key_sensor")
    definition = export_checked(dag)
    _put_s3(aws.client, present)
    airflow = airflow_run(dag)
    airflow_keys = _keys(aws.client)
    with Interpreter() as sfn:
        _put_s3(sfn.client, present)
        exported = sfn.run(sfn.create(definition), S3_TASKS)
        exported_keys = _keys(sfn.client)
        waits = list(sfn.doubles.waits)

    assert exported == airflow
    assert airflow.tasks == outcome
    # A sensor timeout is never retried (AirflowSensorTimeout), although the tasks have retries=1.
    assert exported.attempts == airflow.attempts == {t: int(s != "not run") for t, s in outcome.items()}
    assert exported_keys == airflow_keys
    if outcome["write_marker"] == "success":
        assert "ready/2026-11-29" in airflow_keys
    if outcome["wait_for_data"] == "failed":
        assert exported.error == "SensorTimeout"
        # exponential_backoff from poke_interval=1: 1, 1, 2 (max_wait=2), then timeout=4 is used up.
        assert [s for name, s in waits if name == "wait_for_data: wait"] == [1, 1, 2]
    if outcome["wait_for_schema"] == "failed":
        assert [s for name, s in waits if name == "wait_for_schema: wait"] == [1, 1, 1, 1]


def _training_job(client, name: str) -> None:
    client("sagemaker").create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": "xgboost:1", "TrainingInputMode": "File"},
        RoleArn=ROLE,
        OutputDataConfig={"S3OutputPath": "s3://sensor-demo/output/"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )


def _endpoint(client, name: str) -> None:
    sm = client("sagemaker")
    sm.create_model(ModelName="m", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "xgboost:1"})
    sm.create_endpoint_config(
        EndpointConfigName="c",
        ProductionVariants=[
            {"VariantName": "v", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName="c")


def _glue_run(client) -> str:
    glue = client("glue")
    glue.create_job(Name="churn-etl", Role=ROLE, Command={"Name": "glueetl", "ScriptLocation": "s3://x/etl.py"})
    return glue.start_job_run(JobName="churn-etl")["JobRunId"]


@pytest.mark.parametrize("training_status", ["Completed", "Failed"])
def test_job_sensors_in_airflow_and_step_functions(aws, airflow_db, training_status):
    dag = load("job_sensors")
    definition = export_checked(dag)
    aws.outcomes.training_status = training_status
    _training_job(aws.client, "churn-xgb-7")
    _endpoint(aws.client, "churn-endpoint")
    airflow = airflow_run(dag, {"glue_run": _glue_run(aws.client)})
    with Interpreter() as sfn:
        sfn.doubles.training_status = training_status
        _training_job(sfn.client, "churn-xgb-7")
        _endpoint(sfn.client, "churn-endpoint")
        exported = sfn.run(sfn.create(definition), JOB_TASKS, {"glue_run": _glue_run(sfn.client)})

    assert exported == airflow
    assert exported.attempts == airflow.attempts
    if training_status == "Completed":
        assert airflow.state == "success", airflow
    else:
        # The poke raises on a failed job: the task's retry runs the sensor again, then it fails.
        assert airflow.tasks == {
            "wait_for_training": "failed",
            "wait_for_endpoint": "not run",
            "wait_for_etl": "not run",
        }
        assert airflow.attempts["wait_for_training"] == 2
        assert exported.error == "SensorFailed"


def test_sensor_modes_without_a_faithful_translation_are_refused():
    from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
    from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
    from airflow.sdk import DAG

    from exporters.compiler import compile_dag
    from exporters.errors import ExportError

    with DAG("sensor_refusals", schedule=None) as dag:
        S3KeySensor(task_id="never", bucket_key="s3://b/k", never_fail=True)
        S3KeySensor(task_id="glob", bucket_key="s3://b/data/*.csv", wildcard_match=True)
        S3KeySensor(task_id="fn", bucket_key="s3://b/k", check_fn=lambda files: True)
        S3KeySensor(task_id="regex", bucket_key="s3://b/k.*", use_regex=True)
        ExternalTaskSensor(task_id="other_dag", external_dag_id="upstream")
    with pytest.raises(ExportError) as raised:
        compile_dag(dag)
    problems = {p.task_id: p for p in raised.value.problems}
    assert "never_fail" in problems["never"].reason
    assert "'<prefix>*'" in problems["glob"].reason
    assert "check_fn" in problems["fn"].reason
    assert "use_regex" in problems["regex"].reason
    assert "another DAG" in problems["other_dag"].reason and "TriggerDagRunOperator" in problems["other_dag"].fix


PARTITION_TASKS = ["wait_for_orders", "wait_for_returns", "build_features"]


def _catalog(client, orders: list[str], returns: list[tuple[str, str]]) -> None:
    """The sales database: orders partitioned by day, returns by day and region, with the given partitions."""
    glue = client("glue")
    glue.create_database(DatabaseInput={"Name": "sales"})
    for table, keys in (("orders", ["ds"]), ("returns", ["ds", "region"])):
        glue.create_table(
            DatabaseName="sales",
            TableInput={"Name": table, "PartitionKeys": [{"Name": k, "Type": "string"} for k in keys]},
        )
    for values, table in [([day], "orders") for day in orders] + [(list(v), "returns") for v in returns]:
        glue.create_partition(
            DatabaseName="sales",
            TableName=table,
            PartitionInput={
                "Values": values,
                "StorageDescriptor": {"Location": f"s3://sales/{table}/{'/'.join(values)}/"},
            },
        )


@pytest.mark.parametrize(
    "orders, returns, outcome",
    [
        (
            ["2026-11-28", "2026-11-29"],
            [("2026-11-28", "us"), ("2026-11-28", "eu")],
            {"wait_for_orders": "success", "wait_for_returns": "success", "build_features": "success"},
        ),
        (
            ["2026-11-28"],
            [("2026-11-28", "eu")],
            {"wait_for_orders": "failed", "wait_for_returns": "not run", "build_features": "not run"},
        ),
        (
            ["2026-11-29"],
            [("2026-11-28", "us"), ("2026-11-29", "eu")],
            {"wait_for_orders": "success", "wait_for_returns": "failed", "build_features": "not run"},
        ),
    ],
    ids=["both-there", "todays-orders-never-come", "only-other-regions-returns"],
)
def test_glue_catalog_partition_sensor_in_airflow_and_step_functions(aws, airflow_db, orders, returns, outcome):
    dag = load("partition_sensor")
    definition = export_checked(dag)
    _catalog(aws.client, orders, returns)
    airflow = airflow_run(dag)
    with Interpreter() as sfn:
        _catalog(sfn.client, orders, returns)
        exported = sfn.run(sfn.create(definition), PARTITION_TASKS)
        waits = list(sfn.doubles.waits)
        pokes = [call.parameters for call in sfn.doubles.calls if call.state == "wait_for_orders: poke"]

    assert exported == airflow
    assert airflow.tasks == outcome
    # The expression as Airflow renders it from the param; at most one partition asked for.
    assert pokes[0] == {
        "DatabaseName": "sales",
        "TableName": "orders",
        "Expression": "ds='2026-11-29'",
        "MaxResults": 1,
    }
    if outcome["wait_for_orders"] == "failed":
        assert exported.error == "SensorTimeout"
        assert [s for name, s in waits if name == "wait_for_orders: wait"] == [1, 1, 1]


def test_the_interpreter_reads_intrinsic_string_literals_as_step_functions_does():
    """moto 5.2.5 kept the escapes of intrinsic literals (``exporters/local_run_interpreter.py`` fixes it).

    The exporter escapes ``'``, ``{``, ``}`` and ``\\`` in every literal part of a ``States.Format`` (a Glue
    partition expression needs quotes); run locally, the machine must compute what Step Functions computes.
    """
    import json
    import time

    states = {
        "Strings": {
            "Type": "Pass",
            "Parameters": {
                "quoted.$": "States.Format('ds=\\'{}\\'', $.day)",
                "backslash.$": "States.Format('a\\\\b {}', $.day)",
                "braces.$": "States.Format('literal \\{\\} then {}', $.day)",
                "split.$": "States.StringSplit('it\\'s,done', ',')",
                "from_data.$": "States.Format($.template, $.day)",
            },
            "End": True,
        }
    }
    with Interpreter() as sfn:
        machine = sfn.create({"StartAt": "Strings", "States": states}, name="strings")
        arn = sfn.sfn.start_execution(
            stateMachineArn=machine, input=json.dumps({"day": "2026-11-29", "template": "day {} done"})
        )["executionArn"]
        while (described := sfn.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            time.sleep(0.05)
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == {
        "quoted": "ds='2026-11-29'",
        "backslash": "a\\b 2026-11-29",
        "braces": "literal {} then 2026-11-29",
        "split": ["it's", "done"],
        "from_data": "day 2026-11-29 done",
    }


def test_a_partition_poke_that_errors_is_retried_as_the_task_then_fails_in_both(aws, airflow_db):
    """No such table: GetPartitions raises in poke(), so the task fails, its retry pokes again, then the run fails."""
    dag = load("partition_sensor")
    definition = export_checked(dag)
    airflow = airflow_run(dag)  # nothing in the catalog
    with Interpreter() as sfn:
        exported = sfn.run(sfn.create(definition), PARTITION_TASKS)
        pokes = [call for call in sfn.doubles.calls if call.state.startswith("wait_for_orders: poke")]

    assert exported == airflow
    assert airflow.tasks == {"wait_for_orders": "failed", "wait_for_returns": "not run", "build_features": "not run"}
    assert exported.attempts == airflow.attempts == {"wait_for_orders": 2, "wait_for_returns": 0, "build_features": 0}
    assert len(pokes) == 2 and all(call.error == "Glue.EntityNotFoundException" for call in pokes), pokes
