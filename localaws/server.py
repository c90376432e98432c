"""The local backend's HTTP server on 127.0.0.1.

- AWS JSON protocol (``X-Amz-Target``) for the Glue and SageMaker actions the operators use
- Lambda ``POST /2015-03-31/functions/{name}/invocations``
- SageMaker runtime ``POST /endpoints/{name}/invocations`` (text/csv) and ``GET /ping``
- ``GET /endpoints/{name}``: a status page for people

Safe to leave running: only requests addressed to ``127.0.0.1``/``localhost`` on
its port and not sent cross-origin are answered; every body is capped; every
request is validated (types, AWS's name patterns and lengths, S3 URIs confined
to the data directory) before anything is written, and malformed ones get
AWS's 4xx errors. One backend per data directory (a lock taken before recovery).

``python -m localaws.server [--port N]``.
"""

from __future__ import annotations

import argparse
import fcntl
import html
import importlib.util
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from starlette.concurrency import run_in_threadpool

from localaws.paths import (
    DEFAULT_PORT,
    S3_SCHEMES,
    PathRefused,
    data_dir,
    db_path,
    endpoint_url,
    glue_script,
    lambda_module,
    lock_path,
    logs_dir,
    s3_to_local,
)
from localaws.serving import (
    MAX_BODY_BYTES,
    BadRequest,
    CsvParsers,
    EndpointRegistry,
    ModelLoadError,
    load_model,
    remove_model_folders,
)
from localaws.store import AlreadyExists, NotFound, Store
from localaws.validation import (
    CHANNEL_NAME,
    JOB_RUN_ID,
    ROLE_ARN,
    SAGEMAKER_NAME,
    VARIANT_NAME,
    ApiError,
    array_field,
    constraint_error,
    glue_argument,
    integer_field,
    object_field,
    refused,
    s3_uri_field,
    string_field,
    string_map_field,
    validation_error,
)
from localaws.workers import Workers, reap_orphans

LOG = logging.getLogger("localaws")
ACCOUNT = "000000000000"
REGION = "us-east-1"


