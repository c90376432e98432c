"""Endpoints: load a model archive, serve CSV predictions, swap models atomically.

A swap builds and warms the new model completely, then replaces one dict
entry; a request holds the model object it started with, so no request sees a
half-loaded model and none fails during the switch.
"""

from __future__ import annotations

import io
import math
import multiprocessing
import os
import re
import shutil
import tarfile
import tempfile
import threading
import time
import warnings
import zlib
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from localaws.paths import PathRefused, models_dir, s3_to_local

MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker runtime's payload limit
MAX_ROWS = 10_000
DEFAULT_MAX_MODEL_BYTES = 512 * 1024 * 1024  # an extracted model archive; RETRAINING_LOCAL_MAX_MODEL_BYTES overrides
MAX_MODEL_MEMBERS = 100
PROCESS_PARSE_BYTES = 64 * 1024  # bodies from this size on are parsed in a worker process
PARSER_NICENESS = 10


class BadRequest(ValueError):
    """The request itself is wrong (4xx); the message says where."""

    status = 400


class PayloadTooLarge(BadRequest):
    status = 413


class UnsupportedMediaType(BadRequest):
    status = 415


class ModelLoadError(Exception):
    pass


@dataclass(frozen=True)
class LoadedModel:
    model_name: str
    config_name: str
    booster: Any
    num_features: int

    def predict_csv(self, body: bytes, parsers: CsvParsers | None = None) -> bytes:
        import numpy as np  # lazy, as every numpy/xgboost import here: loaded once a model is served

        rows = parsers.parse(body, self.num_features) if parsers else parse_csv(body, self.num_features)
        predictions = self.booster.inplace_predict(rows)  # xgboost releases the GIL while it predicts
        return ("\n".join(f"{float(p):.6g}" for p in np.ravel(predictions)) + "\n").encode()


class CsvParsers:
    """Large bodies are parsed in worker processes, small ones in the calling thread.

    Parsing holds the GIL for the whole body (numpy's reader never lets go of it), so a 6 MB
    batch parsed in a thread would stall the event loop, ``/ping`` and every small request with
    it for hundreds of milliseconds. In another process it costs the server nothing but the copy.
    """

    def __init__(self, workers: int = 2) -> None:
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def parse(self, body: bytes, num_features: int):
        if len(body) < PROCESS_PARSE_BYTES:
            return parse_csv(body, num_features)
        try:
            return self._executor().submit(parse_csv, body, num_features).result()
        except BrokenProcessPool:  # a parser process died (killed, out of memory): start afresh
            with self._lock:
                self._pool = None
            return parse_csv(body, num_features)

    def warm_up(self) -> None:
        self._executor().submit(parse_csv, b"0", 1)

    def shutdown(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn: forking a process that runs threads could copy a held lock into the child.
                # Niced: bulk parsing yields the cores to the event loop and to small requests.
                self._pool = ProcessPoolExecutor(
                    self._workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_parser_process_setup,
                    initargs=(os.getpid(),),
                )
            return self._pool


def _parser_process_setup(backend_pid: int) -> None:
    """In each parser process: a lower priority, and an exit as soon as the backend is gone (even after kill -9)."""
    os.nice(PARSER_NICENESS)

    def watch() -> None:
        while os.getppid() == backend_pid:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="backend-watch", daemon=True).start()


# A number as float() reads it, restricted to ASCII: no "1_000", no non-ASCII digits, no words.
_NUMBER_RE = re.compile(r"[ \t]*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[ \t]*", re.ASCII)
_NOT_FINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
# Only these bytes can appear in a body the fast path may read (it falls back to the exact parser otherwise).
_FAST_BODY_RE = re.compile(rb"[0-9eE+\-., \t\r\n]*")


def parse_csv(body: bytes, num_features: int):
    """CSV rows of features → a float32 array (rows × num_features); BadRequest naming row and column."""
    import numpy as np

    if not body or not body.strip():
        raise BadRequest("empty body: send one or more CSV rows of features (no label, no header)")
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES}")
    if _FAST_BODY_RE.fullmatch(body):
        # numpy's C reader is ~20x quicker than float() per cell; any doubt goes to the exact parser below.
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                rows = np.loadtxt(io.BytesIO(body), delimiter=",", dtype=np.float64, ndmin=2, encoding="ascii")
        except ValueError:
            rows = None
        if (
            rows is not None
            and rows.shape[1] == num_features
            and 0 < rows.shape[0] <= MAX_ROWS
            and rows.shape[0] == _count_rows(body)
            and np.isfinite(rows).all()
        ):
            return rows.astype(np.float32)
    return np.asarray(_parse_exactly(body, num_features), dtype=np.float32)


def _count_rows(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line.strip())


