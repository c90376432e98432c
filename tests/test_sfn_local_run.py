"""``python -m exporters run model_retraining --local`` against ``dag.test()``, on one real local backend.

Differential on real work: the Airflow run of the retraining DAG and the run of its exported state machine
(moto's ASL interpreter, every service call answered by the local backend over HTTP: Spark ETL, XGBoost,
the Lambda handler, the endpoint registry) on the same seeded data must agree on the stages that ran, the
validation error, the decision and the model the endpoint serves (identical predictions on a fixed sample).
Scenarios run in order on one backend, as successive runs would: good data deploys; a strict threshold
deploys nothing and the previous model keeps serving; a Glue failure and a training failure stop both paths
at the same stage. The state machine runs as the CLI a user runs (a subprocess) with Wait states and retry
back-off scaled down (``--time-scale``); the Airflow run has its retries off.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import RETRAINING_TASK_IDS, ROOT
from tests.local_backend import LocalBackend

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DAG_ID = "model_retraining"
TIME_SCALE = "0.001"  # the exported 60 s retry intervals and 30 s endpoint polls become milliseconds
SAMPLE_ROWS = 50


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "exporters", "run", *args],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def backend_processes(port: int) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "localaws.server" in cmdline and str(port) in cmdline:
            found.append(process)
    return found


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    from tests import aws_doubles

    return aws_doubles.free_port()


# --------------------------------------------------------------------------------------------
# Both paths on one backend
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    data = tmp_path_factory.mktemp("sfn-local-backend")
    server = LocalBackend(data, free_port()).start()
    from localaws.churn_data import write_batch

    write_batch(server.s3_path("s3://retraining-demo/raw/churn.csv"), rows=3000, seed=11)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sfn-exports")


@pytest.fixture
def local_env(backend, monkeypatch):
    monkeypatch.setenv("RETRAINING_BACKEND", "local")
    monkeypatch.setenv("RETRAINING_LOCAL_DATA", str(backend.data_dir))
    monkeypatch.setenv("AIRFLOW_CONN_RETRAINING_LOCAL", backend.connection_json())
    monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT", raising=False)
    return backend


@pytest.fixture
def dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(str(ROOT / "dags")).dags[DAG_ID]
    for task in dag.tasks:
        if hasattr(task, "poll_interval"):
            task.poll_interval = 0.5
        task.retries = 0
    return dag


class AirflowRun:
    def __init__(self, run):
        self.state = run.state
        self.instances = {ti.task_id: ti for ti in run.get_task_instances()}

    @property
    def task_states(self) -> dict[str, str]:
        return {task_id: ti.state for task_id, ti in self.instances.items()}

    def stages(self) -> list[str]:
        """The tasks that ran (succeeded or failed), in the order they started."""
        ran = [ti for ti in self.instances.values() if ti.state in ("success", "failed") and ti.start_date]
        return [ti.task_id for ti in sorted(ran, key=lambda ti: ti.start_date)]

    def validation_error(self) -> float | None:
        metrics = self.instances["check_metrics"].xcom_pull(task_ids="check_metrics") or {}
        values = [m["Value"] for m in metrics.get("trainingMetrics", []) if m["MetricName"] == "validation:error"]
        return values[0] if values else None

    def decision(self) -> str | None:
        if self.task_states.get("create_model") in ("success", "failed"):
            return "create_model"
        if self.task_states.get("model_accuracy_too_low") in ("success", "failed"):
            return "model_accuracy_too_low"
        return None


class MachineRun:
    """What ``exporters run --local`` printed, returned and saved (its execution history JSON)."""

    def __init__(self, completed: subprocess.CompletedProcess, out: Path):
        self.completed = completed
        histories = sorted((out / DAG_ID / "executions").glob("local-*.json"), key=lambda p: p.stat().st_mtime)
        assert histories, f"no execution history saved:\n{completed.stdout}\n{completed.stderr}"
        self.history_file = histories[-1]
        self.history = json.loads(self.history_file.read_text())

    @property
    def status(self) -> str:
        return self.history["status"]

    def entered(self) -> list[str]:
        return [
            e["stateEnteredEventDetails"]["name"] for e in self.history["events"] if "stateEnteredEventDetails" in e
        ]

    def stages(self) -> list[str]:
        """The DAG tasks whose states ran, in order (a task's helper states are named "<task_id>: ...")."""
        sequence: list[str] = []
        for name in self.entered():
            stage = name.split(": ", 1)[0]
            if stage in RETRAINING_TASK_IDS and stage not in sequence:
                sequence.append(stage)
        return sequence

    def state_output(self, state: str) -> dict:
        for event in self.history["events"]:
            details = event.get("stateExitedEventDetails")
            if details and details["name"] == state:
                return json.loads(details["output"])
        raise AssertionError(f"state {state!r} never left")

    def validation_error(self) -> float:
        return self.state_output("accuracy_check: read validation:error")["accuracy_check"]["value"]

    def decision(self) -> str:
        names = self.entered()
        return names[names.index("accuracy_check") + 1]


def run_machine(out: Path, backend: LocalBackend, execution_input: dict | None = None) -> MachineRun:
    args = [DAG_ID, "--local", "--out", str(out), "--backend-port", str(backend.port), "--time-scale", TIME_SCALE]
    if execution_input is not None:
        args += ["--input", json.dumps(execution_input)]
    return MachineRun(run_cli(*args), out)


def validation_sample(backend: LocalBackend) -> bytes:
    folder = backend.s3_path("s3://retraining-demo/processed/validation/")
    rows: list[str] = []
    for file in sorted(folder.glob("*.csv")):
        rows += [line for line in file.read_text().splitlines() if line]
    return "\n".join(row.split(",", 1)[1] for row in rows[:SAMPLE_ROWS]).encode()


def predictions(backend: LocalBackend, sample: bytes) -> tuple[list[float], str]:
    status, body, headers = backend.invoke("churn-endpoint", sample)
    assert status == 200, body
    return [float(p) for p in body.decode().split()], headers["x-model-name"]


def serving_config(backend: LocalBackend) -> str | None:
    """The config the endpoint serves, or None before any run has deployed one (a test may run alone)."""
    try:
        endpoint = backend.client("sagemaker").describe_endpoint(EndpointName="churn-endpoint")
    except backend.client("sagemaker").exceptions.ClientError as error:
        if "Could not find endpoint" in str(error):
            return None
        raise
    assert endpoint["EndpointStatus"] == "InService"
    return endpoint["EndpointConfigName"]


def test_good_data_same_stages_error_decision_and_served_predictions(local_env, dag, exports):
    airflow = AirflowRun(dag.test())
    assert airflow.state == "success", airflow.task_states
    sample = validation_sample(local_env)
    airflow_predictions, airflow_model = predictions(local_env, sample)
    assert airflow_model == serving_config(local_env)

    machine = run_machine(exports, local_env)
    assert machine.completed.returncode == 0, machine.completed.stdout + machine.completed.stderr
    assert machine.status == "SUCCEEDED"

    expected_stages = [
        "extract_transform_load",
        "train_model",
        "check_metrics",
        "accuracy_check",
        "create_model",
        "create_endpoint_config",
        "update_endpoint",
    ]
    assert airflow.stages() == expected_stages
    assert machine.stages() == expected_stages
    assert machine.validation_error() == pytest.approx(airflow.validation_error(), abs=1e-6)
    assert airflow.decision() == machine.decision() == "create_model"

    # The endpoint now serves the state machine's model, whose predictions are the Airflow model's.
    assert validation_sample(local_env) == sample, "the ETL split is deterministic"
    machine_predictions, machine_model = predictions(local_env, sample)
    assert machine_model == serving_config(local_env) != airflow_model
    assert machine_predictions == airflow_predictions

    out = machine.completed.stdout
    assert "Execution local-" in out and ": SUCCEEDED" in out
    assert f"validation:error: {machine.validation_error():.6g} (threshold 0.1)" in out
    assert "Decision (accuracy_check): create_model" in out
    assert f"Endpoint churn-endpoint: InService, serving {machine_model}" in out
    for state in ("extract_transform_load", "update_endpoint: DescribeEndpoint"):
        assert f"  > {state}" in out
        assert any(line.startswith(f"  < {state} ") and " ok in " in line for line in out.splitlines())
    assert str(machine.history_file) in out
    assert "States.Runtime" not in machine.history_file.read_text(), "every integration answered as on AWS"


def test_strict_threshold_both_fail_with_model_accuracy_too_low_and_keep_the_model(local_env, dag, exports):
    before = serving_config(local_env)
    sample = validation_sample(local_env)
    before_predictions, _ = predictions(local_env, sample)

    airflow = AirflowRun(dag.test(run_conf={"threshold": 0.0001}))
    assert airflow.state == "failed"
    assert airflow.task_states["model_accuracy_too_low"] == "failed"
    assert serving_config(local_env) == before

    machine = run_machine(exports, local_env, {"threshold": 0.0001})
    assert machine.completed.returncode == 1
    assert machine.status == "FAILED"
    assert machine.history["error"] == "ModelAccuracyTooLow"

    expected = ["extract_transform_load", "train_model", "check_metrics", "accuracy_check", "model_accuracy_too_low"]
    assert airflow.stages() == machine.stages() == expected
    assert machine.validation_error() == pytest.approx(airflow.validation_error(), abs=1e-6)
    assert airflow.decision() == machine.decision() == "model_accuracy_too_low"
    assert serving_config(local_env) == before
    assert predictions(local_env, sample) == (before_predictions, before)
    assert "Decision (accuracy_check): model_accuracy_too_low" in machine.completed.stdout


def test_glue_failure_stops_both_paths_at_the_etl(local_env, dag, exports):
    broken = local_env.s3_path("s3://retraining-demo/raw/broken.csv")
    broken.write_text("State,Account Length\n")  # wrong header, no rows: the real ETL fails
    before = serving_config(local_env)
    outputs = local_env.data_dir / "s3" / "retraining-demo" / "output"
    jobs_before = set(outputs.iterdir()) if outputs.exists() else set()
    conf = {"s3_source": "s3://retraining-demo/raw/broken.csv"}

    airflow = AirflowRun(dag.test(run_conf=conf))
    assert airflow.state == "failed"
    assert airflow.task_states["extract_transform_load"] == "failed"

    machine = run_machine(exports, local_env, conf)
    assert machine.completed.returncode == 1
    assert machine.status == "FAILED"
    # max_active_runs=1: the run gives its slot back first; a Fail state may not raise a States.* name.
    assert machine.history["error"] == "StepFunctionsError"
    assert machine.history["cause"].startswith("States.TaskFailed: ")
    assert "broken.csv" in machine.history["cause"]

    assert airflow.stages() == machine.stages() == ["extract_transform_load"]
    assert (set(outputs.iterdir()) if outputs.exists() else set()) == jobs_before
    assert serving_config(local_env) == before


def test_training_failure_stops_both_paths_at_training(local_env, dag, exports):
    before = serving_config(local_env)
    bad = {"hyperparameters": {"num_round": "many", "objective": "binary:logistic", "eval_metric": "error"}}

    airflow = AirflowRun(dag.test(run_conf=bad))
    assert airflow.state == "failed"
    assert airflow.task_states["train_model"] == "failed"

    machine = run_machine(exports, local_env, bad)
    assert machine.completed.returncode == 1
    assert machine.status == "FAILED"
    # max_active_runs=1: the run gives its slot back first; a Fail state may not raise a States.* name.
    assert machine.history["error"] == "StepFunctionsError"
    assert machine.history["cause"].startswith("States.TaskFailed: ")
    cause = json.loads(machine.history["cause"].removeprefix("States.TaskFailed: "))
    assert cause["TrainingJobStatus"] == "Failed" and "num_round" in cause["FailureReason"]

    assert airflow.stages() == machine.stages() == ["extract_transform_load", "train_model"]
    assert serving_config(local_env) == before


# --------------------------------------------------------------------------------------------
# Bad input: a clear message, a non-zero exit, nothing left running
# --------------------------------------------------------------------------------------------


def assert_nothing_left(port: int) -> None:
    assert not backend_processes(port), "a local backend was left running"
    assert not listening(port)


def test_unknown_dag(tmp_path):
    port = free_port()
    completed = run_cli("no_such_dag", "--local", "--out", str(tmp_path), "--backend-port", str(port))
    assert completed.returncode == 1
    assert "DAG 'no_such_dag' not found" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert_nothing_left(port)
    assert not any(tmp_path.iterdir())


def test_non_exportable_dag(tmp_path):
    port = free_port()
    folder = ROOT / "tests" / "export_dags" / "unsupported"
    args = ["--dags-folder", str(folder), "--out", str(tmp_path), "--backend-port", str(port)]
    completed = run_cli("bad_bash_operator", "--local", *args)
    assert completed.returncode == 1
    assert "cannot export DAG 'bad_bash_operator'" in completed.stderr
    assert "task 'copy_files'" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert_nothing_left(port)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("dag_id", "resource"),
    [("nested_parent", "arn:aws:states:::states:startExecution"), ("s3_operators", "arn:aws:states:::aws-sdk:s3:")],
)
def test_integrations_the_local_backend_does_not_answer_are_refused_before_anything_runs(tmp_path, dag_id, resource):
    port = free_port()
    folder = ROOT / "tests" / "export_dags" / "good"
    completed = run_cli(
        dag_id, "--local", "--dags-folder", str(folder), "--out", str(tmp_path), "--backend-port", str(port)
    )
    assert completed.returncode == 1
    assert f"DAG {dag_id!r} cannot run locally" in completed.stderr
    assert f"calls {resource}" in completed.stderr and "state '" in completed.stderr
    assert "fix: run the DAG in Airflow" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert_nothing_left(port)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("{not json", "--input is not valid JSON"),
        ("[1, 2]", "--input must be a JSON object"),
        ('{"threshold": "low"}', "threshold"),
        ('{"s3_dest": "s3://retraining-demo/processed"}', "s3_dest"),
    ],
)
def test_invalid_input(tmp_path, given, message):
    port = free_port()
    completed = run_cli(DAG_ID, "--local", "--input", given, "--out", str(tmp_path), "--backend-port", str(port))
    assert completed.returncode == 1
    assert completed.stderr.startswith("error: ")
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr
    assert_nothing_left(port)
    assert not any(tmp_path.iterdir()), "nothing exported or run for bad input"


