"""Stage 1: run an AWS Glue ETL job and wait for it."""

from __future__ import annotations

import re
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from retraining.base import AwsStageOperator, HookClass, StageFailed
from retraining.links import GlueJobRunLink
from retraining.refs import Ref

GLUE_PENDING_STATES = {"STARTING", "RUNNING", "STOPPING", "WAITING"}
# Stricter than Glue's own (any single-line string up to 255 characters): a job name here is also a
# file name (the local backend runs glue/<name>.py) and an IAM resource name, so no "/", ".", "*" or "?".
# "(?!.*\n)": Python's "$" (jsonschema's) also matches before a final newline.
GLUE_JOB_NAME_PATTERN = "^(?!.*\\n)[A-Za-z0-9][A-Za-z0-9_-]{0,254}$"


def check_glue_job_name(name: Any, task_id: str) -> None:
    """Refuse a job name outside ``GLUE_JOB_NAME_PATTERN``, naming the task."""
    if not isinstance(name, str) or not re.fullmatch(GLUE_JOB_NAME_PATTERN, name):
        raise ValueError(
            f"task {task_id!r}: job_name {name!r} is not a valid Glue job name here: "
            "1-255 letters, digits, '-' or '_', starting with a letter or digit"
        )


class GlueJobRunOperator(AwsStageOperator):
    """``StartJobRun`` on an existing Glue job, then wait until the run ends.

    Any end other than ``SUCCEEDED`` (FAILED, STOPPED, TIMEOUT, ERROR) fails the
    task with Glue's own error message. Result: ``JobName``, ``JobRunId``, ``JobRunState``.
    """

    aws_hook_class = HookClass("airflow.providers.amazon.aws.hooks.glue.GlueJobHook")
    result_fields = ("JobName", "JobRunId", "JobRunState")
    ui_color = "#d6e4f7"
    operator_extra_links = (GlueJobRunLink(),)

    def __init__(
        self,
        *,
        job_name: Any,
        script_arguments: dict[str, Any] | None = None,
        worker_type: str | None = None,
        number_of_workers: int | None = None,
        timeout_minutes: int | None = None,
        poll_interval: float = 15,
        **kwargs: Any,
    ) -> None:
        request: dict[str, Any] = {"JobName": job_name, "Arguments": dict(script_arguments or {})}
        if worker_type is not None:
            request["WorkerType"] = worker_type
        if number_of_workers is not None:
            request["NumberOfWorkers"] = number_of_workers
        if timeout_minutes is not None:
            request["Timeout"] = timeout_minutes
        super().__init__(request=request, poll_interval=poll_interval, **kwargs)
        if not isinstance(job_name, Ref):  # after the base class's Jinja check, which explains Jinja better
            check_glue_job_name(job_name, self.task_id)
        self._job_run_id: str | None = None

    def execute(self, context: Any) -> dict[str, Any]:
        job_name = self.request["JobName"]
        try:
            check_glue_job_name(job_name, self.task_id)  # a param's value is only known now
        except ValueError as err:
            raise AirflowFailException(str(err)) from None  # no retry can fix the name
        glue = self.hook.conn
        self._job_run_id = glue.start_job_run(**self.request)["JobRunId"]
        self.log.info("Started Glue job %s run %s", job_name, self._job_run_id)

        def describe() -> dict[str, Any]:
            return glue.get_job_run(JobName=job_name, RunId=self._job_run_id)["JobRun"]

        run = self.wait_for(describe, "JobRunState", GLUE_PENDING_STATES, f"Glue job {job_name} run {self._job_run_id}")
        state = run["JobRunState"]
        if state != "SUCCEEDED":
            reason = run.get("ErrorMessage") or "Glue gave no error message; see the job run's logs"
            raise StageFailed(f"Glue job {job_name!r} run {self._job_run_id} ended {state}: {reason}")
        self.log.info("Glue job %s run %s succeeded", job_name, self._job_run_id)
        return {"JobName": job_name, "JobRunId": self._job_run_id, "JobRunState": state}

    def on_kill(self) -> None:
        if self._job_run_id:
            self.hook.conn.batch_stop_job_run(JobName=self.request["JobName"], JobRunIds=[self._job_run_id])