def _parse_exactly(body: bytes, num_features: int) -> list[list[float]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("body is not UTF-8 text") from None
    rows: list[list[float]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cells = line.split(",")
        if len(cells) != num_features:
            raise BadRequest(f"row {line_no}: {len(cells)} columns, the model expects {num_features}")
        row = []
        for col_no, cell in enumerate(cells, start=1):
            if cell.strip().lower() in _NOT_FINITE:
                raise BadRequest(f"row {line_no}, column {col_no}: {cell.strip()!r} is not a finite number")
            if not _NUMBER_RE.fullmatch(cell):
                raise BadRequest(f"row {line_no}, column {col_no}: {cell.strip()[:40]!r} is not a number")
            value = float(cell)
            if not math.isfinite(value):
                raise BadRequest(f"row {line_no}, column {col_no}: {cell.strip()[:40]!r} is not a finite number")
            row.append(value)
        rows.append(row)
        if len(rows) > MAX_ROWS:
            raise PayloadTooLarge(f"more than {MAX_ROWS} rows in one request")
    if not rows:
        raise BadRequest("no rows in body")
    return rows


def load_model(model_name: str, config_name: str, model_data_url: object) -> LoadedModel:
    """Extract ``model.tar.gz`` into a fresh folder and load its ``xgboost-model``; predict once to prove it works.

    Any failure, whatever its kind, is a ModelLoadError naming the artifact. The folder is removed
    afterwards: the booster lives in memory, so nothing on disk is shared between loads.
    """
    try:
        archive = s3_to_local(model_data_url, "ModelDataUrl")
    except PathRefused as err:
        raise ModelLoadError(str(err)) from None
    if not archive.is_file():
        raise ModelLoadError(f"model data {model_data_url} does not exist")
    models_dir().mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix=f"{model_name[:60]}-", dir=models_dir()))
    try:
        return _load_into(target, archive, model_name, config_name, str(model_data_url))
    except ModelLoadError:
        raise
    except Exception as err:  # noqa: BLE001 - a hostile artifact can fail in any way; it must not kill the deploy
        raise ModelLoadError(f"cannot load the model in {model_data_url}: {type(err).__name__}: {err}") from None
    finally:
        shutil.rmtree(target, ignore_errors=True)


def _load_into(target: Path, archive: Path, model_name: str, config_name: str, url: str) -> LoadedModel:
    import numpy as np
    import xgboost as xgb

    try:
        with tarfile.open(archive) as tar:
            _extract_checked(tar, target, url)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise ModelLoadError(f"cannot extract {url}: {type(err).__name__}: {err}") from None
    model_file = target / "xgboost-model"
    if not model_file.is_file():
        raise ModelLoadError(f"{url} holds no xgboost-model file")
    try:
        booster = xgb.Booster(model_file=str(model_file))
        booster.set_param({"nthread": 1})
        num_features = booster.num_features()
        if num_features < 1:
            raise ModelLoadError(f"the model in {url} has no features")
        booster.inplace_predict(np.zeros((1, num_features), dtype=np.float32))
    except xgb.core.XGBoostError as err:
        raise ModelLoadError(f"cannot load the model in {url}: {str(err).splitlines()[0]}") from None
    return LoadedModel(model_name, config_name, booster, num_features)


def _extract_checked(tar: tarfile.TarFile, target: Path, url: str) -> None:
    """Extract regular files only, with plain relative names, within the member and size caps."""
    total = 0
    for count, member in enumerate(tar, start=1):
        if count > MAX_MODEL_MEMBERS:
            raise ModelLoadError(f"{url} holds more than {MAX_MODEL_MEMBERS} members")
        name = member.name
        parts = PurePosixPath(name).parts
        if name.startswith("/") or not parts or any(p in ("..", "") for p in parts) or "\\" in name:
            raise ModelLoadError(f"{url}: member {name[:100]!r} has an absolute or '..' path")
        if member.isdir():
            continue
        if not member.isfile():
            raise ModelLoadError(f"{url}: member {name[:100]!r} is a link or special file; only files are allowed")
        total += member.size
        if total > max_model_bytes():
            raise ModelLoadError(f"{url} expands to more than {max_model_bytes()} bytes")
        tar.extract(member, target, filter="data")
        if (target / name).stat().st_size != member.size:
            raise ModelLoadError(f"{url}: member {name[:100]!r} is truncated")


def max_model_bytes() -> int:
    return int(os.environ.get("RETRAINING_LOCAL_MAX_MODEL_BYTES", DEFAULT_MAX_MODEL_BYTES))


def remove_model_folders() -> None:
    """Leftovers of loads cut short by a crash: models live in memory, so none is in use at start."""
    shutil.rmtree(models_dir(), ignore_errors=True)


class EndpointRegistry:
    """The model each endpoint serves right now."""

    def __init__(self) -> None:
        self._serving: dict[str, LoadedModel] = {}
        self._lock = threading.RLock()  # serialises swaps and deletes, never predictions

    def transition(self) -> threading.RLock:
        """Held while a store change and the matching swap/remove happen together."""
        return self._lock

    def get(self, endpoint: str) -> LoadedModel | None:
        return self._serving.get(endpoint)

    def swap(self, endpoint: str, model: LoadedModel) -> None:
        with self._lock:
            self._serving[endpoint] = model

    def remove(self, endpoint: str) -> None:
        with self._lock:
            self._serving.pop(endpoint, None)

    def names(self) -> list[str]:
        return sorted(self._serving)
