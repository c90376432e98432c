"""A sensor timing out with and without ``soft_fail``: skipped (its downstream decided by trigger rules) or failed.

``dag.test()`` runs the S3KeySensor against the moto server, where the key never appears (each poke answers
"not yet"), and the export runs in moto's ASL interpreter on the same empty bucket; both end in the same run
state with the same task states, and write the same objects.
"""

from __future__ import annotations

import pytest

from tests.export14_harness import Interpreter, airflow_run, export_checked, load

TASKS = ["wait_for_data", "process", "publish", "audit"]


def _objects(client) -> list[str]:
    return sorted(o["Key"] for o in client("s3").list_objects_v2(Bucket="soft-fail-demo").get("Contents", []))


@pytest.mark.parametrize(
    "dag_id, state, tasks",
    [
        (
            "soft_fail_sensor",
            "success",
            {"wait_for_data": "skipped", "process": "skipped", "publish": "skipped", "audit": "success"},
        ),
        (
            "hard_fail_sensor",
            "failed",
            {"wait_for_data": "failed", "process": "not run", "publish": "not run", "audit": "not run"},
        ),
    ],
    ids=["soft_fail", "no-soft_fail"],
)
def test_a_timed_out_sensor_ends_the_same_in_airflow_and_step_functions(aws, airflow_db, dag_id, state, tasks):
    dag = load(dag_id)
    definition = export_checked(dag)
    aws.client("s3").create_bucket(Bucket="soft-fail-demo")
    airflow = airflow_run(dag)
    airflow_objects = _objects(aws.client)
    with Interpreter() as sfn:
        sfn.client("s3").create_bucket(Bucket="soft-fail-demo")
        exported = sfn.run(sfn.create(definition), TASKS)
        exported_objects = _objects(sfn.client)
        waits = [seconds for name, seconds in sfn.doubles.waits if name == "wait_for_data: wait"]

    assert airflow.state == state and airflow.tasks == tasks, airflow
    assert exported == airflow
    assert exported_objects == airflow_objects == (["out/audited"] if dag_id == "soft_fail_sensor" else [])
    assert waits == [1, 1]  # poke, wait 1 s, poke, wait 1 s, poke: timeout=2 used up
    # A timeout is never retried, skipped or failed (retries=1 on every task).
    assert airflow.attempts["wait_for_data"] == (0 if dag_id == "soft_fail_sensor" else 1)
    if dag_id == "hard_fail_sensor":
        assert exported.error == "SensorTimeout"
