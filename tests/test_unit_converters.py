"""Unit tests of the single-state converters (``exporters.converters``): each stage operator becomes one Task
state calling its service integration with the stage's request translated, and every field the operator
returns in Airflow (its ``result_fields``) stays readable downstream (kept under ``$.<task_id>``, or known
from the request), so downstream tasks read the same data in both. The table those converters are rows of is
open to a team's operator; the endpoint deployment's shapes (update or create, wait loop, execution timeout)
are checked here too. Their behaviour is covered by the structure, golden and differential tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.providers.amazon.aws.operators.sagemaker import SageMakerEndpointOperator
from airflow.sdk import DAG, BaseOperator, Param

from exporters import converters
from exporters.api import export_dag_object
from exporters.converters import IntegrationRow, convert_integration, register_table
from exporters.errors import ExportError
from retraining import (
    Format,
    GlueJobRunOperator,
    LambdaInvokeOperator,
    ParamRef,
    ResultRef,
    SageMakerCreateEndpointConfigOperator,
    SageMakerCreateModelOperator,
    SageMakerDeployEndpointOperator,
    SageMakerTrainingJobOperator,
    xgboost_training_request,
)

PARAMS = {"job": Param("etl", type="string"), "fn": Param("check", type="string"), "name": Param("m", type="string")}


def selected_fields(selector: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted output fields of a ResultSelector (``A.$`` keys, nested objects walked)."""
    out = set()
    for key, value in selector.items():
        if isinstance(value, dict):
            out |= selected_fields(value, f"{prefix}{key}.")
        else:
            out.add(prefix + key.removesuffix(".$"))
    return out


def export_one(build) -> tuple[Any, dict[str, Any]]:
    """A DAG of one upstream Glue run (results to read) and the stage under test; the stage's state."""
    with DAG(dag_id="unit", schedule=None, params=PARAMS) as dag:
        upstream = GlueJobRunOperator(task_id="upstream", job_name="prepare")
        stage = build()
        upstream >> stage
    return stage, export_dag_object(dag).definition["States"][stage.task_id]


CASES = {
    "glue": (
        lambda: GlueJobRunOperator(task_id="stage", job_name=ParamRef("job"), script_arguments={"--RUN": "x"}),
        "arn:aws:states:::glue:startJobRun.sync",
        {"JobName.$": "$.params.job", "Arguments": {"--RUN": "x"}},
    ),
    "lambda": (
        lambda: LambdaInvokeOperator(
            task_id="stage", function_name=ParamRef("fn"), payload={"run": ResultRef("upstream", "JobRunId")}
        ),
        "arn:aws:states:::lambda:invoke",
        {"FunctionName.$": "$.params.fn", "Payload": {"run.$": "$.upstream.JobRunId"}},
    ),
    "training": (
        lambda: SageMakerTrainingJobOperator(
            task_id="stage",
            request=xgboost_training_request(
                training_job_name=Format("{}-job", ParamRef("name")),
                role_arn="arn:aws:iam::123456789012:role/SageMaker",
                image_uri="img",
                train_s3_uri="s3://b/train/",
                validation_s3_uri="s3://b/validation/",
                output_s3_uri="s3://b/out/",
            ),
        ),
        "arn:aws:states:::sagemaker:createTrainingJob.sync",
        None,
    ),
    "model": (
        lambda: SageMakerCreateModelOperator(
            task_id="stage",
            request={
                "ModelName": ParamRef("name"),
                "ExecutionRoleArn": "arn:aws:iam::123456789012:role/SageMaker",
                "PrimaryContainer": {"Image": "img", "ModelDataUrl": ResultRef("upstream", "JobName")},
            },
        ),
        "arn:aws:states:::sagemaker:createModel",
        {
            "ModelName.$": "$.params.name",
            "ExecutionRoleArn": "arn:aws:iam::123456789012:role/SageMaker",
            "PrimaryContainer": {"Image": "img", "ModelDataUrl.$": "$.upstream.JobName"},
        },
    ),
    "endpoint config": (
        lambda: SageMakerCreateEndpointConfigOperator(
            task_id="stage",
            request={
                "EndpointConfigName": ParamRef("name"),
                "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m", "InitialInstanceCount": 1}],
            },
        ),
        "arn:aws:states:::sagemaker:createEndpointConfig",
        {
            "EndpointConfigName.$": "$.params.name",
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m", "InitialInstanceCount": 1}],
        },
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_stage_is_one_task_calling_its_integration_with_its_request(case):
    build, resource, parameters = CASES[case]
    stage, state = export_one(build)
    assert state["Type"] == "Task" and state["Resource"] == resource
    if parameters is not None:
        assert state["Parameters"] == parameters
    assert state["ResultPath"] == "$.stage"
    assert state["End"] is True


@pytest.mark.parametrize("case", sorted(set(CASES) - {"lambda"}))
def test_every_field_the_operator_returns_can_be_read_downstream_and_no_other(case):
    """Kept in the state data (ResultSelector) or known from the request (e.g. ModelName): readable; others refused."""
    build = CASES[case][0]
    stage, state = export_one(build)
    assert selected_fields(state["ResultSelector"]) <= set(stage.result_fields)
    top_fields = sorted({field.split(".")[0] for field in stage.result_fields})
    with DAG(dag_id="reads", schedule=None, params=PARAMS) as dag:
        GlueJobRunOperator(task_id="upstream", job_name="prepare") >> build()
        payload = {field: ResultRef("stage", field) for field in top_fields}
        dag.get_task("stage") >> LambdaInvokeOperator(task_id="reader", function_name="f", payload=payload)
    reader = export_dag_object(dag).definition["States"]["reader"]
    assert sorted(key.removesuffix(".$") for key in reader["Parameters"]["Payload"]) == top_fields
    with DAG(dag_id="reads_other", schedule=None, params=PARAMS) as other:
        GlueJobRunOperator(task_id="upstream", job_name="prepare") >> build()
        payload = {"x": ResultRef("stage", "NotAResultField")}
        other.get_task("stage") >> LambdaInvokeOperator(task_id="reader", function_name="f", payload=payload)
    with pytest.raises(ExportError) as refused:
        export_dag_object(other)
    assert "'NotAResultField' is not kept in Step Functions" in str(refused.value)


