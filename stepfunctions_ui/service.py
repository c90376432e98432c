"""What the Step Functions view shows for a DAG: its export, validation, graph and template, cached.

The DAG comes from Airflow's own metadata (``DagModel``: which file defines it; the latest
``SerializedDagModel.dag_hash``: its serialized version). The exporter needs the real operator
objects (their requests and rules), not the serialized DAG, so the file is parsed here, the way
the DAG processor and ``python -m exporters`` parse it (``DagBag``).

Cache: one entry per DAG, keyed by (file path, SHA-256 of the file, serialized ``dag_hash``).
A request re-reads and hashes the file (microseconds for a DAG file) and reuses the entry while
neither changed; the graph and the CloudFormation template are rendered on first use and kept
with the entry. A change to the file or a re-serialization by the DAG processor rebuilds it.
Imported modules (our operators, the exporter) are Python modules: as for any plugin code,
changes to them need an API server restart.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Airflow's own rule for DAG ids (airflow.utils.helpers.KEY_REGEX), bounded like its ID column.
DAG_ID_RE = re.compile(r"^[\w.-]{1,250}$", re.ASCII)
TEMPLATE_UNAVAILABLE = "CloudFormation template: not available in this version"
EXPORTER_ADDED = "added by the exporter"


def valid_dag_id(dag_id: str) -> bool:
    return bool(DAG_ID_RE.match(dag_id)) and dag_id not in (".", "..")


@dataclass(frozen=True)
class DagRecord:
    """A DAG as Airflow's metadata DB knows it."""

    dag_id: str
    fileloc: str | None
    relative_fileloc: str | None
    bundle_name: str | None
    dag_hash: str | None
    is_stale: bool = False


def _records(session: Any, dag_ids: set[str] | None = None, one: str | None = None) -> list[DagRecord]:
    from airflow.models.dag import DagModel
    from airflow.models.serialized_dag import SerializedDagModel
    from sqlalchemy import func, select

    latest = (
        select(SerializedDagModel.dag_id, func.max(SerializedDagModel.created_at).label("created_at"))
        .group_by(SerializedDagModel.dag_id)
        .subquery()
    )
    stmt = (
        select(
            DagModel.dag_id,
            DagModel.fileloc,
            DagModel.relative_fileloc,
            DagModel.bundle_name,
            DagModel.is_stale,
            SerializedDagModel.dag_hash,
        )
        .outerjoin(latest, latest.c.dag_id == DagModel.dag_id)
        .outerjoin(
            SerializedDagModel,
            (SerializedDagModel.dag_id == latest.c.dag_id) & (SerializedDagModel.created_at == latest.c.created_at),
        )
        .order_by(DagModel.dag_id)
    )
    if one is not None:
        stmt = stmt.where(DagModel.dag_id == one)
    elif dag_ids is not None:
        stmt = stmt.where(DagModel.dag_id.in_(dag_ids))
    seen: dict[str, DagRecord] = {}
    for row in session.execute(stmt):
        seen.setdefault(
            row.dag_id,
            DagRecord(row.dag_id, row.fileloc, row.relative_fileloc, row.bundle_name, row.dag_hash, bool(row.is_stale)),
        )
    return list(seen.values())


def find_dag(dag_id: str, session: Any) -> DagRecord | None:
    found = _records(session, one=dag_id)
    return found[0] if found else None


def list_dags(session: Any, dag_ids: set[str]) -> list[DagRecord]:
    """The DAGs among ``dag_ids`` that a DAG file still defines (not stale), by id."""
    return [r for r in _records(session, dag_ids=dag_ids) if not r.is_stale]


def dag_file(record: DagRecord) -> Path | None:
    """The DAG file on this machine: ``fileloc``, else the bundle's path + ``relative_fileloc`` (kept inside it)."""
    if record.fileloc and Path(record.fileloc).is_file():
        return Path(record.fileloc)
    if record.bundle_name and record.relative_fileloc:
        try:
            from airflow.dag_processing.bundles.manager import DagBundlesManager

            root = Path(DagBundlesManager().get_bundle(record.bundle_name).path).resolve()
            candidate = (root / record.relative_fileloc).resolve()
        except Exception:  # noqa: BLE001 - an unknown or unavailable bundle: no file
            return None
        if candidate.is_relative_to(root) and candidate.is_file():
            return candidate
    return None


