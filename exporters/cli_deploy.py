"""``python -m exporters deploy|start|executions|diff``: deploy with boto3 and look at what is deployed.

Wire into the CLI with ``add_subcommands(subparsers)`` and dispatch with ``run(args)``
(``args.command`` in ``COMMANDS``). Exit codes: 0 success (``diff``: no drift), 3 ``diff``
found drift, 4 ``diff``: not deployed. Every other failure (no region, no credentials, a
missing role, an AWS API error, a DAG that does not load or export) is raised as an
``ExporterError`` with its reason and fix, which ``python -m exporters`` prints (exit 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from exporters import deploy as dep
from exporters.aws_clients import AwsClients, aws_errors

COMMANDS = ("deploy", "start", "executions", "diff")


def _json_object(text: str) -> dict[str, Any]:
    """``--input``: a JSON object, or ``@file`` holding one."""
    source = text
    if text.startswith("@"):
        try:
            source = Path(text[1:]).read_text()
        except OSError as err:
            raise argparse.ArgumentTypeError(f"cannot read {text[1:]}: {err.strerror or err}") from None
    try:
        value = json.loads(source)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            "must be a JSON object, e.g. '{\"threshold\": 0.2}' (it overrides the DAG's params)"
        )
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _aws_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dag_id", metavar="DAG_ID")
    parser.add_argument("--region", help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION / the profile's)")
    parser.add_argument(
        "--endpoint-url", help="send every AWS call here, e.g. a local emulator (default: AWS_ENDPOINT_URL or AWS)"
    )
    parser.add_argument("--name", help="state machine name (default: derived from DAG_ID; 1-80 chars of [0-9A-Za-z_-])")


def add_subcommands(subparsers: Any) -> None:
    """Add ``deploy``, ``start``, ``executions`` and ``diff`` to an argparse subparsers object."""
    deploy = subparsers.add_parser(
        "deploy",
        help="create or update the state machine, its 'live' alias and its EventBridge schedule (idempotent)",
        description="Deploy DAG_ID with boto3: state machine (new version + alias 'live' on change) "
        "and EventBridge Scheduler schedule. "
        "IAM roles are not created: pass them or deploy the CloudFormation template that creates them.",
    )
    _aws_options(deploy)
    deploy.add_argument("--dags-folder", default=None, help="default: Airflow's [core] dags_folder")
    deploy.add_argument(
        "--role-arn", help="role the state machine runs as (default: the deployed one, else IAM role NAME-sfn-role)"
    )
    deploy.add_argument(
        "--schedule-role-arn",
        help="role EventBridge Scheduler uses to start executions "
        "(default: the deployed one, else NAME-scheduler-role)",
    )
    deploy.add_argument(
        "--no-schedule", action="store_true", help="deploy only the state machine; leave any schedule untouched"
    )
    _concurrency_table_option(deploy)

    start = subparsers.add_parser("start", help="start an execution of the 'live' alias; prints the execution ARN")
    _aws_options(start)
    start.add_argument(
        "--input",
        type=_json_object,
        default=None,
        metavar="JSON",
        help="execution input (JSON object or @file); overrides the params' defaults",
    )
    start.add_argument("--execution-name", help="execution name (default: generated)")

    executions = subparsers.add_parser("executions", help="list recent executions with status and start/stop times")
    _aws_options(executions)
    executions.add_argument("--max", type=_positive, default=20, help="how many (default 20)")

    diff = subparsers.add_parser(
        "diff", help="drift check: deployed definition vs a fresh export (exit 3 on drift, 4 when not deployed)"
    )
    _aws_options(diff)
    diff.add_argument("--dags-folder", default=None, help="default: Airflow's [core] dags_folder")
    _concurrency_table_option(diff)


def _concurrency_table_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency-table",
        metavar="NAME",
        help="DynamoDB table holding the run slots of a DAG with max_active_runs (it must exist; default: "
        "airflow-run-slots; the CloudFormation template creates one)",
    )


def run(args: argparse.Namespace, *, clients: AwsClients | None = None) -> int:
    """Run one of ``COMMANDS``; returns the exit code, raises ``ExporterError`` for the CLI to report."""
    if clients is None:
        clients = AwsClients(region=args.region, endpoint_url=args.endpoint_url)
    with aws_errors(clients.endpoint_label):
        if args.command == "deploy":
            report = dep.deploy(
                args.dag_id,
                clients=clients,
                dags_folder=args.dags_folder,
                name=args.name,
                role_arn=args.role_arn,
                schedule_role_arn=args.schedule_role_arn,
                with_schedule=not args.no_schedule,
                concurrency_table=args.concurrency_table,
            )
            print("\n".join(deploy_report_lines(report)))
            return 0
        name = dep.check_name(args.name) if args.name else dep.state_machine_name(args.dag_id)
        if args.command == "start":
            print(dep.start(clients, name, args.input, args.execution_name)["executionArn"])
            return 0
        if args.command == "executions":
            items = dep.executions(clients, name, args.max)
            print(dep.format_executions(items) if items else f"no executions of {name!r} yet")
            return 0
        if args.command == "diff":
            return _diff(args, clients)
    raise ValueError(f"unknown command {args.command!r}")


def _diff(args: argparse.Namespace, clients: AwsClients) -> int:
    try:
        result = dep.diff(
            clients,
            args.dag_id,
            name=args.name,
            dags_folder=args.dags_folder,
            concurrency_table=args.concurrency_table,
        )
    except dep.NotDeployed as err:
        print(f"not deployed: {err}", file=sys.stderr)
        return dep.NOT_DEPLOYED
    if result.code == dep.NO_DRIFT:
        print(f"no drift: {result.deployed_label} matches a fresh export of DAG {args.dag_id!r}")
    else:
        sys.stdout.write(result.text)
        print(
            f"drift: {result.deployed_label} differs from a fresh export of DAG {args.dag_id!r}; "
            "`python -m exporters deploy` updates it",
            file=sys.stderr,
        )
    return result.code


def deploy_report_lines(report: dep.DeployReport) -> list[str]:
    """The deploy report as the lines the CLI prints (the nested pipelines it starts first)."""
    lines: list[str] = []
    for child in report.children:
        lines += [f"Nested pipeline of DAG {report.dag_id!r}:"] + _one_report_lines(child)[:-1]
    return lines + _one_report_lines(report)


def _one_report_lines(report: dep.DeployReport) -> list[str]:
    machine, alias, schedule = report.state_machine, report.alias, report.schedule
    version = dep.version_number(machine.version_arn)
    lines = [f"Deploying DAG {report.dag_id!r} as state machine {report.state_machine_name!r} ({report.where})"]
    lines += [f"  export warning: {warning}" for warning in report.export_warnings]
    action = f"{machine.action} ({', '.join(machine.changed)})" if machine.changed else machine.action
    lines.append(f"  state machine: {action}, version {version}  {report.state_machine_arn}")
    if machine.tagged:
        lines.append(f"  tags added: {dep.DAG_ID_TAG}={report.dag_id}, {dep.MANAGED_BY_TAG}={dep.MANAGED_BY}")
    moved = alias.action
    if alias.action == "moved" and alias.previous_version_arn:
        moved = f"moved from version {dep.version_number(alias.previous_version_arn)}"
    lines.append(f"  alias {dep.ALIAS} -> version {version}: {moved}")
    runs_on = f"{schedule.expression} -> alias {dep.ALIAS}"
    lines.append(
        {
            "skipped": "  schedule: not touched (--no-schedule)",
            "none": "  schedule: none (the DAG has no schedule; trigger with `python -m exporters start`)",
            "deleted": f"  schedule {schedule.name}: deleted (the DAG has no schedule)",
            "created": f"  schedule {schedule.name}: created, {runs_on}",
            "updated": f"  schedule {schedule.name}: updated ({', '.join(schedule.changes)}), {runs_on}",
            "unchanged": f"  schedule {schedule.name}: unchanged, {runs_on}",
        }[schedule.action]
    )
    if schedule.state != "ENABLED":
        lines.append(f"  note: schedule {schedule.name} is {schedule.state} (paused); left as it is")
    lines += [f"  {note}" for note in report.notes]
    lines.append("Done." if report.changed else "Done: nothing to change.")
    return lines
