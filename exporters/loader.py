"""Load a DAG from a dags folder the way Airflow parses it (no DB, tasks never run)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from exporters.errors import DagLoadError

REPO = Path(__file__).resolve().parents[1]


def prepare_environment(plugins_folder: Path | None = None) -> None:
    """Make our operators importable and keep Airflow's home inside the repo when none is set."""
    os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".local" / "airflow"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    # Parsing chatter would drown the export summary.
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    for extra in (plugins_folder or REPO / "plugins", REPO):
        if str(extra) not in sys.path:
            sys.path.insert(0, str(extra))


def load_dag(dag_id: str, dags_folder: str | Path = REPO / "dags") -> Any:
    prepare_environment()
    folder = Path(dags_folder)
    if not folder.exists():
        raise DagLoadError(f"dags folder {str(folder)!r} does not exist")
    from airflow.dag_processing.dagbag import DagBag

    quiet = logging.getLogger("airflow")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        bag = DagBag(dag_folder=str(folder))
    finally:
        quiet.setLevel(level)
    if dag_id in bag.dags:
        return bag.dags[dag_id]
    if bag.import_errors:
        details = "\n".join(f"  {path}: {str(err).strip().splitlines()[-1]}" for path, err in sorted(bag.import_errors.items()))
        raise DagLoadError(f"DAG {dag_id!r} not found in {folder}; these files failed to import:\n{details}")
    known = ", ".join(sorted(bag.dags)) or "none"
    raise DagLoadError(f"DAG {dag_id!r} not found in {folder} (DAGs there: {known})")
