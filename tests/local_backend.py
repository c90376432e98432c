"""Start the real local backend server (a subprocess) on a free port with a private data folder."""

from __future__ import annotations

import http.client
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def model_archive(booster) -> bytes:
    """``model.tar.gz`` holding ``xgboost-model``, as the built-in XGBoost algorithm writes it."""
    raw = bytes(booster.save_raw(raw_format="ubj"))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo("xgboost-model")
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
    return out.getvalue()


class LocalBackend:
    def __init__(self, data_dir: Path, port: int, env: dict[str, str] | None = None):
        self.extra_env = env or {}
        self.data_dir = data_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> LocalBackend:
        env = {
            **os.environ,
            "RETRAINING_LOCAL_DATA": str(self.data_dir),
            "PYTHONPATH": os.pathsep.join([str(ROOT)]),
            # Quicker JVM start for the Glue runs' local Spark.
            "JAVA_TOOL_OPTIONS": "-XX:TieredStopAtLevel=1",
            **self.extra_env,
        }
        env.pop("AWS_ENDPOINT_URL", None)
        log = open(self.data_dir / "server.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "localaws.server", "--port", str(self.port)],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/ping", timeout=2).read()
                return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"local backend exited: {(self.data_dir / 'server.log').read_text()[-2000:]}")
                time.sleep(0.3)
        raise RuntimeError("local backend did not start in 60 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)

    def kill(self) -> None:
        """``kill -9`` of the backend process: no handler runs, as in a crash or an OOM kill."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=20)

    def raw(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        """One HTTP request with exactly these headers (``Host`` defaults to the server's own)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            sent = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
            for name, value in sent.items():
                if value is not None:
                    connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
        finally:
            connection.close()

    def aws(self, target: str, request: object) -> tuple[int, dict]:
        """An AWS JSON-protocol call (``X-Amz-Target``) with any JSON body; (status, answer)."""
        status, answer, _ = self.raw(
            "POST",
            "/",
            json.dumps(request).encode(),
            {"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
        )
        return status, json.loads(answer)

    def connection_json(self) -> str:
        return json.dumps(
            {
                "conn_type": "aws",
                "login": "local",
                "password": "local",
                "extra": {"endpoint_url": self.url, "region_name": "us-east-1"},
            }
        )

    def client(self, service: str):
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def invoke(self, endpoint: str, body: bytes, content_type: str = "text/csv") -> tuple[int, bytes, dict[str, str]]:
        request = urllib.request.Request(
            f"{self.url}/endpoints/{endpoint}/invocations",
            data=body,
            method="POST",
            headers={"Content-Type": content_type},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as err:
            return err.code, err.read(), dict(err.headers)

    def register_model(self, name: str, archive: bytes) -> str:
        """Store ``archive`` in the object store and create a model and an endpoint config named ``name``."""
        uri = f"s3://models/{name}/model.tar.gz"
        path = self.s3_path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(archive)
        sagemaker = self.client("sagemaker")
        sagemaker.create_model(
            ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": uri}
        )
        sagemaker.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": name,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m4.xlarge",
                }
            ],
        )
        return name

    def s3_path(self, uri: str) -> Path:
        bucket_key = uri.split("://", 1)[1]
        return self.data_dir / "s3" / bucket_key
