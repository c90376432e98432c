"""Nested pipelines: ``TriggerDagRunOperator`` → ``states:startExecution`` of the child DAG's state machine.

``wait_for_completion=True`` → ``startExecution.sync:2``: the task ends when the child's execution
ends, and fails (retries apply) when the child fails, as the operator fails on a ``failed`` child run.
``wait_for_completion=False`` → ``startExecution`` (fire and forget). ``conf`` is the child's execution
input, so it overrides the child's params as a trigger's conf does.

The child is the state machine named after its DAG id (``exporters.deploy.state_machine_name``, what
``python -m exporters deploy`` creates) in the parent's own partition, region and account: its ARN is
computed from ``$$.StateMachine.Id`` at run time. The child must itself be exportable: it is loaded
from the parent's DAG folder (in the UI view, from what Airflow's DAG processor stored: the API server
runs no DAG code) and compiled, and its problems are reported on the trigger task.
``nested_children`` lists the DAGs a parent starts (and theirs): the CloudFormation template holds their
state machines beside the parent's, and ``deploy`` deploys them before the parent.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporters import asl
from exporters.converters import ConvertContext, Fragment, Unsupported, register_lazy, result_key, state_name
from exporters.converters_s3 import field_value
from exporters.errors import DagLoadError, ExportError
from retraining.refs import ParamRef

# $$.StateMachine.Id = arn:<partition>:states:<region>:<account>:stateMachine:<name>
_ARN_PART = "States.ArrayGetItem(States.StringSplit($$.StateMachine.Id, ':'), {})"
_COMPILING: set[str] = set()  # DAG ids being compiled as children (a trigger cycle ends here)


def child_state_machine_arn(child_name: str) -> str:
    """The intrinsic computing the ARN of the state machine ``child_name`` next to this one."""
    parts = ", ".join(_ARN_PART.format(i) for i in (1, 3, 4))
    return f"States.Format('arn:{{}}:states:{{}}:{{}}:stateMachine:{child_name}', {parts})"


def _stored_only(task: Any) -> bool:
    """A task of Airflow's stored DAG with no parsed DAG at hand: the UI view, in Airflow's API server."""
    return getattr(task, "operator_class_paths", None) is not None and getattr(task, "parsed", None) is None


def load_child(child_id: str, trigger: Any) -> Any:
    """The DAG ``trigger`` (a TriggerDagRunOperator task) starts: from the parent's DAG folder, or, in the UI
    view, as Airflow's DAG processor stored it (Airflow's API server never runs DAG code)."""
    if _stored_only(trigger):
        from airflow.models.serialized_dag import SerializedDagModel  # Airflow's model: only in the UI view

        from exporters.serialized import from_serialized

        row = SerializedDagModel.get(child_id)
        if row is None or row.data is None:
            raise DagLoadError(f"DAG {child_id!r} is not in Airflow's metadata database (the DAG processor stores it)")
        return from_serialized(row.data)
    from exporters.loader import load_dag  # the loader imports Airflow's DagBag: only for nested pipelines

    dag = trigger.dag
    folder = Path(dag.fileloc).parent if getattr(dag, "fileloc", None) else None
    return load_dag(child_id, folder)


def _check_child(task: Any, child_id: str) -> None:
    """The child DAG exists next to the parent and exports (so the nested machine can be deployed)."""
    from exporters.compiler import compile_dag  # the compiler imports the converters: resolve at call time

    if child_id in _COMPILING or child_id == task.dag.dag_id:
        raise Unsupported(f"triggering {child_id!r} forms a cycle of DAGs triggering each other")
    try:
        child = load_child(child_id, task)
    except DagLoadError as err:
        raise Unsupported(f"the triggered DAG cannot be loaded: {err}", "put it in the same DAG folder") from None
    _COMPILING.add(child_id)
    try:
        compile_dag(child)
    except ExportError as err:
        problems = "; ".join(str(p) for p in err.problems)
        raise Unsupported(f"the triggered DAG {child_id!r} cannot be exported: {problems}") from None
    finally:
        _COMPILING.discard(child_id)


def _is_trigger(task: Any) -> bool:
    paths = getattr(task, "operator_class_paths", None)  # a task of a serialized DAG: its classes by import path
    if paths is not None:
        return any(p.endswith(".TriggerDagRunOperator") for p in paths)
    return any(cls.__name__ == "TriggerDagRunOperator" for cls in type(task).__mro__)


@dataclass
class NestedChild:
    """A DAG started by another's TriggerDagRunOperator: its id, the DAG, and the params a trigger's conf sets."""

    dag_id: str
    dag: Any
    conf_keys: set[str] = field(default_factory=set)
    # What the triggers' conf sets each key to, as JSON text; UNKNOWN_CONF_VALUE where only a run knows it.
    conf_values: dict[str, set[str]] = field(default_factory=dict)

    def known_conf_value(self, key: str) -> tuple[bool, Any]:
        """(True, value) when every trigger sets ``key`` to the same value known at export time."""
        values = self.conf_values.get(key, {UNKNOWN_CONF_VALUE})
        if len(values) != 1 or UNKNOWN_CONF_VALUE in values:
            return False, None
        return True, json.loads(next(iter(values)))


UNKNOWN_CONF_VALUE = "<known per run>"
_PARAM_TEMPLATE = re.compile(r"\{\{\s*params\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def _conf_value_at_export(value: Any, parent: Any, parent_conf_keys: set[str]) -> str:
    """A conf value as the trigger renders it with the parent's param defaults, or UNKNOWN_CONF_VALUE.

    Only literals and a whole ``{{ params.x }}`` (read as a ``ParamRef``) qualify; a param the parent itself gets from a
    trigger's conf is only known per run."""
    whole = _PARAM_TEMPLATE.fullmatch(value.strip()) if isinstance(value, str) else None
    name = value.name if isinstance(value, ParamRef) else whole.group(1) if whole else None
    if name is not None:
        # Lazy: the compiler imports the converters (this module among them).
        from exporters.compiler import param_defaults

        defaults = param_defaults(parent)
        if name in parent_conf_keys or name not in defaults:
            return UNKNOWN_CONF_VALUE
        return json.dumps(defaults[name], sort_keys=True)
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        return UNKNOWN_CONF_VALUE
    if value is None or isinstance(value, (str, int, float, bool)):
        return json.dumps(value)
    return UNKNOWN_CONF_VALUE


