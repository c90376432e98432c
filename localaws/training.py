"""A SageMaker training job for the built-in XGBoost algorithm, run with the ``xgboost`` library.

Run as ``python -m localaws.training JOB_NAME`` by the local backend:
reads the job's ``CreateTrainingJob`` request from the registry, trains on the
``train`` and ``validation`` channels (CSV, label first, no header), writes
``<S3OutputPath>/<job>/output/model.tar.gz`` holding ``xgboost-model``, and
records status, final metrics and artifacts as ``DescribeTrainingJob`` shows them.
"""

from __future__ import annotations

import io
import sys
import tarfile
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from localaws.paths import PathRefused, db_path, s3_to_local
from localaws.store import Store

MODEL_FILE = "xgboost-model"
# Hyperparameters of the built-in algorithm passed through to xgboost.train's params.
BOOSTER_PARAMS = {
    "max_depth": int,
    "eta": float,
    "gamma": float,
    "min_child_weight": float,
    "subsample": float,
    "colsample_bytree": float,
    "colsample_bylevel": float,
    "colsample_bynode": float,
    "lambda": float,
    "alpha": float,
    "max_delta_step": float,
    "scale_pos_weight": float,
    "objective": str,
    "seed": int,
    "tree_method": str,
    "grow_policy": str,
    "max_leaves": int,
    "max_bin": int,
    "base_score": float,
    "num_class": int,
    "booster": str,
}
TRAINING_ONLY = {
    "num_round": int,
    "eval_metric": str,
    "early_stopping_rounds": int,
    "csv_weights": int,
    "verbosity": int,
}


class ClientError(Exception):
    """A problem with the job's input (SageMaker reports these as 'ClientError: ...')."""


def parse_hyperparameters(raw: dict[str, str]) -> tuple[dict[str, Any], int, list[str], int | None]:
    params: dict[str, Any] = {"nthread": 1}
    unknown = sorted(set(raw) - set(BOOSTER_PARAMS) - set(TRAINING_ONLY))
    if unknown:
        raise ClientError(f"Hyperparameters not supported by the built-in XGBoost algorithm: {', '.join(unknown)}")
    for name, kind in BOOSTER_PARAMS.items():
        if name in raw:
            try:
                params[name] = kind(raw[name])
            except ValueError:
                raise ClientError(f"Hyperparameter {name}={raw[name]!r} is not a valid {kind.__name__}") from None
    if "num_round" not in raw:
        raise ClientError("Hyperparameter num_round is required")
    try:
        num_round = int(raw["num_round"])
        early = int(raw["early_stopping_rounds"]) if "early_stopping_rounds" in raw else None
    except ValueError:
        raise ClientError("num_round and early_stopping_rounds must be integers") from None
    if num_round < 1:
        raise ClientError("Hyperparameter num_round must be at least 1")
    metrics = [m.strip() for m in raw.get("eval_metric", "").split(",") if m.strip()]
    if metrics:
        params["eval_metric"] = metrics
    return params, num_round, metrics, early


def read_channel(uri: str, channel: str):
    """Every data file under the channel's prefix, as (labels, features)."""
    import numpy as np

    try:
        location = s3_to_local(uri, f"channel {channel}")
    except PathRefused as err:
        raise ClientError(str(err)) from None
    if location.is_file():
        files = [location]
    elif location.is_dir():
        files = sorted(
            p for p in location.rglob("*") if p.is_file() and not p.name.startswith(("_", ".")) and p.stat().st_size > 0
        )
    else:
        raise ClientError(f"channel {channel}: {uri} does not exist")
    if not files:
        raise ClientError(f"channel {channel}: no data under {uri}")
    blocks = []
    for file in files:
        try:
            block = np.loadtxt(file, delimiter=",", ndmin=2, dtype=np.float32)
        except ValueError as err:
            raise ClientError(
                f"channel {channel}: {file.name} is not numeric CSV (label first, no header): {err}"
            ) from None
        blocks.append(block)
    widths = {b.shape[1] for b in blocks}
    if len(widths) != 1:
        raise ClientError(f"channel {channel}: files have different column counts {sorted(widths)}")
    data = np.vstack(blocks)
    if data.shape[1] < 2:
        raise ClientError(f"channel {channel}: need a label and at least one feature column")
    return data[:, 0], data[:, 1:]


