"""The Amazon provider's S3 operators → ``aws-sdk:s3`` states doing what each ``execute()`` does.

Per operator (the parameter-by-parameter table is ``docs/stock-operators.md``):

- ``S3CreateBucketOperator``: HeadBucket; only when that fails, CreateBucket (``LocationConstraint``
  from ``region_name``, else from the state machine's own region, as the hook takes the connection's).
- ``S3DeleteBucketOperator``: HeadBucket; only when the bucket exists, (``force_delete``: list and
  delete every object until none is left, then) DeleteBucket.
- ``S3CreateObjectOperator``: PutObject of ``data``; ``replace=False`` is S3's conditional write
  (``IfNoneMatch: *``), so an existing key fails the task as the hook's ``ValueError`` does.
- ``S3CopyObjectOperator``: CopyObject with the hook's defaults (``ACL: private``).
- ``S3DeleteObjectsOperator``: DeleteObjects of ``keys``, or of every key under ``prefix`` (listed
  and deleted 1,000 at a time until none is left); an ``Errors`` answer fails the run.

None of them returns a result (their XCom is None), so no state keeps one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from exporters import asl
from exporters.converters import ConvertContext, Fragment, Port, Unsupported, register_lazy, result_key, state_name
from exporters.converters_sdk import sdk_state
from exporters.jinja import JinjaTranslationError, as_rendered, jinja_to_ref
from retraining.refs import Format, Ref

S3_OPERATORS = "airflow.providers.amazon.aws.operators.s3"
# The state machine's region, from its own ARN (arn:aws:states:<region>:<account>:stateMachine:<name>).
MACHINE_REGION = "States.ArrayGetItem(States.StringSplit($$.StateMachine.Id, ':'), 3)"
NO_ACL = "no-acl"  # the hook's marker for "send no ACL"
MAX_KEYS_PER_DELETE = 1000
# Keys listed and deleted per round: a ListObjectsV2 page of 250 keys stays far below the 256 KiB state data.
KEYS_PER_ROUND = 250


def field_value(task: Any, name: str) -> Any:
    """A stock operator's (templated) field → literal or reference; free-form Jinja refused naming the field."""
    value = getattr(task, name)
    if name in getattr(task, "template_fields", ()):
        value = as_rendered(value, task)
    try:
        return jinja_to_ref(value)
    except JinjaTranslationError as err:
        raise Unsupported(
            f"field {name!r}: {err}",
            "use '{{ params.NAME }}', '{{ ti.xcom_pull(task_ids=\"TASK\")[\"FIELD\"] }}' or a schedule-time value "
            "('{{ ds }}', '{{ ts }}', '{{ run_id }}'...) only",
        ) from None


def bucket_and_key(task: Any, bucket_field: str, key_field: str) -> tuple[Any, Any]:
    """The hook's ``get_s3_bucket_key`` on two of the task's fields."""
    return split_bucket_key(field_value(task, bucket_field), field_value(task, key_field), bucket_field, key_field)


def split_bucket_key(bucket: Any, key: Any, bucket_field: str, key_field: str) -> tuple[Any, Any]:
    """A bucket and a relative key, or a full ``s3://`` URL as the key (``S3Hook.get_s3_bucket_key``)."""
    if bucket is None:
        if isinstance(key, Format) and key.template.startswith("s3://"):
            # "s3://bucket/{}...": the bucket is literal, the key is the rest.
            literal_bucket, _, rest = key.template[len("s3://") :].partition("/")
            if literal_bucket and "{}" not in literal_bucket:
                return literal_bucket, Format(rest, *key.args)
        if not isinstance(key, str):
            raise Unsupported(
                f"{key_field} is only known at run time and {bucket_field} is not set",
                f"give {bucket_field} and a relative {key_field}",
            )
        parsed = urlsplit(key)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise Unsupported(f"{key_field} {key!r} is not an s3:// URL and {bucket_field} is not set")
        return parsed.netloc, parsed.path.lstrip("/")
    if isinstance(key, str) and (urlsplit(key).scheme or urlsplit(key).netloc):
        raise Unsupported(
            f"{bucket_field} is set, so {key_field} must be a relative path, not {key!r} (Airflow raises TypeError)"
        )
    return bucket, key


