"""The local backend's HTTP server on 127.0.0.1.

- AWS JSON protocol (``X-Amz-Target``) for the Glue and SageMaker actions the operators use
- Lambda ``POST /2015-03-31/functions/{name}/invocations``
- SageMaker runtime ``POST /endpoints/{name}/invocations`` (text/csv) and ``GET /ping``
- ``GET /endpoints/{name}``: a status page for people

``python -m localaws.server [--port N]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from localaws.paths import DEFAULT_PORT, REPO, db_path, endpoint_url, logs_dir, s3_to_local
from localaws.serving import MAX_BODY_BYTES, BadRequest, EndpointRegistry, ModelLoadError, load_model
from localaws.store import AlreadyExists, NotFound, Store

LOG = logging.getLogger("localaws")
GLUE_DIR = REPO / "glue"
LAMBDA_DIR = REPO / "lambda"
ACCOUNT = "000000000000"
REGION = "us-east-1"
_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


class ApiError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _validation(message: str) -> ApiError:
    return ApiError("ValidationException", message)


def _arn(service: str, kind: str, name: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{kind}/{name}"


class Backend:
    """The AWS actions, on the SQLite registry and local workers."""

    def __init__(self, store: Store, python: str = sys.executable):
        self.store = store
        self.python = python
        self.endpoints = EndpointRegistry()
        self._processes: dict[str, subprocess.Popen] = {}  # running Glue/training workers by key

    # -- startup -------------------------------------------------------------
    def recover(self) -> None:
        """After a restart: jobs whose worker died are failed; endpoints serve their models again."""
        for run in self.store.list("glue_job_run"):
            if run["JobRunState"] in ("STARTING", "RUNNING", "STOPPING"):
                self.store.update(
                    "glue_job_run",
                    run["Id"],
                    lambda b: b.update(JobRunState="FAILED", ErrorMessage="the local backend restarted during the run"),
                )
        for job in self.store.list("training_job"):
            if job["TrainingJobStatus"] in ("InProgress", "Stopping"):
                self.store.update(
                    "training_job",
                    job["TrainingJobName"],
                    lambda b: b.update(
                        TrainingJobStatus="Failed",
                        FailureReason="InternalServerError: the local backend restarted during training",
                    ),
                )
        for endpoint in self.store.list("endpoint"):
            name = endpoint["EndpointName"]
            if endpoint["EndpointStatus"] in ("Creating", "Updating"):
                self.store.update(
                    "endpoint",
                    name,
                    lambda b: b.update(
                        EndpointStatus="Failed" if not b.get("EndpointConfigName") else "InService",
                        FailureReason="the local backend restarted during the deployment",
                    ),
                )
                endpoint = self.store.get("endpoint", name)
            if endpoint.get("EndpointConfigName") and endpoint["EndpointStatus"] == "InService":
                try:
                    self.endpoints.swap(name, self._load_config(endpoint["EndpointConfigName"]))
                except (ModelLoadError, NotFound) as err:
                    LOG.error("endpoint %s cannot serve after restart: %s", name, err)

    # -- Glue ------------------------------------------------------------------
    def glue_start_job_run(self, req: dict[str, Any]) -> dict[str, Any]:
        job = req.get("JobName") or ""
        script = GLUE_DIR / f"{job.replace('-', '_')}.py"
        if not job or not script.is_file():
            raise ApiError(
                "EntityNotFoundException",
                f"Glue job {job!r} not found (the local backend runs glue/<job_name with _>.py)",
            )
        run_id = "jr_" + uuid.uuid4().hex
        arguments = {k: str(v) for k, v in (req.get("Arguments") or {}).items()}
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
        argv = [self.python, str(script), "--JOB_NAME", job, "--JOB_RUN_ID", run_id]
        for key, value in arguments.items():
            argv += [key if key.startswith("--") else f"--{key}", _local_uri(value)]
        log = logs_dir() / "glue" / f"{run_id}.log"

        def finished(code: int, tail: str) -> None:
            def update(body: dict[str, Any]) -> None:
                if body["JobRunState"] == "STOPPING":
                    body["JobRunState"] = "STOPPED"
                elif code == 0:
                    body["JobRunState"] = "SUCCEEDED"
                else:
                    body.update(JobRunState="FAILED", ErrorMessage=tail or f"exit code {code}")
                body["CompletedOn"] = time.time()
                body["ExecutionTime"] = int(body["CompletedOn"] - body["StartedOn"])

            self.store.update("glue_job_run", run_id, update)

        self._spawn(f"glue:{run_id}", argv, log, finished, env={"SPARK_LOCAL_IP": "127.0.0.1"})
        return {"JobRunId": run_id}

    def glue_get_job_run(self, req: dict[str, Any]) -> dict[str, Any]:
        run = self.store.find("glue_job_run", req.get("RunId") or "")
        if run is None or run["JobName"] != req.get("JobName"):
            raise ApiError(
                "EntityNotFoundException", f"Job run {req.get('RunId')!r} of job {req.get('JobName')!r} not found"
            )
        return {"JobRun": run}

    def glue_batch_stop_job_run(self, req: dict[str, Any]) -> dict[str, Any]:
        stopped = []
        for run_id in req.get("JobRunIds") or []:
            run = self.store.find("glue_job_run", run_id)
            if run and run["JobRunState"] == "RUNNING":
                self.store.update("glue_job_run", run_id, lambda b: b.update(JobRunState="STOPPING"))
                self._kill(f"glue:{run_id}")
                stopped.append({"JobName": run["JobName"], "JobRunId": run_id})
        return {"SuccessfulSubmissions": stopped, "Errors": []}

    # -- SageMaker training ----------------------------------------------------
    def sagemaker_create_training_job(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req.get("TrainingJobName") or ""
        _check_name(name, "TrainingJobName")
        image = (req.get("AlgorithmSpecification") or {}).get("TrainingImage", "")
        if "xgboost" not in image:
            raise _validation(f"the local backend trains only the built-in XGBoost image, not {image!r}")
        for field in ("RoleArn", "InputDataConfig", "OutputDataConfig", "ResourceConfig"):
            if field not in req:
                raise _validation(f"CreateTrainingJob: {field} is required")
        body = {
            "TrainingJobName": name,
            "TrainingJobArn": _arn("sagemaker", "training-job", name),
            "TrainingJobStatus": "InProgress",
            "SecondaryStatus": "Starting",
            "CreationTime": time.time(),
            "AlgorithmSpecification": req["AlgorithmSpecification"],
            "RoleArn": req["RoleArn"],
            "HyperParameters": req.get("HyperParameters") or {},
            "InputDataConfig": req["InputDataConfig"],
            "OutputDataConfig": req["OutputDataConfig"],
            "ResourceConfig": req["ResourceConfig"],
            "StoppingCondition": req.get("StoppingCondition") or {},
            "Request": req,
        }
        try:
            self.store.create("training_job", name, body)
        except AlreadyExists:
            raise _validation(
                "Training job names must be unique within an AWS account and region, "
                "and a training job with this name already exists "
                f"({_arn('sagemaker', 'training-job', name)})"
            ) from None
        log = logs_dir() / "training" / f"{name}.log"

        def finished(code: int, tail: str) -> None:
            job = self.store.get("training_job", name)
            if job["TrainingJobStatus"] == "InProgress":  # the worker died before recording an outcome
                self.store.update(
                    "training_job",
                    name,
                    lambda b: b.update(
                        TrainingJobStatus="Failed", FailureReason=f"AlgorithmError: {tail or f'exit code {code}'}"
                    ),
                )
            elif job["TrainingJobStatus"] == "Stopping":
                self.store.update("training_job", name, lambda b: b.update(TrainingJobStatus="Stopped"))

        self._spawn(f"training:{name}", [self.python, "-m", "localaws.training", name], log, finished)
        return {"TrainingJobArn": body["TrainingJobArn"]}

    def sagemaker_describe_training_job(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req.get("TrainingJobName") or ""
        job = self.store.find("training_job", name)
        if job is None:
            raise _validation(
                "Requested resource not found: "
                f"Could not find training job '{_arn('sagemaker', 'training-job', name)}'."
            )
        return {k: v for k, v in job.items() if k != "Request"}

    def sagemaker_stop_training_job(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req.get("TrainingJobName") or ""
        self.store.update(
            "training_job",
            name,
            lambda b: b.update(TrainingJobStatus="Stopping") if b["TrainingJobStatus"] == "InProgress" else None,
        )
        self._kill(f"training:{name}")
        return {}

    # -- SageMaker hosting -------------------------------------------------------
    def sagemaker_create_model(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req.get("ModelName") or ""
        _check_name(name, "ModelName")
        container = req.get("PrimaryContainer") or {}
        if not container.get("ModelDataUrl") or not container.get("Image"):
            raise _validation("CreateModel: PrimaryContainer needs Image and ModelDataUrl")
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
            raise _validation(f'Cannot create already existing model "{body["ModelArn"]}".') from None
        return {"ModelArn": body["ModelArn"]}

    def sagemaker_describe_model(self, req: dict[str, Any]) -> dict[str, Any]:
        model = self.store.find("model", req.get("ModelName") or "")
        if model is None:
            raise _validation(f'Could not find model "{req.get("ModelName")}".')
        return model

    def sagemaker_create_endpoint_config(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req.get("EndpointConfigName") or ""
        _check_name(name, "EndpointConfigName")
        variants = req.get("ProductionVariants") or []
        if len(variants) != 1:
            raise _validation("the local backend serves exactly one production variant per endpoint config")
        if self.store.find("model", variants[0].get("ModelName") or "") is None:
            raise _validation(f'Could not find model "{variants[0].get("ModelName")}".')
        body = {
            "EndpointConfigName": name,
            "EndpointConfigArn": _arn("sagemaker", "endpoint-config", name),
            "ProductionVariants": variants,
            "CreationTime": time.time(),
        }
        try:
            self.store.create("endpoint_config", name, body)
        except AlreadyExists:
            raise _validation(
                f'Cannot create already existing endpoint configuration "{body["EndpointConfigArn"]}".'
            ) from None
        return {"EndpointConfigArn": body["EndpointConfigArn"]}

    def sagemaker_describe_endpoint_config(self, req: dict[str, Any]) -> dict[str, Any]:
        config = self.store.find("endpoint_config", req.get("EndpointConfigName") or "")
        if config is None:
            raise _validation(f'Could not find endpoint configuration "{req.get("EndpointConfigName")}".')
        return config

    def sagemaker_create_endpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        name, config = req.get("EndpointName") or "", req.get("EndpointConfigName") or ""
        _check_name(name, "EndpointName")
        self.sagemaker_describe_endpoint_config({"EndpointConfigName": config})
        body = {
            "EndpointName": name,
            "EndpointArn": _arn("sagemaker", "endpoint", name),
            "EndpointStatus": "Creating",
            "EndpointConfigName": None,
            "CreationTime": time.time(),
            "LastModifiedTime": time.time(),
        }
        try:
            self.store.create("endpoint", name, body)
        except AlreadyExists:
            raise _validation(f'Cannot create already existing endpoint "{body["EndpointArn"]}".') from None
        self._deploy(name, config, creating=True)
        return {"EndpointArn": body["EndpointArn"]}

    def sagemaker_update_endpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        name, config = req.get("EndpointName") or "", req.get("EndpointConfigName") or ""
        self.sagemaker_describe_endpoint_config({"EndpointConfigName": config})
        endpoint = self.sagemaker_describe_endpoint({"EndpointName": name})
        if endpoint["EndpointStatus"] != "InService":
            raise _validation(
                f"Cannot update endpoint {name!r} in status {endpoint['EndpointStatus']}; it must be InService"
            )
        self.store.update("endpoint", name, lambda b: b.update(EndpointStatus="Updating", LastModifiedTime=time.time()))
        self._deploy(name, config, creating=False)
        return {"EndpointArn": endpoint["EndpointArn"]}

    def sagemaker_describe_endpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req.get("EndpointName") or ""
        endpoint = self.store.find("endpoint", name)
        if endpoint is None:
            raise _validation(f'Could not find endpoint "{_arn("sagemaker", "endpoint", name)}".')
        return {k: v for k, v in endpoint.items() if v is not None}

    def sagemaker_delete_endpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req.get("EndpointName") or ""
        self.sagemaker_describe_endpoint({"EndpointName": name})
        self.endpoints.remove(name)
        self.store.delete("endpoint", name)
        return {}

    def _load_config(self, config_name: str):
        config = self.store.get("endpoint_config", config_name)
        model = self.store.get("model", config["ProductionVariants"][0]["ModelName"])
        return load_model(model["ModelName"], config_name, model["PrimaryContainer"]["ModelDataUrl"])

    def _deploy(self, endpoint: str, config_name: str, creating: bool) -> None:
        """Load the new model in the background; swap it in only once it predicts."""

        def work() -> None:
            try:
                loaded = self._load_config(config_name)
            except (ModelLoadError, NotFound) as err:
                reason = f"Failed to deploy config {config_name!r}: {err}"
                LOG.error("endpoint %s: %s", endpoint, reason)
                # A failed update keeps the old config serving, as SageMaker does.
                self.store.update(
                    "endpoint",
                    endpoint,
                    lambda b: b.update(
                        EndpointStatus="Failed" if creating else "InService",
                        FailureReason=reason,
                        LastModifiedTime=time.time(),
                    ),
                )
                return
            self.endpoints.swap(endpoint, loaded)

            def serving(body: dict[str, Any]) -> None:
                body.update(EndpointStatus="InService", EndpointConfigName=config_name, LastModifiedTime=time.time())
                body.pop("FailureReason", None)
                body["ProductionVariants"] = [
                    {"VariantName": "AllTraffic", "CurrentInstanceCount": 1, "ModelName": loaded.model_name}
                ]

            self.store.update("endpoint", endpoint, serving)
            LOG.info("endpoint %s now serves %s", endpoint, config_name)

        thread = threading.Thread(target=work, name=f"deploy-{endpoint}", daemon=True)
        thread.start()

    # -- Lambda -----------------------------------------------------------------
    def lambda_invoke(self, function_name: str, payload: bytes) -> tuple[dict[str, str], bytes]:
        module_path = LAMBDA_DIR / f"{function_name.replace('-', '_')}.py"
        if not module_path.is_file():
            raise ApiError(
                "ResourceNotFoundException",
                f"Function not found: {function_name} (the local backend runs lambda/<name with _>.py)",
                404,
            )
        try:
            event = json.loads(payload) if payload else {}
        except ValueError:
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
        finished: Callable[[int, str], None],
        env: dict[str, str] | None = None,
    ) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        environment = {
            **os.environ,
            **(env or {}),
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        handle = open(log, "wb")
        process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=environment, cwd=REPO)
        self._processes[key] = process

        def wait() -> None:
            code = process.wait()
            handle.close()
            self._processes.pop(key, None)
            finished(code, _last_line(log))

        thread = threading.Thread(target=wait, name=f"wait-{key}", daemon=True)
        thread.start()

    def _kill(self, key: str) -> None:
        process = self._processes.get(key)
        if process and process.poll() is None:
            process.terminate()


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


def _check_name(name: str, field: str) -> None:
    if not _NAME_RE.match(name or ""):
        raise _validation(
            f"1 validation error detected: Value {name!r} at '{field}' failed to satisfy constraint: "
            "must match [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
        )


def _local_uri(value: str) -> str:
    """Glue arguments that are S3 URIs become the local folders standing in for them."""
    if value.startswith(("s3://", "s3a://", "s3n://")):
        path = str(s3_to_local(value))
        return path + "/" if value.endswith("/") and not path.endswith("/") else path
    return value


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


def create_app(backend: Backend):
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    def aws_error(err: ApiError) -> JSONResponse:
        return JSONResponse(
            {"__type": err.code, "message": err.message, "Message": err.message},
            status_code=err.status,
            media_type="application/x-amz-json-1.1",
        )

    async def aws_json(request: Request) -> Response:
        target = request.headers.get("x-amz-target", "")
        method = ACTIONS.get(target)
        if method is None:
            return aws_error(
                ApiError(
                    "UnknownOperationException", f"the local backend does not implement {target or 'this request'}"
                )
            )
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return aws_error(ApiError("SerializationException", "request body is not JSON"))
        try:
            answer = await run_in_threadpool(getattr(backend, method), body)
        except ApiError as err:
            return aws_error(err)
        except NotFound as err:
            return aws_error(_validation(str(err)))
        return JSONResponse(answer, media_type="application/x-amz-json-1.1")

    async def lambda_invoke(request: Request) -> Response:
        name = request.path_params["name"].split(":")[-1]
        try:
            headers, payload = await run_in_threadpool(backend.lambda_invoke, name, await request.body())
        except ApiError as err:
            return JSONResponse(
                {"Type": "User", "message": err.message}, status_code=err.status, headers={"x-amzn-ErrorType": err.code}
            )
        return Response(
            payload,
            status_code=200,
            headers={**headers, "X-Amz-Executed-Version": "$LATEST"},
            media_type="application/json",
        )

    async def ping(request: Request) -> Response:
        return JSONResponse({"status": "ok", "endpoints": backend.endpoints.names()})

    async def endpoint_page(request: Request) -> Response:
        name = request.path_params["name"]
        endpoint = backend.store.find("endpoint", name)
        if endpoint is None:
            return HTMLResponse(f"<h1>No endpoint {_html(name)}</h1>", status_code=404)
        rows = "".join(f"<tr><th>{_html(k)}</th><td>{_html(v)}</td></tr>" for k, v in endpoint.items())
        return HTMLResponse(
            f"<h1>Endpoint {_html(name)}</h1><table>{rows}</table>"
            f"<p>POST text/csv to <code>/endpoints/{_html(name)}/invocations</code></p>"
        )

    app = Starlette(
        routes=[
            Route("/", aws_json, methods=["POST"]),
            Route("/2015-03-31/functions/{name}/invocations", lambda_invoke, methods=["POST"]),
            Route("/endpoints/{name}", endpoint_page, methods=["GET"]),
            Route("/ping", ping, methods=["GET"]),
        ]
    )
    return serving_fast_path(app, backend)


def serving_fast_path(app, backend: Backend):
    """Invocations skip the framework (routing, Request objects): they are the hot path under load."""
    prefix, suffix = "/endpoints/", "/invocations"

    async def send_json(send, status: int, message: str, extra: list[tuple[bytes, bytes]] = ()) -> None:
        body = json.dumps({"message": message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *extra],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def invoke(scope, receive, send, name: str) -> None:
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            # Read (and drop) an oversized body to its end: answering mid-upload resets the client.
            if len(body) <= MAX_BODY_BYTES:
                body += message.get("body", b"")
            more = message.get("more_body", False)
        model = backend.endpoints.get(name)
        if model is None:
            endpoint = backend.store.find("endpoint", name)
            if endpoint is None:
                return await send_json(send, 404, f"Endpoint {name} not found")
            return await send_json(send, 503, f"Endpoint {name} is {endpoint['EndpointStatus']}, not serving")
        content_type = dict(scope["headers"]).get(b"content-type", b"text/csv").split(b";")[0].strip().decode("latin-1")
        if content_type not in ("text/csv", "text/plain"):
            return await send_json(send, 415, f"content type {content_type} is not supported; send text/csv")
        if len(body) > MAX_BODY_BYTES:
            return await send_json(send, 413, f"body exceeds {MAX_BODY_BYTES} bytes (SageMaker's 6 MB limit)")
        try:
            result = model.predict_csv(bytes(body))
        except BadRequest as err:
            return await send_json(send, err.status, str(err))
        headers = [(b"content-type", b"text/csv"), (b"x-model-name", model.model_name.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": result})

    async def asgi(scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and scope["method"] == "POST" and path.startswith(prefix) and path.endswith(suffix):
            name = path[len(prefix) : -len(suffix)]
            if name and "/" not in name:
                return await invoke(scope, receive, send, name)
        await app(scope, receive, send)

    return asgi


def _html(value: Any) -> str:
    import html

    return html.escape(str(value))


def serve(port: int = DEFAULT_PORT) -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # The Lambda handler's boto3 calls come back to this server.
    os.environ.setdefault("AWS_ENDPOINT_URL", endpoint_url(port))
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    backend = Backend(Store(db_path()))
    backend.recover()
    uvicorn.run(create_app(backend), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localaws.server")
    parser.add_argument("--port", type=int, default=int(os.environ.get("RETRAINING_LOCAL_PORT", DEFAULT_PORT)))
    args = parser.parse_args(argv)
    serve(args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
