"""Stages 2, 6, 7, 8: SageMaker training, model, endpoint config, endpoint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from retraining.base import AwsStageOperator, HookClass, StageFailed, pick_fields
from retraining.links import EndpointConfigLink, EndpointLink, ModelLink, TrainingJobLink
from retraining.mapping import MappedPartial, check_hyperparameters, map_index_of, with_map_index

TRAINING_PENDING_STATES = ("InProgress", "Stopping")
# Endpoint statuses that end on their own; the exported state machine waits on the same ones.
ENDPOINT_PENDING_STATES = ("Creating", "Updating", "SystemUpdating", "RollingBack")

# Built-in XGBoost hyperparameters as the reference notebook sets them.
DEFAULT_XGBOOST_HYPERPARAMETERS = {
    "max_depth": "5",
    "eta": "0.2",
    "gamma": "4",
    "min_child_weight": "6",
    "subsample": "0.8",
    "objective": "binary:logistic",
    "eval_metric": "error",
    "num_round": "100",
}


def xgboost_training_request(
    *,
    training_job_name: Any,
    role_arn: Any,
    image_uri: Any,
    train_s3_uri: Any,
    validation_s3_uri: Any,
    output_s3_uri: Any,
    hyperparameters: Any = None,
    instance_type: Any = "ml.m4.xlarge",
    instance_count: Any = 1,
    volume_size_gb: int = 30,
    max_runtime_seconds: int = 86400,
) -> dict[str, Any]:
    """A ``CreateTrainingJob`` request for the built-in XGBoost algorithm on CSV channels."""

    def channel(name: str, uri: Any) -> dict[str, Any]:
        return {
            "ChannelName": name,
            "ContentType": "text/csv",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": uri,
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
        }

    return {
        "TrainingJobName": training_job_name,
        "AlgorithmSpecification": {"TrainingImage": image_uri, "TrainingInputMode": "File"},
        "RoleArn": role_arn,
        "HyperParameters": hyperparameters if hyperparameters is not None else dict(DEFAULT_XGBOOST_HYPERPARAMETERS),
        "InputDataConfig": [channel("train", train_s3_uri), channel("validation", validation_s3_uri)],
        "OutputDataConfig": {"S3OutputPath": output_s3_uri},
        "ResourceConfig": {
            "InstanceType": instance_type,
            "InstanceCount": instance_count,
            "VolumeSizeInGB": volume_size_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_seconds},
    }


class TrainingJobFailed(StageFailed, AirflowFailException):
    """The training job ran and failed: no retry (the Step Functions export does not retry it either)."""


def _already_exists(err: Exception) -> bool:
    message = str(err).lower()
    return "already exist" in message or "must be unique" in message or "resourceinuse" in message


class _SageMakerStage(AwsStageOperator):
    aws_hook_class = HookClass("airflow.providers.amazon.aws.hooks.sagemaker.SageMakerHook")

    def create_or_adopt(
        self,
        what: str,
        name: str,
        create: Callable[[], dict[str, Any]],
        describe: Callable[[], dict[str, Any]],
        same: Callable[[dict[str, Any]], bool],
        differs: str,
    ) -> dict[str, Any]:
        """``create()``; when the resource already exists (a retry of this run created it), adopt it.

        Returns ``create()``'s answer, or ``describe()``'s for an adopted resource. One of another run
        (``same(described)`` false) is refused: the task fails with ``differs`` as the reason.
        """
        sagemaker = self.hook.conn
        try:
            answer = create()
        except sagemaker.exceptions.ClientError as err:
            if not _already_exists(err):
                raise
            existing = describe()
            if not same(existing):
                raise StageFailed(f"{what} {name!r} already exists {differs}") from None
            self.log.info("%s %s already exists (a retry of this run): using it", what, name)
            return existing
        self.log.info("Created %s %s", what, name)
        return answer


class SageMakerTrainingJobOperator(_SageMakerStage):
    """``CreateTrainingJob`` and wait for it to end.

    Result: the job name, status, final metrics (``MetricName``/``Value`` pairs),
    model artifact URI and training image; nothing else, so the same small
    record flows in Airflow and in Step Functions (whose state data is capped).
    A failed or stopped job fails the task with SageMaker's ``FailureReason``.
    """

    result_fields = (
        "TrainingJobName",
        "TrainingJobStatus",
        "FinalMetricDataList",
        "ModelArtifacts.S3ModelArtifacts",
        "AlgorithmSpecification.TrainingImage",
    )
    ui_color = "#e3d6f7"
    operator_extra_links = (TrainingJobLink(),)
    template_fields = ("request", "hyperparameters")
    export_attributes = (*_SageMakerStage.export_attributes, "hyperparameters")
    # .partial(...).expand(...) checks the mapped job names (name + "-<map_index>") at parse time.
    partial = MappedPartial.classmethod_for("TrainingJobName")

    def __init__(
        self,
        *,
        request: dict[str, Any],
        poll_interval: float = 30,
        hyperparameters: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        """``hyperparameters``: merged over ``request["HyperParameters"]`` (e.g. one set per mapped candidate)."""
        super().__init__(request=request, poll_interval=poll_interval, **kwargs)
        check_hyperparameters(self.task_id, hyperparameters)
        self.hyperparameters = hyperparameters
        self._job_name: str | None = None

    def effective_request(self, map_index: int | None) -> dict[str, Any]:
        """The CreateTrainingJob request this try sends: ``hyperparameters`` merged in; a mapped task's
        job name suffixed ``-<map_index>`` so each candidate's name is unique (as in the export)."""
        request = dict(self.request)
        if self.hyperparameters:
            check_hyperparameters(self.task_id, self.hyperparameters)  # an expanded XCom value is checked here
            request["HyperParameters"] = {**(request.get("HyperParameters") or {}), **self.hyperparameters}
        if map_index is not None:
            request["TrainingJobName"] = with_map_index(self.task_id, request["TrainingJobName"], map_index)
        return request

    def execute(self, context: Any) -> dict[str, Any]:
        hook = self.hook
        request = self.effective_request(map_index_of(context))
        self._job_name = name = request["TrainingJobName"]
        # A retry of this task (worker lost mid-wait) finds its own job: adopt it whatever its state.
        self.create_or_adopt(
            "Training job",
            name,
            create=lambda: hook.conn.create_training_job(**request),
            describe=lambda: hook.describe_training_job(name),
            same=lambda existing: True,
            differs="",
        )
        job = self.wait_for(
            lambda: hook.describe_training_job(name),
            "TrainingJobStatus",
            TRAINING_PENDING_STATES,
            f"Training job {name}",
        )
        status = job["TrainingJobStatus"]
        if status != "Completed":
            reason = job.get("FailureReason") or "SageMaker gave no FailureReason"
            # Final: the job's name belongs to this run, so a retry could only find the same failure.
            raise TrainingJobFailed(f"Training job {name!r} ended {status}: {reason}")
        result = pick_fields(job, self.result_fields)
        # Timestamps are not JSON; downstream stages only need the name and value.
        result["FinalMetricDataList"] = [
            {"MetricName": m["MetricName"], "Value": float(m["Value"])} for m in job.get("FinalMetricDataList", [])
        ]
        metrics = ", ".join(f"{m['MetricName']}={m['Value']:.4f}" for m in result["FinalMetricDataList"])
        self.log.info("Training job %s completed: %s", name, metrics or "no metrics reported")
        return result

    def on_kill(self) -> None:
        if self._job_name:
            self.hook.conn.stop_training_job(TrainingJobName=self._job_name)


