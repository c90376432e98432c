"""Airflow plugin: a **Step Functions** view for every DAG, and an overview of which DAGs export.

- ``fastapi_apps``: the view's app on the API server under ``/stepfunctions`` (behind Airflow's
  authentication and authorisation; see ``retraining.ui.app``);
- ``external_views``: a "Step Functions" tab on each DAG's page and a "Step Functions export"
  entry in the Browse menu, both showing that app inside the Airflow UI.

The console links on our operators' task instances are declared on the operator classes
(``operator_extra_links``, ``retraining.ui.links``): Airflow 3 computes them in the worker.
The code lives in ``plugins/retraining/ui/`` (``.airflowignore`` keeps the plugin scanner out
of ``retraining/``); this module only registers it.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from retraining.ui.plugin import EXTERNAL_VIEWS, FASTAPI_APPS


class StepFunctionsViewPlugin(AirflowPlugin):
    name = "stepfunctions_view"
    fastapi_apps = FASTAPI_APPS
    external_views = EXTERNAL_VIEWS
