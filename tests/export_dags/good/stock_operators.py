"""The retraining stages written with the Amazon provider's stock operators, as an existing DAG would be.

Only the Jinja forms with an exact Step Functions meaning are used
(``{{ params.NAME }}``, ``{{ ti.xcom_pull(task_ids='T')['F'] }}``, text around them),
so the exporter must take this DAG as it is, without rewriting.
"""

from __future__ import annotations

import json
from datetime import timedelta

from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.providers.amazon.aws.operators.lambda_function import LambdaInvokeFunctionOperator
from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerEndpointConfigOperator,
    SageMakerEndpointOperator,
    SageMakerModelOperator,
    SageMakerTrainingOperator,
)
from airflow.sdk import DAG, Param

TRAINING = "ti.xcom_pull(task_ids='train_model')['Training']"
MODEL_NAME = "{{ params.model_prefix }}-model"

with DAG(
    dag_id="stock_operators",
    schedule=None,
    params={
        "glue_job_name": Param("churn-etl", type="string"),
        "s3_dest": Param("s3://bucket/processed/", type="string"),
        "training_job_name": Param("churn-xgb-1", type="string"),
        "role_arn": Param("arn:aws:iam::123456789012:role/SageMaker", type="string"),
        "image": Param("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1", type="string"),
        "function_name": Param("query-training-status", type="string"),
        "model_prefix": Param("churn", type="string"),
        "endpoint_name": Param("churn-endpoint", type="string"),
    },
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
) as stock_operators:
    etl = GlueJobOperator(
        task_id="etl",
        job_name="{{ params.glue_job_name }}",
        script_args={"--S3_DEST": "{{ params.s3_dest }}", "--TRAIN_KEY": "train/"},
        wait_for_completion=True,
    )
    train_model = SageMakerTrainingOperator(
        task_id="train_model",
        config={
            "TrainingJobName": "{{ params.training_job_name }}",
            "AlgorithmSpecification": {"TrainingImage": "{{ params.image }}", "TrainingInputMode": "File"},
            "RoleArn": "{{ params.role_arn }}",
            "InputDataConfig": [
                {
                    "ChannelName": "train",
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "{{ params.s3_dest }}train/"}},
                }
            ],
            "OutputDataConfig": {"S3OutputPath": "s3://bucket/output/"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
        wait_for_completion=True,
    )
    check_metrics = LambdaInvokeFunctionOperator(
        task_id="check_metrics",
        function_name="{{ params.function_name }}",
        payload=json.dumps({"TrainingJobName": "{{ " + TRAINING + "['TrainingJobName'] }}"}),
    )
    create_model = SageMakerModelOperator(
        task_id="create_model",
        config={
            "ModelName": MODEL_NAME,
            "ExecutionRoleArn": "{{ params.role_arn }}",
            "PrimaryContainer": {
                "Image": "{{ " + TRAINING + "['AlgorithmSpecification']['TrainingImage'] }}",
                "ModelDataUrl": "{{ " + TRAINING + "['ModelArtifacts']['S3ModelArtifacts'] }}",
            },
        },
    )
    create_endpoint_config = SageMakerEndpointConfigOperator(
        task_id="create_endpoint_config",
        config={
            "EndpointConfigName": MODEL_NAME,
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": MODEL_NAME,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                }
            ],
        },
    )
    update_endpoint = SageMakerEndpointOperator(
        task_id="update_endpoint",
        config={"EndpointName": "{{ params.endpoint_name }}", "EndpointConfigName": MODEL_NAME},
        operation="update",
        wait_for_completion=True,
        check_interval=20,
    )
    etl >> train_model >> check_metrics >> create_model >> create_endpoint_config >> update_endpoint
