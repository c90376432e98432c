"""``GlueJobOperator`` that owns its job: Airflow gets or creates the job definition, then runs it.

Run twice with ``dag.test()`` against the moto server and twice as the export in moto's interpreter: the
first run creates the job (same definition on both sides: command, role, workers, log location), the
second finds it; both runs succeed, two job runs each.
"""

from __future__ import annotations

from tests.export14_harness import Interpreter, airflow_run, export_checked, load

KEPT = ("Command", "Role", "GlueVersion", "WorkerType", "NumberOfWorkers", "MaxRetries", "ExecutionProperty", "LogUri")


def _role(client) -> str:
    return client("iam").create_role(RoleName="GlueRole", AssumeRolePolicyDocument="{}")["Role"]["Arn"]


def _job(client) -> tuple[dict, list[str]]:
    glue = client("glue")
    job = glue.get_job(JobName="churn-etl-managed")["Job"]
    runs = sorted(r["JobRunState"] for r in glue.get_job_runs(JobName="churn-etl-managed")["JobRuns"])
    return {k: job.get(k) for k in KEPT}, runs


def test_the_job_is_created_once_and_run_twice(aws, airflow_db):
    dag = load("glue_managed_job")
    definition = export_checked(dag)
    role = _role(aws.client)
    airflow = [airflow_run(dag), airflow_run(dag)]
    airflow_job, airflow_runs = _job(aws.client)
    with Interpreter() as sfn:
        assert _role(sfn.client) == role
        machine = sfn.create(definition)
        exported = [sfn.run(machine, ["run_etl"]), sfn.run(machine, ["run_etl"])]
        exported_job, exported_runs = _job(sfn.client)
        creates = [c for c in sfn.doubles.calls if c.action == "aws-sdk:glue:createJob"]

    assert exported == airflow
    assert [r.state for r in airflow] == ["success", "success"]
    assert exported_job == airflow_job
    assert airflow_job["Role"] == role
    assert airflow_job["LogUri"] == "s3://glue-demo/logs/glue-logs/churn-etl-managed"
    assert exported_runs == airflow_runs == ["SUCCEEDED", "SUCCEEDED"]
    assert creates == []  # the calls of the last run only: the job existed
