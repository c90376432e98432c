"""The Airflow plugin: the Step Functions app, the views, their URLs.

Airflow imports every plugin module in every component that loads plugins (the API server, and
each task's worker process, for macros). The FastAPI app is only needed by the API server, so
``LazyApp`` builds it on its first request: importing the plugin costs no FastAPI import in a
worker.
"""

from __future__ import annotations

import threading
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from stepfunctions_ui.admission import AdmissionMiddleware

URL_PREFIX = "/stepfunctions"
# Relative hrefs: the Airflow UI resolves them against its <base href> (the API server's root path).
DAG_VIEW_HREF = "stepfunctions/dags/{DAG_ID}"
OVERVIEW_HREF = "stepfunctions/"
ICON_HREF = "stepfunctions/static/icon.svg"


class LazyApp:
    """An ASGI app that builds ``stepfunctions_ui.app.create_app()`` on first use."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    @property
    def app(self) -> Any:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from stepfunctions_ui.app import create_app

                    self._app = create_app()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


APP = LazyApp()

FASTAPI_APPS = [{"app": APP, "url_prefix": URL_PREFIX, "name": "Step Functions view"}]
# In front of Airflow's router: a burst of view requests never floods the loop Airflow's own routes share.
FASTAPI_ROOT_MIDDLEWARES = [
    {
        "middleware": AdmissionMiddleware,
        "args": [],
        "kwargs": {"prefix": URL_PREFIX},
        "name": "Step Functions view admission",
    }
]

EXTERNAL_VIEWS = [
    {
        # A tab on every DAG's page: the DAG's state machine, validation, downloads, deployed diff.
        "name": "Step Functions",
        "href": DAG_VIEW_HREF,
        "destination": "dag",
        "url_route": "stepfunctions",
        "icon": ICON_HREF,
    },
    {
        # Browse menu: every DAG the user can read and whether it exports.
        "name": "Step Functions export",
        "href": OVERVIEW_HREF,
        "destination": "nav",
        "category": "browse",
        "url_route": "stepfunctions-dags",
        "icon": ICON_HREF,
    },
]


class StepFunctionsViewPlugin(AirflowPlugin):
    """Registered through the ``airflow.plugins`` entry point (pip install) or ``plugins/stepfunctions_view.py``."""

    name = "stepfunctions_view"
    fastapi_apps = FASTAPI_APPS
    fastapi_root_middlewares = FASTAPI_ROOT_MIDDLEWARES
    external_views = EXTERNAL_VIEWS
