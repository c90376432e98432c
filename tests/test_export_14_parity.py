"""Stock serving operators and the stock Lambda invoke, run twice (then once more with a new version).

Airflow's ``dag.test()`` against the moto server and the export in moto's interpreter, both with
SageMaker's refusal of a model / endpoint config name already in use (tests/aws_doubles.py): the runs
end in the same states, task by task, and the Lambda answers alike.
"""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from tests.aws_doubles import ROOT
from tests.export14_harness import Interpreter, airflow_run, export_checked, load, run_on_both_sides

TASKS = ["check_metrics", "create_model", "create_endpoint_config", "deploy"]
METRICS = {"validation:error": 0.05, "train:error": 0.03}


def _prepare(client, environment: dict[str, str]) -> None:
    """The training job the Lambda reads and the Lambda function, on one side."""
    iam = client("iam")
    role = iam.create_role(RoleName="StockRole", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    client("sagemaker").create_training_job(
        TrainingJobName="churn-xgb-fixed",
        AlgorithmSpecification={"TrainingImage": "xgboost:1.7-1", "TrainingInputMode": "File"},
        RoleArn=role,
        OutputDataConfig={"S3OutputPath": "s3://stock-demo/output/"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(ROOT / "lambda" / "query_training_status.py", "query_training_status.py")
    client("lambda").create_function(
        FunctionName="query-training-status",
        Runtime="python3.11",
        Role=role,
        Handler="query_training_status.lambda_handler",
        Code={"ZipFile": archive.getvalue()},
        Environment={"Variables": environment},
    )


def _serving(client) -> tuple[list[str], list[str], str]:
    sagemaker = client("sagemaker")
    models = sorted(m["ModelName"] for m in sagemaker.list_models()["Models"])
    configs = sorted(c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"])
    endpoint = sagemaker.describe_endpoint(EndpointName="churn-fixed-endpoint")
    return models, configs, f"{endpoint['EndpointConfigName']} {endpoint['EndpointStatus']}"


def _decoded(payload: str | dict) -> dict:
    return json.loads(payload) if isinstance(payload, str) else payload


def test_fixed_names_run_twice_then_a_new_version(aws, airflow_db):
    dag = load("stock_serving")
    definition = export_checked(dag)
    aws.outcomes.training_metrics = dict(METRICS)
    _prepare(aws.client, {"AWS_ENDPOINT_URL": aws.endpoint_url})
    airflow = [airflow_run(dag), airflow_run(dag), airflow_run(dag, {"version": "v2"})]
    airflow_serving = _serving(aws.client)
    with Interpreter() as sfn:
        sfn.doubles.training_metrics = dict(METRICS)
        _prepare(sfn.client, {})
        machine = sfn.create(definition)
        exported = [sfn.run(machine, TASKS), sfn.run(machine, TASKS), sfn.run(machine, TASKS, {"version": "v2"})]
        exported_serving = _serving(sfn.client)

    assert exported == airflow
    assert [r.state for r in airflow] == ["success", "failed", "success"]
    assert airflow[1].tasks == {
        "check_metrics": "success",
        "create_model": "failed",
        "create_endpoint_config": "not run",
        "deploy": "not run",
    }
    assert exported_serving == airflow_serving
    assert airflow_serving == (
        ["churn-fixed-v1", "churn-fixed-v2"],
        ["churn-fixed-v1", "churn-fixed-v2"],
        "churn-fixed-v2 InService",
    )
    # The stock operator's XCom is the payload as Lambda returns it, a JSON string (the harness reads it back
    # from the metadata DB already decoded); the export keeps the decoded payload under "Payload", where its XCom
    # field references read. The export's results are its output: the successful runs' only.
    answers = [_decoded(run.results["check_metrics"]) for run in airflow]
    answers += [run.results["check_metrics"]["Payload"] for run in (exported[0], exported[2])]
    assert all(answer == answers[0] for answer in answers), answers
    assert answers[0] == {
        "statusCode": 200,
        "TrainingJobStatus": "Completed",
        "trainingMetrics": [{"MetricName": k, "Value": v} for k, v in METRICS.items()],
    }


def test_a_field_of_the_stock_lambdas_xcom_is_refused_as_airflow_cannot_read_it():
    """Airflow renders ``xcom_pull(task_ids='check_metrics')['TrainingJobStatus']`` on the payload string and
    fails ("'str object' has no attribute 'TrainingJobStatus'"); the export refuses it rather than read it."""
    from airflow.providers.amazon.aws.operators.lambda_function import LambdaInvokeFunctionOperator
    from airflow.sdk import DAG

    from exporters.api import export_dag_object
    from exporters.errors import ExportError

    with DAG("stock_lambda_field", schedule=None) as dag:
        first = LambdaInvokeFunctionOperator(task_id="check_metrics", function_name="f", payload="{}")
        reader = "{{ ti.xcom_pull(task_ids='check_metrics')['TrainingJobStatus'] }}"
        first >> LambdaInvokeFunctionOperator(task_id="again", function_name="f", payload=json.dumps({"s": reader}))
    with pytest.raises(ExportError) as refused:
        export_dag_object(dag)
    assert "'TrainingJobStatus' is not kept in Step Functions" in str(refused.value)
    assert "again" in str(refused.value)


CLEANUP_TASKS = ["start", "create_model", "delete_model"]


def _models(client) -> list[str]:
    return sorted(m["ModelName"] for m in client("sagemaker").list_models()["Models"])


def test_a_model_created_for_a_run_is_deleted_at_its_end_run_after_run(aws, airflow_db):
    """SageMakerDeleteModelOperator (all_done, the provider's teardown): the same version twice, models gone."""
    both = run_on_both_sides(aws, load("stock_model_cleanup"), CLEANUP_TASKS, [None, None], _models)
    airflow, exported = both.airflow, both.exported
    deleted = [call.parameters for call in both.exported_calls if call.state == "delete_model"]

    assert exported == airflow
    assert [r.state for r in airflow] == ["success", "success"]
    assert all(r.tasks == {"start": "success", "create_model": "success", "delete_model": "success"} for r in airflow)
    assert both.exported_seen == both.airflow_seen == []
    assert deleted == [{"ModelName": "churn-scratch-v1"}]  # the last run's call: the one key the hook sends


def test_deleting_a_model_that_does_not_exist_fails_the_task_in_both(aws, airflow_db):
    dag = load("stock_delete_missing_model")
    definition = export_checked(dag)
    airflow = airflow_run(dag)
    with Interpreter() as sfn:
        exported = sfn.run(sfn.create(definition), ["delete_model"])
    assert exported == airflow
    assert airflow.state == "failed" and airflow.tasks == {"delete_model": "failed"}
