"""Registers the Step Functions view when this repository's ``plugins/`` is Airflow's plugins folder.

A ``pip install`` of the distribution registers the same plugin through the ``airflow.plugins``
entry point instead (see ``pyproject.toml``); Airflow keeps one plugin per name.
"""

from __future__ import annotations

from stepfunctions_ui.plugin import StepFunctionsViewPlugin

__all__ = ["StepFunctionsViewPlugin"]
