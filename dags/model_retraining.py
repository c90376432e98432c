"""Scheduled model retraining: ETL → train → check the metric → deploy only if good enough.

The same stages as the reference Step Functions workflow: Glue ETL, SageMaker
training (built-in XGBoost), a Lambda that reads the job's final metrics, a
choice on ``validation:error < threshold``, then create model, endpoint config
and update (or create) the live endpoint. ``python -m exporters export
model_retraining`` turns this file into that state machine.

Parse-time hygiene: only Airflow and our operators are imported here.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from retraining import (
    DEFAULT_XGBOOST_HYPERPARAMETERS,
    GLUE_JOB_NAME_PATTERN,
    MAX_NAME_PREFIX,
    S3_PREFIX_PATTERN,
    S3_URI_PATTERN,
    SAGEMAKER_NAME_MAX,
    SAGEMAKER_NAME_PATTERN,
    FailRunOperator,
    Format,
    GlueJobRunOperator,
    LambdaInvokeOperator,
    MetricChoiceOperator,
    MetricRule,
    ParamRef,
    ResultRef,
    RunUniqueName,
    SageMakerCreateEndpointConfigOperator,
    SageMakerCreateModelOperator,
    SageMakerDeployEndpointOperator,
    SageMakerTrainingJobOperator,
    sagemaker_name_pattern,
    xgboost_training_request,
)

# 1-30 chars so prefix + per-run suffix stays a valid 63-char SageMaker name in Airflow and Step Functions.
NAME_PREFIX_SCHEMA = {
    "type": "string",
    "pattern": sagemaker_name_pattern(MAX_NAME_PREFIX),
    "maxLength": MAX_NAME_PREFIX,
}
INSTANCE_TYPE_PATTERN = "^ml\\.[a-z0-9]+\\.[a-z0-9]+$"

params = {
    "glue_job_name": Param(
        "churn-etl",
        type="string",
        pattern=GLUE_JOB_NAME_PATTERN,
        minLength=1,
        maxLength=255,
        description="Existing Glue ETL job to run (letters, digits, '-' and '_').",
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
        pattern=SAGEMAKER_NAME_PATTERN,
        maxLength=SAGEMAKER_NAME_MAX,
        description="Long-lived endpoint to update (created if missing).",
    ),
    "metric_function_name": Param(
        "query-training-status",
        type="string",
        pattern="^(?!.*\\n)[A-Za-z0-9_-]{1,64}$",  # a Lambda function name (not a path, ARN or wildcard)
        minLength=1,
        maxLength=64,
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
        # IAM's role path and name characters only ("(?!.*\n)": Python's "$" also matches before a newline).
        pattern="^(?!.*\\n)arn:aws[a-z-]*:iam::[0-9]{12}:role/(?:[A-Za-z0-9+=,.@_-]+/)*[A-Za-z0-9+=,.@_-]{1,64}$",
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
    "retry_exponential_backoff": 2.0,  # a multiplier in Airflow 3 (True would mean 1.0: constant delay)
    "max_retry_delay": timedelta(minutes=10),
}

with DAG(
    dag_id="model_retraining",
    description="Retrain the churn model hourly; deploy it only if validation:error < threshold.",
    schedule="0 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # two retrains must never race on one endpoint
    dagrun_timeout=timedelta(hours=6),
    params=params,
    tags=["retraining", "sagemaker", "stepfunctions-export"],
    doc_md=__doc__,
) as dag:
    extract_transform_load = GlueJobRunOperator(
        task_id="extract_transform_load",
        job_name=ParamRef("glue_job_name"),
        script_arguments={
            "--S3_SOURCE": ParamRef("s3_source"),
            "--S3_DEST": ParamRef("s3_dest"),
            "--TRAIN_KEY": "train/",
            "--VAL_KEY": "validation/",
        },
        execution_timeout=timedelta(minutes=90),
        **aws_stage_defaults,
    )

    train_model = SageMakerTrainingJobOperator(
        task_id="train_model",
        request=xgboost_training_request(
            training_job_name=RunUniqueName(ParamRef("training_job_prefix")),
            role_arn=ParamRef("sagemaker_role_arn"),
            image_uri=ParamRef("training_image"),
            train_s3_uri=Format("{}train/", ParamRef("s3_dest")),
            validation_s3_uri=Format("{}validation/", ParamRef("s3_dest")),
            output_s3_uri=ParamRef("training_output"),
            hyperparameters=ParamRef("hyperparameters"),
            instance_type=ParamRef("training_instance_type"),
            instance_count=ParamRef("training_instance_count"),
        ),
        execution_timeout=timedelta(hours=4),
        **aws_stage_defaults,
    )

    check_metrics = LambdaInvokeOperator(
        task_id="check_metrics",
        function_name=ParamRef("metric_function_name"),
        payload={"TrainingJobName": ResultRef("train_model", "TrainingJobName")},
        execution_timeout=timedelta(minutes=5),
        **aws_stage_defaults,
    )

    accuracy_check = MetricChoiceOperator(
        task_id="accuracy_check",
        rule=MetricRule(
            metrics=ResultRef("check_metrics", "trainingMetrics"),
            metric="validation:error",
            comparison="<",
            threshold=ParamRef("threshold"),
            if_true="create_model",
            if_false="model_accuracy_too_low",
        ),
    )

    model_accuracy_too_low = FailRunOperator(
        task_id="model_accuracy_too_low",
        error="ModelAccuracyTooLow",
        cause="Model accuracy too low: validation accuracy lower than threshold, nothing deployed",
    )

    create_model = SageMakerCreateModelOperator(
        task_id="create_model",
        request={
            "ModelName": RunUniqueName(ParamRef("model_prefix")),
            "ExecutionRoleArn": ParamRef("sagemaker_role_arn"),
            "PrimaryContainer": {
                "Image": ResultRef("train_model", "AlgorithmSpecification", "TrainingImage"),
                "ModelDataUrl": ResultRef("train_model", "ModelArtifacts", "S3ModelArtifacts"),
            },
        },
        **aws_stage_defaults,
    )

    create_endpoint_config = SageMakerCreateEndpointConfigOperator(
        task_id="create_endpoint_config",
        request={
            "EndpointConfigName": ResultRef("create_model", "ModelName"),
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": ResultRef("create_model", "ModelName"),
                    "InitialInstanceCount": ParamRef("endpoint_instance_count"),
                    "InstanceType": ParamRef("endpoint_instance_type"),
                    "InitialVariantWeight": 1.0,
                }
            ],
        },
        **aws_stage_defaults,
    )

    update_endpoint = SageMakerDeployEndpointOperator(
        task_id="update_endpoint",
        request={
            "EndpointName": ParamRef("endpoint_name"),
            "EndpointConfigName": ResultRef("create_endpoint_config", "EndpointConfigName"),
        },
        execution_timeout=timedelta(hours=1),
        **aws_stage_defaults,
    )

    extract_transform_load >> train_model >> check_metrics >> accuracy_check
    accuracy_check >> [create_model, model_accuracy_too_low]
    create_model >> create_endpoint_config >> update_endpoint