def test_a_lambda_keeps_its_whole_answer_as_the_operator_does():
    stage, state = export_one(CASES["lambda"][0])
    assert stage.result_fields == () and state["ResultSelector"] == {"Payload.$": "$.Payload"}


def test_training_parameters_are_the_request_with_the_name_formatted():
    stage, state = export_one(CASES["training"][0])
    parameters = state["Parameters"]
    assert parameters["TrainingJobName.$"] == "States.Format('{}-job', $.params.name)"
    assert "TrainingJobName" not in parameters
    literal = {k: v for k, v in stage.request.items() if k != "TrainingJobName"}
    assert {k: v for k, v in parameters.items() if k != "TrainingJobName.$"} == literal


# -- the table: one row per single-state operator --------------------------------------------------
class PutEventsOperator(BaseOperator):
    """A team's operator whose task is one Task state: exported through one table row, no converter function."""

    template_fields = ("request",)

    def __init__(self, *, request: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.request = request

    def execute(self, context: Any) -> None:  # pragma: no cover - never run by the export tests
        raise NotImplementedError


def test_a_team_operator_exports_through_one_table_row():
    row = IntegrationRow(
        PutEventsOperator,
        "arn:aws:states:::events:putEvents",
        result_selector={"FailedEntryCount.$": "$.FailedEntryCount"},
        layout={"fields": frozenset({"FailedEntryCount"})},
    )
    register_table((row,), convert_integration)
    try:
        _, state = export_one(
            lambda: PutEventsOperator(
                task_id="stage", request={"Entries": [{"Detail": ResultRef("upstream", "JobRunId")}]}, retries=2
            )
        )
    finally:
        converters._REGISTRY.pop(PutEventsOperator)
    assert state["Resource"] == "arn:aws:states:::events:putEvents"
    assert state["Parameters"] == {"Entries": [{"Detail.$": "$.upstream.JobRunId"}]}
    assert state["ResultSelector"] == {"FailedEntryCount.$": "$.FailedEntryCount"}
    assert state["ResultPath"] == "$.stage"
    assert [(r["ErrorEquals"], r["MaxAttempts"]) for r in state["Retry"]] == [(["States.ALL"], 2)]


@pytest.mark.parametrize(
    ("wait", "resource", "selector"),
    [
        (
            True,
            "arn:aws:states:::glue:startJobRun.sync",
            {"JobName.$": "$.JobName", "JobRunId.$": "$.Id", "JobRunState.$": "$.JobRunState"},
        ),
        (False, "arn:aws:states:::glue:startJobRun", {"JobRunId.$": "$.JobRunId"}),
    ],
)
def test_a_row_that_may_not_wait_drops_sync_and_keeps_what_the_start_answers(wait, resource, selector):
    _, state = export_one(lambda: GlueJobOperator(task_id="stage", job_name="etl", wait_for_completion=wait))
    assert state["Resource"] == resource
    assert state["ResultSelector"] == selector


# -- endpoint deployment: update or create, then the wait loop --------------------------------------
def branch_states(state: dict[str, Any]) -> dict[str, Any]:
    assert state["Type"] == "Parallel" and len(state["Branches"]) == 1
    return state["Branches"][0]["States"]


def test_an_update_that_does_not_wait_is_the_request_then_update_endpoint():
    _, state = export_one(
        lambda: SageMakerEndpointOperator(
            task_id="stage",
            config={"EndpointName": "e", "EndpointConfigName": "c"},
            operation="update",
            wait_for_completion=False,
        )
    )
    states = branch_states(state)
    assert list(states) == ["stage: request", "stage: UpdateEndpoint"]
    assert states["stage: request"]["Next"] == "stage: UpdateEndpoint"
    assert states["stage: UpdateEndpoint"]["End"] is True


def test_a_deploy_probes_the_endpoint_then_polls_until_in_service_within_its_execution_timeout():
    _, state = export_one(
        lambda: SageMakerDeployEndpointOperator(
            task_id="stage",
            request={"EndpointName": "e", "EndpointConfigName": "c"},
            poll_interval=10,
            execution_timeout=timedelta(seconds=95),
        )
    )
    states = branch_states(state)
    assert states["stage: request"]["Next"] == "stage: endpoint exists?"
    assert states["stage: endpoint exists?"]["Next"] == "stage: UpdateEndpoint"
    missing = states["stage: endpoint missing?"]
    assert missing["Choices"][0]["Next"] == "stage: CreateEndpoint"
    assert missing["Default"] == "stage: DescribeEndpoint failed"
    for call in ("stage: UpdateEndpoint", "stage: CreateEndpoint"):
        assert states[call]["Next"] == "stage: wait"
    assert states["stage: wait"]["Seconds"] == 10
    check = states["stage: InService?"]
    assert check["Choices"][0]["Next"] == "stage: deployed"
    # 95 s of polls every 10 s: the 10th poll is the last one the execution timeout allows.
    assert check["Choices"][1] == {
        "Variable": "$.stage.Polls.value",
        "NumericGreaterThanEquals": 10,
        "Next": "stage: timed out",
    }
    assert check["Choices"][2]["Next"] == "stage: count poll"
    assert check["Default"] == "stage: failed"
    assert states["stage: timed out"]["Error"] == "EndpointDeployTimeout"
