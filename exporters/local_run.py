"""``python -m exporters run DAG_ID --local``: the exported state machine, executed on this machine.

Exports the DAG, starts (or reuses) the local backend (``python -m localaws.server``, a separate process
the exporter only talks to over HTTP), and executes the exported definition unchanged in moto's ASL
interpreter with every service integration answered by that backend (see ``local_run_interpreter``):
real PySpark ETL, XGBoost training, the Lambda metric check, the endpoint registry.

Prints each state as it is entered and left, the execution's status, the metric and decision, and what the
endpoint serves afterwards; saves the execution history as JSON in ``OUT/DAG_ID/executions/``. Exit 0 on
SUCCEEDED, 1 otherwise (and for bad input: unknown or unexportable DAG, invalid ``--input``, an integration
the local backend does not answer, a backend that cannot start), 130 when stopped with Ctrl-C.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporters import concurrency
from exporters.api import DEFINITION_FILE, export_dag_object, write_atomically
from exporters.errors import ExporterError
from exporters.loader import load_dag
from exporters.validation import validate_definition

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BACKEND_PORT = 4599  # the local backend's default (localaws.paths.DEFAULT_PORT; not imported: one-way deps)
EXECUTIONS_DIR = "executions"
BACKEND_START_SECONDS = 60
STOP_SECONDS = 15  # after Ctrl-C, how long the stopped execution may take to unwind before we leave
REGION = "us-east-1"
ACCOUNT = "000000000000"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/local-state-machine"
# What the state machine's stages are: a state named after a DAG task, or "<task_id>: <step>".
_STAGE_SEPARATOR = ": "


class LocalRunError(ExporterError):
    """A problem the user can fix (bad input, backend not available): what and where, and what to do."""


# --------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------


INPUT_FIX = """pass the params to override as one JSON object, e.g. --input '{"threshold": 0.2}'"""


def parse_input(text: str | None) -> dict[str, Any]:
    """The execution input: a JSON object (the trigger conf of the Airflow run)."""
    if text is None or text.strip() == "":
        return {}
    try:
        value = json.loads(text)
    except ValueError as err:
        raise LocalRunError(f"--input is not valid JSON: {err}", INPUT_FIX) from None
    if not isinstance(value, dict):
        raise LocalRunError(f"--input must be a JSON object (the run's params), not {type(value).__name__}", INPUT_FIX)
    return value


def effective_params(dag: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    """The DAG's params with ``overrides`` applied and validated, as Airflow validates a trigger's conf."""
    from airflow.sdk.definitions.param import ParamsDict  # Airflow's SDK; loaded with the DAG already

    params = copy.deepcopy(dag.params)
    if not isinstance(params, ParamsDict):
        params = ParamsDict(params)
    try:
        for key, value in overrides.items():
            params[key] = value
        return params.validate()
    except ValueError as err:  # Airflow's ParamValidationError: its first line names the param and the rule
        reason = str(err).strip().splitlines()[0]
        raise LocalRunError(
            f"--input does not fit the params of DAG {dag.dag_id!r}: {reason}",
            "give that param a value its schema accepts (the DAG's Params), or leave it out to use its default",
        ) from None


# What the local backend answers (localaws.server): Glue job runs, SageMaker training and hosting, Lambda.
LOCAL_RESOURCE_PREFIXES = (
    "arn:aws:states:::glue:startJobRun",
    "arn:aws:states:::sagemaker:",
    "arn:aws:states:::lambda:invoke",
    "arn:aws:states:::aws-sdk:glue:",
    "arn:aws:states:::aws-sdk:sagemaker:",
    "arn:aws:states:::aws-sdk:lambda:invoke",
    "arn:aws:lambda:",
)


def _task_states(states: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every Task state, inside Parallel branches and Map processors too."""
    found = []
    for name, state in states.items():
        if state.get("Type") == "Task":
            found.append((name, state))
        for branch in state.get("Branches", []):
            found += _task_states(branch.get("States", {}))
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                found += _task_states(state[key].get("States", {}))
    return found