def test_without_local_is_a_usage_error(tmp_path):
    completed = run_cli(DAG_ID, "--out", str(tmp_path))
    assert completed.returncode == 2
    assert "add --local" in completed.stderr


def test_backend_that_cannot_start(tmp_path):
    # Something that is not the backend holds the port: it accepts connections and never answers.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        completed = run_cli(
            DAG_ID,
            "--local",
            "--out",
            str(tmp_path),
            "--backend-port",
            str(port),
            env={"RETRAINING_LOCAL_DATA": str(tmp_path / "data")},
        )
    assert completed.returncode == 1
    assert f"could not start the local backend on 127.0.0.1:{port}" in completed.stderr
    assert "python -m localaws.server --port" in completed.stderr
    assert "--backend-port" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert_nothing_left(port)


def test_a_backend_it_started_is_stopped_after_the_run(tmp_path):
    """A run that starts its own backend stops it (and its workers) when it ends, here with a failed run."""
    port = free_port()
    completed = run_cli(
        DAG_ID,
        "--local",
        "--input",
        json.dumps({"glue_job_name": "no-such-job"}),
        "--out",
        str(tmp_path),
        "--backend-port",
        str(port),
        "--time-scale",
        TIME_SCALE,
        env={"RETRAINING_LOCAL_DATA": str(tmp_path / "data")},
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert f"Local backend: http://127.0.0.1:{port} (started" in completed.stdout
    assert "Endpoint churn-endpoint: does not exist" in completed.stdout, "the report names the DAG's endpoint"
    history = MachineRun(completed, tmp_path).history
    assert history["status"] == "FAILED"
    assert history["error"] == "Glue.EntityNotFoundException"
    failures = [e for e in history["events"] if e["type"] == "TaskFailed"]
    assert len(failures) == 3, "the exported Retry: the first attempt and 2 retries"
    assert_nothing_left(port)


def test_the_interpreter_version_is_pinned(monkeypatch):
    import moto

    from exporters.errors import ExporterError
    from exporters.local_run_interpreter import MOTO_VERSION, check_moto_version

    check_moto_version()  # the installed, pinned version
    monkeypatch.setattr(moto, "__version__", "5.3.0")
    with pytest.raises(ExporterError) as raised:
        check_moto_version()
    assert f"checked against moto {MOTO_VERSION}" in raised.value.reason and "found moto 5.3.0" in raised.value.reason
    assert "constraints.txt" in raised.value.fix


def test_ctrl_c_stops_the_execution_saves_its_history_and_leaves_nothing_running(tmp_path):
    """Interrupted during the exported 60 s retry interval (real time): ABORTED, history saved, backend stopped."""
    port = free_port()
    argv = [sys.executable, "-m", "exporters", "run", DAG_ID, "--local", "--out", str(tmp_path)]
    argv += ["--input", json.dumps({"glue_job_name": "no-such-job"}), "--backend-port", str(port)]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "RETRAINING_LOCAL_DATA": str(tmp_path / "data"),
    }
    process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if "Glue.EntityNotFoundException" in line:  # the first attempt failed: now in the retry interval
                process.send_signal(signal.SIGINT)
                break
        rest, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    out = "".join(lines) + rest
    assert process.returncode == 130, out
    assert ": ABORTED" in out
    history = MachineRun(subprocess.CompletedProcess(argv, 130, out, ""), tmp_path).history
    assert history["status"] == "ABORTED"
    assert [e["type"] for e in history["events"]].count("TaskFailed") == 1, "no retry after the stop"
    assert_nothing_left(port)
