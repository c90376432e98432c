"""``python -m exporters`` (also installed as ``airflow-stepfunctions``): export, graph, validate,
deploy, start, executions, diff, run (--local).

Exit 0 on success, 1 on a problem with the DAG, the definition or AWS (printed as ``error:``
with its reason and ``fix:``; never a traceback), 2 on usage errors; ``diff``: 3 drift, 4 not deployed.
Every ``ExporterError`` is caught here, once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from exporters.loader import load_dag, prepare_environment

# First, before any module below imports Airflow: Airflow configures its logging once, at its first
# import, and the CLI's output must not carry its parsing chatter.
prepare_environment()

from exporters import cli_deploy, local_run  # noqa: E402
from exporters.api import (  # noqa: E402
    DEFINITION_FILE,
    export_dag_object,
    export_result,
    validate,
    write_atomically,
)
from exporters.aws_clients import AwsClients  # noqa: E402
from exporters.cloudformation import TEMPLATE_FILE, build_template, template_json  # noqa: E402
from exporters.errors import ExporterError  # noqa: E402
from exporters.rendering import render  # noqa: E402
from exporters.validation import validate_definition  # noqa: E402

DEFAULT_OUT = Path("build/stepfunctions")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m exporters", description="Export Airflow DAGs to AWS Step Functions."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    export = sub.add_parser("export", help="write OUT/DAG_ID/state_machine.asl.json and template.json, print a summary")
    export.add_argument("dag_id")
    export.add_argument("--dags-folder", default=None, help="default: Airflow's [core] dags_folder")
    export.add_argument("--out", default=str(DEFAULT_OUT))
    export.add_argument(
        "--schedule-kind",
        choices=("scheduler", "events-rule", "none"),
        default="scheduler",
        help="the DAG's schedule as an EventBridge Scheduler schedule (default), a classic EventBridge rule, or none",
    )
    export.add_argument(
        "--allow-unsupported-schedule",
        action="store_true",
        help="export without a schedule (and a warning) when AWS cannot express the DAG's schedule",
    )
    export.add_argument(
        "--with-lambda",
        type=Path,
        metavar="HANDLER_PY",
        help="include the Lambda function from this handler file (e.g. lambda/query_training_status.py) and its role",
    )
    export.add_argument(
        "--with-glue",
        type=Path,
        metavar="SCRIPT_PY",
        help="include the Glue job for this script (e.g. glue/churn_etl.py) and its role",
    )
    export.add_argument(
        "--logging-level",
        choices=("ALL", "ERROR", "FATAL", "OFF"),
        default="ERROR",
        help="CloudWatch Logs level of the state machine",
    )
    export.add_argument("--tracing", action="store_true", help="enable X-Ray tracing")

    graph = sub.add_parser("graph", help="render the exported state machine (Graphviz)")
    graph.add_argument("dag_id")
    graph.add_argument("--format", choices=("svg", "png"), default="svg")
    graph.add_argument("--dags-folder", default=None, help="default: Airflow's [core] dags_folder")
    graph.add_argument("--out", default=str(DEFAULT_OUT))

    validate = sub.add_parser("validate", help="validate an existing ASL definition file")
    validate.add_argument("file")

    cli_deploy.add_subcommands(sub)  # deploy, start, executions, diff
    local_run.add_subcommand(sub)  # run DAG_ID --local
    return parser


def main(argv: list[str] | None = None, *, clients: AwsClients | None = None) -> int:
    """Run the CLI; ``clients`` replaces the AWS clients of the AWS commands (tests, embedding)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "export":
            return _export(args)
        if args.command == "graph":
            return _graph(args)
        if args.command == "validate":
            return _validate(args)
        if args.command == "run":
            return local_run.command(args)
        return cli_deploy.run(args, clients=clients)
    except ExporterError as err:
        print(f"error: {err.reason}", file=sys.stderr)
        if err.fix:
            print(f"  fix: {err.fix}", file=sys.stderr)
        return 1


def _export(args: argparse.Namespace) -> int:
    for flag, path in (("--with-lambda", args.with_lambda), ("--with-glue", args.with_glue)):
        if path is not None and not path.is_file():
            raise ExporterError(f"{flag} {path}: no such file", f"give the path of the Python file {flag} packages")
    # Through Airflow's serialization, as the UI view reads it: the same files from both.
    from exporters.serialized import as_view  # imports Airflow: slow, and the CLI's --help needs none of it

    dag = as_view(load_dag(args.dag_id, args.dags_folder))
    result = export_dag_object(dag)
    problems = validate_definition(result.definition)
    if problems:  # our own bug if it happens; never write an invalid definition
        raise ExporterError(
            f"the exported definition of DAG {args.dag_id!r} is invalid:\n" + "\n".join(f"  - {p}" for p in problems),
            "this is an exporter bug: report it with the DAG file",
        )
    try:
        template = build_template(
            result,
            dag,
            schedule_kind=args.schedule_kind,
            allow_unsupported_schedule=args.allow_unsupported_schedule,
            include_lambda=args.with_lambda is not None,
            include_glue=args.with_glue is not None,
            lambda_source=args.with_lambda,
            glue_script=args.with_glue,
            logging_level=None if args.logging_level == "OFF" else args.logging_level,
            tracing=args.tracing,
        )
    except ExporterError:
        raise
    except ValueError as err:  # PolicyError, TemplateError: what to change is in the message
        raise ExporterError(f"DAG {args.dag_id!r}: {err}") from None
    # Both files or neither: each is written whole, and only once both are built.
    folder = Path(args.out) / args.dag_id
    write_atomically(folder / DEFINITION_FILE, result.to_json())
    write_atomically(folder / TEMPLATE_FILE, template_json(template))
    _summary(result, folder / DEFINITION_FILE, folder / TEMPLATE_FILE)
    return 0


def _summary(result: Any, target: Path, template: Path) -> None:
    states = result.definition["States"]
    print(f"Exported DAG {result.dag_id!r} -> {target}")
    print(f"  CloudFormation template -> {template}")
    print(f"  {len(states)} states: " + ", ".join(states))
    print("  integrations: " + (", ".join(result.integrations) or "none"))
    if result.warnings:
        print("  warnings:")
        for warning in result.warnings:
            print(f"    - {warning}")
    else:
        print("  warnings: none")


def _graph(args: argparse.Namespace) -> int:
    result = export_result(args.dag_id, args.dags_folder)
    try:
        data = render(result.definition, args.format, title=args.dag_id)
    except RuntimeError as err:  # Graphviz missing or failing: the message says which
        raise ExporterError(str(err)) from None
    target = Path(args.out) / args.dag_id / f"state_machine.{args.format}"
    write_atomically(target, data)
    print(f"Rendered {args.dag_id!r} -> {target}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    problems = validate(args.file)
    if problems:
        print(f"{args.file}: invalid ({len(problems)} problem(s))")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    definition = json.loads(Path(args.file).read_text())
    print(f"{args.file}: valid ({len(definition['States'])} top-level states)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
