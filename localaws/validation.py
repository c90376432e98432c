"""Request validation for the local backend's AWS actions: AWS's own error shapes, field types, patterns, lengths.

Every action checks its whole request with these before it writes a record or starts a worker,
so a malformed request is always a 4xx naming the field, never a 500 or a half-written record.
"""

from __future__ import annotations

import re
from typing import Any

from localaws.paths import S3_SCHEMES, PathRefused, check_key, local_uri, s3_to_local


class ApiError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def validation_error(message: str) -> ApiError:
    return ApiError("ValidationException", message)


def refused(err: PathRefused) -> ApiError:
    return ApiError(err.code, str(err), err.status)


# -- request validation: every field's type, pattern and length as AWS states them, before anything is written --
MISSING = object()
SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
ROLE_ARN = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
CHANNEL_NAME = re.compile(r"^[A-Za-z0-9.\-_]{1,64}$")
VARIANT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
JOB_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
GLUE_ARGUMENT = re.compile(r"^--[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Arguments the backend itself passes to a Glue script.
RESERVED_GLUE_ARGUMENTS = {"--JOB_NAME", "--JOB_RUN_ID"}
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def constraint_error(value: Any, field: str, constraint: str) -> ApiError:
    shown = value if isinstance(value, int | float | bool) or value is None else str(value)[:100]
    return validation_error(
        f"1 validation error detected: Value {shown!r} at '{field}' failed to satisfy constraint: {constraint}"
    )


def member(container: dict[str, Any], name: str, where: str, required: bool) -> Any:
    value = container.get(name, MISSING)
    if value is MISSING or value is None:
        if required:
            raise constraint_error(None, f"{where}{name}", "Member must not be null")
        return MISSING
    return value


def string_field(
    container: dict[str, Any],
    name: str,
    where: str = "",
    *,
    required: bool = True,
    pattern: re.Pattern | None = None,
    max_len: int = 256,
    min_len: int = 1,
) -> str | None:
    value = member(container, name, where, required)
    if value is MISSING:
        return None
    field = f"{where}{name}"
    if not isinstance(value, str):
        raise constraint_error(value, field, f"Member must be a string, not {type(value).__name__}")
    if not min_len <= len(value) <= max_len:
        raise constraint_error(value, field, f"Member must have length between {min_len} and {max_len}")
    if CONTROL_CHARACTERS.search(value):
        raise constraint_error(value, field, "Member must not contain control characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise constraint_error(value, field, f"Member must satisfy regular expression pattern: {pattern.pattern}")
    return value


def integer_field(
    container: dict[str, Any], name: str, where: str = "", *, required: bool = True, minimum: int = 1, maximum: int
) -> int | None:
    value = member(container, name, where, required)
    if value is MISSING:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise constraint_error(value, f"{where}{name}", f"Member must be an integer, not {type(value).__name__}")
    if not minimum <= value <= maximum:
        raise constraint_error(value, f"{where}{name}", f"Member must have value between {minimum} and {maximum}")
    return value


def object_field(container: dict[str, Any], name: str, where: str = "", *, required: bool = True) -> dict[str, Any]:
    value = member(container, name, where, required)
    if value is MISSING:
        return {}
    if not isinstance(value, dict):
        raise constraint_error(value, f"{where}{name}", f"Member must be an object, not {type(value).__name__}")
    return value


def array_field(
    container: dict[str, Any], name: str, where: str = "", *, required: bool = True, min_items: int = 1, maximum: int
) -> list[Any]:
    value = member(container, name, where, required)
    if value is MISSING:
        return []
    if not isinstance(value, list):
        raise constraint_error(value, f"{where}{name}", f"Member must be a list, not {type(value).__name__}")
    if not min_items <= len(value) <= maximum:
        raise constraint_error(
            len(value), f"{where}{name}", f"Member must have between {min_items} and {maximum} items"
        )
    return value


def string_map_field(
    container: dict[str, Any], name: str, *, max_items: int, key_max: int, value_max: int
) -> dict[str, str]:
    value = object_field(container, name, required=False)
    if len(value) > max_items:
        raise constraint_error(len(value), name, f"Map must have at most {max_items} entries")
    for key in value:
        if not 1 <= len(key) <= key_max or CONTROL_CHARACTERS.search(key):
            raise constraint_error(
                key, f"{name} key", f"Key must have length between 1 and {key_max}, no control characters"
            )
        string_field(value, key, f"{name}.", max_len=value_max, min_len=0)
    return value


def s3_uri_field(container: dict[str, Any], name: str, where: str = "") -> str:
    uri = string_field(container, name, where, max_len=1024)
    try:
        s3_to_local(uri, f"{where}{name}")
    except PathRefused as err:
        raise refused(err) from None
    return uri


def glue_argument(key: str, value: str) -> str:
    """A Glue argument as the local script gets it: S3 URIs become confined local paths, never a raw path."""
    if not GLUE_ARGUMENT.fullmatch(key) or key in RESERVED_GLUE_ARGUMENTS:
        raise constraint_error(
            key,
            "Arguments key",
            f"must match {GLUE_ARGUMENT.pattern} and not be one of {sorted(RESERVED_GLUE_ARGUMENTS)}",
        )
    field = f"Arguments.{key}"
    try:
        if value.startswith(S3_SCHEMES):
            return local_uri(value, field)
        if key.endswith("_KEY"):
            # A key relative to an S3 prefix (--TRAIN_KEY train/): it must stay below that prefix.
            check_key(value, field)
            return value
    except PathRefused as err:
        raise refused(err) from None
    if key.startswith("--S3_") or "/" in value or "\\" in value or value.startswith(("file:", "~", ".")):
        raise constraint_error(
            value, field, "the local backend passes only s3:// URIs and plain values to a job, never a local path"
        )
    return value