def nested_children(dag: Any) -> list[NestedChild]:
    """The DAGs ``dag`` starts (``TriggerDagRunOperator``), and the DAGs they start: each once, a child
    before its parent (the order to deploy them in). Loaded as the converter loads them (``load_child``);
    a child that cannot be loaded raises ``DagLoadError``."""
    ordered: list[NestedChild] = []
    found: dict[str, NestedChild] = {}

    def visit(parent: Any) -> None:
        parent_conf_keys = found[parent.dag_id].conf_keys if parent.dag_id in found else set()
        for task in parent.tasks:
            if not _is_trigger(task):
                continue
            child_id = field_value(task, "trigger_dag_id")
            if not isinstance(child_id, str) or child_id == dag.dag_id:
                continue
            conf = field_value(task, "conf")
            first_time = child_id not in found
            if first_time:
                found[child_id] = NestedChild(child_id, load_child(child_id, task))
            child = found[child_id]
            # Recorded before the child is visited: its own triggers resolve against what this conf sets.
            child.conf_keys |= set(conf) if isinstance(conf, dict) else set()
            for key, value in conf.items() if isinstance(conf, dict) else ():
                child.conf_values.setdefault(key, set()).add(_conf_value_at_export(value, parent, parent_conf_keys))
            if first_time:
                visit(child.dag)
                ordered.append(child)

    visit(dag)
    return ordered


@register_lazy("airflow.providers.standard.operators.trigger_dagrun", "TriggerDagRunOperator")
def convert_trigger_dag_run(task: Any, ctx: ConvertContext) -> Fragment:
    from exporters.deploy import state_machine_name  # deploy imports boto3 helpers: only when a DAG triggers

    child_id = field_value(task, "trigger_dag_id")
    if not isinstance(child_id, str):
        raise Unsupported("trigger_dag_id is only known at run time", "name the triggered DAG literally")
    for flag, why in (
        ("reset_dag_run", "clears an existing run of the child; an execution cannot be cleared and rerun"),
        ("skip_when_already_exists", "needs the skipped outcome the exported machine cannot record yet"),
        ("fail_when_dag_is_paused", "a state machine cannot be paused"),
    ):
        if getattr(task, flag, False):
            raise Unsupported(f"{flag}=True: {why}", f"leave {flag} unset")
    logical_date = getattr(task, "logical_date", None)
    if logical_date is not None and type(logical_date).__name__ != "ArgNotSet":
        raise Unsupported("logical_date for the child run has no Step Functions meaning", "leave it unset")
    allowed = [str(getattr(s, "value", s)) for s in getattr(task, "allowed_states", ["success"])]
    failed = [str(getattr(s, "value", s)) for s in getattr(task, "failed_states", ["failed"])]
    if allowed != ["success"] or failed != ["failed"]:
        raise Unsupported(
            f"allowed_states {allowed} / failed_states {failed}: an execution ends SUCCEEDED or FAILED only",
            "keep the defaults (success / failed)",
        )
    conf = field_value(task, "conf") or {}
    if not isinstance(conf, dict):
        raise Unsupported("conf must be a JSON object (the child's params)")
    _check_child(task, child_id)

    here = f"$.{result_key(task.task_id)}"
    locate = asl.Pass(
        state_name(task.task_id),
        parameters={
            "StateMachineName": state_machine_name(child_id),
            "StateMachineArn.$": child_state_machine_arn(state_machine_name(child_id)),
        },
        result_path=here,
        comment=f"The state machine of DAG {child_id!r}, next to this one",
    )
    request: dict[str, Any] = {"Input": conf}
    run_id = field_value(task, "trigger_run_id")
    if run_id is not None:
        request["Name"] = run_id
    wait = bool(getattr(task, "wait_for_completion", False))
    start = ctx.task_state(
        task,
        "arn:aws:states:::states:startExecution" + (".sync:2" if wait else ""),
        ctx.parameters(task, request),
        name=state_name(task.task_id, "run child" if wait else "start child"),
        result_path=None,  # the operator's return value is None (it pushes only trigger_dag_id/run_id)
    )
    start.parameters["StateMachineArn.$"] = f"{here}.StateMachineArn"
    if run_id is None:
        # Step Functions names an execution started without a name by a UUID; say so explicitly.
        start.parameters["Name.$"] = "States.UUID()"
    locate.next = start.name
    return Fragment(entry=locate.name, states=[locate, start], exits=Fragment.single(start).exits)