def train(request: dict[str, Any], work: Path) -> tuple[list[dict[str, Any]], bytes]:
    import xgboost as xgb

    params, num_round, metrics, early = parse_hyperparameters(request.get("HyperParameters") or {})
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]}
    if "train" not in channels:
        raise ClientError("the train channel is required")
    for channel in request["InputDataConfig"]:
        content_type = channel.get("ContentType", "text/csv")
        if content_type.split(";")[0].strip() not in ("text/csv", "csv"):
            raise ClientError(
                f"channel {channel['ChannelName']}: content type {content_type} is not supported locally (use text/csv)"
            )
    label, features = read_channel(channels["train"], "train")
    dtrain = xgb.DMatrix(features, label=label)
    evals = [(dtrain, "train")]
    if "validation" in channels:
        v_label, v_features = read_channel(channels["validation"], "validation")
        if v_features.shape[1] != features.shape[1]:
            raise ClientError(f"validation has {v_features.shape[1]} feature columns but train has {features.shape[1]}")
        evals.append((xgb.DMatrix(v_features, label=v_label), "validation"))
    history: dict[str, dict[str, list[float]]] = {}
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=num_round,
        evals=evals,
        evals_result=history,
        early_stopping_rounds=early if early and len(evals) > 1 else None,
        verbose_eval=max(1, num_round // 10),
    )
    now = time.time()
    final = [
        {"MetricName": f"{data_name}:{metric}", "Value": float(values[-1]), "Timestamp": now}
        for data_name, by_metric in history.items()
        for metric, values in by_metric.items()
    ]
    model_path = work / MODEL_FILE
    booster.save_model(str(model_path))
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(model_path, arcname=MODEL_FILE)
    return final, archive.getvalue()


def run_job(store: Store, name: str) -> int:
    request = store.get("training_job", name)["Request"]
    started = time.time()

    def progress(body: dict[str, Any]) -> None:
        body.update(SecondaryStatus="Training", TrainingStartTime=started)

    if store.compare_and_set("training_job", name, lambda b: b["TrainingJobStatus"] == "InProgress", progress) is None:
        print(f"training job {name} is no longer InProgress; not training", file=sys.stderr)
        return 1
    try:
        with tempfile.TemporaryDirectory() as work:
            metrics, archive = train(request, Path(work))
        output = request["OutputDataConfig"]["S3OutputPath"].rstrip("/") + f"/{name}/output/model.tar.gz"
        target = s3_to_local(output, "OutputDataConfig.S3OutputPath")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        partial.write_bytes(archive)
        partial.replace(target)  # a reader never sees half an archive
    except ClientError as err:
        return _finish(store, name, "Failed", failure=f"ClientError: {err}")
    except Exception as err:  # noqa: BLE001 - any crash is the job's failure, reported with its reason
        traceback.print_exc()
        return _finish(store, name, "Failed", failure=f"AlgorithmError: {type(err).__name__}: {err}")
    for m in metrics:
        print(f"#metric {m['MetricName']}={m['Value']:.6f}")
    return _finish(store, name, "Completed", metrics=metrics, artifact=output)


def _finish(
    store: Store, name: str, status: str, *, failure: str | None = None, metrics=None, artifact: str | None = None
) -> int:
    def done(body: dict[str, Any]) -> None:
        body.update(TrainingJobStatus=status, SecondaryStatus=status, TrainingEndTime=time.time())
        if failure:
            body["FailureReason"] = failure
        if metrics is not None:
            body["FinalMetricDataList"] = metrics
        if artifact:
            body["ModelArtifacts"] = {"S3ModelArtifacts": artifact}

    # Only a running job gets an outcome: a job the backend already settled (stopped, failed at restart) stays so.
    if (
        store.compare_and_set(
            "training_job", name, lambda b: b["TrainingJobStatus"] in ("InProgress", "Stopping"), done
        )
        is None
    ):
        print(f"training job {name} was settled meanwhile; its outcome {status} is not recorded", file=sys.stderr)
        return 1
    if failure:
        print(failure, file=sys.stderr)
    return 0 if status == "Completed" else 1


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m localaws.training JOB_NAME", file=sys.stderr)
        return 2
    return run_job(Store(db_path()), args[0])


if __name__ == "__main__":
    sys.exit(main())
