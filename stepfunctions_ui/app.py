"""The FastAPI app of the Step Functions view, mounted by Airflow's API server at ``/stepfunctions``.

Every route sits behind Airflow's own authentication and authorisation, the same dependencies
Airflow's REST API uses (``airflow.api_fastapi.core_api.security``):

- who: ``get_user`` (the ``Authorization: Bearer`` token, else the UI's ``_token`` cookie). No
  or an expired token: 401; browsers asking for a page are redirected to the auth manager's
  login page instead, with ``next`` back to the page;
- what: ``requires_access_dag("GET")`` for everything about one DAG (403 when the auth manager
  says no); the overview lists only ``get_authorized_dag_ids(user)``.

DAG ids in URLs must match Airflow's id rule (letters, digits, ``_``, ``-``, ``.``; not ``.``
or ``..``): anything else is a 400; an id unknown to Airflow's DB is a 404 with a message. No
DAG file is ever read: the export is compiled from the serialized DAG the DAG processor stored
(``service``). Routes are async: a request waiting for a build or for AWS holds no worker thread
and no database session (each DB look-up opens and closes its own short session); a build still
running after ``service.WAIT_SECONDS`` answers 503 with ``Retry-After``.

Threads: the blocking parts of a request (the authorisation check, the DB look-up, rendering a page)
run on this app's own ``REQUEST_THREADS`` threads, never on the thread pool Airflow's own sync routes
share (anyio's default), so a burst of viewers cannot take the threads Airflow's ``/api/v2/...``
need, and at most that many of our threads compete for the server's GIL. Concurrent requests for
the same DAG share one DB look-up of its latest version.

Routes (relative to the mount):

- ``GET /``: overview, every readable DAG and whether it exports (HTML); ``GET /api/dags``: same, JSON
- ``GET /dags/{dag_id}``: the view (HTML); ``GET /api/dags/{dag_id}``: the export as JSON
- ``GET /dags/{dag_id}/definition.json`` / ``template.json``: downloads; ``graph.svg``: the graph
- ``GET /dags/{dag_id}/deployed`` (HTML fragment) / ``GET /api/dags/{dag_id}/deployed`` (JSON):
  the comparison with what is deployed in AWS
- ``GET /static/icon.svg``: the menu icon
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from airflow.utils.session import create_session
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from stepfunctions_ui import aws, local_executions, service
from stepfunctions_ui.admission import stepped_aside

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
FRAGMENTS = {"dag_deployed"}  # HTML pieces the view fetches
STATUS_LABELS = {
    "exportable": "Exportable",
    "not-exportable": "Not exportable",
    "load-error": "Cannot load",
    "building": "Building…",
}
RETRY_AFTER_SECONDS = 5
REQUEST_THREADS = 2  # this app's own threads for the blocking parts of requests: few, they share the GIL
DEPLOYED_LABELS = {
    "in-sync": "In sync",
    "drift": "Drift",
    "not-deployed": "Not deployed",
    "not-connected": "Not connected",
    "unreachable": "Unreachable",
    "error": "Error",
    "not-exportable": "Not exportable",
    "pending": "Comparing…",
}
ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="#c2185b" stroke-width="2" '
    'stroke-linecap="round" stroke-linejoin="round"><rect x="3" y="3" width="7" height="5" rx="1"/>'
    '<rect x="14" y="16" width="7" height="5" rx="1"/><rect x="3" y="16" width="7" height="5" rx="1"/>'
    '<path d="M6.5 8v3h11v5M6.5 11v5"/></svg>'
)


def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
    )


class Pages:
    def __init__(self) -> None:
        self.env = _templates()

    def render(self, name: str, **context: Any) -> str:
        return self.env.get_template(name).render(**context)


def mount_path(request: Request, name: str, **params: Any) -> str:
    """A route's path as the browser sees it (API root path + mount prefix + route)."""
    return request.scope.get("root_path", "").rstrip("/") + str(request.app.url_path_for(name, **params))


