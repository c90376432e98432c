"""The golden corpus: every exportable DAG's expected Step Functions definition, byte for byte.

Each DAG in ``tests/export_dags/good/`` (and the two retraining DAGs in ``dags/``) has its expected
definition in ``tests/golden/<dag_id>.asl.json``. ``tests/test_golden_corpus.py`` compares a fresh
export with each file; after an intended change to the exporter's output, regenerate them all with

    make golden          # = PYTHONPATH=. .venv/bin/python -m tests.golden_corpus

and review ``git diff tests/golden``. Files of DAGs that no longer exist are removed.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
SUFFIX = ".asl.json"
# The files whose DAGs form the corpus: the product's DAGs, then every DAG of the "good" examples.
SOURCES = (
    ROOT / "dags" / "model_retraining.py",
    ROOT / "dags" / "model_retraining_candidates.py",
    *sorted((ROOT / "tests" / "export_dags" / "good").glob("*.py")),
)


def load_corpus() -> dict[str, Any]:
    """Every DAG of ``SOURCES`` by id (parsed as Airflow parses them; an import error fails loudly)."""
    from airflow.dag_processing.dagbag import DagBag  # heavy: only when the corpus is built

    dags: dict[str, Any] = {}
    for source in SOURCES:
        bag = DagBag(dag_folder=str(source))
        if bag.import_errors:
            raise RuntimeError(f"{source} failed to import: {bag.import_errors}")
        for dag_id, dag in bag.dags.items():
            if dag_id in dags:
                raise RuntimeError(f"DAG id {dag_id!r} is defined twice in the golden corpus ({source})")
            dags[dag_id] = dag
    return dags


def convert_publish_event(task: Any, ctx: Any) -> Any:
    """The converter a team registers for ``custom_operator.py``'s PublishEventOperator (EventBridge PutEvents)."""
    from exporters.converters import Fragment  # the corpus module stays importable without the exporter loaded

    request = {
        "Entries": [
            {"EventBusName": task.bus, "DetailType": task.detail_type, "Detail": task.detail, "Source": "airflow"}
        ]
    }
    state = ctx.task_state(task, "arn:aws:states:::events:putEvents", ctx.parameters(task, request))
    return Fragment.single(state, ctx.layout(task))


@contextlib.contextmanager
def team_converters(dag: Any) -> Iterator[None]:
    """Register the corpus's custom converters for the operator classes of ``dag`` while exporting it."""
    from exporters import converters

    added = [type(task) for task in dag.tasks if type(task).__name__ == "PublishEventOperator"]
    for cls in added:
        converters.register(cls)(convert_publish_event)
    try:
        yield
    finally:
        for cls in added:
            converters._REGISTRY.pop(cls, None)


def export_text(dag: Any) -> str:
    """The exported definition's JSON text, exactly as ``python -m exporters export`` writes it."""
    from exporters.api import export_dag_object

    with team_converters(dag):
        return export_dag_object(dag).to_json()


def golden_path(dag_id: str) -> Path:
    return GOLDEN / f"{dag_id}{SUFFIX}"


def regenerate() -> list[str]:
    """Rewrite every golden file; return one line per file written, changed or removed."""
    report = []
    dags = load_corpus()
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for dag_id, dag in sorted(dags.items()):
        path = golden_path(dag_id)
        text = export_text(dag)
        before = path.read_text() if path.exists() else None
        if before != text:
            path.write_text(text)
            report.append(f"{'changed' if before is not None else 'new    '} {path.relative_to(ROOT)}")
    for stale in sorted(GOLDEN.glob(f"*{SUFFIX}")):
        if stale.name[: -len(SUFFIX)] not in dags:
            stale.unlink()
            report.append(f"removed {stale.relative_to(ROOT)}")
    return report


def main() -> int:
    from exporters.loader import prepare_environment

    prepare_environment()
    changes = regenerate()
    for line in changes:
        print(line)
    print(f"{len(changes)} golden file(s) changed" if changes else "golden files unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
