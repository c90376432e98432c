"""Every local path the backend touches, derived and confined in one place.

State lives in the repo's ignored ``.local`` folder (or ``RETRAINING_LOCAL_DATA``).
S3 URIs, Glue job names and Lambda function names come from requests, so they
are hostile: each is checked against AWS's own naming rules, then resolved
(after symlinks) and confined to its folder. Anything else is refused with the
error AWS would give (``ValidationException`` 400, ``AccessDeniedException`` 403).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PORT = 4599
LOCAL_CONN_ID = "retraining_local"
GLUE_DIR = REPO / "glue"
LAMBDA_DIR = REPO / "lambda"

S3_SCHEMES = ("s3://", "s3a://", "s3n://")
MAX_KEY_BYTES = 1024  # S3's object key limit
# S3 bucket naming rules: 3-63 characters, lowercase letters, digits, dots and hyphens,
# starting and ending with a letter or digit; no "..", ".-" or "-."; not an IP address.
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_RE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
# Control characters (and NUL) never belong in a key the backend maps to a file.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Glue job names that map to glue/<name with _>.py; AWS allows more, the local backend runs only these.
GLUE_JOB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")
# Lambda's FunctionName without the ARN/qualifier parts.
LAMBDA_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def data_dir() -> Path:
    return Path(os.environ.get("RETRAINING_LOCAL_DATA", REPO / ".local" / "data"))


def s3_root() -> Path:
    return data_dir() / "s3"


def db_path() -> Path:
    return data_dir() / "backend.db"


def logs_dir() -> Path:
    return data_dir() / "logs"


def models_dir() -> Path:
    return data_dir() / "models"


def workers_dir() -> Path:
    """One pidfile per running worker process (reaped when the backend starts)."""
    return data_dir() / "workers"


def lock_path() -> Path:
    return data_dir() / "backend.lock"


class PathRefused(ValueError):
    """A name or URI the local backend will not map to a file; ``code``/``status`` are AWS's."""

    def __init__(self, message: str, code: str = "ValidationException", status: int = 400):
        super().__init__(message)
        self.code, self.status = code, status


def parse_s3_uri(uri: object, field: str = "S3Uri") -> tuple[str, str]:
    """``s3://bucket/key`` → (bucket, key), with S3's bucket rules and safe keys (a trailing ``/`` is kept)."""
    if not isinstance(uri, str):
        raise PathRefused(f"{field}: expected an s3:// URI string, got {type(uri).__name__}")
    scheme = next((s for s in S3_SCHEMES if uri.startswith(s)), None)
    if scheme is None:
        raise PathRefused(f"{field}: {uri[:200]!r} is not an s3:// URI")
    bucket, _, key = uri[len(scheme) :].partition("/")
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket or ".-" in bucket or "-." in bucket or _IP_RE.match(bucket):
        raise PathRefused(
            f"{field}: {bucket[:100]!r} in {uri[:200]!r} is not a valid bucket name "
            "(3-63 characters: a-z, 0-9, '.', '-'; starts and ends with a letter or digit; no '..')"
        )
    check_key(key, field, uri)
    return bucket, key


def check_key(key: str, field: str, uri: str | None = None) -> None:
    """An object key or prefix: no leading ``/``, no empty, ``.`` or ``..`` segments, no control characters."""
    where = f"{field}: {uri[:200]!r}" if uri is not None else f"{field}: key {key[:200]!r}"
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise PathRefused(f"{where}: the key is longer than {MAX_KEY_BYTES} bytes")
    if _CONTROL_RE.search(key) or "\\" in key:
        raise PathRefused(f"{where}: the key holds control characters or backslashes")
    if not key:
        return
    segments = key[:-1].split("/") if key.endswith("/") else key.split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise PathRefused(
                f"{where}: the key has an empty, '.' or '..' segment (a leading '/' or '//' included); "
                "the local backend maps keys to files and refuses these"
            )
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise PathRefused(f"{where}: the key is not valid UTF-8") from None


def confine(path: Path, root: Path, what: str) -> Path:
    """``path`` resolved (symlinks followed) if it stays inside ``root``; else AccessDeniedException."""
    root_resolved = root.resolve()
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as err:  # a symlink loop, a name too long
        raise PathRefused(f"{what}: cannot be resolved ({err})") from None
    if resolved != root_resolved and not resolved.is_relative_to(root_resolved):
        raise PathRefused(
            f"{what} resolves outside the local backend's data directory",
            code="AccessDeniedException",
            status=403,
        )
    return resolved


def s3_to_local(uri: object, field: str = "S3Uri") -> Path:
    """``s3://bucket/key`` (or s3a/s3n) → the file or folder standing in for it, inside ``<data dir>/s3``."""
    bucket, key = parse_s3_uri(uri, field)
    return confine(s3_root() / bucket / key, s3_root(), f"{field} {uri!r}")


def local_uri(uri: str, field: str = "S3Uri") -> str:
    """An S3 URI as the local path string a worker opens; a prefix keeps its trailing ``/``."""
    path = str(s3_to_local(uri, field))
    return path + "/" if uri.endswith("/") and not path.endswith("/") else path


def glue_script(job_name: object) -> Path:
    """``glue/<job_name with _>.py``: a file directly inside ``glue/``, or EntityNotFoundException."""
    if not isinstance(job_name, str) or not GLUE_JOB_NAME_RE.fullmatch(job_name):
        raise PathRefused(
            f"JobName: {str(job_name)[:100]!r} is not a job name the local backend runs "
            f"(must match {GLUE_JOB_NAME_RE.pattern})"
        )
    script = GLUE_DIR / f"{job_name.replace('-', '_')}.py"
    resolved = confine(script, GLUE_DIR, f"JobName {job_name!r}")
    if resolved.parent != GLUE_DIR.resolve() or not resolved.is_file():
        raise PathRefused(
            f"Glue job {job_name!r} not found (the local backend runs glue/<job_name with _>.py)",
            code="EntityNotFoundException",
        )
    return resolved


def lambda_module(function_name: object) -> Path:
    """``lambda/<name with _>.py``: a file directly inside ``lambda/``, or ResourceNotFoundException."""
    if not isinstance(function_name, str) or not LAMBDA_NAME_RE.fullmatch(function_name):
        raise PathRefused(
            f"FunctionName: {str(function_name)[:100]!r} must match {LAMBDA_NAME_RE.pattern}",
        )
    module = LAMBDA_DIR / f"{function_name.replace('-', '_')}.py"
    resolved = confine(module, LAMBDA_DIR, f"FunctionName {function_name!r}")
    if resolved.parent != LAMBDA_DIR.resolve() or not resolved.is_file():
        raise PathRefused(
            f"Function not found: {function_name} (the local backend runs lambda/<name with _>.py)",
            code="ResourceNotFoundException",
            status=404,
        )
    return resolved


def endpoint_url(port: int | None = None) -> str:
    return f"http://127.0.0.1:{port or int(os.environ.get('RETRAINING_LOCAL_PORT', DEFAULT_PORT))}"