def _wants_html(request: Request) -> bool:
    route = request.scope.get("route")
    if route is not None:
        return getattr(route, "response_class", None) is HTMLResponse
    return (
        not request.url.path.rstrip("/").split("/")[-1].endswith((".json", ".svg")) and "/api/" not in request.url.path
    )


def _login_url(request: Request) -> str | None:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    try:
        return get_auth_manager().get_url_login(next_url=target)
    except Exception:  # noqa: BLE001 - an auth manager without a login URL
        return None


_threads = concurrent.futures.ThreadPoolExecutor(max_workers=REQUEST_THREADS, thread_name_prefix="sfn-request")


async def in_thread(work: Callable[..., Any], *args: Any) -> Any:
    """``work(*args)`` on this app's own threads (not Airflow's shared pool); the request waits without one."""
    return await asyncio.wrap_future(_threads.submit(work, *args))


class SharedLookups:
    """The latest stored version of a DAG: concurrent requests for the same DAG share one DB look-up."""

    def __init__(self) -> None:
        self._running: dict[str, concurrent.futures.Future] = {}
        self._lock = threading.Lock()

    async def find(self, dag_id: str) -> service.DagRecord | None:
        with self._lock:
            future = self._running.get(dag_id)
            if future is None:
                future = _threads.submit(self._find, dag_id)
                self._running[dag_id] = future
        return await asyncio.wrap_future(future)

    def _find(self, dag_id: str) -> service.DagRecord | None:
        try:
            with create_session(scoped=False) as session:
                return service.find_dag(dag_id, session)
        finally:
            with self._lock:
                self._running.pop(dag_id, None)


LOOKUPS = SharedLookups()


async def readable_dag(request: Request, dag_id: str, user: GetUserDep) -> service.DagRecord:
    """Authenticated (``user``), a well-formed id, authorised to read that DAG, and known to Airflow.

    The authorisation check and the look-up run on this app's threads; each DB session lives only for its query.
    """
    if not service.valid_dag_id(dag_id):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"{dag_id[:100]!r} is not a DAG id: DAG ids are letters, digits, '_', '-' and '.'.",
        )
    await in_thread(requires_access_dag("GET"), request, user)
    record = await LOOKUPS.find(dag_id)
    if record is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"No DAG {dag_id!r} in Airflow. The overview lists the DAGs you can read.",
        )
    return record