def unanswered_integrations(definition: dict[str, Any]) -> list[str]:
    """``state: resource`` for each Task the local backend cannot answer (e.g. S3, nested state machines)."""
    return [
        f"state {name!r} calls {state.get('Resource')}"
        for name, state in _task_states(concurrency.local_stand_in(definition).get("States", {}))
        if not str(state.get("Resource", "")).startswith(LOCAL_RESOURCE_PREFIXES)
    ]


# --------------------------------------------------------------------------------------------
# The local backend (a separate process; reached over HTTP only)
# --------------------------------------------------------------------------------------------


def backend_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def backend_answers(url: str) -> bool:
    """True when the local backend answers ``GET /ping``."""
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
            return json.loads(response.read()).get("status") == "ok"
    except (urllib.error.URLError, OSError, ValueError, AttributeError):
        return False


@dataclass
class Backend:
    url: str
    process: subprocess.Popen | None = None  # set when this run started it
    log: Path | None = None

    @property
    def started_here(self) -> bool:
        return self.process is not None

    def stop(self) -> None:
        """Stop the backend this run started, with its workers (its whole process group)."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def ensure_backend(port: int, log: Path, python: str = sys.executable) -> Backend:
    """Reuse the backend answering on ``port``, or start ``python -m localaws.server --port PORT``."""
    url = backend_url(port)
    if backend_answers(url):
        return Backend(url)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("AWS_ENDPOINT_URL", None)  # the backend sets its own (itself) for the Lambda handler
    with open(log, "ab") as handle:
        process = subprocess.Popen(
            [python, "-m", "localaws.server", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its Glue/training workers are stopped with it
        )
    backend = Backend(url, process, log)
    deadline = time.monotonic() + BACKEND_START_SECONDS
    while time.monotonic() < deadline:
        if backend_answers(url):
            return backend
        if process.poll() is not None:
            raise _cannot_start(port, log, f"it exited with code {process.returncode}")
        time.sleep(0.3)
    backend.stop()
    raise _cannot_start(port, log, f"it did not answer on {url}/ping within {BACKEND_START_SECONDS} s")


def _cannot_start(port: int, log: Path, what: str) -> LocalRunError:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    tail = "\n".join(f"    {line}" for line in lines[-5:]) or "    (no output)"
    return LocalRunError(
        f"could not start the local backend on 127.0.0.1:{port}: {what}. Last lines of {log}:\n{tail}",
        f"start it yourself (`python -m localaws.server --port {port}` from the repository root) and run again, "
        "or choose a free port with --backend-port",
    )


# --------------------------------------------------------------------------------------------
# The execution
# --------------------------------------------------------------------------------------------


def stage_of(state_name: str) -> str:
    """The DAG task a state belongs to (``update_endpoint: wait`` → ``update_endpoint``)."""
    return state_name.split(_STAGE_SEPARATOR, 1)[0]


def execution_name(now: datetime.datetime | None = None) -> str:
    now = now or datetime.datetime.now(datetime.UTC)
    return f"local-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


EXECUTION_NAME = re.compile(r"^local-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")


def history_file(out: Path, dag_id: str, name: str) -> Path | None:
    """The saved history of local execution ``name`` of ``dag_id``, or None (unknown or not an execution name)."""
    if not EXECUTION_NAME.match(name) or "/" in dag_id or dag_id in ("", ".", ".."):
        return None
    path = Path(out) / dag_id / EXECUTIONS_DIR / f"{name}.json"
    return path if path.is_file() and not path.is_symlink() else None  # only files the command wrote


def local_executions(out: Path, dag_id: str, limit: int = 20) -> list[dict[str, Any]]:
    """The newest local executions of ``dag_id``'s machine: name, status, start, duration (from the saved histories)."""
    folder = Path(out) / dag_id / EXECUTIONS_DIR
    if "/" in dag_id or dag_id in ("", ".", "..") or not folder.is_dir():
        return []
    rows = []
    for path in folder.glob("local-*.json"):
        if not EXECUTION_NAME.match(path.stem) or path.is_symlink():
            continue
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(document, dict):
            continue
        duration = document.get("durationSeconds")
        rows.append(
            {
                "name": path.stem,
                "status": str(document.get("status") or "UNKNOWN"),
                "startDate": str(document.get("startDate") or ""),
                "durationSeconds": float(duration) if isinstance(duration, (int, float)) else None,
                "error": str(document["error"]) if document.get("error") else None,
            }
        )
    rows.sort(key=lambda row: row["startDate"], reverse=True)
    return rows[:limit]


