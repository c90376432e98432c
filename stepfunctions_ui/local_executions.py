"""The view's "Local executions" section: runs of the DAG's machine by ``python -m exporters run DAG_ID --local``.

Read from the histories that command saves (``<export dir>/<dag_id>/executions/local-*.json``); the export
dir is ``$STEPFUNCTIONS_EXPORT_DIR``, else ``build/stepfunctions`` in this repository (the command's default
when run from here, as ``make run SFN=1`` does). Only names of the form the command writes are served, for
DAGs the user may read (the routes use the view's own ``readable_dag`` dependency).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.responses import Response

from exporters import local_run

EXPORT_DIR_ENV = "STEPFUNCTIONS_EXPORT_DIR"


def export_dir() -> Path:
    configured = os.environ.get(EXPORT_DIR_ENV)
    return Path(configured) if configured else Path(__file__).resolve().parents[1] / "build" / "stepfunctions"


def rows(dag_id: str, history_url: Callable[[str], str]) -> list[dict[str, Any]]:
    """Newest first: name, status, start, duration and the link to the saved history."""
    return [{**row, "url": history_url(row["name"])} for row in local_run.local_executions(export_dir(), dag_id)]


def add_routes(app: FastAPI, readable_dag: Callable[..., Any], in_thread: Callable[..., Awaitable[Any]]) -> None:
    """The routes; ``in_thread`` runs their file reads on the view's own threads."""

    @app.get("/dags/{dag_id}/executions/{execution}", name="dag_local_execution")
    async def local_execution(execution: str, record: Any = Depends(readable_dag)) -> Response:
        path = await in_thread(local_run.history_file, export_dir(), record.dag_id, execution)
        if path is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"No local execution {execution[:80]!r} of DAG {record.dag_id!r}."
            )
        return Response(
            await in_thread(path.read_bytes),
            media_type="application/json",
            headers={"Cache-Control": "no-store", "Content-Disposition": f'inline; filename="{path.name}"'},
        )

    @app.get("/api/dags/{dag_id}/executions", name="api_local_executions")
    async def api_local_executions(record: Any = Depends(readable_dag)) -> dict[str, Any]:
        executions = await in_thread(local_run.local_executions, export_dir(), record.dag_id)
        return {"dag_id": record.dag_id, "executions": executions}