class SageMakerCreateModelOperator(_SageMakerStage):
    """``CreateModel`` from a training job's artifacts and image. Result: ``ModelName``, ``ModelArn``."""

    result_fields = ("ModelName", "ModelArn")
    operator_extra_links = (ModelLink(),)

    def execute(self, context: Any) -> dict[str, Any]:
        sagemaker = self.hook.conn
        name = self.request["ModelName"]

        def model_data(model: dict[str, Any]) -> Any:
            return model.get("PrimaryContainer", {}).get("ModelDataUrl")

        model = self.create_or_adopt(
            "Model",
            name,
            create=lambda: sagemaker.create_model(**self.request),
            describe=lambda: sagemaker.describe_model(ModelName=name),
            same=lambda existing: model_data(existing) == model_data(self.request),
            differs="with other model data; choose another model_prefix",
        )
        return {"ModelName": name, "ModelArn": model["ModelArn"]}


class SageMakerCreateEndpointConfigOperator(_SageMakerStage):
    """``CreateEndpointConfig``. Result: ``EndpointConfigName``, ``EndpointConfigArn``."""

    result_fields = ("EndpointConfigName", "EndpointConfigArn")
    operator_extra_links = (EndpointConfigLink(),)

    def execute(self, context: Any) -> dict[str, Any]:
        sagemaker = self.hook.conn
        name = self.request["EndpointConfigName"]

        def models(config: dict[str, Any]) -> list[Any]:
            return [variant.get("ModelName") for variant in config.get("ProductionVariants", [])]

        config = self.create_or_adopt(
            "Endpoint config",
            name,
            create=lambda: sagemaker.create_endpoint_config(**self.request),
            describe=lambda: sagemaker.describe_endpoint_config(EndpointConfigName=name),
            same=lambda existing: models(existing) == models(self.request),
            differs="for other models; choose another model_prefix",
        )
        return {"EndpointConfigName": name, "EndpointConfigArn": config["EndpointConfigArn"]}


