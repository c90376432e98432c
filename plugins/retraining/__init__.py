"""Retraining pipeline operators: each stage's AWS request is plain data an exporter can read.

Import this package in DAG files (Airflow puts ``plugins/`` on ``sys.path``).
It imports only Airflow; AWS clients are created inside ``execute``.
"""

from __future__ import annotations

from typing import Any

# Lazy (PEP 562): ``retraining.local`` workers import this package without Airflow.
_EXPORTS = {
    "AwsStageOperator": "retraining.base",
    "StageFailed": "retraining.base",
    "COMPARISONS": "retraining.choice",
    "FailRunOperator": "retraining.choice",
    "MetricChoiceOperator": "retraining.choice",
    "MetricRule": "retraining.choice",
    "GlueJobRunOperator": "retraining.glue",
    "LambdaMetricCheckOperator": "retraining.metric_check",
    "Format": "retraining.refs",
    "ParamRef": "retraining.refs",
    "ResultRef": "retraining.refs",
    "RunUniqueName": "retraining.refs",
    "DEFAULT_XGBOOST_HYPERPARAMETERS": "retraining.sagemaker",
    "SageMakerCreateEndpointConfigOperator": "retraining.sagemaker",
    "SageMakerCreateModelOperator": "retraining.sagemaker",
    "SageMakerDeployEndpointOperator": "retraining.sagemaker",
    "SageMakerTrainingJobOperator": "retraining.sagemaker",
    "xgboost_training_request": "retraining.sagemaker",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'retraining' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
