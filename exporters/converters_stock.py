"""Stock operators' own behaviour, not only their request.

``SageMakerTrainingOperator`` (defaults ``check_if_job_exists=True, action_if_job_exists="timestamp"``):
before creating the job, Airflow describes ``TrainingJobName``; when a job of that name exists it
appends ``-<epoch seconds>`` (or fails with ``action_if_job_exists="fail"``), so a DAG with a fixed
name works run after run. The export does the same: DescribeTrainingJob; "not found" → create under the
name; found → create under ``<name>-<MD5 of the execution name>`` (Step Functions has no clock in
seconds; the MD5 is unique per execution as the timestamp is per run), or fail. The name is cut to 30
characters before the suffix so the result stays within SageMaker's 63 (Airflow cuts to 52 for its
10 digits). The result keeps the stock shape, ``{"Training": <DescribeTrainingJob>}``.

``SageMakerDeleteModelOperator``: DeleteModel of ``config["ModelName"]`` (the only key it reads).

``GlueJobOperator``: its job run is the table row ``STOCK_GLUE_JOB_RUN`` of ``exporters.converters``; when the
operator also manages the job definition, GetJob → CreateJob (or UpdateJob) runs first, as ``GlueJobHook`` does.
"""

from __future__ import annotations

import re
from typing import Any

from exporters import asl
from exporters.converters import (
    STOCK_GLUE_JOB_RUN,
    ConvertContext,
    Fragment,
    Port,
    Unsupported,
    convert_integration,
    register_lazy,
    result_key,
    selector_from_fields,
    state_name,
)
from exporters.converters_s3 import field_value
from exporters.converters_sdk import sdk_state
from retraining import SageMakerTrainingJobOperator
from retraining.refs import Format, Ref, RunUniqueName

SAGEMAKER_OPERATORS = "airflow.providers.amazon.aws.operators.sagemaker"
# The ValidationException's message for a missing job: "Requested resource not found" on AWS,
# "Could not find training job ..." elsewhere (moto, older API versions).
NOT_FOUND_CAUSES = ("*Requested resource not found*", "*Could not find training job*")
NAME_ROOM = 63 - 33  # SageMaker's 63 characters, less "-" and the 32-hex suffix


