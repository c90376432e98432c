"""A model created for a run and deleted at its end, whatever happened (the provider's teardown pattern).

``SageMakerDeleteModelOperator`` with ``trigger_rule="all_done"``, as in the Amazon provider's
``example_sagemaker_endpoint.py``. Run twice with the same version, both runs succeed: the first run's
model is gone by the second. ``stock_delete_missing_model`` deletes a model nothing created: the task
fails on SageMaker's "could not find model", as the hook's call does.
"""

from __future__ import annotations

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerDeleteModelOperator, SageMakerModelOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param

MODEL = "churn-scratch-{{ params.version }}"

with DAG(
    dag_id="stock_model_cleanup",
    schedule=None,
    params={"version": Param("v1", type="string", pattern="^[a-z0-9]+$")},
) as stock_model_cleanup:
    start = EmptyOperator(task_id="start")
    create_model = SageMakerModelOperator(
        task_id="create_model",
        config={
            "ModelName": MODEL,
            "ExecutionRoleArn": "arn:aws:iam::123456789012:role/SageMakerExecutionRole",
            "PrimaryContainer": {"Image": "xgboost:1.7-1", "ModelDataUrl": "s3://stock-demo/output/model.tar.gz"},
        },
    )
    delete_model = SageMakerDeleteModelOperator(
        task_id="delete_model",
        config={"ModelName": MODEL},
        trigger_rule="all_done",
        retries=0,
    )
    start >> create_model >> delete_model

with DAG(dag_id="stock_delete_missing_model", schedule=None) as stock_delete_missing_model:
    SageMakerDeleteModelOperator(task_id="delete_model", config={"ModelName": "never-created"}, retries=0)
