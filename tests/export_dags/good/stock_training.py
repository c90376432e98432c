"""A stock SageMakerTrainingOperator with a fixed TrainingJobName: it works run after run (Airflow renames)."""

from __future__ import annotations

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator
from airflow.sdk import DAG

with DAG(dag_id="stock_training", schedule=None) as stock_training:
    SageMakerTrainingOperator(
        task_id="train_model",
        config={
            "TrainingJobName": "churn-xgb-fixed",
            "AlgorithmSpecification": {"TrainingImage": "xgboost:1.7-1", "TrainingInputMode": "File"},
            "RoleArn": "arn:aws:iam::123456789012:role/SageMakerExecutionRole",
            "OutputDataConfig": {"S3OutputPath": "s3://stock-demo/output/"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
        wait_for_completion=True,
        check_interval=1,
        print_log=False,
    )
