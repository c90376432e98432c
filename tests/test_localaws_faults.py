"""Faults: ``kill -9`` of the real backend during Spark ETL, training and an endpoint update, then a restart.

After each: no worker process left (the whole process group, Spark's JVM included), final states
consistent (the interrupted work is failed, an interrupted update leaves the old model serving and
DescribeEndpoint says so) and stable (nothing flips them later). A second backend on the same data
directory exits with a clear message and changes nothing.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.local_backend import IMAGE, ROLE, LocalBackend, model_archive

STABLE_SECONDS = 4


def _free_port() -> int:
    from tests import aws_doubles

    return aws_doubles.free_port()


def _groups(data_dir: Path) -> list[int]:
    """The process groups of the workers the backend recorded (one pidfile each)."""
    return [int(p.read_text().split()[0]) for p in sorted((data_dir / "workers").glob("*.pid"))]


def _members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def _wait(check, what: str, timeout: float = 60, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def _records(data_dir: Path, kind: str) -> dict[str, dict]:
    with sqlite3.connect(f"file:{data_dir / 'backend.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT name, body FROM resources WHERE kind=?", (kind,)).fetchall()
    return {name: json.loads(body) for name, body in rows}


def _process_tree(root: int) -> set[tuple[int, str]]:
    """``root``'s descendants as (pid, start time): workers, Spark's JVM, parser processes, helpers."""
    parents: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = (int(fields[1]), fields[19])
    tree, frontier = set(), {root}
    while frontier:
        children = {pid for pid, (ppid, _) in parents.items() if ppid in frontier}
        tree |= {(pid, parents[pid][1]) for pid in children}
        frontier = children
    return tree


def _alive(processes: set[tuple[int, str]]) -> set[tuple[int, str]]:
    alive = set()
    for pid, started in processes:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[19] == started and fields[0] != "Z":
            alive.add((pid, started))
    return alive


def _assert_gone_after_kill(backend: LocalBackend, groups: list[int]) -> None:
    """kill -9 of the backend: every process it started (worker groups included) ends with it."""
    tree = _process_tree(backend.process.pid)
    assert tree, "the backend runs helper processes (at least its CSV parsers)"
    backend.kill()
    for pgid in groups:
        _wait(lambda pgid=pgid: not _members(pgid), f"worker group {pgid} to end with the backend", timeout=20)
    _wait(lambda: not _alive(tree), "every process the backend started to end", timeout=20)


def test_a_stopped_backend_leaves_no_process_behind(tmp_path):
    backend = LocalBackend(tmp_path, _free_port()).start()
    tree = _process_tree(backend.process.pid)
    assert tree
    backend.stop()
    _wait(lambda: not _alive(tree), "every process the backend started to end", timeout=20)


def _assert_stable(read, expected) -> None:
    deadline = time.monotonic() + STABLE_SECONDS
    while time.monotonic() < deadline:
        assert read() == expected
        time.sleep(0.25)


def test_kill_9_during_spark_etl_leaves_no_worker_and_the_run_stays_failed(tmp_path):
    from localaws.churn_data import write_batch

    backend = LocalBackend(tmp_path, _free_port()).start()
    try:
        write_batch(backend.s3_path("s3://retraining-demo/raw/churn.csv"), rows=2000, seed=5)
        glue = backend.client("glue")
        run_id = glue.start_job_run(
            JobName="churn-etl",
            Arguments={"--S3_SOURCE": "s3://retraining-demo/raw/churn.csv", "--S3_DEST": "s3://retraining-demo/out/"},
        )["JobRunId"]
        groups = _wait(lambda: _groups(tmp_path), "the ETL worker's pidfile")
        # Spark's JVM has started when the group has more than the Python driver in it.
        _wait(lambda: len(_members(groups[0])) >= 2, "Spark's JVM in the worker's group", timeout=90)
        _assert_gone_after_kill(backend, groups)

        backend.start()
        run = backend.client("glue").get_job_run(JobName="churn-etl", RunId=run_id)["JobRun"]
        assert run["JobRunState"] == "FAILED" and "restarted" in run["ErrorMessage"]
        _assert_stable(lambda: _records(tmp_path, "glue_job_run")[run_id]["JobRunState"], "FAILED")
        assert _groups(tmp_path) == []
    finally:
        backend.stop()


def _training_data(backend: LocalBackend) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    for channel, rows in (("train", 20000), ("validation", 2000)):
        x = rng.normal(size=(rows, 10))
        data = np.column_stack([(x[:, 0] + rng.normal(size=rows) > 0).astype(int), x])
        path = backend.s3_path(f"s3://fault-data/{channel}/part-0.csv")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savetxt(path, data, delimiter=",", fmt="%.5f")


def _start_long_training(backend: LocalBackend, name: str) -> None:
    def channel(channel: str) -> dict:
        return {
            "ChannelName": channel,
            "ContentType": "text/csv",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://fault-data/{channel}/"}},
        }

    backend.client("sagemaker").create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        RoleArn=ROLE,
        HyperParameters={"num_round": "100000", "max_depth": "8", "eta": "0.01"},
        InputDataConfig=[channel("train"), channel("validation")],
        OutputDataConfig={"S3OutputPath": "s3://fault-data/output/"},
        ResourceConfig={"InstanceType": "ml.m4.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )
    sagemaker = backend.client("sagemaker")
    _wait(
        lambda: sagemaker.describe_training_job(TrainingJobName=name)["SecondaryStatus"] == "Training",
        "training to start",
    )


def test_kill_9_during_training_leaves_no_worker_and_the_job_stays_failed(tmp_path):
    backend = LocalBackend(tmp_path, _free_port()).start()
    try:
        _training_data(backend)
        _start_long_training(backend, "killed-training")
        groups = _groups(tmp_path)
        assert len(groups) == 1 and _members(groups[0])
        _assert_gone_after_kill(backend, groups)

        backend.start()
        job = backend.client("sagemaker").describe_training_job(TrainingJobName="killed-training")
        assert job["TrainingJobStatus"] == "Failed" and "restarted during training" in job["FailureReason"]
        _assert_stable(lambda: _records(tmp_path, "training_job")["killed-training"]["TrainingJobStatus"], "Failed")
        assert not backend.s3_path("s3://fault-data/output/killed-training/output/model.tar.gz").exists()
    finally:
        backend.stop()


def _archive(seed: int) -> bytes:
    import numpy as np
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 3)).astype("float32")
    return model_archive(xgb.train({"nthread": 1}, xgb.DMatrix(x, label=x[:, 0]), 2 + seed))


def _served(backend: LocalBackend, name: str) -> tuple[int, str | None]:
    status, _, headers = backend.invoke(name, b"1,2,3")
    return status, headers.get("x-model-name")


@pytest.mark.parametrize("action", ["update", "create"])
def test_kill_9_during_an_endpoint_deployment_settles_consistently_on_restart(tmp_path, action):
    provisioning = {"RETRAINING_LOCAL_ENDPOINT_PROVISION_SECONDS": "2"}
    backend = LocalBackend(tmp_path, _free_port(), provisioning).start()
    try:
        backend.register_model("old", _archive(1))
        backend.register_model("new", _archive(2))
        sagemaker = backend.client("sagemaker")
        if action == "update":
            sagemaker.create_endpoint(EndpointName="ep", EndpointConfigName="old")
            _wait(lambda: sagemaker.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "InService", "create")
            sagemaker.update_endpoint(EndpointName="ep", EndpointConfigName="new")
            assert sagemaker.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "Updating"
        else:
            sagemaker.create_endpoint(EndpointName="ep", EndpointConfigName="new")
            assert sagemaker.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "Creating"
        backend.kill()

        backend.extra_env = {}  # the restarted backend deploys at once
        backend.start()
        answer = backend.client("sagemaker").describe_endpoint(EndpointName="ep")
        assert "restarted during the deployment" in answer["FailureReason"]
        if action == "update":
            assert (answer["EndpointStatus"], answer["EndpointConfigName"]) == ("InService", "old")
            assert _served(backend, "ep") == (200, "old")
        else:
            # As SageMaker answers for a failed creation: the config it tried (a required field), nothing serving.
            assert (answer["EndpointStatus"], answer["EndpointConfigName"]) == ("Failed", "new")
            assert _served(backend, "ep") == (503, None)
        settled = _records(tmp_path, "endpoint")["ep"]
        _assert_stable(lambda: _records(tmp_path, "endpoint")["ep"], settled)
        # Not stuck: the interrupted change can be made again.
        if action == "update":
            backend.client("sagemaker").update_endpoint(EndpointName="ep", EndpointConfigName="new")
            _wait(lambda: _served(backend, "ep") == (200, "new"), "the retried update")
            assert backend.client("sagemaker").describe_endpoint(EndpointName="ep")["EndpointConfigName"] == "new"
    finally:
        backend.stop()


def test_a_second_backend_on_the_same_data_directory_exits_and_changes_nothing(tmp_path):
    first = LocalBackend(tmp_path, _free_port()).start()
    try:
        _training_data(first)
        _start_long_training(first, "live-training")
        before = {kind: _records(tmp_path, kind) for kind in ("training_job", "glue_job_run", "endpoint")}
        db_files = {p.name: p.read_bytes() for p in tmp_path.glob("backend.db*")}

        second = LocalBackend(tmp_path, _free_port())
        with pytest.raises(RuntimeError, match="another local backend .* is already running on the data directory"):
            second.start()
        assert second.process.returncode == 1

        after = {kind: _records(tmp_path, kind) for kind in ("training_job", "glue_job_run", "endpoint")}
        assert after == before
        assert after["training_job"]["live-training"]["TrainingJobStatus"] == "InProgress"
        assert {p.name: p.read_bytes() for p in tmp_path.glob("backend.db*")} == db_files
        assert urlopen_ok(first.url + "/ping")
        first.client("sagemaker").stop_training_job(TrainingJobName="live-training")
        _wait(
            lambda: (
                first.client("sagemaker").describe_training_job(TrainingJobName="live-training")["TrainingJobStatus"]
                == "Stopped"
            ),
            "the stop",
        )
    finally:
        first.stop()


def urlopen_ok(url: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status == 200


def test_a_worker_group_left_behind_is_reaped_when_the_backend_starts(tmp_path):
    """A worker that outlived its backend (here: started by hand in its own session) is killed at start."""
    leftover = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"],
        start_new_session=True,
    )
    try:
        started = (Path(f"/proc/{leftover.pid}/stat").read_text().rsplit(")", 1)[1].split())[19]
        (tmp_path / "workers").mkdir()
        (tmp_path / "workers" / "training-orphan.pid").write_text(f"{leftover.pid} {started}\n")
        backend = LocalBackend(tmp_path, _free_port()).start()
        try:
            assert leftover.wait(timeout=10) == -signal.SIGKILL
            assert _groups(tmp_path) == []
        finally:
            backend.stop()
    finally:
        if leftover.poll() is None:
            os.killpg(leftover.pid, signal.SIGKILL)
