"""Benchmark baseline: the model_retraining pipeline written with the Amazon provider's stock operators.

Same seven AWS/branch stages, same params, schedule and retry policy as
``dags/model_retraining.py``, written the way a team would without our
``retraining`` operators: Jinja templates for run-dependent values, XCom pulls
for upstream results, a ``BranchPythonOperator`` for the metric choice.

Not a production DAG: it lives under ``bench/`` so Airflow never loads it;
``bench/parse_time.py`` parses it to compare DagBag parse time with ours.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pendulum
from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.providers.amazon.aws.operators.lambda_function import LambdaInvokeFunctionOperator
from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerEndpointConfigOperator,
    SageMakerEndpointOperator,
    SageMakerModelOperator,
    SageMakerTrainingOperator,
)
from airflow.providers.standard.operators.python import BranchPythonOperator, PythonOperator
from airflow.sdk import DAG, Param
from airflow.sdk.exceptions import AirflowFailException

DEFAULT_XGBOOST_HYPERPARAMETERS = {
    "max_depth": "5",
    "eta": "0.2",
    "gamma": "4",
    "min_child_weight": "6",
    "subsample": "0.8",
    "objective": "binary:logistic",
    "eval_metric": "error",
    "num_round": "100",
}

NAME_PREFIX_SCHEMA = {"type": "string", "pattern": "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,40}$", "maxLength": 41}
S3_URI_PATTERN = "^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"
S3_PREFIX_PATTERN = "^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/(.*/)?$"
INSTANCE_TYPE_PATTERN = "^ml\\.[a-z0-9]+\\.[a-z0-9]+$"

params = {
    "glue_job_name": Param(
        "churn-etl", type="string", minLength=1, maxLength=255, description="Existing Glue ETL job to run."
    ),
    "s3_source": Param(
        "s3://retraining-demo/raw/churn.csv",
        type="string",
        pattern=S3_URI_PATTERN,
        description="Raw CSV (file or prefix).",
    ),
    "s3_dest": Param(
        "s3://retraining-demo/processed/",
        type="string",
        pattern=S3_PREFIX_PATTERN,
        description="Prefix the ETL writes train/ and validation/ under (end with /).",
    ),
    "training_output": Param(
        "s3://retraining-demo/output/",
        type="string",
        pattern=S3_URI_PATTERN,
        description="Where SageMaker writes model.tar.gz.",
    ),
    "training_job_prefix": Param(
        "churn-xgb", **NAME_PREFIX_SCHEMA, description="Training job name = prefix + run suffix."
    ),
    "model_prefix": Param(
        "churn-model", **NAME_PREFIX_SCHEMA, description="Model and endpoint config name = prefix + run suffix."
    ),
    "endpoint_name": Param(
        "churn-endpoint",
        type="string",
        pattern="^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$",
        description="Long-lived endpoint to update.",
    ),
    "metric_function_name": Param(
        "query-training-status",
        type="string",
        minLength=1,
        maxLength=140,
        description="Lambda function that returns the training job's final metrics.",
    ),
    "threshold": Param(0.10, type="number", minimum=0, description="Deploy only if the metric is below this."),
    "training_image": Param(
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
        type="string",
        minLength=1,
        description="Built-in XGBoost image for your region.",
    ),
    "training_instance_type": Param("ml.m4.xlarge", type="string", pattern=INSTANCE_TYPE_PATTERN),
    "training_instance_count": Param(1, type="integer", minimum=1, maximum=20),
    "endpoint_instance_type": Param("ml.m4.xlarge", type="string", pattern=INSTANCE_TYPE_PATTERN),
    "endpoint_instance_count": Param(1, type="integer", minimum=1, maximum=20),
    "sagemaker_role_arn": Param(
        "arn:aws:iam::123456789012:role/SageMakerExecutionRole",
        type="string",
        pattern="^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$",
        description="Execution role SageMaker assumes for training and hosting.",
    ),
    "hyperparameters": Param(
        dict(DEFAULT_XGBOOST_HYPERPARAMETERS),
        type="object",
        additionalProperties={"type": "string"},
        description="Built-in XGBoost hyperparameters (string values, as SageMaker takes them).",
    ),
}

aws_stage_defaults = {
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}

# Run-unique resource names (SageMaker names are unique per account and region).
RUN_SUFFIX = "{{ ts_nodash | replace('T', '') }}-{{ run_id | hash_suffix }}"
TRAINING_JOB_NAME = "{{ params.training_job_prefix }}-" + RUN_SUFFIX
MODEL_NAME = "{{ params.model_prefix }}-" + RUN_SUFFIX
TRAINING_RESULT = "ti.xcom_pull(task_ids='train_model')['Training']"


def _hash_suffix(value: str) -> str:
    import hashlib

    return hashlib.sha1(value.encode()).hexdigest()[:6]


def _channel(name: str) -> dict:
    return {
        "ChannelName": name,
        "ContentType": "text/csv",
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": "{{ params.s3_dest }}" + name + "/",
                "S3DataDistributionType": "FullyReplicated",
            }
        },
    }


def choose_branch(metrics_payload: str, threshold: float) -> str:
    """``validation:error < threshold`` → create_model, else model_accuracy_too_low."""
    answer = json.loads(metrics_payload)
    metrics = {m["MetricName"]: float(m["Value"]) for m in answer["trainingMetrics"]}
    if "validation:error" not in metrics:
        raise AirflowFailException(f"validation:error not reported; got {sorted(metrics)}")
    return "create_model" if metrics["validation:error"] < float(threshold) else "model_accuracy_too_low"


def fail_run() -> None:
    raise AirflowFailException("ModelAccuracyTooLow: validation accuracy lower than threshold, nothing deployed")


with DAG(
    dag_id="model_retraining_stock",
    description="Benchmark baseline: model_retraining with the Amazon provider's stock operators.",
    schedule="0 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=6),
    params=params,
    render_template_as_native_obj=True,
    user_defined_filters={"hash_suffix": _hash_suffix},
    tags=["retraining", "sagemaker", "benchmark"],
    doc_md=__doc__,
) as dag:
    extract_transform_load = GlueJobOperator(
        task_id="extract_transform_load",
        job_name="{{ params.glue_job_name }}",
        script_args={
            "--S3_SOURCE": "{{ params.s3_source }}",
            "--S3_DEST": "{{ params.s3_dest }}",
            "--TRAIN_KEY": "train/",
            "--VAL_KEY": "validation/",
        },
        wait_for_completion=True,
        stop_job_run_on_kill=True,
        job_poll_interval=15,
        execution_timeout=timedelta(minutes=90),
        **aws_stage_defaults,
    )

    train_model = SageMakerTrainingOperator(
        task_id="train_model",
        config={
            "TrainingJobName": TRAINING_JOB_NAME,
            "AlgorithmSpecification": {"TrainingImage": "{{ params.training_image }}", "TrainingInputMode": "File"},
            "RoleArn": "{{ params.sagemaker_role_arn }}",
            "HyperParameters": "{{ params.hyperparameters }}",
            "InputDataConfig": [_channel("train"), _channel("validation")],
            "OutputDataConfig": {"S3OutputPath": "{{ params.training_output }}"},
            "ResourceConfig": {
                "InstanceType": "{{ params.training_instance_type }}",
                "InstanceCount": "{{ params.training_instance_count }}",
                "VolumeSizeInGB": 30,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        },
        wait_for_completion=True,
        check_interval=30,
        action_if_job_exists="fail",
        execution_timeout=timedelta(hours=4),
        **aws_stage_defaults,
    )

    check_metrics = LambdaInvokeFunctionOperator(
        task_id="check_metrics",
        function_name="{{ params.metric_function_name }}",
        invocation_type="RequestResponse",
        payload="{{ {'TrainingJobName': " + TRAINING_RESULT + "['TrainingJobName']} | tojson }}",
        execution_timeout=timedelta(minutes=5),
        **aws_stage_defaults,
    )

    accuracy_check = BranchPythonOperator(
        task_id="accuracy_check",
        python_callable=choose_branch,
        op_kwargs={
            "metrics_payload": "{{ ti.xcom_pull(task_ids='check_metrics') }}",
            "threshold": "{{ params.threshold }}",
        },
    )

    model_accuracy_too_low = PythonOperator(task_id="model_accuracy_too_low", python_callable=fail_run)

    create_model = SageMakerModelOperator(
        task_id="create_model",
        config={
            "ModelName": MODEL_NAME,
            "ExecutionRoleArn": "{{ params.sagemaker_role_arn }}",
            "PrimaryContainer": {
                "Image": "{{ " + TRAINING_RESULT + "['AlgorithmSpecification']['TrainingImage'] }}",
                "ModelDataUrl": "{{ " + TRAINING_RESULT + "['ModelArtifacts']['S3ModelArtifacts'] }}",
            },
        },
        **aws_stage_defaults,
    )

    create_endpoint_config = SageMakerEndpointConfigOperator(
        task_id="create_endpoint_config",
        config={
            "EndpointConfigName": MODEL_NAME,
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": MODEL_NAME,
                    "InitialInstanceCount": "{{ params.endpoint_instance_count }}",
                    "InstanceType": "{{ params.endpoint_instance_type }}",
                    "InitialVariantWeight": 1.0,
                }
            ],
        },
        **aws_stage_defaults,
    )

    # The stock operator's "update" fails when the endpoint does not exist yet
    # (ours falls back to CreateEndpoint); for parse time this makes no difference.
    update_endpoint = SageMakerEndpointOperator(
        task_id="update_endpoint",
        config={
            "EndpointName": "{{ params.endpoint_name }}",
            "EndpointConfigName": MODEL_NAME,
        },
        operation="update",
        wait_for_completion=True,
        check_interval=30,
        execution_timeout=timedelta(hours=1),
        **aws_stage_defaults,
    )

    extract_transform_load >> train_model >> check_metrics >> accuracy_check
    accuracy_check >> [create_model, model_accuracy_too_low]
    create_model >> create_endpoint_config >> update_endpoint
