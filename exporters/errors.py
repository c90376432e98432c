"""Export problems: collected per task, reported all at once, never half a workflow."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    task_id: str | None
    reason: str
    fix: str = ""

    def __str__(self) -> str:
        where = f"task {self.task_id!r}" if self.task_id else "DAG"
        text = f"{where}: {self.reason}"
        return f"{text} -> {self.fix}" if self.fix else text


class ExportError(Exception):
    """The DAG cannot be exported faithfully. ``problems`` lists every offending task."""

    def __init__(self, dag_id: str, problems: list[Problem]):
        self.dag_id = dag_id
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"cannot export DAG {dag_id!r} to Step Functions ({len(problems)} problem(s)):\n{lines}")


class DagLoadError(Exception):
    """The DAG could not be loaded (unknown id, import error in the DAG file)."""
