"""Load a DAG from a dags folder the way Airflow parses it (no DB, tasks never run)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from exporters.errors import DagLoadError


def prepare_environment() -> None:
    """Quiet parsing; the operators are importable wherever the DAGs' own Airflow finds them."""
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    # Parsing chatter would drown the export summary.
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")


def default_dags_folder() -> Path:
    """Airflow's configured ``[core] dags_folder`` (``AIRFLOW__CORE__DAGS_FOLDER`` or airflow.cfg)."""
    configured = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER")
    if configured:
        return Path(configured)
    prepare_environment()
    from airflow.configuration import conf  # Airflow's config import is slow; only when no env var says

    return Path(conf.get("core", "dags_folder"))


def load_dag(dag_id: str, dags_folder: str | Path | None = None) -> Any:
    prepare_environment()
    folder = Path(dags_folder) if dags_folder else default_dags_folder()
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
        details = "\n".join(
            f"  {path}: {str(err).strip().splitlines()[-1]}" for path, err in sorted(bag.import_errors.items())
        )
        raise DagLoadError(f"DAG {dag_id!r} not found in {folder}; these files failed to import:\n{details}")
    known = ", ".join(sorted(bag.dags)) or "none"
    raise DagLoadError(f"DAG {dag_id!r} not found in {folder} (DAGs there: {known})")
