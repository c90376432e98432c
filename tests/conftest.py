"""Test session setup: a private Airflow home (SQLite), the project on sys.path, a moto server.

Environment variables are set at import, before anything imports Airflow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT,):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="airflow-home-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        # Never reach a real AWS account from the tests.
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
)
os.environ.pop("AWS_PROFILE", None)

REGION = "us-east-1"
# The retraining DAG's tasks, in its order: what every view of its export must show.
RETRAINING_TASK_IDS = (
    "extract_transform_load",
    "train_model",
    "check_metrics",
    "accuracy_check",
    "model_accuracy_too_low",
    "create_model",
    "create_endpoint_config",
    "update_endpoint",
)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB in the session's private Airflow home."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return _AIRFLOW_HOME


@pytest.fixture(scope="session", autouse=True)
def moto_patched_before_any_test() -> None:
    """moto's backends extended before any test runs (see aws_doubles.install)."""
    from tests import aws_doubles

    aws_doubles.install()


@pytest.fixture(scope="session")
def moto_server() -> str:
    """One moto server over HTTP for the session, extended where moto lacks behaviour (see aws_doubles)."""
    from moto.server import ThreadedMotoServer

    from tests import aws_doubles

    aws_doubles.install()
    port = aws_doubles.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws(moto_server, monkeypatch):
    """A clean moto account for one test, and the Airflow connection ``aws_default`` pointing at it."""
    from tests import aws_doubles

    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    urllib.request.urlopen(request).read()
    aws_doubles.reset_outcomes()
    connection = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": moto_server, "region_name": REGION},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
    return AwsSession(moto_server)


class AwsSession:
    """boto3 clients on the moto server, and the knobs of its doubles."""

    def __init__(self, endpoint_url: str):
        self.endpoint_url = endpoint_url
        from tests import aws_doubles

        self.outcomes = aws_doubles.outcomes

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=REGION)

    def create_role(self, name: str = "SageMakerExecutionRole") -> str:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
        return self.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]

    def create_glue_job(self, name: str = "churn-etl") -> str:
        role = self.create_role("GlueRole")
        self.client("glue").create_job(
            Name=name,
            Role=role,
            Command={"Name": "glueetl", "ScriptLocation": "s3://scripts/churn_etl.py", "PythonVersion": "3"},
            GlueVersion="5.0",
            ExecutionProperty={"MaxConcurrentRuns": 2},
        )
        return name

    def create_metric_function(self, name: str = "query-training-status") -> str:
        import io
        import zipfile

        role = self.create_role("LambdaRole")
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zf:
            zf.write(ROOT / "lambda" / "query_training_status.py", "query_training_status.py")
        self.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=role,
            Handler="query_training_status.lambda_handler",
            Code={"ZipFile": archive.getvalue()},
            Environment={"Variables": {"AWS_ENDPOINT_URL": self.endpoint_url}},
        )
        return name