@register_lazy(SAGEMAKER_OPERATORS, "SageMakerTrainingOperator")
def convert_stock_training_job(task: Any, ctx: ConvertContext) -> Fragment:
    config = field_value(task, "config")
    if not isinstance(config, dict):
        raise Unsupported("config is a string (template or file); give the request as a dict")
    role = config.get("RoleArn")
    if isinstance(role, str) and not role.startswith("arn:"):
        raise Unsupported(f"RoleArn {role!r} is a role name (Airflow expands it through IAM)", "give the role ARN")
    if getattr(task, "deferrable", False):
        raise Unsupported("deferrable=True", "use deferrable=False: the export waits in Step Functions either way")
    tid = task.task_id
    here = f"$.{result_key(tid)}"
    proposed = config.get("TrainingJobName")
    if not isinstance(proposed, (str, Ref)):
        raise Unsupported("TrainingJobName must be a string or a param/result reference")
    sync = bool(getattr(task, "wait_for_completion", True))

    def create(suffix: str, name: Any) -> asl.Task:
        state = ctx.task_state(
            task,
            "arn:aws:states:::sagemaker:createTrainingJob" + (".sync" if sync else ""),
            ctx.parameters(task, {**config, "TrainingJobName": name}),
            name=state_name(tid, suffix),
            result_selector=selector_from_fields(SageMakerTrainingJobOperator.result_fields) if sync else None,
            result_path=f"{here}.Training" if sync else None,
        )
        return state

    layout = ctx.layout(task, paths={"Training": ("Training",)})
    # The task's own state-data object, so Training and Error can be written under it.
    start = asl.Pass(state_name(tid), parameters={}, result_path=here)
    create_named = create("create job", proposed)
    if not getattr(task, "check_if_job_exists", True):
        start.next = create_named.name
        return Fragment(entry=start.name, states=[start, create_named], exits=[Port(create_named)], layout=layout)

    probe = sdk_state(
        task,
        ctx,
        "sagemaker",
        "DescribeTrainingJob",
        {"TrainingJobName": proposed},
        name=state_name(tid, "job exists?"),
        result_path=None,
    )
    probe.retry = []
    start.next = probe.name
    missing = asl.Choice(
        state_name(tid, "not found?"),
        choices=[
            asl.ChoiceRule(
                or_=[
                    asl.ChoiceRule(variable=f"{here}.Error.Cause", operator="StringMatches", value=pattern)
                    for pattern in NOT_FOUND_CAUSES
                ],
                next=create_named.name,
            )
        ],
        comment="DescribeTrainingJob answers ValidationException for a name no job has",
    )
    describe_failed = asl.Fail(
        state_name(tid, "describe failed"), error="SageMakerDescribeFailed", cause_path=f"{here}.Error.Cause"
    )
    missing.default = describe_failed.name
    probe.catch = [asl.Catch(["States.ALL"], missing.name, result_path=f"{here}.Error")]
    states: list[asl.State] = [start, probe, missing, describe_failed, create_named]
    if getattr(task, "action_if_job_exists", "timestamp") == "fail":
        exists = asl.Fail(
            state_name(tid, "job exists"),
            error="TrainingJobExists",
            cause="A SageMaker job with this name already exists (action_if_job_exists='fail')",
        )
        probe.next = exists.name
        return Fragment(entry=start.name, states=[*states, exists], exits=[Port(create_named)], layout=layout)
    # A job of that name exists: a name unique to this execution (Airflow appends a timestamp).
    # RunUniqueName: "<name>-<MD5 of the execution name>" (the name cut so the whole fits in 63 characters).
    create_renamed = create(
        "create job under a new name",
        RunUniqueName(proposed[:NAME_ROOM] if isinstance(proposed, str) else proposed),
    )
    probe.next = create_renamed.name
    return Fragment(
        entry=start.name,
        states=[*states, create_renamed],
        exits=[Port(create_named), Port(create_renamed)],
        layout=layout,
    )


@register_lazy(SAGEMAKER_OPERATORS, "SageMakerDeleteModelOperator")
def convert_stock_delete_model(task: Any, ctx: ConvertContext) -> Fragment:
    """DeleteModel of ``config["ModelName"]``, all ``SageMakerHook.delete_model`` sends; no result (its XCom is None).

    A model that does not exist fails the task in both (SageMaker's ValidationException), retries included.
    """
    config = field_value(task, "config")
    name = config.get("ModelName") if isinstance(config, dict) else None
    if not isinstance(name, (str, Ref)):
        raise Unsupported("config must be a dict whose ModelName is a string or a param/result reference")
    delete = sdk_state(task, ctx, "sagemaker", "DeleteModel", {"ModelName": name}, result_path=None)
    return Fragment.single(delete)


# ---------------------------------------------------------------------------
# GlueJobOperator: get or create (or update) the job definition, then start it
# ---------------------------------------------------------------------------
GLUE_OPERATORS = "airflow.providers.amazon.aws.operators.glue"
GLUE_LOGS_PREFIX = "logs/glue-logs/"  # GlueJobHook.s3_glue_logs
DEFAULT_DPUS = 10  # GlueJobHook's num_of_dpus when neither it nor a WorkerType is given
ROLE_NAME_RE = re.compile(r"^[\w+=,.@-]{1,64}$")
ARN_PART = "States.ArrayGetItem(States.StringSplit($$.StateMachine.Id, ':'), {})"


def _role_from_name(parameters: dict[str, Any], name: str) -> None:
    """Airflow looks the role up by name (iam:GetRole); the export builds its ARN in the machine's account."""
    parameters.pop("Role", None)
    parameters["Role.$"] = (
        f"States.Format('arn:{{}}:iam::{{}}:role/{name}', {ARN_PART.format(1)}, {ARN_PART.format(4)})"
    )


