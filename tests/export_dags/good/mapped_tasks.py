"""Dynamic task mapping: one training candidate per hyperparameter set (a literal list, or a Lambda's list).

``pick_best`` reads the candidates' job names and metrics as lists in map-index order;
``report`` runs whatever the listed candidates did (``all_done``); ``report_single`` reads a one-item
mapped task's names (a list of one).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG

from retraining import LambdaInvokeOperator, ParamRef, ResultRef, RunUniqueName, SageMakerTrainingJobOperator
from retraining.sagemaker import xgboost_training_request

REQUEST = xgboost_training_request(
    training_job_name=RunUniqueName("cand"),
    role_arn="arn:aws:iam::123456789012:role/SageMakerExecutionRole",
    image_uri="683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
    train_s3_uri="s3://mapped-demo/train/",
    validation_s3_uri="s3://mapped-demo/validation/",
    output_s3_uri="s3://mapped-demo/models/",
)

with DAG(dag_id="mapped_tasks", schedule=None, params={"metric": "validation:error"}) as mapped_tasks:
    train_candidate = SageMakerTrainingJobOperator.partial(
        task_id="train_candidate",
        request=REQUEST,
        retries=1,
        retry_delay=timedelta(seconds=5),
        max_active_tis_per_dagrun=2,
    ).expand(hyperparameters=[{"eta": "0.1"}, {"eta": "0.2", "max_depth": "3"}, {"eta": "0.3"}])
    pick_best = LambdaInvokeOperator(
        task_id="pick_best",
        function_name="select-best-candidate",
        payload={
            "metric": ParamRef("metric"),
            "jobs": ResultRef("train_candidate", "TrainingJobName"),
            "metrics": ResultRef("train_candidate", "FinalMetricDataList"),
        },
    )
    list_sets = LambdaInvokeOperator(task_id="list_sets", function_name="list-hyperparameter-sets", payload={})
    train_listed = SageMakerTrainingJobOperator.partial(task_id="train_listed", request=REQUEST).expand(
        hyperparameters=list_sets.output
    )
    report = LambdaInvokeOperator(
        task_id="report",
        function_name="report-candidates",
        payload={"jobs": ResultRef("train_listed", "TrainingJobName")},
        trigger_rule="all_done",
    )
    # One item: Airflow hands a lone mapped result over bare; a mapped task's ResultRef still reads a list.
    train_single = SageMakerTrainingJobOperator.partial(task_id="train_single", request=REQUEST).expand(
        hyperparameters=[{"eta": "0.4"}]
    )
    report_single = LambdaInvokeOperator(
        task_id="report_single",
        function_name="report-candidates",
        payload={"jobs": ResultRef("train_single", "TrainingJobName")},
    )
    train_candidate >> pick_best
    list_sets >> train_listed >> report
    train_single >> report_single