@dataclass
class ExportView:
    """Everything the view shows for one DAG (built once per cache key)."""

    dag_id: str
    key: tuple[Any, ...]
    file: str | None
    load_error: str | None = None
    headline: str | None = None  # the CLI's "cannot export DAG ..." line
    problems: list[str] = field(default_factory=list)  # str(Problem): exactly what the CLI prints
    invalid: list[str] = field(default_factory=list)  # validate_definition() problems (exporter bug if any)
    warnings: list[str] = field(default_factory=list)
    integrations: list[str] = field(default_factory=list)
    definition: dict[str, Any] | None = None
    definition_json: str | None = None  # byte-for-byte what `python -m exporters export` writes
    task_ids: list[str] = field(default_factory=list)
    dag: Any = None
    result: Any = None
    template_warnings: list[str] = field(default_factory=list)
    build_ms: float = 0.0
    _svg: tuple[str | None, str | None] | None = None
    _template: tuple[str | None, str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def exportable(self) -> bool:
        return self.definition_json is not None and not self.invalid

    @property
    def status(self) -> str:
        if self.load_error:
            return "load-error"
        return "exportable" if self.exportable else "not-exportable"

    @property
    def state_count(self) -> int:
        return len((self.definition or {}).get("States", {}))

    def stages(self) -> list[tuple[str, list[str]]]:
        """Each DAG task with the top-level states it became (state names are the task id, or ``task_id: step``)."""
        states = list((self.definition or {}).get("States", {}))
        rows = []
        claimed: set[str] = set()
        for task_id in self.task_ids:
            mine = [s for s in states if s == task_id or s.startswith(f"{task_id}: ")]
            claimed.update(mine)
            rows.append((task_id, mine))
        extra = [s for s in states if s not in claimed]
        if extra:
            rows.append((EXPORTER_ADDED, extra))
        return rows

    def svg(self) -> tuple[str | None, str | None]:
        """(inline SVG, None) or (None, why there is no graph). Rendered with Graphviz once per entry."""
        if self._svg is None:
            with self._lock:
                if self._svg is None:
                    self._svg = self._render_svg()
        return self._svg

    def _render_svg(self) -> tuple[str | None, str | None]:
        if self.definition is None:
            return None, "no graph: the DAG cannot be exported"
        from exporters.graph import render

        try:
            data = render(self.definition, "svg", title=self.dag_id).decode("utf-8")
        except RuntimeError as err:  # Graphviz missing
            return None, str(err)
        except Exception as err:  # noqa: BLE001 - never a stack trace on the page
            log.exception("Rendering the graph of %s failed", self.dag_id)
            return None, f"the graph could not be rendered ({type(err).__name__}: {err})"
        return inline_svg(data), None

    def template(self) -> tuple[str | None, str]:
        """(template JSON, note) or (None, why not). Uses ``exporters.cloudformation`` when the checkout has it."""
        if self._template is None:
            with self._lock:
                if self._template is None:
                    self._template = self._build_template()
        return self._template

    def _build_template(self) -> tuple[str | None, str]:
        if not self.exportable:
            return None, "CloudFormation template: none, the DAG cannot be exported"
        try:
            from exporters import cloudformation
        except ImportError:
            return None, TEMPLATE_UNAVAILABLE
        try:
            import dataclasses

            # build_template appends its warnings (schedule caveats) to the result: give it a copy.
            result = dataclasses.replace(self.result, warnings=list(self.result.warnings))
            template = cloudformation.build_template(result, self.dag)
            self.template_warnings = result.warnings[len(self.result.warnings) :]
            return cloudformation.template_json(
                template
            ), "CloudFormation template (state machine, its role, the schedule)"
        except Exception as err:  # noqa: BLE001
            log.exception("Building the CloudFormation template of %s failed", self.dag_id)
            return None, f"CloudFormation template: could not be built ({type(err).__name__}: {err})"


_SVG_STRIP = [
    re.compile(r"<\?xml.*?\?>", re.S),
    re.compile(r"<!DOCTYPE.*?>", re.S),
    re.compile(r"<!--.*?-->", re.S),
    # Defence in depth (Graphviz escapes labels, and the exporter sets no URLs): no scripts, no handlers.
    re.compile(r"<script\b.*?</script\s*>", re.S | re.I),
    re.compile(r"\son[a-z]+\s*=\s*(\"[^\"]*\"|'[^']*')", re.I),
    re.compile(r"\s(?:xlink:)?href\s*=\s*(\"[^\"]*\"|'[^']*')", re.I),
]


def inline_svg(document: str) -> str:
    """Graphviz's SVG document as an element to put inside HTML (prolog, doctype, comments removed)."""
    for pattern in _SVG_STRIP:
        document = pattern.sub("", document)
    start = document.find("<svg")
    return document[start:].strip() if start >= 0 else ""


@contextmanager
def _quiet_parsing() -> Iterator[None]:
    """DagBag in a server thread warns that it cannot install its signal handlers; that is expected here."""
    names = (
        "airflow.dag_processing.importers.python_importer",
        "airflow.dag_processing.dagbag",
        "airflow.models.dagbag",
    )
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=False):
            lg.setLevel(level)


