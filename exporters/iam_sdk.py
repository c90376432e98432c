"""Least privilege for ``arn:aws:states:::aws-sdk:<service>:<action>`` states.

The action is ``<iam-prefix>:<Action>`` (with the few S3 actions whose permission has
another name, e.g. ``HeadObject`` → ``s3:GetObject``); the resource comes from the request
field that names it, per service: S3 bucket/key, SageMaker ``<Noun>Name``, Glue job, Lambda
function, DynamoDB table, Step Functions ARNs. A service or action whose resource this module
cannot scope raises ``PolicyError`` naming the state: a policy is never guessed.
"""

from __future__ import annotations

import re
from typing import Any

from exporters import iam  # iam imports this module at its end, so both are complete when used

# Step Functions service name in the ARN → boto3 client name, where they differ.
BOTO3_NAMES = {
    "sfn": "stepfunctions",
    "eventbridge": "events",
    "cloudwatchlogs": "logs",
    "elasticloadbalancingv2": "elbv2",
    "elasticsearch": "es",
}
SFN_NAMES = {boto3: sfn for sfn, boto3 in BOTO3_NAMES.items()}
# boto3 client name → IAM action prefix, where they differ.
IAM_PREFIXES = {"stepfunctions": "states", "elbv2": "elasticloadbalancing", "es": "es"}

# S3 API actions authorised by a permission of another name (S3 user guide, "Policy actions for S3").
S3_PERMISSIONS = {
    "HeadObject": "GetObject",
    "HeadBucket": "ListBucket",
    "ListObjects": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "ListObjectVersions": "ListBucketVersions",
    "DeleteObjects": "DeleteObject",
    "DeleteBucketTagging": "PutBucketTagging",
    "GetObjectAttributes": "GetObject",
}
S3_BUCKET_ACTIONS = re.compile(r"^(CreateBucket|DeleteBucket|HeadBucket|ListObjects.*|.*Bucket[A-Z].*)$")
SAGEMAKER_VERBS = ("Describe", "Create", "Delete", "Stop", "Update", "Start")
SAGEMAKER_KINDS = {"Model": "model", "EndpointConfig": "endpoint-config", "Endpoint": "endpoint"}


def split_integration(integration: str) -> tuple[str, str] | None:
    """``aws-sdk:s3:putObject`` → (``s3``, ``PutObject``) with the boto3 client name; None otherwise."""
    parts = integration.split(":")
    if len(parts) != 3 or parts[0] != "aws-sdk":
        return None
    action = parts[2].split(".")[0]
    return BOTO3_NAMES.get(parts[1], parts[1]), action[:1].upper() + action[1:]


def grant_sdk_call(task: Any, integration: str) -> None:
    """Add the statements the aws-sdk state ``task`` (an ``exporters.iam._Task``) needs."""
    if integration.startswith("states:startExecution"):
        _start_execution(task, integration)
        return
    service, action = split_integration(integration) or ("", "")
    grant = _SERVICES.get(service)
    if grant is None:
        raise iam.PolicyError(
            f"state {task.name!r}: no least-privilege policy is known for {task.resource!r} "
            f"(service {service!r}): add its resource to exporters.iam_sdk"
        )
    grant(task, action)


