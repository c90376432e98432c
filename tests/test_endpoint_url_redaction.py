"""``--endpoint-url`` / ``AWS_ENDPOINT_URL`` user-info (``https://user:pass@host``) never reaches a message.

The exporter's CLI is run as a user would run it, against a port where nothing listens and against
a small HTTP server answering like AWS with an error.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import ROOT

SECRET = "hunter2-do-not-print"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AccessDenied(BaseHTTPRequestHandler):
    """Every call is refused as AWS refuses it: XML for query-protocol services (STS), JSON otherwise."""

    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            content_type = "text/xml"
            body = (
                b"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                b"<Message>not allowed</Message></Error><RequestId>1</RequestId></ErrorResponse>"
            )
        else:
            content_type = "application/x-amz-json-1.0"
            body = json.dumps({"__type": "AccessDeniedException", "message": "not allowed"}).encode()
        self.send_response(400)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture(scope="module")
def denying_endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), AccessDenied)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def exporter_cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
        **(env_extra or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "exporters", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("how", ["flag", "env"])
def test_unreachable_endpoint_is_named_without_its_credentials(how):
    url = f"http://alice:{SECRET}@127.0.0.1:{closed_port()}/"
    if how == "flag":
        done = exporter_cli("executions", "model_retraining", "--endpoint-url", url)
    else:
        done = exporter_cli("executions", "model_retraining", env_extra={"AWS_ENDPOINT_URL": url})
    assert done.returncode == 1, done.stderr
    assert SECRET not in done.stdout + done.stderr and "alice" not in done.stdout + done.stderr
    assert "could not connect to http://***@127.0.0.1:" in done.stderr
    assert "Traceback" not in done.stderr


def test_aws_error_from_the_endpoint_names_it_without_its_credentials(denying_endpoint):
    url = f"http://alice:{SECRET}@127.0.0.1:{denying_endpoint}"
    done = exporter_cli("start", "model_retraining", "--endpoint-url", url)
    assert done.returncode == 1, done.stderr
    assert SECRET not in done.stdout + done.stderr and "alice" not in done.stdout + done.stderr
    assert f"at http://***@127.0.0.1:{denying_endpoint}: AccessDenied" in done.stderr


def test_an_endpoint_url_botocore_refuses_is_a_message_not_a_traceback():
    done = exporter_cli("executions", "model_retraining", "--endpoint-url", f"alice:{SECRET}@127.0.0.1:1")
    assert done.returncode == 1
    assert SECRET not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "--endpoint-url / AWS_ENDPOINT_URL" in done.stderr
