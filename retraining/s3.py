"""S3 locations a run may name: patterns for DAG params, the exporter's template and IAM scoping.

A location is ``s3://<bucket>/<key>``: the bucket by AWS's naming rules, the key one or more
segments that are never empty (no ``//``), never ``.`` or ``..``, and hold no character a path,
an IAM policy or a URL would read specially (``*``, ``?``, ``\\``, ``%``, spaces). So a location
can only name objects under its own prefix of its own bucket, never a whole bucket.
"""

from __future__ import annotations

# 3-63 of [a-z0-9.-], letter or digit at both ends, no "..", not an IP address, no reserved prefix or suffix.
S3_BUCKET_PATTERN = (
    "(?=[a-z0-9.-]{3,63}(?:/|$))"
    "(?!xn--|sthree-|amzn-s3-demo-|[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+(?:/|$))"
    "(?![a-z0-9.-]*(?:-s3alias|--ol-s3|[.]mrap|--x-s3|--table-s3)(?:/|$))"
    "[a-z0-9](?:[a-z0-9-]|[.](?![.]))*[a-z0-9]"
)
S3_KEY_SEGMENT_PATTERN = "(?![.]{1,2}(?:/|$))[A-Za-z0-9!_.()=+-]+"
# A key naming an object or a prefix / a key naming a prefix (ends with "/").
S3_KEY_PATTERN = f"(?:{S3_KEY_SEGMENT_PATTERN}/)*{S3_KEY_SEGMENT_PATTERN}/?"
S3_PREFIX_KEY_PATTERN = f"(?:{S3_KEY_SEGMENT_PATTERN}/)+"
# "(?!.*\n)": Python's "$" (jsonschema's) also matches before a final newline.
S3_URI_PATTERN = f"^(?!.*\\n)s3://{S3_BUCKET_PATTERN}/{S3_KEY_PATTERN}$"
S3_PREFIX_PATTERN = f"^(?!.*\\n)s3://{S3_BUCKET_PATTERN}/{S3_PREFIX_KEY_PATTERN}$"