def parse_file(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """(DAGs by id, import errors) of one DAG file, parsed as the DAG processor parses it."""
    from airflow.dag_processing.dagbag import DagBag

    with _quiet_parsing():
        bag = DagBag(dag_folder=str(path))
    return dict(bag.dags), dict(bag.import_errors)


def build_view(
    dag_id: str, key: tuple[Any, ...], path: Path | None, parsed: tuple[dict[str, Any], dict[str, str]] | None
) -> ExportView:
    started = time.perf_counter()
    view = ExportView(dag_id=dag_id, key=key, file=str(path) if path else None)
    try:
        _fill(view, path, parsed)
    finally:
        view.build_ms = (time.perf_counter() - started) * 1000
    return view


def _fill(view: ExportView, path: Path | None, parsed: tuple[dict[str, Any], dict[str, str]] | None) -> None:
    dag_id = view.dag_id
    if path is None or parsed is None:
        view.load_error = f"DAG {dag_id!r}: its DAG file is not readable on the API server"
        return
    dags, import_errors = parsed
    dag = dags.get(dag_id)
    if dag is None:
        if import_errors:
            details = "\n".join(f"  {p}: {str(e).strip().splitlines()[-1]}" for p, e in sorted(import_errors.items()))
            view.load_error = f"DAG {dag_id!r} not found in {path}; the file failed to import:\n{details}"
        else:
            view.load_error = f"DAG {dag_id!r} not found in {path} (DAGs there: {', '.join(sorted(dags)) or 'none'})"
        return
    view.dag = dag
    view.task_ids = [t.task_id for t in dag.tasks]
    try:
        from exporters.api import export_dag_object
        from exporters.errors import ExportError
        from exporters.validate import validate_definition
    except ImportError as err:
        view.load_error = (
            f"the exporter is not importable on the API server ({err}): put the project root on PYTHONPATH"
        )
        return
    try:
        result = export_dag_object(dag)
    except ExportError as err:
        view.headline = str(err).splitlines()[0]
        view.problems = [str(p) for p in err.problems]
        return
    except Exception as err:  # noqa: BLE001 - an exporter bug: say so, never a stack trace
        log.exception("Exporting %s failed", dag_id)
        view.headline = f"the exporter failed on DAG {dag_id!r}: {type(err).__name__}: {err}"
        return
    view.result = result
    view.definition = result.definition
    view.invalid = validate_definition(view.definition)
    view.warnings = list(result.warnings)
    view.integrations = list(result.integrations)
    if not view.invalid:
        view.definition_json = result.to_json()


def file_digest(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class ExportCache:
    """DAG id → ExportView, rebuilt when the DAG file's hash or the serialized DAG's hash changes."""

    def __init__(self, max_entries: int = 256, max_files: int = 32):
        self._entries: OrderedDict[str, ExportView] = OrderedDict()
        self._files: OrderedDict[tuple[str, str], tuple[dict[str, Any], dict[str, str]]] = OrderedDict()
        self._max_entries = max_entries
        self._max_files = max_files
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self.builds = 0

    def key_for(self, record: DagRecord) -> tuple[tuple[Any, ...], Path | None]:
        path = dag_file(record)
        return (str(path) if path else None, file_digest(path), record.dag_hash), path

    def get(self, record: DagRecord) -> ExportView:
        key, path = self.key_for(record)
        cached = self._lookup(record.dag_id, key)
        if cached is not None:
            return cached
        with self._build_lock:  # one parse/export at a time; the others wait and reuse it
            cached = self._lookup(record.dag_id, key)
            if cached is not None:
                return cached
            parsed = self._parsed(path, key[1])
            view = build_view(record.dag_id, key, path, parsed)
            self.builds += 1
            with self._lock:
                self._entries[record.dag_id] = view
                self._entries.move_to_end(record.dag_id)
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)
            return view

    def _lookup(self, dag_id: str, key: tuple[Any, ...]) -> ExportView | None:
        with self._lock:
            view = self._entries.get(dag_id)
            if view is not None and view.key == key:
                self._entries.move_to_end(dag_id)
                return view
        return None

    def _parsed(self, path: Path | None, digest: str | None) -> tuple[dict[str, Any], dict[str, str]] | None:
        if path is None or digest is None:
            return None
        file_key = (str(path), digest)
        if file_key not in self._files:
            self._files[file_key] = parse_file(path)
            while len(self._files) > self._max_files:
                self._files.popitem(last=False)
        self._files.move_to_end(file_key)
        return self._files[file_key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._files.clear()


CACHE = ExportCache()
