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
from retraining.refs import (
    MAX_NAME_PREFIX,
    SAGEMAKER_NAME_MAX,
    SAGEMAKER_NAME_PATTERN,
    Format,
    LogicalDate,
    ParamRef,
    ResultRef,
    RunId,
    RunUniqueName,
    sagemaker_name_pattern,
)
from retraining.s3 import S3_PREFIX_PATTERN, S3_URI_PATTERN
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
    "LogicalDate",
    "MAX_NAME_PREFIX",
    "MetricChoiceOperator",
    "MetricRule",
    "ParamRef",
    "ResultRef",
    "RunId",
    "RunUniqueName",
    "SAGEMAKER_NAME_MAX",
    "SAGEMAKER_NAME_PATTERN",
    "S3_PREFIX_PATTERN",
    "S3_URI_PATTERN",
    "SageMakerCreateEndpointConfigOperator",
    "SageMakerCreateModelOperator",
    "SageMakerDeployEndpointOperator",
    "SageMakerTrainingJobOperator",
    "StageFailed",
    "sagemaker_name_pattern",
    "xgboost_training_request",
]