class SageMakerDeployEndpointOperator(_SageMakerStage):
    """Point an endpoint at a new config: ``UpdateEndpoint``, or ``CreateEndpoint`` when it does not exist.

    Waits until the endpoint is ``InService`` on the new config. When an update
    fails SageMaker keeps the old config serving; the task then fails with the
    endpoint's ``FailureReason``. Result: ``EndpointName``, ``EndpointArn``,
    ``EndpointStatus``, ``EndpointConfigName`` and ``Action`` (created/updated).
    """

    result_fields = ("EndpointName", "EndpointArn", "EndpointStatus", "EndpointConfigName", "Action")
    ui_color = "#d7f0dc"
    operator_extra_links = (EndpointLink(),)

    def __init__(self, *, request: dict[str, Any], poll_interval: float = 30, **kwargs: Any) -> None:
        super().__init__(request=request, poll_interval=poll_interval, **kwargs)

    def execute(self, context: Any) -> dict[str, Any]:
        sagemaker = self.hook.conn
        endpoint = self.request["EndpointName"]
        config = self.request["EndpointConfigName"]
        try:
            current = sagemaker.describe_endpoint(EndpointName=endpoint)
        except sagemaker.exceptions.ClientError as err:
            if err.response["Error"]["Code"] != "ValidationException":
                raise
            current = None

        if current is not None and current["EndpointStatus"] in ENDPOINT_PENDING_STATES:
            # A retry while our first try's change is still rolling out: let it finish first.
            self.log.info("Endpoint %s is %s: waiting before deciding", endpoint, current["EndpointStatus"])
            current = self.wait_for(
                lambda: sagemaker.describe_endpoint(EndpointName=endpoint),
                "EndpointStatus",
                ENDPOINT_PENDING_STATES,
                f"Endpoint {endpoint}",
            )
        if (
            current is not None
            and current["EndpointStatus"] == "InService"
            and current.get("EndpointConfigName") == config
        ):
            self.log.info("Endpoint %s already serves %s", endpoint, config)
            return {
                "EndpointName": endpoint,
                "EndpointArn": current.get("EndpointArn"),
                "EndpointStatus": "InService",
                "EndpointConfigName": config,
                "Action": "updated",
            }
        if current is None:
            action = "created"
            sagemaker.create_endpoint(**self.request)
            self.log.info("Endpoint %s did not exist: creating it with config %s", endpoint, config)
        else:
            if current["EndpointStatus"] == "Failed":
                raise StageFailed(
                    f"Endpoint {endpoint!r} is in status Failed ({current.get('FailureReason', 'no reason given')}) "
                    "and cannot be updated; delete it or deploy under another endpoint_name"
                )
            action = "updated"
            previous_config = current.get("EndpointConfigName")
            sagemaker.update_endpoint(**self.request)
            self.log.info("Updating endpoint %s from config %s to %s", endpoint, previous_config, config)

        final = self.wait_for(
            lambda: sagemaker.describe_endpoint(EndpointName=endpoint),
            "EndpointStatus",
            ENDPOINT_PENDING_STATES,
            f"Endpoint {endpoint}",
        )
        status = final["EndpointStatus"]
        if status != "InService" or final.get("EndpointConfigName") != config:
            reason = final.get("FailureReason") or "no FailureReason given"
            serving = final.get("EndpointConfigName")
            raise StageFailed(
                f"Endpoint {endpoint!r} was not {action} to config {config!r}: status {status}, "
                f"still serving config {serving!r}: {reason}"
            )
        self.log.info("Endpoint %s is InService on config %s", endpoint, config)
        return {
            "EndpointName": endpoint,
            "EndpointArn": final.get("EndpointArn"),
            "EndpointStatus": status,
            "EndpointConfigName": config,
            "Action": action,
        }