def _no_result(state: asl.Task) -> asl.Task:
    state.result_path = None
    return state


def _head_bucket(task: Any, ctx: ConvertContext, bucket: Any) -> asl.Task:
    # check_for_bucket: any error answer means "no bucket" (and is not retried on its own).
    head = _no_result(sdk_state(task, ctx, "s3", "HeadBucket", {"Bucket": bucket}, name=state_name(task.task_id)))
    head.retry = []
    return head


@register_lazy(S3_OPERATORS, "S3CreateBucketOperator")
def convert_create_bucket(task: Any, ctx: ConvertContext) -> Fragment:
    bucket = field_value(task, "bucket_name")
    if getattr(task, "bucket_namespace", None):
        raise Unsupported("bucket_namespace (account-regional buckets) is not in Step Functions' S3 API yet")
    head = _head_bucket(task, ctx, bucket)
    region = field_value(task, "region_name")
    states: list[asl.State] = [head]
    if region is None:
        # The hook creates the bucket in the connection's region; the machine runs in its own.
        plain = _no_result(
            sdk_state(task, ctx, "s3", "CreateBucket", {"Bucket": bucket}, name=state_name(task.task_id, "create"))
        )
        located = _no_result(
            sdk_state(
                task,
                ctx,
                "s3",
                "CreateBucket",
                {"Bucket": bucket, "CreateBucketConfiguration": {"LocationConstraint": "us-east-1"}},
                name=state_name(task.task_id, "create in region"),
            )
        )
        located.parameters["CreateBucketConfiguration"] = {"LocationConstraint.$": MACHINE_REGION}
        pick = asl.Choice(
            state_name(task.task_id, "region?"),
            choices=[
                asl.ChoiceRule(
                    variable="$$.StateMachine.Id",
                    operator="StringMatches",
                    value="arn:*:states:us-east-1:*",
                    next=plain.name,
                )
            ],
            default=located.name,
            comment="us-east-1 takes no LocationConstraint (the hook's rule)",
        )
        head.catch = [asl.Catch(["States.ALL"], pick.name, result_path=None)]
        states += [pick, plain, located]
        creates = [plain, located]
    else:
        request: dict[str, Any] = {"Bucket": bucket}
        if isinstance(region, Ref):
            raise Unsupported("region_name is only known at run time", "give region_name literally or leave it unset")
        if region != "us-east-1":
            request["CreateBucketConfiguration"] = {"LocationConstraint": region}
        create = _no_result(
            sdk_state(task, ctx, "s3", "CreateBucket", request, name=state_name(task.task_id, "create"))
        )
        head.catch = [asl.Catch(["States.ALL"], create.name, result_path=None)]
        states.append(create)
        creates = [create]
    return Fragment(entry=head.name, states=states, exits=[Port(head), *(Port(c) for c in creates)])


