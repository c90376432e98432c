"""Stock serving operators with fixed names, as a user's DAG has them, and a stock Lambda metric check.

Run twice with the same version, the second run meets the model of the first: SageMaker refuses it
("Cannot create already existing model"), so the run fails there. A new version creates a new model and
config; the endpoint exists by then, so ``operation="create"`` updates it (Airflow's fallback).
"""

from __future__ import annotations

import json

from airflow.providers.amazon.aws.operators.lambda_function import LambdaInvokeFunctionOperator
from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerEndpointConfigOperator,
    SageMakerEndpointOperator,
    SageMakerModelOperator,
)
from airflow.sdk import DAG, Param

VERSIONED = "churn-fixed-{{ params.version }}"

with DAG(
    dag_id="stock_serving",
    schedule=None,
    params={"version": Param("v1", type="string", pattern="^[a-z0-9]+$")},
) as stock_serving:
    check_metrics = LambdaInvokeFunctionOperator(
        task_id="check_metrics",
        function_name="query-training-status",
        payload=json.dumps({"TrainingJobName": "churn-xgb-fixed"}),
    )
    create_model = SageMakerModelOperator(
        task_id="create_model",
        config={
            "ModelName": VERSIONED,
            "ExecutionRoleArn": "arn:aws:iam::123456789012:role/SageMakerExecutionRole",
            "PrimaryContainer": {"Image": "xgboost:1.7-1", "ModelDataUrl": "s3://stock-demo/output/model.tar.gz"},
        },
    )
    create_endpoint_config = SageMakerEndpointConfigOperator(
        task_id="create_endpoint_config",
        config={
            "EndpointConfigName": VERSIONED,
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": VERSIONED,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                }
            ],
        },
    )
    deploy = SageMakerEndpointOperator(
        task_id="deploy",
        config={"EndpointName": "churn-fixed-endpoint", "EndpointConfigName": VERSIONED},
        operation="create",
        wait_for_completion=True,
        check_interval=1,
    )
    check_metrics >> create_model >> create_endpoint_config >> deploy