def _arn(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


HEAD = "arn:${AWS::Partition}"
REGIONAL = "${AWS::Region}:${AWS::AccountId}"


def _s3(task: Any, action: str) -> None:
    permission = f"s3:{S3_PERMISSIONS.get(action, action)}"
    sid = f"S3{action}"
    bucket = task.name_text("Bucket", usage="s3-location")
    if action == "CopyObject":
        source = task.name_text("CopySource", usage="s3-location").split("?")[0].lstrip("/")
        task.out.add("S3CopyObjectRead", ["s3:GetObject"], [_arn(f"{HEAD}:s3:::{source}")])
        task.out.add(
            "S3CopyObjectWrite",
            ["s3:PutObject"],
            [_arn(f"{HEAD}:s3:::{bucket}/{task.name_text('Key', usage='s3-location')}")],
        )
        return
    if action == "DeleteObjects":
        keys = _delete_keys(task)
        task.out.add(sid, [permission], [_arn(f"{HEAD}:s3:::{bucket}/{key}") for key in keys])
        return
    if action.startswith("ListObjects") and ("Prefix" in task.params or "Prefix.$" in task.params):
        # A listing under a prefix: s3:ListBucket only under it (the s3:prefix condition key).
        prefix = task.name_text("Prefix", usage="s3-location").split("*")[0]
        value = _arn(f"{prefix}*") if re.search(r"\$\{(?!!)", prefix) else f"{prefix}*".replace("${!", "${")
        condition = {"StringLike": {"s3:prefix": [value]}} if prefix else None
        task.out.add(sid, [permission], [_arn(f"{HEAD}:s3:::{bucket}")], condition)
        return
    if S3_BUCKET_ACTIONS.match(action):
        task.out.add(sid, [permission], [_arn(f"{HEAD}:s3:::{bucket}")])
        return
    if "Key" not in task.params and "Key.$" not in task.params:
        raise iam.PolicyError(f"state {task.name!r}: S3 {action} names no Key: cannot scope its permission")
    task.out.add(sid, [permission], [_arn(f"{HEAD}:s3:::{bucket}/{task.name_text('Key', usage='s3-location')}")])


def _delete_keys(task: Any) -> list[str]:
    """The keys of a DeleteObjects request (``*`` when they are only known at run time)."""
    delete = task.params.get("Delete")
    objects = delete.get("Objects") if isinstance(delete, dict) else None
    if not isinstance(objects, list):
        return ["*"]
    keys = []
    for item in objects:
        pieces = task.resolver.field(item, "Key") if isinstance(item, dict) else None
        keys.append(iam.sub_text(pieces or [iam.ANY], task.context))
    return sorted(set(keys))


def _sagemaker(task: Any, action: str) -> None:
    verb = next((v for v in SAGEMAKER_VERBS if action.startswith(v)), None)
    noun = action[len(verb) :] if verb else ""
    key = f"{noun}Name"
    if not noun or (key not in task.params and f"{key}.$" not in task.params):
        raise iam.PolicyError(
            f"state {task.name!r}: no resource is known for SageMaker {action}: cannot scope its permission"
        )
    kind = SAGEMAKER_KINDS.get(noun) or re.sub(r"(?<!^)([A-Z])", r"-\1", noun).lower()
    task.out.add(f"SageMaker{action}", [f"sagemaker:{action}"], [task.sagemaker(kind, key)])


GLUE_CATALOG_READS = {"GetPartitions", "GetPartition"}  # requests naming DatabaseName and TableName


def _glue(task: Any, action: str) -> None:
    if action in GLUE_CATALOG_READS:
        _glue_catalog(task, action)
        return
    key = "JobName" if ("JobName" in task.params or "JobName.$" in task.params) else "Name"
    if key not in task.params and f"{key}.$" not in task.params:
        raise iam.PolicyError(f"state {task.name!r}: Glue {action} names no job: cannot scope its permission")
    name = task.name_text(key, usage="glue-job")
    task.out.add(f"Glue{action}", [f"glue:{action}"], [_arn(f"{HEAD}:glue:{REGIONAL}:job/{name}")])
    if action in ("CreateJob", "UpdateJob"):
        _pass_role_to_glue(task, action)


def _glue_catalog(task: Any, action: str) -> None:
    """A Data Catalog read: the catalog, the database and the table it names (Glue's resource-level rules)."""
    for key in ("DatabaseName", "TableName"):
        if key not in task.params and f"{key}.$" not in task.params:
            raise iam.PolicyError(f"state {task.name!r}: Glue {action} names no {key}: cannot scope its permission")
    database = task.name_text("DatabaseName", usage="glue-catalog")
    table = task.name_text("TableName", usage="glue-catalog")
    resources = [f"{HEAD}:glue:{REGIONAL}:catalog", f"{HEAD}:glue:{REGIONAL}:database/{database}"]
    resources.append(f"{HEAD}:glue:{REGIONAL}:table/{database}/{table}")
    task.out.add(f"Glue{action}", [f"glue:{action}"], [_arn(r) for r in resources])


def _pass_role_to_glue(task: Any, action: str) -> None:
    """CreateJob/UpdateJob hand the job its role: iam:PassRole on that role, to Glue only."""
    body = task.params.get("JobUpdate", task.params) if action == "UpdateJob" else task.params
    if not isinstance(body, dict):
        return
    # A role named in the DAG becomes an ARN built from the machine's own ARN: its name is literal.
    built = re.search(r":role/([\w+=,.@-]+)'", str(body.get("Role.$", "")))
    if built:
        name = built.group(1)
    else:
        pieces = task.resolver.field(body, "Role")
        if pieces is None:
            return
        text = iam.sub_text(pieces, task.context, usage="iam-role")
        name = text.rsplit(":role/", 1)[-1] if ":role/" in text else "*"
    if not name or "*" in name:
        raise iam.PolicyError(f"state {task.name!r}: the Glue job's role is only known at run time")
    role = _arn(f"{HEAD}:iam::${{AWS::AccountId}}:role/{name}")
    condition = {"StringEquals": {"iam:PassedToService": "glue.amazonaws.com"}}
    task.out.add("PassRoleToGlue", ["iam:PassRole"], [role], condition)


def _lambda(task: Any, action: str) -> None:
    name = task.name_text("FunctionName", usage="lambda-function")
    task.out.add(f"Lambda{action}", [f"lambda:{action}"], [_arn(f"{HEAD}:lambda:{REGIONAL}:function:{name}")])


def _dynamodb(task: Any, action: str) -> None:
    name = task.name_text("TableName", usage="dynamodb-table")
    task.out.add(f"DynamoDb{action}", [f"dynamodb:{action}"], [_arn(f"{HEAD}:dynamodb:{REGIONAL}:table/{name}")])


def _states(task: Any, action: str) -> None:
    for key in ("stateMachineArn", "executionArn", "activityArn"):
        if key in task.params or f"{key}.$" in task.params:
            task.out.add(f"StepFunctions{action}", [f"states:{action}"], [_arn(task.name_text(key))])
            return
    raise iam.PolicyError(f"state {task.name!r}: Step Functions {action} names no ARN: cannot scope its permission")


def _child_machine_name(task: Any) -> str | None:
    """The child's name: a literal ARN, or the ``StateMachineName`` beside the ARN a Pass state built."""
    literal = task.params.get("StateMachineArn")
    if isinstance(literal, str) and ":stateMachine:" in literal:
        return literal.rsplit(":stateMachine:", 1)[-1]
    path = task.params.get("StateMachineArn.$")
    if not isinstance(path, str) or "." not in path:
        return None
    holder = path.rsplit(".", 1)[0]
    for result_path, body in task.resolver.producers:
        if result_path == holder and isinstance(body.get("StateMachineName"), str):
            return body["StateMachineName"]
    return None


def _start_execution(task: Any, integration: str) -> None:
    """A nested pipeline: start the child state machine (and, for .sync, follow and stop its executions)."""
    name = _child_machine_name(task)
    if not name:
        raise iam.PolicyError(f"state {task.name!r}: the child state machine is only known at run time")
    machine = f"{HEAD}:states:{REGIONAL}:stateMachine:{name}"
    task.out.add("StartChildExecution", ["states:StartExecution"], [_arn(machine)])
    if integration != "states:startExecution":
        executions = f"{HEAD}:states:{REGIONAL}:execution:{name}:*"
        task.out.add("FollowChildExecution", ["states:DescribeExecution", "states:StopExecution"], [_arn(executions)])
        rule = f"{HEAD}:events:{REGIONAL}:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule"
        task.out.add(
            "ChildExecutionEvents", ["events:PutTargets", "events:PutRule", "events:DescribeRule"], [_arn(rule)]
        )


_SERVICES = {
    "s3": _s3,
    "sagemaker": _sagemaker,
    "glue": _glue,
    "lambda": _lambda,
    "dynamodb": _dynamodb,
    "stepfunctions": _states,
}
