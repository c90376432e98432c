"""Where the local backend keeps its state: inside the repo's ignored ``.local`` folder."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PORT = 4599
LOCAL_CONN_ID = "retraining_local"


def data_dir() -> Path:
    return Path(os.environ.get("RETRAINING_LOCAL_DATA", REPO / ".local" / "data"))


def s3_root() -> Path:
    return data_dir() / "s3"


def db_path() -> Path:
    return data_dir() / "backend.db"


def logs_dir() -> Path:
    return data_dir() / "logs"


class NotAnS3Uri(ValueError):
    pass


def s3_to_local(uri: str) -> Path:
    """``s3://bucket/key`` (or s3a/s3n) → the folder or file standing in for it."""
    for scheme in ("s3://", "s3a://", "s3n://"):
        if uri.startswith(scheme):
            rest = uri[len(scheme) :]
            bucket, _, key = rest.partition("/")
            if not bucket or ".." in Path(key).parts:
                raise NotAnS3Uri(f"{uri!r} is not a usable S3 URI")
            path = s3_root() / bucket / key
            return Path(str(path) + "/") if uri.endswith("/") and not str(path).endswith("/") else path
    raise NotAnS3Uri(f"{uri!r} is not an s3:// URI")


def local_to_s3(path: Path) -> str:
    relative = Path(path).resolve().relative_to(s3_root().resolve())
    return "s3://" + relative.as_posix()


def endpoint_url(port: int | None = None) -> str:
    return f"http://127.0.0.1:{port or int(os.environ.get('RETRAINING_LOCAL_PORT', DEFAULT_PORT))}"
