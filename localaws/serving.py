"""Endpoints: load a model archive, serve CSV predictions, swap models atomically.

A swap builds and warms the new model completely, then replaces one dict
entry; a request holds the model object it started with, so no request sees a
half-loaded model and none fails during the switch.
"""

from __future__ import annotations

import math
import tarfile
import threading
from dataclasses import dataclass
from typing import Any

from localaws.paths import data_dir, s3_to_local

MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker runtime's payload limit
MAX_ROWS = 10_000


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

    def predict_csv(self, body: bytes) -> bytes:
        import numpy as np

        rows = parse_csv(body, self.num_features)
        predictions = self.booster.inplace_predict(np.asarray(rows, dtype=np.float32))
        return ("\n".join(f"{float(p):.6g}" for p in np.ravel(predictions)) + "\n").encode()


def parse_csv(body: bytes, num_features: int) -> list[list[float]]:
    if not body or not body.strip():
        raise BadRequest("empty body: send one or more CSV rows of features (no label, no header)")
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES}")
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
            try:
                value = float(cell)
            except ValueError:
                raise BadRequest(f"row {line_no}, column {col_no}: {cell.strip()[:40]!r} is not a number") from None
            if not math.isfinite(value):
                raise BadRequest(f"row {line_no}, column {col_no}: {cell.strip()!r} is not a finite number")
            row.append(value)
        rows.append(row)
        if len(rows) > MAX_ROWS:
            raise PayloadTooLarge(f"more than {MAX_ROWS} rows in one request")
    if not rows:
        raise BadRequest("no rows in body")
    return rows


def load_model(model_name: str, config_name: str, model_data_url: str) -> LoadedModel:
    """Extract ``model.tar.gz`` and load its ``xgboost-model``, then predict once to prove it works."""
    import numpy as np
    import xgboost as xgb

    try:
        archive = s3_to_local(model_data_url)
    except ValueError as err:
        raise ModelLoadError(str(err)) from None
    if not archive.is_file():
        raise ModelLoadError(f"model data {model_data_url} does not exist")
    target = data_dir() / "models" / model_name
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError) as err:
        raise ModelLoadError(f"cannot extract {model_data_url}: {err}") from None
    model_file = target / "xgboost-model"
    if not model_file.is_file():
        raise ModelLoadError(f"{model_data_url} holds no xgboost-model file")
    try:
        booster = xgb.Booster(model_file=str(model_file))
        booster.set_param({"nthread": 1})
        num_features = booster.num_features()
        booster.inplace_predict(np.zeros((1, num_features), dtype=np.float32))
    except xgb.core.XGBoostError as err:
        raise ModelLoadError(f"cannot load the model in {model_data_url}: {str(err).splitlines()[0]}") from None
    return LoadedModel(model_name, config_name, booster, num_features)


class EndpointRegistry:
    """The model each endpoint serves right now."""

    def __init__(self) -> None:
        self._serving: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()  # serialises swaps, never predictions

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
