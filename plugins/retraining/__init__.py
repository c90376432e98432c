"""Retraining pipeline operators: each stage's AWS request is plain data an exporter can read.

Import this package in DAG files (Airflow puts ``plugins/`` on ``sys.path``).
It imports only Airflow; AWS clients are created inside ``execute``.
"""

from retraining.base import AwsStageOperator, StageFailed
from retraining.choice import COMPARISONS, FailRunOperator, MetricChoiceOperator, MetricRule
from retraining.glue import GlueJobRunOperator
from retraining.metric_check import LambdaMetricCheckOperator
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
    "AwsStageOperator",
    "COMPARISONS",
    "DEFAULT_XGBOOST_HYPERPARAMETERS",
    "FailRunOperator",
    "Format",
    "GlueJobRunOperator",
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