def delete_listed_objects(
    task: Any, ctx: ConvertContext, bucket: Any, prefix: Any, then: str | None
) -> tuple[list[asl.State], str, list[Port]]:
    """List keys, delete them, and list again until none is left; returns the states, entry and exits.

    ``then``: where to go when no key is left (None: the returned exits).
    """
    here = f"$.{result_key(task.task_id)}"
    listing_request: dict[str, Any] = {"Bucket": bucket, "MaxKeys": KEYS_PER_ROUND}
    if prefix not in (None, ""):
        listing_request["Prefix"] = prefix
    # No ResultSelector: Contents is absent when nothing is listed, and a selector would fail on it.
    listing = sdk_state(
        task,
        ctx,
        "s3",
        "ListObjectsV2",
        listing_request,
        name=state_name(task.task_id, "list keys"),
        result_path=f"{here}.Listing",
    )
    keys = asl.Map(
        state_name(task.task_id, "keys"),
        iterator=asl.StateMachine(states=[asl.Pass(state_name(task.task_id, "key"), parameters={"Key.$": "$.Key"})]),
        items_path=f"{here}.Listing.Contents",
        result_path=f"{here}.Objects",
        comment="DeleteObjects takes {Key} objects",
    )
    delete = sdk_state(
        task,
        ctx,
        "s3",
        "DeleteObjects",
        {"Bucket": bucket, "Delete": {"Objects": []}},
        name=state_name(task.task_id, "delete keys"),
        result_path=f"{here}.Deleted",
    )
    delete.parameters["Delete"] = {"Objects.$": f"{here}.Objects"}
    check, failed = _errors_check(task, here, listing.name)
    any_left = asl.Choice(
        state_name(task.task_id, "any keys?"),
        choices=[
            asl.ChoiceRule(variable=f"{here}.Listing.KeyCount", operator="NumericGreaterThan", value=0, next=keys.name)
        ],
        default=then,
    )
    listing.next = any_left.name
    keys.next = delete.name
    delete.next = check.name
    exits = [] if then is not None else [Port(any_left, "default")]
    return [listing, any_left, keys, delete, check, failed], listing.name, exits


def _errors_check(task: Any, here: str, loop_to: str | None) -> list[asl.State]:
    """The hook raises when DeleteObjects answers with Errors: fail the same way."""
    failed = asl.Fail(
        state_name(task.task_id, "delete failed"),
        error="S3DeleteObjectsErrors",
        cause="DeleteObjects answered with Errors for some keys (Airflow: 'Errors when deleting')",
    )
    check = asl.Choice(
        state_name(task.task_id, "errors?"),
        choices=[
            asl.ChoiceRule(variable=f"{here}.Deleted.Errors[0]", operator="IsPresent", value=True, next=failed.name)
        ],
        default=loop_to,
    )
    return [check, failed]


@register_lazy(S3_OPERATORS, "S3DeleteBucketOperator")
def convert_delete_bucket(task: Any, ctx: ConvertContext) -> Fragment:
    bucket = field_value(task, "bucket_name")
    head = _head_bucket(task, ctx, bucket)
    delete_bucket = _no_result(
        sdk_state(task, ctx, "s3", "DeleteBucket", {"Bucket": bucket}, name=state_name(task.task_id, "delete bucket"))
    )
    states: list[asl.State] = [head]
    if getattr(task, "force_delete", False):
        emptying, entry, _ = delete_listed_objects(task, ctx, bucket, None, delete_bucket.name)
        head.next = entry
        states += emptying
    else:
        head.next = delete_bucket.name
    states.append(delete_bucket)
    # A missing bucket is nothing to do (check_for_bucket is False): leave the task.
    done = asl.Pass(state_name(task.task_id, "no bucket"), result_path=None)
    head.catch = [asl.Catch(["States.ALL"], done.name, result_path=None)]
    states.append(done)
    return Fragment(entry=head.name, states=states, exits=[Port(delete_bucket), Port(done)])


@register_lazy(S3_OPERATORS, "S3CreateObjectOperator")
def convert_create_object(task: Any, ctx: ConvertContext) -> Fragment:
    bucket, key = bucket_and_key(task, "s3_bucket", "s3_key")
    data = field_value(task, "data")
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode()
        except UnicodeDecodeError:
            raise Unsupported("data is binary", "Step Functions sends the body as text: give UTF-8 text") from None
    if (getattr(task, "encoding", None) or "utf-8").lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise Unsupported(f"encoding {task.encoding!r}", "Step Functions sends the body as UTF-8: leave encoding unset")
    if getattr(task, "compression", None):
        raise Unsupported(
            f"compression {task.compression!r}: Step Functions cannot gzip a body",
            "write the object uncompressed, or compress it in a Glue job or Lambda function",
        )
    request: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": data}
    if not getattr(task, "replace", False):
        # The hook refuses to overwrite (ValueError); S3's conditional write refuses the same, atomically.
        request["IfNoneMatch"] = "*"
    if getattr(task, "encrypt", False):
        request["ServerSideEncryption"] = "AES256"
    if getattr(task, "acl_policy", None):
        request["ACL"] = field_value(task, "acl_policy")
    state = _no_result(sdk_state(task, ctx, "s3", "PutObject", request))
    return Fragment.single(state)


