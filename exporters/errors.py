"""The exporter's errors: one base carrying what is wrong and what to do, caught once by the CLI.

Every problem a user can fix is an ``ExporterError(reason, fix)``: ``reason`` names what is wrong
and where (DAG, task, field, file, AWS resource), ``fix`` says what to change. ``python -m exporters``
catches ``ExporterError`` in one place, prints both and exits 1; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class ExporterError(Exception):
    """A problem the user can fix: ``reason`` (what and where) and ``fix`` (what to do; may be empty)."""

    def __init__(self, reason: str, fix: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.reason}\n  fix: {self.fix}" if self.fix else self.reason


@dataclass(frozen=True)
class Problem:
    """One reason a task (or the DAG, ``task_id`` None) cannot be exported, and its fix."""

    task_id: str | None
    reason: str
    fix: str = ""

    def __str__(self) -> str:
        where = f"task {self.task_id!r}" if self.task_id else "DAG"
        text = f"{where}: {self.reason}"
        return f"{text} -> {self.fix}" if self.fix else text


class ExportError(ExporterError):
    """The DAG cannot be exported faithfully. ``problems`` lists every offending task, each with its fix."""

    def __init__(self, dag_id: str, problems: list[Problem]):
        self.dag_id = dag_id
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"cannot export DAG {dag_id!r} to Step Functions ({len(problems)} problem(s)):\n{lines}")


class DagLoadError(ExporterError):
    """The DAG could not be loaded (unknown id, import error in the DAG file, no dags folder)."""
