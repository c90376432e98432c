"""Registers the Step Functions view when this repository's ``plugins/`` is Airflow's plugins folder.

A ``pip install`` of the distribution registers the same plugin through the ``airflow.plugins``
entry point (see ``pyproject.toml``). Airflow loads the plugins folder first and then refuses a
second plugin of the same name with an import error ("already registered"), so this file stands
aside when the entry point is installed: the installed distribution's plugin is the one loaded.
"""

from __future__ import annotations

from importlib.metadata import entry_points

ENTRY_POINT = "stepfunctions_view"

if not entry_points(group="airflow.plugins", name=ENTRY_POINT):
    from stepfunctions_ui.plugin import StepFunctionsViewPlugin

    __all__ = ["StepFunctionsViewPlugin"]