def create_app() -> FastAPI:
    pages = Pages()
    app = FastAPI(
        title="Step Functions view",
        description="The Step Functions export of each DAG (graph, validation, downloads, deployed comparison).",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(StarletteHTTPException)
    async def http_errors(request: Request, exc: StarletteHTTPException) -> Response:
        headers = getattr(exc, "headers", None)
        if not _wants_html(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)
        login = _login_url(request) if exc.status_code == status.HTTP_401_UNAUTHORIZED else None
        route = request.scope.get("route")
        if getattr(route, "name", None) in FRAGMENTS:  # fetched by a page: a short answer, never the login page
            return HTMLResponse(
                f"<p>{exc.status_code}: {html.escape(str(exc.detail))}</p>", status_code=exc.status_code
            )
        if login and "text/html" in request.headers.get("accept", ""):
            return RedirectResponse(login, status_code=status.HTTP_303_SEE_OTHER)
        titles = {400: "Bad request", 401: "Sign in to see this page", 403: "Not allowed", 404: "Not found"}
        body = pages.render(
            "error.html",
            title=titles.get(exc.status_code, "Error"),
            message=str(exc.detail),
            login_url=login,
            overview_url=_overview_path(request),
        )
        return HTMLResponse(body, status_code=exc.status_code, headers=headers)

    # -- overview --------------------------------------------------------------
    def readable_records(user: Any) -> list[service.DagRecord]:
        with create_session(scoped=False) as session:
            allowed = get_auth_manager().get_authorized_dag_ids(user=user, method="GET", session=session)
            return service.list_dags(session, allowed)

    async def overview_rows(request: Request, user: Any) -> list[dict[str, Any]]:
        records = await in_thread(readable_records, user)
        builds = {r.key: service.CACHE.start(r) for r in records if service.CACHE.cached(r) is None}
        if builds:  # every build under way at once, one shared bound (no thread held while waiting)
            async with stepped_aside():
                await asyncio.wait([asyncio.wrap_future(f) for f in builds.values()], timeout=service.WAIT_SECONDS)
        rows = []
        for record in records:
            view = service.CACHE.cached(record)
            status_ = view.status if view is not None else "building"
            rows.append(
                {
                    "dag_id": record.dag_id,
                    "version": record.version_number,
                    "status": status_,
                    "label": STATUS_LABELS[status_],
                    "exportable": bool(view and view.exportable),
                    "states": view.state_count if view else 0,
                    "problems": (len(view.problems) + len(view.invalid) + (1 if view.load_error else 0)) if view else 0,
                    "warnings": len(view.warnings) if view else 0,
                    "integrations": len(view.integrations) if view else 0,
                    "url": mount_path(request, "dag_view", dag_id=record.dag_id),
                }
            )
        return rows

    @app.get("/", response_class=HTMLResponse, name="overview")
    async def overview(request: Request, user: GetUserDep) -> HTMLResponse:
        rows = await overview_rows(request, user)
        exportable = sum(1 for r in rows if r["exportable"])
        body = await in_thread(lambda: pages.render("overview.html", rows=rows, exportable=exportable))
        return HTMLResponse(body, headers={"Cache-Control": "no-store"})

    @app.get("/api/dags", name="api_dags")
    async def api_dags(request: Request, user: GetUserDep) -> dict[str, Any]:
        rows = await overview_rows(request, user)
        for row in rows:
            row.pop("label")
        return {"dags": rows, "total_entries": len(rows)}

    # -- one DAG ---------------------------------------------------------------
    async def load(record: service.DagRecord) -> tuple[service.ExportView, float]:
        started = time.perf_counter()
        try:
            view = await service.CACHE.get(record)
        except service.StillBuilding as err:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, str(err), headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
            ) from None
        return view, (time.perf_counter() - started) * 1000

    def page_of(request: Request, view: service.ExportView, svg: str | None, svg_note: str | None) -> str:
        """The view's page, rendered again only when what it shows besides the export changed (a big DAG's is slow)."""
        local_runs = local_executions.rows(
            view.dag_id, lambda name: mount_path(request, "dag_local_execution", dag_id=view.dag_id, execution=name)
        )
        depends_on = (request.scope.get("root_path", ""), svg_note, json.dumps(local_runs, sort_keys=True))
        page = view.page
        if page is not None and page[0] == depends_on:
            return page[1]
        template_json, template_note = view.template()
        urls = {
            name: mount_path(request, f"dag_{name}", dag_id=view.dag_id)
            for name in ("definition", "template", "deployed", "graph")
        }
        body = pages.render(
            "view.html",
            view=view,
            status_label=STATUS_LABELS[view.status],
            svg=svg,
            svg_note=svg_note,
            template_json=template_json,
            template_note=template_note,
            stages=view.stages(),
            urls=urls,
            local_runs=local_runs,
            overview_url=mount_path(request, "overview"),
        )
        view.page = (depends_on, body)
        return body

    @app.get("/dags/{dag_id}", response_class=HTMLResponse, name="dag_view")
    async def dag_view(request: Request, record: service.DagRecord = Depends(readable_dag)) -> HTMLResponse:
        view, took = await load(record)
        svg, svg_note = view.svg()  # rendered by the build
        body = await in_thread(page_of, request, view, svg, svg_note)
        return HTMLResponse(body, headers={"Server-Timing": f"export;dur={took:.1f}", "Cache-Control": "no-store"})

    @app.get("/api/dags/{dag_id}", name="api_dag")
    async def api_dag(record: service.DagRecord = Depends(readable_dag)) -> Response:
        view, _ = await load(record)
        if view.api_json is None:  # encoded once per DAG version, off the event loop (a big DAG's is large)
            view.api_json = await in_thread(_api_json, view, record)
        return Response(view.api_json, media_type="application/json")

    @app.get("/dags/{dag_id}/definition.json", name="dag_definition")
    async def dag_definition(record: service.DagRecord = Depends(readable_dag)) -> Response:
        view, _ = await load(record)
        if not view.exportable:
            raise HTTPException(status.HTTP_409_CONFLICT, _not_exportable(view))
        return Response(
            view.definition_json,
            media_type="application/json",
            headers={
                "Content-Disposition": f'attachment; filename="{view.dag_id}.asl.json"',
                "Cache-Control": "no-store",
            },
        )

    @app.get("/dags/{dag_id}/template.json", name="dag_template")
    async def dag_template(record: service.DagRecord = Depends(readable_dag)) -> Response:
        view, _ = await load(record)
        if not view.exportable:
            raise HTTPException(status.HTTP_409_CONFLICT, _not_exportable(view))
        template_json, note = view.template()
        if template_json is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, note)
        return Response(
            template_json,
            media_type="application/json",
            headers={
                "Content-Disposition": f'attachment; filename="{view.dag_id}.cfn.json"',
                "Cache-Control": "no-store",
            },
        )

    @app.get("/dags/{dag_id}/graph.svg", name="dag_graph")
    async def dag_graph(record: service.DagRecord = Depends(readable_dag)) -> Response:
        view, _ = await load(record)
        svg, note = view.svg()  # rendered by the build
        if svg is None:
            raise HTTPException(
                status.HTTP_409_CONFLICT if view.definition is None else status.HTTP_503_SERVICE_UNAVAILABLE, note
            )
        return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})

    @app.get("/dags/{dag_id}/deployed", response_class=HTMLResponse, name="dag_deployed")
    async def dag_deployed(record: service.DagRecord = Depends(readable_dag)) -> HTMLResponse:
        view, _ = await load(record)
        outcome = await aws.compare_async(view)
        body = pages.render("deployed.html", d=outcome, label=DEPLOYED_LABELS.get(outcome.state, outcome.state))
        return HTMLResponse(body, headers={"Cache-Control": "no-store"})

    @app.get("/api/dags/{dag_id}/deployed", name="api_deployed")
    async def api_deployed(record: service.DagRecord = Depends(readable_dag)) -> dict[str, Any]:
        view, _ = await load(record)
        return (await aws.compare_async(view)).to_dict()

    local_executions.add_routes(app, readable_dag, in_thread)  # runs of the machine by `exporters run --local`

    @app.get("/static/icon.svg", name="icon")
    async def icon(user: GetUserDep) -> Response:
        return Response(ICON, media_type="image/svg+xml", headers={"Cache-Control": "private, max-age=3600"})

    return app


def _api_json(view: service.ExportView, record: service.DagRecord) -> bytes:
    template_json, template_note = view.template()
    payload = {
        "dag_id": view.dag_id,
        "version": record.version_number,
        "version_label": view.version,
        "dag_hash": record.dag_hash,
        "status": view.status,
        "exportable": view.exportable,
        "load_error": view.load_error,
        "headline": view.headline,
        "problems": view.problems,
        "invalid": view.invalid,
        "warnings": view.warnings,
        "integrations": view.integrations,
        "stages": [{"task_id": t, "states": s} for t, s in view.stages()],
        "definition": view.definition if view.exportable else None,
        "template_available": template_json is not None,
        "template_note": template_note,
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def _overview_path(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/") + "/"


def _not_exportable(view: service.ExportView) -> str:
    if view.load_error:
        return view.load_error
    lines = [view.headline or f"DAG {view.dag_id!r} cannot be exported"]
    lines += [f"  - {p}" for p in [*view.problems, *view.invalid]]
    return "\n".join(lines)