@register_lazy(S3_OPERATORS, "S3CopyObjectOperator")
def convert_copy_object(task: Any, ctx: ConvertContext) -> Fragment:
    dest_bucket, dest_key = bucket_and_key(task, "dest_bucket_name", "dest_bucket_key")
    source_bucket, source_key = bucket_and_key(task, "source_bucket_name", "source_bucket_key")
    version = field_value(task, "source_version_id")
    if isinstance(source_bucket, str) and isinstance(source_key, str):
        # What boto3 sends for CopySource={"Bucket", "Key"}: the path URL-encoded.
        source: Any = quote(f"{source_bucket}/{source_key}", safe="/~-._")
    else:
        source = Format("{}/{}", source_bucket, source_key)
    if version is None:
        copy_source = source
    elif isinstance(source, str) and isinstance(version, str):
        copy_source = f"{source}?versionId={version}"
    else:
        copy_source = Format("{}?versionId={}", source, version)
    request: dict[str, Any] = {"Bucket": dest_bucket, "Key": dest_key, "CopySource": copy_source}
    acl = getattr(task, "acl_policy", None) or "private"
    if acl != NO_ACL:
        request["ACL"] = acl
    if getattr(task, "meta_data_directive", None):
        request["MetadataDirective"] = task.meta_data_directive
    kms_key, kms_type = getattr(task, "kms_key_id", None), getattr(task, "kms_encryption_type", None)
    if bool(kms_key) != bool(kms_type):
        raise Unsupported("kms_key_id and kms_encryption_type must both be given (Airflow raises ValueError)")
    if kms_key:
        request["SSEKMSKeyId"] = kms_key
        request["ServerSideEncryption"] = kms_type
    return Fragment.single(_no_result(sdk_state(task, ctx, "s3", "CopyObject", request)))


@register_lazy(S3_OPERATORS, "S3DeleteObjectsOperator")
def convert_delete_objects(task: Any, ctx: ConvertContext) -> Fragment:
    bucket = field_value(task, "bucket")
    if getattr(task, "from_datetime", None) is not None or getattr(task, "to_datetime", None) is not None:
        raise Unsupported(
            "from_datetime/to_datetime filter keys by LastModified, which needs a comparison per key",
            "delete by keys or by prefix",
        )
    keys = field_value(task, "keys")
    if keys is None:
        states, entry, exits = delete_listed_objects(task, ctx, bucket, field_value(task, "prefix"), None)
        return Fragment(entry=entry, states=states, exits=exits)
    if isinstance(keys, (str, Ref)):
        keys = [keys]
    if not keys:  # execute() returns at once
        return Fragment.single(asl.Pass(state_name(task.task_id), result_path=None))
    if len(keys) > MAX_KEYS_PER_DELETE:
        raise Unsupported(f"{len(keys)} keys: more than one DeleteObjects request", "delete by prefix instead")
    here = f"$.{result_key(task.task_id)}"
    delete = sdk_state(
        task,
        ctx,
        "s3",
        "DeleteObjects",
        {"Bucket": bucket, "Delete": {"Objects": [{"Key": k} for k in keys]}},
        result_path=f"{here}.Deleted",
    )
    check, failed = _errors_check(task, here, None)
    delete.next = check.name
    return Fragment(entry=delete.name, states=[delete, check, failed], exits=[Port(check, "default")])