def _glue_job_config(task: Any) -> dict[str, Any]:
    """``GlueJobHook.create_glue_job_config`` from the operator's fields (references kept)."""
    job_name = field_value(task, "job_name")
    script = field_value(task, "script_location")
    if isinstance(script, str) and not script.startswith("s3://"):
        raise Unsupported(
            f"script_location {script!r} is a local file Airflow uploads to S3 first",
            "upload the script (e.g. S3CreateObjectOperator or your CI) and give its s3:// location",
        )
    kwargs = dict(field_value(task, "create_job_kwargs") or {})
    role_arn, role_name = field_value(task, "iam_role_arn"), field_value(task, "iam_role_name")
    if role_arn is not None:
        role: Any = role_arn
    elif isinstance(role_name, str) and ROLE_NAME_RE.match(role_name):
        role = role_name  # an ARN in this account, built by _role_from_name
    else:
        raise Unsupported("the job's role is not named", "give iam_role_arn, or iam_role_name literally")
    config: dict[str, Any] = {
        "Name": job_name,
        "Description": field_value(task, "job_desc"),
        "Role": role,
        "ExecutionProperty": {"MaxConcurrentRuns": task.concurrent_run_limit},
        "Command": kwargs.pop("Command", {"Name": "glueetl", "ScriptLocation": script}),
        "MaxRetries": task.retry_limit,
        **kwargs,
    }
    if "WorkerType" not in config:
        config["MaxCapacity"] = task.num_of_dpus if task.num_of_dpus is not None else DEFAULT_DPUS
    bucket = field_value(task, "s3_bucket")
    if isinstance(bucket, str) and isinstance(job_name, str):
        config["LogUri"] = f"s3://{bucket}/{GLUE_LOGS_PREFIX}{job_name}"
    elif bucket is not None:
        config["LogUri"] = Format("s3://{}/{}{}", bucket, GLUE_LOGS_PREFIX, job_name)
    return config


@register_lazy(GLUE_OPERATORS, "GlueJobOperator")
def convert_stock_glue_job(task: Any, ctx: ConvertContext) -> Fragment:
    manages_job = any(
        getattr(task, name, None) for name in ("script_location", "create_job_kwargs", "iam_role_name", "iam_role_arn")
    ) or getattr(task, "update_config", False)
    start = convert_integration(STOCK_GLUE_JOB_RUN, task, ctx)
    if not manages_job:
        return start
    if getattr(task, "deferrable", False):
        raise Unsupported("deferrable=True", "use deferrable=False: the export waits in Step Functions either way")
    config = _glue_job_config(task)
    tid = task.task_id
    here = f"$.{result_key(tid)}"
    job_name = config["Name"]
    probe = sdk_state(
        task, ctx, "glue", "GetJob", {"JobName": job_name}, name=state_name(tid, "job exists?"), result_path=None
    )
    create = sdk_state(task, ctx, "glue", "CreateJob", config, name=state_name(tid, "create job"), result_path=None)
    role_name = None if field_value(task, "iam_role_arn") is not None else config["Role"]
    if role_name is not None:
        _role_from_name(create.parameters, role_name)
    probe.catch = [asl.Catch(["Glue.EntityNotFoundException"], create.name, result_path=f"{here}")]
    create.next = start.entry
    states: list[asl.State] = [probe, create]
    if getattr(task, "update_config", False):
        update_request = {k: v for k, v in config.items() if k not in ("Name", "Tags")}
        update = sdk_state(
            task,
            ctx,
            "glue",
            "UpdateJob",
            {"JobName": job_name, "JobUpdate": update_request},
            name=state_name(tid, "update job"),
            result_path=None,
        )
        if role_name is not None:
            _role_from_name(update.parameters["JobUpdate"], role_name)
        probe.next = update.name
        update.next = start.entry
        states.append(update)
    else:
        probe.next = start.entry
    return Fragment(entry=probe.name, states=[*states, *start.states], exits=start.exits, layout=start.layout)
