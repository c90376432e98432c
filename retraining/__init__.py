"""Retraining pipeline operators: each stage's AWS request is plain data an exporter can read.

Import this package in DAG files. It imports only Airflow (no AWS client, no exporter);
the provider's hooks are created inside ``execute``.
"""

from __future__ import annotations

from retraining.base import AwsStageOperator, StageFailed
from retraining.choice import COMPARISONS, MetricChoiceOperator, MetricRule
from retraining.fail import FailRunOperator
from retraining.glue import GLUE_JOB_NAME_PATTERN, GlueJobRunOperator
from retraining.lambda_function import LambdaInvokeOperator, LambdaMetricCheckOperator
from retraining.refs import Format, ParamRef, ResultRef, RunUniqueName
from retraining.sagemaker import (
    DEFAULT_XGBOOST_HYPERPARAMETERS,
    SageMakerCreateEndpointConfigOperator,
    SageMakerCreateModelOperator,
    SageMakerDeployEndpointOperator,
    SageMakerTrainingJobOperator,
    xgboost_training_request,
)

__all__ = [
    "COMPARISONS",
    "DEFAULT_XGBOOST_HYPERPARAMETERS",
    "GLUE_JOB_NAME_PATTERN",
    "AwsStageOperator",
    "FailRunOperator",
    "Format",
    "GlueJobRunOperator",
    "LambdaInvokeOperator",
    "LambdaMetricCheckOperator",
    "MetricChoiceOperator",
    "MetricRule",
    "ParamRef",
    "ResultRef",
    "RunUniqueName",
    "SageMakerCreateEndpointConfigOperator",
    "SageMakerCreateModelOperator",
    "SageMakerDeployEndpointOperator",
    "SageMakerTrainingJobOperator",
    "StageFailed",
    "xgboost_training_request",
]