def _arn(service: str, kind: str, name: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{kind}/{name}"


ENDPOINT_PENDING = ("Creating", "Updating")
GLUE_RUNNING = ("STARTING", "RUNNING", "STOPPING")
TRAINING_RUNNING = ("InProgress", "Stopping")


class Backend:
    """The AWS actions, on the SQLite registry and local workers."""

    def __init__(self, store: Store, python: str = sys.executable):
        self.store = store
        self.python = python
        self.endpoints = EndpointRegistry()
        self.workers = Workers()
        self.parsers = CsvParsers()

    # -- startup -------------------------------------------------------------
    def recover(self) -> None:
        """After a restart: jobs whose worker died are failed; endpoints serve their models again.

        Every change is a compare-and-set on a non-terminal status, so a result written meanwhile wins.
        """
        remove_model_folders()
        for run in self.store.list("glue_job_run"):
            self.store.compare_and_set(
                "glue_job_run",
                run["Id"],
                lambda b: b["JobRunState"] in GLUE_RUNNING,
                lambda b: b.update(
                    JobRunState="FAILED",
                    ErrorMessage="the local backend restarted during the run",
                    CompletedOn=time.time(),
                ),
            )
        for job in self.store.list("training_job"):
            self.store.compare_and_set(
                "training_job",
                job["TrainingJobName"],
                lambda b: b["TrainingJobStatus"] in TRAINING_RUNNING,
                lambda b: b.update(
                    TrainingJobStatus="Failed",
                    SecondaryStatus="Failed",
                    FailureReason="InternalServerError: the local backend restarted during training",
                    TrainingEndTime=time.time(),
                ),
            )
        for endpoint in self.store.list("endpoint"):
            name = endpoint["EndpointName"]

            def settle(body: dict[str, Any]) -> None:
                # The deployment died with the old backend: as a failed one, the old config (if any) serves on.
                body.update(
                    EndpointStatus="InService" if body.get("EndpointConfigName") else "Failed",
                    FailureReason="the local backend restarted during the deployment",
                    LastModifiedTime=time.time(),
                )
                body.pop("DeployToken", None)

            self.store.compare_and_set("endpoint", name, lambda b: b["EndpointStatus"] in ENDPOINT_PENDING, settle)
            endpoint = self.store.find("endpoint", name)
            if endpoint is None or endpoint["EndpointStatus"] != "InService":
                continue
            try:
                loaded = self._load_config(endpoint["EndpointConfigName"])
            except (ModelLoadError, NotFound) as err:
                reason = f"the endpoint cannot serve after a restart: {err}"
                LOG.error("endpoint %s: %s", name, reason)
                # Never InService while invocations would answer 503.
                self.store.compare_and_set(
                    "endpoint",
                    name,
                    lambda b: b["EndpointStatus"] == "InService",
                    lambda b, reason=reason: b.update(
                        EndpointStatus="Failed", FailureReason=reason, LastModifiedTime=time.time()
                    ),
                )
                continue
            self.endpoints.swap(name, loaded)

    def shutdown(self) -> None:
        self.workers.terminate_all()
        self.parsers.shutdown()

    # -- Glue ------------------------------------------------------------------
    def glue_start_job_run(self, req: dict[str, Any]) -> dict[str, Any]:
        job = string_field(req, "JobName", max_len=255)
        try:
            script = glue_script(job)
        except PathRefused as err:
            raise refused(err) from None
        arguments = string_map_field(req, "Arguments", max_items=50, key_max=130, value_max=4096)
        argv = [self.python, str(script), f"--JOB_NAME={job}"]
        for key, value in arguments.items():
            argv.append(f"{key}={glue_argument(key, value)}")
        destination = arguments.get("--S3_DEST", "")
        for key, value in arguments.items():
            if key.endswith("_KEY") and destination.startswith(S3_SCHEMES):
                # The script writes <S3_DEST>/<key>: that folder too must resolve inside the data directory.
                try:
                    s3_to_local(destination.rstrip("/") + "/" + value.lstrip("/"), f"Arguments.{key}")
                except PathRefused as err:
                    raise refused(err) from None
        run_id = "jr_" + uuid.uuid4().hex
        argv.append(f"--JOB_RUN_ID={run_id}")
        self.store.create(
            "glue_job_run",
            run_id,
            {
                "Id": run_id,
                "JobName": job,
                "JobRunState": "RUNNING",
                "Arguments": arguments,
                "StartedOn": time.time(),
                "Attempt": 0,
            },
        )

        def finished(code: int, log: Path) -> None:
            def update(body: dict[str, Any]) -> None:
                if body["JobRunState"] == "STOPPING":
                    body["JobRunState"] = "STOPPED"
                elif code == 0:
                    body["JobRunState"] = "SUCCEEDED"
                else:
                    body.update(JobRunState="FAILED", ErrorMessage=_last_line(log) or f"exit code {code}")
                body["CompletedOn"] = time.time()
                body["ExecutionTime"] = int(body["CompletedOn"] - body["StartedOn"])

            self.store.compare_and_set("glue_job_run", run_id, lambda b: b["JobRunState"] in GLUE_RUNNING, update)

        self._spawn(
            f"glue:{run_id}",
            argv,
            logs_dir() / "glue" / f"{run_id}.log",
            finished,
            env={"SPARK_LOCAL_IP": "127.0.0.1"},
            record=("glue_job_run", run_id),
        )
        return {"JobRunId": run_id}

    def glue_get_job_run(self, req: dict[str, Any]) -> dict[str, Any]:
        job = string_field(req, "JobName", max_len=255)
        run_id = string_field(req, "RunId", pattern=JOB_RUN_ID, max_len=255)
        run = self.store.find("glue_job_run", run_id)
        if run is None or run["JobName"] != job:
            raise ApiError("EntityNotFoundException", f"Job run {run_id!r} of job {job!r} not found")
        return {"JobRun": run}

    def glue_batch_stop_job_run(self, req: dict[str, Any]) -> dict[str, Any]:
        job = string_field(req, "JobName", max_len=255)
        run_ids = array_field(req, "JobRunIds", maximum=25)
        for index, run_id in enumerate(run_ids):
            string_field({"JobRunId": run_id}, "JobRunId", f"JobRunIds[{index}].", pattern=JOB_RUN_ID, max_len=255)
        stopped, errors = [], []
        for run_id in run_ids:
            changed = self.store.compare_and_set(
                "glue_job_run",
                run_id,
                lambda b: b["JobName"] == job and b["JobRunState"] == "RUNNING",
                lambda b: b.update(JobRunState="STOPPING"),
            )
            if changed:
                self.workers.terminate(f"glue:{run_id}")
                stopped.append({"JobName": job, "JobRunId": run_id})
            else:
                errors.append(
                    {
                        "JobName": job,
                        "JobRunId": run_id,
                        "ErrorDetail": {"ErrorCode": "InvalidInputException", "ErrorMessage": "not a running run"},
                    }
                )
        return {"SuccessfulSubmissions": stopped, "Errors": errors}

    # -- SageMaker training ----------------------------------------------------
    def sagemaker_create_training_job(self, req: dict[str, Any]) -> dict[str, Any]:
        name = string_field(req, "TrainingJobName", pattern=SAGEMAKER_NAME, max_len=63)
        algorithm = object_field(req, "AlgorithmSpecification")
        image = string_field(algorithm, "TrainingImage", "AlgorithmSpecification.", max_len=255)
        string_field(algorithm, "TrainingInputMode", "AlgorithmSpecification.", required=False, max_len=32)
        if "xgboost" not in image:
            raise validation_error(f"the local backend trains only the built-in XGBoost image, not {image!r}")
        string_field(req, "RoleArn", pattern=ROLE_ARN, min_len=20, max_len=2048)
        string_map_field(req, "HyperParameters", max_items=100, key_max=256, value_max=2500)
        channels = array_field(req, "InputDataConfig", maximum=20)
        for index, channel in enumerate(channels):
            where = f"InputDataConfig[{index}]."
            if not isinstance(channel, dict):
                raise constraint_error(channel, where[:-1], "Member must be an object")
            string_field(channel, "ChannelName", where, pattern=CHANNEL_NAME, max_len=64)
            string_field(channel, "ContentType", where, required=False, max_len=256)
            source = object_field(object_field(channel, "DataSource", where), "S3DataSource", f"{where}DataSource.")
            s3_uri_field(source, "S3Uri", f"{where}DataSource.S3DataSource.")
        output = object_field(req, "OutputDataConfig")
        output_path = s3_uri_field(output, "S3OutputPath", "OutputDataConfig.")
        try:
            s3_to_local(output_path.rstrip("/") + f"/{name}/output/model.tar.gz", "OutputDataConfig.S3OutputPath")
        except PathRefused as err:
            raise refused(err) from None
        resources = object_field(req, "ResourceConfig")
        string_field(resources, "InstanceType", "ResourceConfig.", required=False, max_len=64)
        integer_field(resources, "InstanceCount", "ResourceConfig.", required=False, maximum=100)
        integer_field(resources, "VolumeSizeInGB", "ResourceConfig.", required=False, maximum=16384)
        stopping = object_field(req, "StoppingCondition", required=False)
        integer_field(stopping, "MaxRuntimeInSeconds", "StoppingCondition.", required=False, maximum=2419200)
        body = {
            "TrainingJobName": name,
            "TrainingJobArn": _arn("sagemaker", "training-job", name),
            "TrainingJobStatus": "InProgress",
            "SecondaryStatus": "Starting",
            "CreationTime": time.time(),
            "AlgorithmSpecification": algorithm,
            "RoleArn": req["RoleArn"],
            "HyperParameters": req.get("HyperParameters") or {},
            "InputDataConfig": channels,
            "OutputDataConfig": output,
            "ResourceConfig": resources,
            "StoppingCondition": stopping,
            "Request": req,
        }
        try:
            self.store.create("training_job", name, body)
        except AlreadyExists:
            raise validation_error(
                "Training job names must be unique within an AWS account and region, "
                "and a training job with this name already exists "
                f"({_arn('sagemaker', 'training-job', name)})"
            ) from None

        def finished(code: int, log: Path) -> None:
            # The worker records its own outcome; this covers a worker that died before it could.
            def died(body: dict[str, Any]) -> None:
                if body["TrainingJobStatus"] == "Stopping":
                    body.update(TrainingJobStatus="Stopped", SecondaryStatus="Stopped")
                else:
                    tail = _last_line(log) or f"exit code {code}"
                    body.update(
                        TrainingJobStatus="Failed", SecondaryStatus="Failed", FailureReason=f"AlgorithmError: {tail}"
                    )
                body["TrainingEndTime"] = time.time()

            self.store.compare_and_set("training_job", name, lambda b: b["TrainingJobStatus"] in TRAINING_RUNNING, died)

        self._spawn(
            f"training:{name}",
            [self.python, "-m", "localaws.training", name],
            logs_dir() / "training" / f"{name}.log",
            finished,
            record=("training_job", name),
        )
        return {"TrainingJobArn": body["TrainingJobArn"]}

    def sagemaker_describe_training_job(self, req: dict[str, Any]) -> dict[str, Any]:
        name = string_field(req, "TrainingJobName", pattern=SAGEMAKER_NAME, max_len=63)
        job = self.store.find("training_job", name)
        if job is None:
            raise validation_error(
                "Requested resource not found: "
                f"Could not find training job '{_arn('sagemaker', 'training-job', name)}'."
            )
        return {k: v for k, v in job.items() if k != "Request"}

    def sagemaker_stop_training_job(self, req: dict[str, Any]) -> dict[str, Any]:
        self.sagemaker_describe_training_job(req)
        name = req["TrainingJobName"]
        if self.store.compare_and_set(
            "training_job",
            name,
            lambda b: b["TrainingJobStatus"] == "InProgress",
            lambda b: b.update(TrainingJobStatus="Stopping", SecondaryStatus="Stopping"),
        ):
            self.workers.terminate(f"training:{name}")
        return {}

    # -- SageMaker hosting -------------------------------------------------------
    def sagemaker_create_model(self, req: dict[str, Any]) -> dict[str, Any]:
        name = string_field(req, "ModelName", pattern=SAGEMAKER_NAME, max_len=63)
        container = object_field(req, "PrimaryContainer")
        string_field(container, "Image", "PrimaryContainer.", max_len=255)
        s3_uri_field(container, "ModelDataUrl", "PrimaryContainer.")
        string_field(req, "ExecutionRoleArn", required=False, pattern=ROLE_ARN, min_len=20, max_len=2048)
        body = {
            "ModelName": name,
            "ModelArn": _arn("sagemaker", "model", name),
            "PrimaryContainer": container,
            "ExecutionRoleArn": req.get("ExecutionRoleArn"),
            "CreationTime": time.time(),
        }
        try:
            self.store.create("model", name, body)
        except AlreadyExists:
            raise validation_error(f'Cannot create already existing model "{body["ModelArn"]}".') from None
        return {"ModelArn": body["ModelArn"]}

    def sagemaker_describe_model(self, req: dict[str, Any]) -> dict[str, Any]:
        name = string_field(req, "ModelName", pattern=SAGEMAKER_NAME, max_len=63)
        model = self.store.find("model", name)
        if model is None:
            raise validation_error(f'Could not find model "{_arn("sagemaker", "model", name)}".')
        return {k: v for k, v in model.items() if v is not None}

    def sagemaker_create_endpoint_config(self, req: dict[str, Any]) -> dict[str, Any]:
        name = string_field(req, "EndpointConfigName", pattern=SAGEMAKER_NAME, max_len=63)
        variants = array_field(req, "ProductionVariants", maximum=10)
        if len(variants) != 1:
            raise validation_error("the local backend serves exactly one production variant per endpoint config")
        for index, variant in enumerate(variants):
            where = f"ProductionVariants[{index}]."
            if not isinstance(variant, dict):
                raise constraint_error(variant, where[:-1], "Member must be an object")
            string_field(variant, "VariantName", where, pattern=VARIANT_NAME, max_len=63)
            string_field(variant, "ModelName", where, pattern=SAGEMAKER_NAME, max_len=63)
            integer_field(variant, "InitialInstanceCount", where, required=False, maximum=100)
            string_field(variant, "InstanceType", where, required=False, max_len=64)
        model_name = variants[0]["ModelName"]
        if self.store.find("model", model_name) is None:
            raise validation_error(f'Could not find model "{_arn("sagemaker", "model", model_name)}".')
        body = {
            "EndpointConfigName": name,
            "EndpointConfigArn": _arn("sagemaker", "endpoint-config", name),
            "ProductionVariants": variants,
            "CreationTime": time.time(),
        }
        try:
            self.store.create("endpoint_config", name, body)
        except AlreadyExists:
            raise validation_error(
                f'Cannot create already existing endpoint configuration "{body["EndpointConfigArn"]}".'
            ) from None
        return {"EndpointConfigArn": body["EndpointConfigArn"]}

    def sagemaker_describe_endpoint_config(self, req: dict[str, Any]) -> dict[str, Any]:
        name = string_field(req, "EndpointConfigName", pattern=SAGEMAKER_NAME, max_len=63)
        config = self.store.find("endpoint_config", name)
        if config is None:
            raise validation_error(f'Could not find endpoint configuration "{name}".')
        return config

    def sagemaker_create_endpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        name = string_field(req, "EndpointName", pattern=SAGEMAKER_NAME, max_len=63)
        config = string_field(req, "EndpointConfigName", pattern=SAGEMAKER_NAME, max_len=63)
        self.sagemaker_describe_endpoint_config({"EndpointConfigName": config})
        token = uuid.uuid4().hex
        body = {
            "EndpointName": name,
            "EndpointArn": _arn("sagemaker", "endpoint", name),
            "EndpointStatus": "Creating",
            "EndpointConfigName": None,
            "PendingEndpointConfigName": config,
            "CreationTime": time.time(),
            "LastModifiedTime": time.time(),
            "DeployToken": token,
        }
        try:
            self.store.create("endpoint", name, body)
        except AlreadyExists:
            raise validation_error(f'Cannot create already existing endpoint "{body["EndpointArn"]}".') from None
        self._deploy(name, config, token, creating=True)
        return {"EndpointArn": body["EndpointArn"]}

    def sagemaker_update_endpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        name = string_field(req, "EndpointName", pattern=SAGEMAKER_NAME, max_len=63)
        config = string_field(req, "EndpointConfigName", pattern=SAGEMAKER_NAME, max_len=63)
        self.sagemaker_describe_endpoint_config({"EndpointConfigName": config})
        endpoint = self.sagemaker_describe_endpoint({"EndpointName": name})
        token = uuid.uuid4().hex

        def start(body: dict[str, Any]) -> None:
            body.update(EndpointStatus="Updating", LastModifiedTime=time.time(), DeployToken=token)

        # Check and set in one transaction: of concurrent updates exactly one is accepted.
        if self.store.compare_and_set("endpoint", name, lambda b: b["EndpointStatus"] == "InService", start) is None:
            current = self.store.find("endpoint", name)
            status = current["EndpointStatus"] if current else "deleted"
            raise validation_error(
                f'Cannot update in-progress endpoint "{endpoint["EndpointArn"]}": it is {status}, not InService.'
            )
        self._deploy(name, config, token, creating=False)
        return {"EndpointArn": endpoint["EndpointArn"]}

    def sagemaker_describe_endpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        name = string_field(req, "EndpointName", pattern=SAGEMAKER_NAME, max_len=63)
        endpoint = self.store.find("endpoint", name)
        if endpoint is None:
            raise validation_error(f'Could not find endpoint "{_arn("sagemaker", "endpoint", name)}".')
        hidden = ("DeployToken", "PendingEndpointConfigName")
        answer = {k: v for k, v in endpoint.items() if v is not None and k not in hidden}
        # SageMaker always names a config (a required field): while Creating, the one being deployed.
        if "EndpointConfigName" not in answer and endpoint.get("PendingEndpointConfigName"):
            answer["EndpointConfigName"] = endpoint["PendingEndpointConfigName"]
        return answer

    def sagemaker_delete_endpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        name = string_field(req, "EndpointName", pattern=SAGEMAKER_NAME, max_len=63)
        # Under the registry's lock, as a deployment's final step: the delete and a swap never interleave.
        with self.endpoints.transition():
            if not self.store.delete("endpoint", name):
                raise validation_error(f'Could not find endpoint "{_arn("sagemaker", "endpoint", name)}".')
            self.endpoints.remove(name)
        return {}

    def _load_config(self, config_name: str):
        config = self.store.get("endpoint_config", config_name)
        model = self.store.get("model", config["ProductionVariants"][0]["ModelName"])
        return load_model(model["ModelName"], config_name, model["PrimaryContainer"]["ModelDataUrl"])

    def _deploy(self, endpoint: str, config_name: str, token: str, creating: bool) -> None:
        """Load the new model in the background; swap it in only once it predicts, and only if still wanted.

        Every outcome is a compare-and-set on this deployment's token: a delete, or a newer deployment,
        makes it a no-op. A load that fails in any way leaves the old config serving (update) or the
        endpoint Failed (create), with the reason.
        """

        def ours(body: dict[str, Any]) -> bool:
            return body.get("DeployToken") == token

        def failed(reason: str) -> None:
            LOG.error("endpoint %s: %s", endpoint, reason)

            def record(body: dict[str, Any]) -> None:
                body.update(
                    EndpointStatus="Failed" if creating else "InService",
                    FailureReason=reason,
                    LastModifiedTime=time.time(),
                )
                body.pop("DeployToken", None)

            self.store.compare_and_set("endpoint", endpoint, ours, record)

        def serving(loaded) -> None:
            def record(body: dict[str, Any]) -> None:
                body.update(EndpointStatus="InService", EndpointConfigName=config_name, LastModifiedTime=time.time())
                body.pop("FailureReason", None)
                body.pop("DeployToken", None)
                body["ProductionVariants"] = [
                    {"VariantName": "AllTraffic", "CurrentInstanceCount": 1, "ModelName": loaded.model_name}
                ]

            with self.endpoints.transition():
                # The model is swapped in before the store says InService: a caller that reads InService must
                # find it serving (invocations do not take this lock). Deletes do, so nothing changes meanwhile;
                # if the record is refused all the same, the previous model is put back.
                current = self.store.find("endpoint", endpoint)
                if current is None or not ours(current):
                    return
                previous = self.endpoints.get(endpoint)
                self.endpoints.swap(endpoint, loaded)
                if self.store.compare_and_set("endpoint", endpoint, ours, record) is None:
                    if previous is None:
                        self.endpoints.remove(endpoint)
                    else:
                        self.endpoints.swap(endpoint, previous)
                    return
                LOG.info("endpoint %s now serves %s", endpoint, config_name)

        def work() -> None:
            time.sleep(provisioning_seconds())
            try:
                loaded = self._load_config(config_name)
            except (ModelLoadError, NotFound) as err:
                failed(f"Failed to deploy config {config_name!r}: {err}")
                return
            except Exception as err:  # noqa: BLE001 - whatever goes wrong, the endpoint must leave Creating/Updating
                failed(f"Failed to deploy config {config_name!r}: {type(err).__name__}: {err}")
                return
            try:
                serving(loaded)
            except Exception as err:  # noqa: BLE001 - as above
                failed(f"Failed to deploy config {config_name!r}: {type(err).__name__}: {err}")

        threading.Thread(target=work, name=f"deploy-{endpoint}", daemon=True).start()

    # -- Lambda -----------------------------------------------------------------
    def lambda_invoke(self, function_name: str, payload: bytes) -> tuple[dict[str, str], bytes]:
        try:
            module_path = lambda_module(function_name)
        except PathRefused as err:
            raise refused(err) from None
        try:
            event = json.loads(payload) if payload else {}
        except (ValueError, RecursionError):
            raise ApiError("InvalidRequestContentException", "Could not parse request body into json", 400) from None
        spec = importlib.util.spec_from_file_location(f"lambda_{module_path.stem}", module_path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
            answer = module.lambda_handler(event, None)
            return {}, json.dumps(answer).encode()
        except Exception as err:  # noqa: BLE001 - what the Lambda runtime reports for any unhandled error
            error = {"errorMessage": str(err), "errorType": type(err).__name__}
            return {"X-Amz-Function-Error": "Unhandled"}, json.dumps(error).encode()

    # -- workers ----------------------------------------------------------------
    def _spawn(
        self,
        key: str,
        argv: list[str],
        log: Path,
        finished: Callable[[int, Path], None],
        *,
        record: tuple[str, str],
        env: dict[str, str] | None = None,
    ) -> None:
        try:
            self.workers.spawn(key, argv, log, finished, env)
        except OSError as err:
            # The record exists already; it must not stay running for ever.
            finished(-1, log)
            raise ApiError("InternalServiceException", f"cannot start the worker for {record[1]}: {err}", 500) from None


def provisioning_seconds() -> float:
    """How long a deployment waits before loading, as SageMaker provisions instances (0 unless configured)."""
    try:
        return max(0.0, float(os.environ.get("RETRAINING_LOCAL_ENDPOINT_PROVISION_SECONDS", "0")))
    except ValueError:
        return 0.0


def _last_line(log: Path) -> str:
    """The worker's last meaningful line: its own clear error message, not a traceback frame."""
    try:
        lines = [text.strip() for text in log.read_text(errors="replace").splitlines() if text.strip()]
    except OSError:
        return ""
    for line in reversed(lines):
        if not line.startswith(("File ", "Traceback", "^", "~")):
            return line[:1000]
    return ""


ACTIONS: dict[str, str] = {
    "AWSGlue.StartJobRun": "glue_start_job_run",
    "AWSGlue.GetJobRun": "glue_get_job_run",
    "AWSGlue.BatchStopJobRun": "glue_batch_stop_job_run",
    "SageMaker.CreateTrainingJob": "sagemaker_create_training_job",
    "SageMaker.DescribeTrainingJob": "sagemaker_describe_training_job",
    "SageMaker.StopTrainingJob": "sagemaker_stop_training_job",
    "SageMaker.CreateModel": "sagemaker_create_model",
    "SageMaker.DescribeModel": "sagemaker_describe_model",
    "SageMaker.CreateEndpointConfig": "sagemaker_create_endpoint_config",
    "SageMaker.DescribeEndpointConfig": "sagemaker_describe_endpoint_config",
    "SageMaker.CreateEndpoint": "sagemaker_create_endpoint",
    "SageMaker.UpdateEndpoint": "sagemaker_update_endpoint",
    "SageMaker.DescribeEndpoint": "sagemaker_describe_endpoint",
    "SageMaker.DeleteEndpoint": "sagemaker_delete_endpoint",
}
MAX_API_BODY_BYTES = 1024 * 1024  # AWS JSON requests; the operators' largest is a few KB
MAX_LAMBDA_BODY_BYTES = 6 * 1024 * 1024  # Lambda's synchronous payload limit


class BodyTooLarge(Exception):
    pass


async def read_body(receive, limit: int) -> bytes | None:
    """The request body, or BodyTooLarge once it passes ``limit`` (read to its end and dropped, so
    the answer does not reset a client still uploading); None if the client went away."""
    body = bytearray()
    too_large = False
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if not too_large:
            body += chunk
            if len(body) > limit:
                too_large = True
                body = bytearray()
        more = message.get("more_body", False)
    if too_large:
        raise BodyTooLarge(f"the request body exceeds {limit} bytes")
    return bytes(body)


async def send_json(send, status: int, document: Any, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps(document).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _aws_document(err: ApiError) -> dict[str, str]:
    return {"__type": err.code, "message": err.message, "Message": err.message}


def create_app(backend: Backend, port: int):
    """The ASGI app: local-origin guard → invocation fast path → AWS JSON, Lambda, ping, status page."""

    async def aws_json(scope, receive, send) -> None:
        headers = dict(scope["headers"])
        target = headers.get(b"x-amz-target", b"").decode("latin-1")
        try:
            raw = await read_body(receive, MAX_API_BODY_BYTES)
        except BodyTooLarge as err:
            return await send_json(send, 413, _aws_document(ApiError("RequestEntityTooLarge", str(err), 413)))
        if raw is None:
            return None
        method = ACTIONS.get(target)
        try:
            if method is None:
                raise ApiError(
                    "UnknownOperationException",
                    f"the local backend does not implement {target[:100] or 'this request'}",
                )
            try:
                request = json.loads(raw or b"{}")
            except (ValueError, RecursionError):
                raise ApiError("SerializationException", "request body is not JSON (or nested too deeply)") from None
            if not isinstance(request, dict):
                raise ApiError(
                    "SerializationException", f"request body must be a JSON object, not {type(request).__name__}"
                )
            answer = await run_in_threadpool(getattr(backend, method), request)
        except ApiError as err:
            return await send_json(send, err.status, _aws_document(err))
        except NotFound as err:
            return await send_json(send, 400, _aws_document(validation_error(str(err))))
        except Exception:  # noqa: BLE001 - a bug, not the client's fault: AWS's 500 shape, the details in the log
            LOG.exception("%s failed", target)
            failure = ApiError("InternalFailure", f"{target} failed inside the local backend; see its log", 500)
            return await send_json(send, 500, _aws_document(failure))
        await send_json(send, 200, answer, [(b"x-amzn-requestid", uuid.uuid4().hex.encode())])

    async def lambda_invoke(scope, receive, send, name: str) -> None:
        try:
            payload = await read_body(receive, MAX_LAMBDA_BODY_BYTES)
        except BodyTooLarge as err:
            return await send_json(
                send, 413, {"Type": "User", "message": str(err)}, [(b"x-amzn-errortype", b"RequestTooLargeException")]
            )
        if payload is None:
            return None
        try:
            extra, answer = await run_in_threadpool(backend.lambda_invoke, _function_name(name), payload)
        except ApiError as err:
            return await send_json(
                send, err.status, {"Type": "User", "message": err.message}, [(b"x-amzn-errortype", err.code.encode())]
            )
        headers = [(b"content-type", b"application/json"), (b"x-amz-executed-version", b"$LATEST")]
        headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    async def invoke(scope, receive, send, name: str) -> None:
        try:
            body = await read_body(receive, MAX_BODY_BYTES)
        except BodyTooLarge:
            return await send_json(
                send, 413, {"message": f"body exceeds {MAX_BODY_BYTES} bytes (SageMaker's 6 MB limit)"}
            )
        if body is None:
            return None
        model = backend.endpoints.get(name)
        if model is None:
            endpoint = backend.store.find("endpoint", name)
            if endpoint is None:
                return await send_json(send, 404, {"message": f"Endpoint {name} not found"})
            return await send_json(
                send, 503, {"message": f"Endpoint {name} is {endpoint['EndpointStatus']}, not serving"}
            )
        content_type = _content_type(scope)
        if content_type not in ("text/csv", "text/plain"):
            return await send_json(
                send, 415, {"message": f"content type {content_type[:100]} is not supported; send text/csv"}
            )
        try:
            # Parsing and predicting off the event loop: /ping and small requests go on meanwhile.
            result = await run_in_threadpool(model.predict_csv, body, backend.parsers)
        except BadRequest as err:
            return await send_json(send, err.status, {"message": str(err)})
        headers = [(b"content-type", b"text/csv"), (b"x-model-name", model.model_name.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": result})

    async def ping(scope, receive, send) -> None:
        await send_json(send, 200, {"status": "ok", "endpoints": backend.endpoints.names()})

    async def endpoint_page(scope, receive, send, name: str) -> None:
        endpoint = backend.store.find("endpoint", name) if SAGEMAKER_NAME.fullmatch(name) else None
        if endpoint is None:
            page, status = f"<h1>No endpoint {html.escape(name[:100])}</h1>", 404
        else:
            endpoint.pop("DeployToken", None)
            rows = "".join(
                f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in endpoint.items()
            )
            page = (
                f"<h1>Endpoint {html.escape(name)}</h1><table>{rows}</table>"
                f"<p>POST text/csv to <code>/endpoints/{html.escape(name)}/invocations</code></p>"
            )
            status = 200
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"content-security-policy", b"default-src 'none'"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": page.encode()})

    allowed_hosts = {f"127.0.0.1:{port}".encode(), f"localhost:{port}".encode()}
    allowed_origins = {b"http://" + host for host in allowed_hosts}

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        if scope["type"] != "http":
            return None
        headers = scope["headers"]
        hosts = [v for k, v in headers if k == b"host"]
        origins = [v for k, v in headers if k == b"origin"]
        site = dict(headers).get(b"sec-fetch-site", b"same-origin")
        # DNS rebinding: only this machine's own names with our port.
        if len(hosts) != 1 or hosts[0].lower() not in allowed_hosts:
            return await _drain_and_refuse(receive, send, f"Host must be 127.0.0.1:{port} or localhost:{port}")
        # A web page's requests (simple POSTs need no preflight): anything but a plain GET must come from no
        # browser or from our own origin. Following a link to the status page (GET) stays possible.
        cross_site = any(o.lower() not in allowed_origins for o in origins) or site not in (b"same-origin", b"none")
        if scope["method"] != "GET" and cross_site:
            return await _drain_and_refuse(receive, send, "cross-origin requests are refused")
        if scope["method"] == "OPTIONS":
            return await _drain_and_refuse(
                receive, send, "CORS preflight is refused: the local backend serves no other origin"
            )
        method, path = scope["method"], scope.get("path", "")
        if method == "POST" and path.startswith("/endpoints/") and path.endswith("/invocations"):
            name = path[len("/endpoints/") : -len("/invocations")]
            if name and "/" not in name:
                return await invoke(scope, receive, send, name)
        if method == "POST" and path == "/":
            return await aws_json(scope, receive, send)
        if method == "POST" and path.startswith("/2015-03-31/functions/") and path.endswith("/invocations"):
            name = path[len("/2015-03-31/functions/") : -len("/invocations")]
            return await lambda_invoke(scope, receive, send, name)
        if method == "GET" and path == "/ping":
            return await ping(scope, receive, send)
        if method == "GET" and path.startswith("/endpoints/") and "/" not in path[len("/endpoints/") :]:
            return await endpoint_page(scope, receive, send, path[len("/endpoints/") :])
        try:
            await read_body(receive, 0)
        except BodyTooLarge:
            pass
        await send_json(
            send, 404, {"__type": "UnknownOperationException", "message": f"no route for {method} {path[:200]}"}
        )

    return app


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _drain_and_refuse(receive, send, message: str) -> None:
    try:
        await read_body(receive, 0)
    except BodyTooLarge:
        pass
    await send_json(send, 403, {"__type": "AccessDeniedException", "message": message, "Message": message})


def _content_type(scope) -> str:
    """The media type, case-insensitive, without parameters (``Text/CSV; charset=utf-8`` → ``text/csv``)."""
    raw = dict(scope["headers"]).get(b"content-type", b"text/csv")
    return raw.split(b";")[0].strip().decode("latin-1").lower()


def _function_name(name: str) -> str:
    """A FunctionName path segment: a name, ``name:qualifier`` or a function ARN → the name."""
    if name.startswith("arn:"):
        parts = name.split(":")
        return parts[6] if len(parts) > 6 else ""
    return name.split(":")[0]


class InstanceLocked(Exception):
    pass


def lock_data_dir() -> int:
    """An exclusive lock on the data directory, held for the backend's life; taken before anything is read."""
    data_dir().mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise InstanceLocked(
            f"another local backend (pid {holder}) is already running on the data directory {data_dir()}; "
            "stop it first, or set RETRAINING_LOCAL_DATA to another directory"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def serve(port: int = DEFAULT_PORT) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        lock_data_dir()
    except InstanceLocked as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", port))
    except OSError as err:
        print(f"error: cannot listen on 127.0.0.1:{port}: {err.strerror}", file=sys.stderr)
        return 1
    # The Lambda handler's boto3 calls come back to this server.
    os.environ.setdefault("AWS_ENDPOINT_URL", endpoint_url(port))
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    reaped = reap_orphans()
    if reaped:
        LOG.warning("stopped %d worker process(es) left by a previous backend", len(reaped))
    backend = Backend(Store(db_path()))
    backend.recover()
    backend.parsers.warm_up()
    config = uvicorn.Config(create_app(backend, port), log_level="warning", access_log=False, lifespan="on")
    try:
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        backend.shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localaws.server")
    parser.add_argument("--port", type=int, default=int(os.environ.get("RETRAINING_LOCAL_PORT", DEFAULT_PORT)))
    args = parser.parse_args(argv)
    return serve(args.port)


if __name__ == "__main__":
    sys.exit(main())
