"""boto3 clients for the deploy commands, and AWS failures as messages that say what to do.

Credentials and region come from boto3's standard chain (``AWS_PROFILE``, env vars,
``~/.aws``, SSO, instance/container roles), never from an Airflow connection: nothing
of an Airflow connection is read, printed or sent. ``--endpoint-url`` (or the standard
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>``, which botocore reads itself)
points every client at a local AWS emulator. Messages never show the user-info of such a URL
(``https://user:password@host`` is shown as ``https://***@host``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
from botocore import exceptions as bx
from botocore.config import Config
from botocore.parsers import ResponseParserError

from exporters.errors import ExporterError
from exporters.iam import ROLE_ARN_PATTERN

USER_AGENT = "airflow-sfn-exporter"

REGION_HELP = "pass --region, or set AWS_REGION (or AWS_DEFAULT_REGION), or set region in your AWS profile"
CREDENTIALS_HELP = (
    "configure AWS credentials: AWS_PROFILE (then `aws sso login` if it is an SSO profile), "
    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run where an instance/container role is available"
)


# An IAM role ARN; group 1 is the role name (paths allowed).
IAM_ROLE_ARN_RE = re.compile(f"^{ROLE_ARN_PATTERN}$")


# scheme://user-info@ in any text: the user-info may be credentials.
_URL_USER_INFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s\"']*@")


def redact_url(text: str) -> str:
    """``text`` with the user-info of every URL in it replaced by ``***``."""
    return _URL_USER_INFO.sub(r"\1***@", text)


class AwsCommandError(ExporterError):
    """An AWS command cannot go on: ``reason`` (what AWS or the setup said), ``fix`` (what to do)."""


@dataclass(frozen=True)
class Identity:
    account: str
    partition: str


class AwsClients:
    """Lazily created clients for one region/endpoint. ``overrides`` replaces a service's client (tests)."""

    def __init__(
        self, region: str | None = None, endpoint_url: str | None = None, overrides: dict[str, Any] | None = None
    ):
        self._region_arg = region
        self.endpoint_url = endpoint_url or None
        self._overrides = dict(overrides or {})
        self._clients: dict[str, Any] = {}
        self._session: Any = None
        self._identity: Identity | None = None

    @property
    def session(self):
        if self._session is None:
            try:
                # botocore reads AWS_DEFAULT_REGION and the profile; AWS_REGION (what the AWS CLI v2 and
                # the other SDKs read first) is honoured here.
                region = self._region_arg or os.environ.get("AWS_REGION") or None
                self._session = boto3.session.Session(region_name=region, botocore_session=_botocore_session())
            except bx.ProfileNotFound as err:
                raise AwsCommandError(
                    f"AWS profile not found: {err}", "fix AWS_PROFILE or add the profile to your AWS config"
                ) from None
        return self._session

    @property
    def region(self) -> str:
        region = self.session.region_name
        if not region:
            raise AwsCommandError("no AWS region configured", REGION_HELP)
        return region

    @property
    def endpoint_label(self) -> str | None:
        """The endpoint override in use, for messages (None for the real AWS endpoints)."""
        endpoint = self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        return redact_url(endpoint) if endpoint else None  # shown in messages: no user-info

    def client(self, service: str) -> Any:
        if service in self._overrides:
            return self._overrides[service]
        if service not in self._clients:
            config = Config(
                user_agent_extra=USER_AGENT,
                connect_timeout=10,
                read_timeout=60,
                # max_attempts still comes from AWS_MAX_ATTEMPTS / the profile when set.
                retries={"mode": "standard"},
            )
            kwargs: dict[str, Any] = {"region_name": self.region, "config": config}
            if self.endpoint_url:
                kwargs["endpoint_url"] = self.endpoint_url
            self._clients[service] = self.session.client(service, **kwargs)
        return self._clients[service]

    @property
    def sfn(self) -> Any:
        return self.client("stepfunctions")

    @property
    def scheduler(self) -> Any:
        return self.client("scheduler")

    @property
    def iam(self) -> Any:
        return self.client("iam")

    def identity(self) -> Identity:
        """The caller's account and partition (one STS call, cached)."""
        if self._identity is None:
            answer = self.client("sts").get_caller_identity()
            arn = answer.get("Arn", "")
            partition = arn.split(":")[1] if arn.startswith("arn:") else "aws"
            self._identity = Identity(account=answer["Account"], partition=partition)
        return self._identity


_LOADER: Any = None


def _botocore_session() -> Any:
    """A botocore session sharing one (read-only) service-model loader per process: models load once."""
    global _LOADER
    session = botocore.session.get_session()
    if _LOADER is None:
        _LOADER = session.get_component("data_loader")
    else:
        session.register_component("data_loader", _LOADER)
    return session


