"""boto3 clients for the deploy commands, and AWS failures as messages that say what to do.

Credentials and region come from boto3's standard chain (``AWS_PROFILE``, env vars,
``~/.aws``, SSO, instance/container roles), never from an Airflow connection: nothing
of an Airflow connection is read, printed or sent. ``--endpoint-url`` (or the standard
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>``, which botocore reads itself)
points every client at a local AWS emulator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

USER_AGENT = "airflow-sfn-exporter"

REGION_HELP = "pass --region, or set AWS_REGION (or AWS_DEFAULT_REGION), or set region in your AWS profile"
CREDENTIALS_HELP = (
    "configure AWS credentials: AWS_PROFILE (then `aws sso login` if it is an SSO profile), "
    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run where an instance/container role is available"
)


class AwsCommandError(Exception):
    """A problem reported to the user as one message (what went wrong, what to do); exit code 1."""


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
            import boto3
            from botocore.exceptions import ProfileNotFound

            try:
                # botocore reads AWS_DEFAULT_REGION and the profile; AWS_REGION (what the AWS CLI v2 and
                # the other SDKs read first) is honoured here.
                region = self._region_arg or os.environ.get("AWS_REGION") or None
                self._session = boto3.session.Session(region_name=region, botocore_session=_botocore_session())
            except ProfileNotFound as err:
                raise AwsCommandError(
                    f"AWS profile not found: {err}; fix AWS_PROFILE or add the profile to your AWS config"
                ) from None
        return self._session

    @property
    def region(self) -> str:
        region = self.session.region_name
        if not region:
            raise AwsCommandError(f"no AWS region configured: {REGION_HELP}")
        return region

    @property
    def endpoint_label(self) -> str | None:
        """The endpoint override in use, for messages (None for the real AWS endpoints)."""
        return self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None

    def client(self, service: str) -> Any:
        if service in self._overrides:
            return self._overrides[service]
        if service not in self._clients:
            from botocore.config import Config

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
    import botocore.session

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


def explain(err: BaseException, endpoint: str | None = None) -> str | None:
    """A one-paragraph message for a botocore/boto3 failure, or None when ``err`` is not one."""
    from botocore import exceptions as bx

    where = f" at {endpoint}" if endpoint else ""
    if isinstance(err, bx.NoRegionError):
        return f"no AWS region configured: {REGION_HELP}"
    if isinstance(err, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return f"no usable AWS credentials found ({err}): {CREDENTIALS_HELP}"
    if isinstance(err, (bx.SSOTokenLoadError, bx.UnauthorizedSSOTokenError, bx.TokenRetrievalError)):
        return f"the AWS SSO session is missing or expired ({err}): run `aws sso login` for your profile"
    if isinstance(err, bx.ProfileNotFound):
        return f"AWS profile not found: {err}; fix AWS_PROFILE or add the profile to your AWS config"
    if isinstance(err, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
        url = getattr(err, "kwargs", {}).get("endpoint_url") or endpoint or "the AWS endpoint"
        hint = (
            "check that the emulator is running and --endpoint-url / AWS_ENDPOINT_URL is right"
            if endpoint
            else "check your network/proxy and that the region is right"
        )
        return f"could not connect to {url}: {hint}"
    if isinstance(err, bx.ReadTimeoutError):
        return f"AWS did not answer in time{where}: try again; if it persists check your network"
    if isinstance(err, bx.ParamValidationError):
        return f"internal error, an AWS request was malformed (please report it): {err}"
    if isinstance(err, bx.ClientError):
        return _explain_client_error(err, where)
    if isinstance(err, bx.BotoCoreError):
        return f"AWS SDK error{where}: {err}"
    return None


def _explain_client_error(err: Any, where: str) -> str:
    code = error_code(err)
    message = str(err.response.get("Error", {}).get("Message") or "(no message)").strip()
    if "<html" in message.lower():
        message = (
            "the endpoint answered with an HTML error page "
            "(is it an AWS API endpoint, and does it implement this call?)"
        )
    operation = getattr(err, "operation_name", "") or "an AWS call"
    head = f"AWS {operation} failed{where}: {code}: {message}"
    if code in _CREDENTIAL_CODES:
        return f"{head}\n  the AWS credentials were rejected or have expired: {CREDENTIALS_HELP}"
    if code in _ACCESS_CODES:
        if "assume" in message.lower():
            return (
                f"{head}\n  the service cannot assume the role: its trust policy must allow the service principal "
                "(states.amazonaws.com for the state machine role, scheduler.amazonaws.com for the schedule role); "
                "deploy the CloudFormation template or fix the role"
            )
        return f"{head}\n  your credentials lack permission for {operation}: use a profile/role that has it"
    if code in _THROTTLE_CODES:
        return f"{head}\n  AWS is throttling requests: wait a little and run the command again"
    if code == "InvalidDefinition":
        return (
            f"{head}\n  Step Functions rejected the exported definition: "
            "run `python -m exporters validate` on the export and report the DAG"
        )
    if code in ("StateMachineDoesNotExist", "ResourceNotFoundException", "ResourceNotFound"):
        return f"{head}\n  it is not deployed (in this account/region): run `python -m exporters deploy DAG_ID`"
    if code in ("InvalidArn", "ValidationException", "InvalidName"):
        return f"{head}\n  check the names, ARNs and input given on the command line"
    return head
