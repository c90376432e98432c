"""Small DAGs for the CloudFormation export tests (tests/test_export_cloudformation.py, tests/test_export_iam.py).

Loaded with ``exporters.loader.load_dag(dag_id, dags_folder=<this file>)``; nothing here runs.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.amazon.aws.operators.sagemaker import SageMakerModelOperator, SageMakerTrainingOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset, Param

from retraining import GlueJobRunOperator, LambdaInvokeOperator, ParamRef

# Every 90 minutes from 2031-01-01 to the end of 2031; a fan-out puts a Glue job and a Lambda call in a Parallel state.
with DAG(
    dag_id="cfn_timedelta",
    schedule=timedelta(minutes=90),
    start_date=pendulum.datetime(2031, 1, 1, tz="UTC"),
    end_date=pendulum.datetime(2031, 12, 31, tz="UTC"),
    params={
        "job_a": Param("etl-a", type="string", description="Glue job run in the fan-out"),
        "function": Param("check-fn", type="string"),
        "source": Param("s3://cfn-bucket/raw/", type="string"),
        "dest": Param("s3://cfn-output/processed/", type="string"),
        "threshold": Param(0.5, type="number"),
    },
) as cfn_timedelta:
    start = EmptyOperator(task_id="start")
    glue_a = GlueJobRunOperator(
        task_id="glue_a",
        job_name=ParamRef("job_a"),
        script_arguments={"--S3_SOURCE": ParamRef("source"), "--S3_DEST": ParamRef("dest")},
    )
    check = LambdaInvokeOperator(
        task_id="check", function_name=ParamRef("function"), payload={"source": ParamRef("source")}
    )
    join = EmptyOperator(task_id="join")
    start >> [glue_a, check] >> join


# No schedule; stock operators: a training job started without waiting (with Tags), a model with literal names.
with DAG(
    dag_id="cfn_unscheduled",
    schedule=None,
    params={
        "job_name": Param("nightly-job", type="string"),
        "role_arn": Param("arn:aws:iam::123456789012:role/TrainingRole", type="string"),
    },
) as cfn_unscheduled:
    train = SageMakerTrainingOperator(
        task_id="train",
        wait_for_completion=False,
        config={
            "TrainingJobName": "{{ params.job_name }}",
            "RoleArn": "{{ params.role_arn }}",
            "AlgorithmSpecification": {"TrainingImage": "img:1", "TrainingInputMode": "File"},
            "OutputDataConfig": {"S3OutputPath": "s3://cfn-bucket/out/"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
            "Tags": [{"Key": "team", "Value": "ml"}],
        },
    )
    model = SageMakerModelOperator(
        task_id="model",
        config={
            "ModelName": "Literal-Model",
            "ExecutionRoleArn": "arn:aws:iam::123456789012:role/LiteralModelRole",
            "PrimaryContainer": {"Image": "img:1", "ModelDataUrl": "s3://cfn-bucket/out/model.tar.gz"},
        },
    )
    train >> model


# Weekdays at 02:30 Paris time: the DST-aware case (EventBridge Scheduler only).
with DAG(
    dag_id="cfn_paris",
    schedule="30 2 * * 1-5",
    start_date=pendulum.datetime(2026, 1, 1, tz="Europe/Paris"),
) as cfn_paris:
    LambdaInvokeOperator(task_id="check", function_name="literal-fn", payload={"k": "v"})


# Asset-triggered: no EventBridge equivalent; only Pass states, so a role without a policy.
with DAG(
    dag_id="cfn_assets", schedule=[Asset("s3://cfn-bucket/ready")], start_date=pendulum.datetime(2026, 1, 1, tz="UTC")
) as cfn_assets:
    EmptyOperator(task_id="only")