def error_code(err: Exception) -> str:
    response = getattr(err, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


_CREDENTIAL_CODES = {
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "InvalidAccessKeyId",
    "AuthFailure",
}
_ACCESS_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "NotAuthorized"}
_THROTTLE_CODES = {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}


@contextmanager
def aws_errors(endpoint: str | None = None) -> Iterator[None]:
    """Turn botocore failures inside the block into ``AwsCommandError``s that say what to do."""
    try:
        yield
    except (bx.BotoCoreError, bx.ClientError, ResponseParserError) as err:
        raise command_error(err, endpoint) from None  # botocore's own text may carry the URL's user-info
    except ValueError as err:
        if not str(err).startswith("Invalid endpoint"):  # botocore's check of the endpoint URL
            raise
        # Not echoed: the user-info of a URL botocore cannot parse cannot be told apart reliably.
        raise AwsCommandError(
            "--endpoint-url / AWS_ENDPOINT_URL is not a valid endpoint", "give an http(s)://host[:port] URL"
        ) from None


def command_error(err: Exception, endpoint: str | None = None) -> AwsCommandError:
    """A botocore/boto3 failure as reason and fix, with any URL user-info redacted."""
    error = _command_error(err, endpoint)
    return AwsCommandError(redact_url(error.reason), redact_url(error.fix))


def _command_error(err: Exception, endpoint: str | None) -> AwsCommandError:
    where = f" at {endpoint}" if endpoint else ""
    if isinstance(err, bx.NoRegionError):
        return AwsCommandError("no AWS region configured", REGION_HELP)
    if isinstance(err, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return AwsCommandError(f"no usable AWS credentials found ({err})", CREDENTIALS_HELP)
    if isinstance(err, (bx.SSOTokenLoadError, bx.UnauthorizedSSOTokenError, bx.TokenRetrievalError)):
        return AwsCommandError(
            f"the AWS SSO session is missing or expired ({err})", "run `aws sso login` for your profile"
        )
    if isinstance(err, bx.ProfileNotFound):
        return AwsCommandError(f"AWS profile not found: {err}", "fix AWS_PROFILE or add the profile to your AWS config")
    if isinstance(err, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
        url = getattr(err, "kwargs", {}).get("endpoint_url") or endpoint or "the AWS endpoint"
        hint = (
            "check that the emulator is running and --endpoint-url / AWS_ENDPOINT_URL is right"
            if endpoint
            else "check your network/proxy and that the region is right"
        )
        return AwsCommandError(f"could not connect to {url}", hint)
    if isinstance(err, bx.ReadTimeoutError):
        return AwsCommandError(f"AWS did not answer in time{where}", "try again; if it persists check your network")
    if isinstance(err, bx.ParamValidationError):
        return AwsCommandError(f"internal error, an AWS request was malformed: {err}", "please report it")
    if isinstance(err, bx.ClientError):
        return _client_error(err, where)
    if isinstance(err, ResponseParserError):
        return AwsCommandError(
            f"the answer{where} is not one AWS would give: {str(err)[:300]}", "check that it is an AWS API endpoint"
        )
    return AwsCommandError(f"AWS SDK error{where}: {err}")


def _client_error(err: bx.ClientError, where: str) -> AwsCommandError:
    code = error_code(err)
    message = str(err.response.get("Error", {}).get("Message") or "(no message)").strip()
    if "<html" in message.lower():
        message = (
            "the endpoint answered with an HTML error page "
            "(is it an AWS API endpoint, and does it implement this call?)"
        )
    operation = getattr(err, "operation_name", "") or "an AWS call"
    reason = f"AWS {operation} failed{where}: {code}: {message}"
    if code in _CREDENTIAL_CODES:
        return AwsCommandError(reason, f"the AWS credentials were rejected or have expired: {CREDENTIALS_HELP}")
    if code in _ACCESS_CODES:
        if "assume" in message.lower():
            return AwsCommandError(
                reason,
                "the service cannot assume the role: its trust policy must allow the service principal "
                "(states.amazonaws.com for the state machine role, scheduler.amazonaws.com for the schedule role); "
                "deploy the CloudFormation template or fix the role",
            )
        return AwsCommandError(
            reason, f"your credentials lack permission for {operation}: use a profile/role that has it"
        )
    if code in _THROTTLE_CODES:
        return AwsCommandError(reason, "AWS is throttling requests: wait a little and run the command again")
    if code == "InvalidDefinition":
        return AwsCommandError(
            reason,
            "Step Functions rejected the exported definition: run `python -m exporters validate` on the export "
            "and report the DAG",
        )
    if code in ("StateMachineDoesNotExist", "ResourceNotFoundException", "ResourceNotFound"):
        return AwsCommandError(
            f"{reason} (not deployed in this account/region)", "run `python -m exporters deploy DAG_ID`"
        )
    if code in ("InvalidArn", "ValidationException", "InvalidName"):
        return AwsCommandError(reason, "check the names, ARNs and input given on the command line")
    return AwsCommandError(reason)
