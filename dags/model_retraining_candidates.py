"""Train one candidate per hyperparameter set, pick the best by validation error, deploy it only if good enough.

ETL as in ``model_retraining`` (the same Glue job), then ``train_candidate`` trains one SageMaker
XGBoost job per hyperparameter set (dynamic task mapping; the job names end ``-<map_index>``), the
``select_best_candidate`` Lambda compares their final ``validation:error`` (lowest wins, a tie goes
to the lowest index), a choice on the best one's error vs the threshold, then create model from the
best job's artifacts, endpoint config and update (or create) the endpoint. ``python -m exporters
export model_retraining_candidates`` turns the mapped task into a ``Map`` state.

Parse-time hygiene: only Airflow and our operators are imported here.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from retraining import (
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

METRIC = "validation:error"  # reported by every candidate (eval_metric=error on the validation channel)
# One candidate per set, merged over the base hyperparameters. Small on purpose: a few seconds each.
CANDIDATE_HYPERPARAMETERS = [
    {"max_depth": "2", "eta": "0.3", "num_round": "10"},
    {"max_depth": "4", "eta": "0.2", "num_round": "20"},
    {"max_depth": "6", "eta": "0.1", "num_round": "30"},
]
BASE_HYPERPARAMETERS = {
    "gamma": "4",
    "min_child_weight": "6",
    "subsample": "0.8",
    "objective": "binary:logistic",
    "eval_metric": "error",
    "num_round": "20",
}
# Room for the "-<map_index>" each candidate's job name gets (after the per-run suffix).
MAX_TRAINING_PREFIX = MAX_NAME_PREFIX - len(f"-{len(CANDIDATE_HYPERPARAMETERS) - 1}")


def name_prefix_schema(max_length: int) -> dict:
    return {"type": "string", "pattern": sagemaker_name_pattern(max_length), "maxLength": max_length}


INSTANCE_TYPE_PATTERN = "^ml\\.[a-z0-9]+\\.[a-z0-9]+$"
LAMBDA_NAME_PATTERN = "^(?!.*\\n)[A-Za-z0-9_-]{1,64}$"  # a Lambda function name (not a path, ARN or wildcard)

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
        "s3://retraining-demo/candidates/processed/",
        type="string",
        pattern=S3_PREFIX_PATTERN,
        description="Prefix the ETL writes train/ and validation/ under (end with /).",
    ),
    "training_output": Param(
        "s3://retraining-demo/candidates/output/",
        type="string",
        pattern=S3_URI_PATTERN,
        description="Where SageMaker writes each candidate's model.tar.gz.",
    ),
    "training_job_prefix": Param(
        "churn-cand",
        **name_prefix_schema(MAX_TRAINING_PREFIX),
        description="Candidate job name = prefix + run suffix + '-<candidate index>'.",
    ),
    "model_prefix": Param(
        "churn-best",
        **name_prefix_schema(MAX_NAME_PREFIX),
        description="Model and endpoint config name = prefix + run suffix.",
    ),
    "endpoint_name": Param(
        "churn-candidates",
        type="string",
        pattern=SAGEMAKER_NAME_PATTERN,
        maxLength=SAGEMAKER_NAME_MAX,
        description="Long-lived endpoint to update with the best candidate (created if missing).",
    ),
    "selection_function_name": Param(
        "select-best-candidate",
        type="string",
        pattern=LAMBDA_NAME_PATTERN,
        minLength=1,
        maxLength=64,
        description="Lambda function that picks the candidate with the lowest validation error.",
    ),
    "threshold": Param(
        0.10, type="number", minimum=0, description="Deploy the best candidate only if its metric is below this."
    ),
    "training_image": Param(
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
        type="string",
        minLength=1,
        description="Built-in XGBoost image for your region.",
    ),
    "training_instance_type": Param("ml.m4.xlarge", type="string", pattern=INSTANCE_TYPE_PATTERN),
    "endpoint_instance_type": Param("ml.m4.xlarge", type="string", pattern=INSTANCE_TYPE_PATTERN),
    "endpoint_instance_count": Param(1, type="integer", minimum=1, maximum=20),
    "sagemaker_role_arn": Param(
        "arn:aws:iam::123456789012:role/SageMakerExecutionRole",
        type="string",
        # IAM's role path and name characters only ("(?!.*\n)": Python's "$" also matches before a newline).
        pattern="^(?!.*\\n)arn:aws[a-z-]*:iam::[0-9]{12}:role/(?:[A-Za-z0-9+=,.@_-]+/)*[A-Za-z0-9+=,.@_-]{1,64}$",
        description="Execution role SageMaker assumes for training and hosting.",
    ),
}

aws_stage_defaults = {
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,  # a multiplier in Airflow 3 (True would mean 1.0: constant delay)
    "max_retry_delay": timedelta(minutes=10),
}

with DAG(
    dag_id="model_retraining_candidates",
    description="Train one candidate per hyperparameter set; deploy the best if validation:error < threshold.",
    schedule="0 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # two retrains must never race on one endpoint
    dagrun_timeout=timedelta(hours=6),
    params=params,
    tags=["retraining", "sagemaker", "stepfunctions-export", "hyperparameters"],
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

    train_candidate = SageMakerTrainingJobOperator.partial(
        task_id="train_candidate",
        request=xgboost_training_request(
            training_job_name=RunUniqueName(ParamRef("training_job_prefix")),
            role_arn=ParamRef("sagemaker_role_arn"),
            image_uri=ParamRef("training_image"),
            train_s3_uri=Format("{}train/", ParamRef("s3_dest")),
            validation_s3_uri=Format("{}validation/", ParamRef("s3_dest")),
            output_s3_uri=ParamRef("training_output"),
            hyperparameters=BASE_HYPERPARAMETERS,
            instance_type=ParamRef("training_instance_type"),
            instance_count=1,
        ),
        execution_timeout=timedelta(hours=4),
        **aws_stage_defaults,
    ).expand(hyperparameters=CANDIDATE_HYPERPARAMETERS)

    select_best = LambdaInvokeOperator(
        task_id="select_best",
        function_name=ParamRef("selection_function_name"),
        payload={"TrainingJobNames": ResultRef("train_candidate", "TrainingJobName"), "MetricName": METRIC},
        execution_timeout=timedelta(minutes=5),
        **aws_stage_defaults,
    )

    accuracy_check = MetricChoiceOperator(
        task_id="accuracy_check",
        rule=MetricRule(
            metrics=ResultRef("select_best", "metrics"),
            metric=METRIC,
            comparison="<",
            threshold=ParamRef("threshold"),
            if_true="create_model",
            if_false="model_accuracy_too_low",
        ),
    )

    model_accuracy_too_low = FailRunOperator(
        task_id="model_accuracy_too_low",
        error="ModelAccuracyTooLow",
        cause="Model accuracy too low: the best candidate's validation error is not below the threshold; "
        "nothing deployed",
    )

    create_model = SageMakerCreateModelOperator(
        task_id="create_model",
        request={
            "ModelName": RunUniqueName(ParamRef("model_prefix")),
            "ExecutionRoleArn": ParamRef("sagemaker_role_arn"),
            "PrimaryContainer": {
                "Image": ResultRef("select_best", "TrainingImage"),
                "ModelDataUrl": ResultRef("select_best", "ModelArtifacts"),
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

    extract_transform_load >> train_candidate >> select_best >> accuracy_check
    accuracy_check >> [create_model, model_accuracy_too_low]
    create_model >> create_endpoint_config >> update_endpoint
