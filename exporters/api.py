"""The Python API: the CLI's verbs, returning plain data (for notebooks and CI pipelines)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporters.loader import load_dag

if TYPE_CHECKING:
    from exporters.serialized import SerializedDagView

DEFINITION_FILE = "state_machine.asl.json"


def export_dag_object(dag: Any):
    """Compile a DAG through Airflow's serialization; returns an ``ExportResult`` (raises ``ExportError``).

    ``dag``: a parsed DAG (serialized and read back first, as the DAG processor stores it) or a
    ``SerializedDagView`` (``exporters.serialized``).
    """
    from exporters.serialized import as_view  # imports Airflow: slow, and the CLI's --help needs none of it

    return _compile(as_view(dag))


def export_serialized(data: dict[str, Any]):
    """Compile Airflow's serialized DAG JSON (what the DAG processor stored); returns an ``ExportResult``."""
    from exporters.serialized import from_serialized  # imports Airflow: slow, and the CLI's --help needs none of it

    return _compile(from_serialized(data))


def _compile(view: SerializedDagView):
    """The export of ``view``; settings the parsed DAG gave that Airflow does not store are a warning.

    Defaults assumed for settings Airflow does not store (the UI view) are not: ``view.assumed_notes()``.
    """
    from exporters.compiler import compile_dag

    result = compile_dag(view)
    result.warnings.extend(view.not_kept_notes())
    return result


def export_view(view: SerializedDagView):
    """Compile a ``SerializedDagView`` (``exporters.serialized.from_serialized``); returns an ``ExportResult``."""
    return _compile(view)


def export_result(dag_id: str, dags_folder: str | Path | None = None):
    return export_dag_object(load_dag(dag_id, dags_folder))


def export(dag_id: str, dags_folder: str | Path | None = None, out: str | Path | None = None) -> dict[str, Any]:
    """The state machine definition of ``dag_id`` as a dict; also written to ``out/dag_id/`` when ``out`` is given."""
    result = export_result(dag_id, dags_folder)
    if out is not None:
        write_atomically(Path(out) / dag_id / DEFINITION_FILE, result.to_json())
    return result.definition


def validate(definition: dict[str, Any] | str | Path) -> list[str]:
    """Problems in a definition (a dict, or a path to a JSON file); empty when valid."""
    from exporters.validation import validate_definition

    if not isinstance(definition, dict):
        path = Path(definition)
        try:
            definition = json.loads(path.read_text())
        except FileNotFoundError:
            return [f"{path}: no such file"]
        except ValueError as err:
            return [f"{path}: not JSON: {err}"]
    return validate_definition(definition)


def graph(dag_id_or_definition: str | dict[str, Any], fmt: str = "svg", dags_folder: str | Path | None = None) -> bytes:
    """The rendered state machine graph (svg or png bytes)."""
    from exporters.rendering import render

    if isinstance(dag_id_or_definition, dict):
        return render(dag_id_or_definition, fmt)
    return render(export(dag_id_or_definition, dags_folder), fmt, title=dag_id_or_definition)


def write_atomically(path: Path, text: str | bytes) -> None:
    """Write the whole file or nothing: a temp file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        # mkstemp creates 0600; give the file the mode a plain open() would (umask applies).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