def _iso(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).isoformat()
    if isinstance(value, dict):
        return {k: _iso(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_iso(v) for v in value]
    return value


def _machine_name(dag_id: str) -> str:
    """A valid state machine name for the DAG (1-80 of [A-Za-z0-9_-])."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", dag_id)[:80] or "dag"


@dataclass
class StateTiming:
    name: str
    entered: float
    left: float | None = None
    outcome: str = "running"


@dataclass
class ExecutionResult:
    name: str
    arn: str
    status: str
    started: datetime.datetime
    stopped: datetime.datetime | None
    error: str | None
    cause: str | None
    output: Any
    events: list[dict[str, Any]]
    interrupted: bool = False  # stopped by Ctrl-C (or SIGTERM)
    states: list[StateTiming] = field(default_factory=list)

    @property
    def duration_seconds(self) -> float | None:
        return (self.stopped - self.started).total_seconds() if self.stopped else None

    def stage_seconds(self) -> dict[str, float]:
        """Seconds spent in each stage (DAG task), in the order the stages ran."""
        totals: dict[str, float] = {}
        for state in self.states:
            if state.left is not None:
                stage = stage_of(state.name)
                totals[stage] = totals.get(stage, 0.0) + (state.left - state.entered)
        return totals

    def stage_sequence(self) -> list[str]:
        sequence: list[str] = []
        for state in self.states:
            stage = stage_of(state.name)
            if not sequence or sequence[-1] != stage:
                sequence.append(stage)
        return sequence

    def to_json(self, dag_id: str, execution_input: dict[str, Any], definition_file: Path) -> str:
        document = {
            "dagId": dag_id,
            "executionArn": self.arn,
            "name": self.name,
            "status": self.status,
            "startDate": _iso(self.started),
            "stopDate": _iso(self.stopped),
            "durationSeconds": self.duration_seconds,
            "input": execution_input,
            "output": self.output,
            "error": self.error,
            "cause": self.cause,
            "definition": str(definition_file),
            "stages": [
                {"stage": stage, "seconds": round(seconds, 3)} for stage, seconds in self.stage_seconds().items()
            ],
            "events": _iso(self.events),
        }
        return json.dumps(document, indent=2, default=str)


def _event_name(event: dict[str, Any]) -> str | None:
    for key in ("stateEnteredEventDetails", "stateExitedEventDetails"):
        if key in event:
            return event[key].get("name")
    return None


def execute(
    definition: dict[str, Any],
    machine: str,
    execution_input: dict[str, Any],
    endpoint_url: str,
    time_scale: float,
    on_event: Callable[[dict[str, Any]], None],
) -> ExecutionResult:
    """Run ``definition`` in moto's interpreter against the backend at ``endpoint_url``; events as they happen."""
    from exporters.local_run_interpreter import interpreter

    with interpreter(endpoint_url, time_scale) as stopping:
        # moto is heavy: imported once the interpreter is checked and patched.
        from moto.stepfunctions.parser.api import InvalidDefinition
        from moto.stepfunctions.parser.models import StepFunctionsParserBackend

        sfn = StepFunctionsParserBackend(region_name=REGION, account_id=ACCOUNT)
        try:
            state_machine = sfn.create_state_machine(
                name=_machine_name(machine),
                definition=json.dumps(concurrency.local_stand_in(definition)),  # max_active_runs: no table locally
                roleArn=ROLE_ARN,
            )
        except InvalidDefinition as err:  # the interpreter cannot parse what we exported
            raise LocalRunError(
                f"moto's ASL interpreter rejects the exported definition of {machine!r}: {err}",
                "this is an exporter bug: report it with the DAG file",
            ) from None
        name = execution_name()
        execution = sfn.start_execution(state_machine.arn, name=name, execution_input=json.dumps(execution_input))
        seen = 0
        give_up: float | None = None  # set by Ctrl-C: how long the stopped execution may take to unwind
        while True:
            try:
                running = execution.exec_status is not None and execution.exec_status.value == "RUNNING"
                events = _new_events(execution, seen)
                seen += len(events)
                for event in events:
                    on_event(event)
                if (not running and not events) or (give_up is not None and time.monotonic() > give_up):
                    break
                time.sleep(0.1)
            except KeyboardInterrupt:
                if give_up is not None:  # a second Ctrl-C: leave now
                    raise
                give_up = time.monotonic() + STOP_SECONDS
                stopping.set()
                execution.stop(datetime.datetime.now(datetime.UTC), "Interrupted", "stopped by the user")
        history = execution.to_history_output()["events"]
        status = execution.exec_status.value
        return ExecutionResult(
            name=name,
            arn=execution.exec_arn,
            status="ABORTED" if give_up is not None and status == "RUNNING" else status,
            started=execution.start_date,
            stopped=execution.stop_date or (datetime.datetime.now(datetime.UTC) if give_up else None),
            error=execution.error,
            cause=execution.cause,
            output=execution.output,
            events=[dict(e) for e in history],
            interrupted=give_up is not None,
        )


def _new_events(execution: Any, seen: int) -> list[dict[str, Any]]:
    worker = execution.exec_worker
    env = worker.env if worker is not None else None
    if env is None:
        return []
    manager = env.event_manager
    with manager._mutex:  # the interpreter appends under this lock; copy only what is new
        return copy.deepcopy(manager._history_event_list[seen:])


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


class Printer:
    """Each state as it is entered and left, with its duration."""

    def __init__(self, write: Callable[[str], None]):
        self.write = write
        self.open: dict[str, StateTiming] = {}
        self.states: list[StateTiming] = []

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        when = event["timestamp"].timestamp() if isinstance(event.get("timestamp"), datetime.datetime) else time.time()
        name = _event_name(event)
        if kind and kind.endswith("StateEntered") and name:
            timing = StateTiming(name, when)
            self.open[name] = timing
            self.states.append(timing)
            self.write(f"  > {name}")
        elif kind and kind.endswith("StateExited") and name and name in self.open:
            timing = self.open.pop(name)
            timing.left, timing.outcome = when, "ok"
            self.write(f"  < {name:<46} ok in {when - timing.entered:.1f} s")
        elif kind in ("TaskFailed", "LambdaFunctionFailed") and self.open:
            details = event.get("taskFailedEventDetails") or event.get("lambdaFunctionFailedEventDetails") or {}
            current = self.states[-1].name
            self.write(f"    {current}: {details.get('error')}: {_short(details.get('cause'))}")
        elif kind in ("ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut") and self.open:
            outcome = {"ExecutionAborted": "stopped", "ExecutionTimedOut": "timed out"}.get(kind, "FAILED")
            for timing in self.open.values():
                timing.left, timing.outcome = when, outcome
                self.write(f"  < {timing.name:<46} {outcome} after {when - timing.entered:.1f} s")
            self.open.clear()


def _short(text: Any, limit: int = 300) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_path(document: Any, path: str) -> Any:
    """A plain ``$.a.b`` path (what the exporter writes for ResultPath and Choice variables)."""
    if not path.startswith("$"):
        return None
    value = document
    for part in [p for p in path[1:].split(".") if p]:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def decisions(definition: dict[str, Any], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each metric read and the Choice it fed: metric, value, threshold, the state chosen."""
    states = definition.get("States", {})
    found = []
    for position, event in enumerate(events):
        if not event.get("type", "").endswith("StateExited"):
            continue
        name = _event_name(event)
        state = states.get(name or "", {})
        parameters = state.get("Parameters") or {}
        if state.get("Type") != "Pass" or "metric" not in parameters or "value.$" not in parameters:
            continue
        try:
            output = json.loads(event["stateExitedEventDetails"].get("output") or "null")
        except ValueError:
            continue
        read = _json_path(output, state.get("ResultPath", "$")) or {}
        choice_name = state.get("Next")
        choice = states.get(choice_name or "", {})
        threshold = None
        for rule in choice.get("Choices", []):
            for key, operand in rule.items():
                if key.endswith("Path") and key.startswith("Numeric"):
                    threshold = _json_path(output, operand)
                elif key.startswith("Numeric"):
                    threshold = operand
        chosen = None
        for later in events[position + 1 :]:
            if later.get("type", "").endswith("StateEntered") and _event_name(later) != choice_name:
                chosen = _event_name(later)
                break
        found.append(
            {
                "choice": choice_name,
                "metric": read.get("metric"),
                "value": read.get("value"),
                "threshold": threshold,
                "next": chosen,
            }
        )
    return found


def endpoint_names(dag: Any, params: dict[str, Any]) -> list[str]:
    """The endpoints the DAG's deploy stages point at, for this run's params."""
    # retraining imports Airflow (slow); the DAG has loaded it by now, and the CLI's --help must not.
    from retraining import ParamRef, SageMakerDeployEndpointOperator

    names = []
    for task in dag.tasks:
        if not isinstance(task, SageMakerDeployEndpointOperator):
            continue
        name = (task.request or {}).get("EndpointName")
        if isinstance(name, ParamRef):
            name = params.get(name.name)
        if isinstance(name, str) and name not in names:
            names.append(name)
    return names


def describe_endpoint(url: str, name: str) -> dict[str, Any] | None:
    import boto3  # only for the report, after the run

    client = boto3.client(
        "sagemaker", endpoint_url=url, region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local"
    )
    try:
        answer = client.describe_endpoint(EndpointName=name)
    except Exception:  # noqa: BLE001 - a missing endpoint is reported as such
        return None
    answer.pop("ResponseMetadata", None)
    return answer


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


@dataclass
class RunOptions:
    dag_id: str
    dags_folder: str | None = None
    input_text: str | None = None
    out: Path = Path("build/stepfunctions")
    backend_port: int = DEFAULT_BACKEND_PORT
    time_scale: float = 1.0
    keep_backend: bool = False


def run(options: RunOptions, write: Callable[[str], None] = print) -> int:
    """The whole command; returns the exit code (0: SUCCEEDED). Raises LocalRunError for bad input."""
    if not options.time_scale > 0:
        raise LocalRunError(
            f"--time-scale must be a number above 0, not {options.time_scale}", "e.g. --time-scale 0.01"
        )
    execution_input = parse_input(options.input_text)
    dag = load_dag(options.dag_id, options.dags_folder)
    params = effective_params(dag, execution_input)
    result = export_dag_object(dag)
    problems = validate_definition(result.definition)
    if problems:  # our own bug if it happens; never run an invalid definition
        raise LocalRunError(
            f"the exported definition of DAG {options.dag_id!r} is invalid:\n"
            + "\n".join(f"  - {p}" for p in problems),
            "this is an exporter bug: report it with the DAG file",
        )
    unanswered = unanswered_integrations(result.definition)
    if unanswered:
        raise LocalRunError(
            f"DAG {options.dag_id!r} cannot run locally: the local backend answers Glue, SageMaker and Lambda only:\n"
            + "\n".join(f"  - {item}" for item in unanswered),
            "run the DAG in Airflow (make run), or deploy the state machine and start it on AWS (deploy, start)",
        )
    folder = Path(options.out) / options.dag_id
    definition_file = folder / DEFINITION_FILE
    write_atomically(definition_file, result.to_json())
    write(f"Exported DAG {options.dag_id!r} -> {definition_file} ({len(result.definition['States'])} states)")

    backend = ensure_backend(options.backend_port, folder / EXECUTIONS_DIR / "local-backend.log")
    previous_handler = signal.getsignal(signal.SIGTERM)

    def interrupted(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, interrupted)
        how = "started" if backend.started_here else "reusing"
        write(f"Local backend: {backend.url} ({how}{f'; log {backend.log}' if backend.log else ''})")
        scale = "" if options.time_scale == 1 else f"; waits x{options.time_scale:g}"
        write(f"Executing the exported state machine in moto's ASL interpreter (moto){scale}")
        printer = Printer(write)
        try:
            execution = execute(
                result.definition, options.dag_id, execution_input, backend.url, options.time_scale, printer
            )
        except KeyboardInterrupt:
            write("Interrupted again: leaving without saving the history.")
            return 130
        execution.states = printer.states
        history_file = folder / EXECUTIONS_DIR / f"{execution.name}.json"
        write_atomically(history_file, execution.to_json(options.dag_id, execution_input, definition_file))
        _report(execution, result.definition, dag, params, backend.url, write)
        write(f"Execution history: {history_file}")
        if execution.interrupted:
            return 130
        return 0 if execution.status == "SUCCEEDED" else 1
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if backend.started_here and not options.keep_backend:
            backend.stop()


def runtime_errors(events: list[dict[str, Any]]) -> int:
    """How many failures in the history are ``States.Runtime`` (a defect: AWS neither retries nor catches it)."""
    count = 0
    for event in events:
        for key, details in event.items():
            if key.endswith("EventDetails") and isinstance(details, dict) and details.get("error") == "States.Runtime":
                count += 1
    return count


def _report(execution: ExecutionResult, definition, dag, params, url: str, write: Callable[[str], None]) -> None:
    took = f" in {execution.duration_seconds:.1f} s" if execution.duration_seconds is not None else ""
    write(f"Execution {execution.name}: {execution.status}{took}")
    if execution.error:
        write(f"  error: {execution.error}: {_short(execution.cause, 600)}")
    runtime = runtime_errors(execution.events)
    if runtime:
        write(
            f"warning: {runtime} States.Runtime failure(s) in this execution: a defect in the definition or its "
            "inputs; moto's States.ALL retries and catches them, AWS does neither"
        )
    for decision in decisions(definition, execution.events):
        value = decision["value"]
        shown = f"{value:.6g}" if isinstance(value, (int, float)) else str(value)
        threshold = f" (threshold {decision['threshold']:g})" if isinstance(decision["threshold"], (int, float)) else ""
        write(f"{decision['metric']}: {shown}{threshold}")
        write(f"Decision ({decision['choice']}): {decision['next']}")
    for name in endpoint_names(dag, params):
        endpoint = describe_endpoint(url, name)
        if endpoint is None:
            write(f"Endpoint {name}: does not exist")
            continue
        serving = endpoint.get("EndpointConfigName") or "nothing yet"
        write(f"Endpoint {name}: {endpoint.get('EndpointStatus')}, serving {serving}")


def add_subcommand(sub: Any) -> None:
    """``run DAG_ID --local``: the CLI's arguments."""
    parser = sub.add_parser(
        "run",
        help="export the DAG and execute the state machine on this machine (--local): moto's ASL interpreter on "
        "the local backend",
    )
    parser.add_argument("dag_id")
    parser.add_argument(
        "--local",
        action="store_true",
        help="execute locally (required; on AWS use `deploy` then `start`)",
    )
    parser.add_argument("--input", default=None, help="execution input: a JSON object of param overrides")
    parser.add_argument("--dags-folder", default=None, help="default: Airflow's [core] dags_folder")
    parser.add_argument(
        "--out", default="build/stepfunctions", help="export folder; histories go to OUT/DAG_ID/executions"
    )
    parser.add_argument(
        "--backend-port",
        type=int,
        default=int(os.environ.get("RETRAINING_LOCAL_PORT", DEFAULT_BACKEND_PORT)),
        help="the local backend's port on 127.0.0.1 (reused when it answers, started otherwise)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiply Wait states and retry back-off by this (e.g. 0.01 for a quick run; default 1: real time)",
    )
    parser.add_argument(
        "--keep-backend", action="store_true", help="leave a backend this command started running afterwards"
    )


def command(args: Any) -> int:
    if not args.local:
        print(
            "error: `run` executes on this machine only: add --local (on AWS: `deploy` then `start`)",
            file=sys.stderr,
        )
        return 2
    options = RunOptions(
        dag_id=args.dag_id,
        dags_folder=args.dags_folder,
        input_text=args.input,
        out=Path(args.out),
        backend_port=args.backend_port,
        time_scale=args.time_scale,
        keep_backend=args.keep_backend,
    )
    return run(options, write=lambda line: print(line, flush=True))  # ExporterError: printed by the CLI
