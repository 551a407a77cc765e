"""The inference script of the SageMaker scikit-learn container (endpoint and batch transform).

SageMaker's serving stack calls ``model_fn`` once, then ``input_fn`` -> ``predict_fn`` ->
``output_fn`` per request. It runs from the root of the code bundle (``providers/aws/sourcedir.py``),
where the ``core`` package and the dataset spec's feature function are; the model artifact
carries the spec it was trained under, so the columns it reads and writes come from there.

The model's container environment (set by the provider when it creates the SageMaker model)
carries ``MODEL_VERSION`` (answered with every prediction, so a smoke test sees what serves)
and ``MODEL_SHA256`` (checked before the artifact is unpickled).

Requests: ``application/json`` ``{"rows": [{...}, ...]}`` (the endpoint) or
``application/x-parquet`` (batch transform, one file per request). Answers: ``application/json``
``{"model_version": "3", "predictions": [...]}`` or ``text/csv`` with the spec's key column and
prediction columns, with a header.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from core.ml.modeling import TrainedModel

MAX_ROWS = 10_000  # per online request; batch transform sends whole files


def model_fn(model_dir: str) -> dict[str, Any]:
    """Load ``model.joblib`` after checking its sha256 against ``MODEL_SHA256``.

    Raises:
        ValueError: no expected sha256 is set, or the file does not match it (nothing unpickled).
    """
    path = Path(model_dir) / "model.joblib"
    expected = os.environ.get("MODEL_SHA256", "").strip().lower()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if not expected or digest.hexdigest() != expected:
        raise ValueError(
            f"refusing to load {path}: sha256 {digest.hexdigest()} != MODEL_SHA256 {expected or '(unset)'}"
        )
    model = joblib.load(path)
    if not isinstance(model, TrainedModel):
        raise ValueError(f"{path} holds a {type(model).__name__}, not a TrainedModel: retrain it")
    return {"model": model, "version": os.environ.get("MODEL_VERSION", "")}


def input_fn(body: bytes | str, content_type: str) -> pd.DataFrame:
    """Parse a request into raw rows.

    Raises:
        ValueError: an unsupported content type or a malformed body.
    """
    content_type = (content_type or "").split(";")[0].strip()
    if content_type == "application/json":
        payload = json.loads(body)
        rows = payload.get("rows") if isinstance(payload, dict) else None
        if not isinstance(rows, list) or not rows or len(rows) > MAX_ROWS:
            raise ValueError(f'the body must be {{"rows": [...]}} with 1 to {MAX_ROWS} rows')
        return pd.DataFrame.from_records(rows)
    if content_type == "application/x-parquet":
        return pd.read_parquet(io.BytesIO(body if isinstance(body, bytes) else body.encode()))
    raise ValueError(
        f"unsupported content type {content_type!r}: use application/json or application/x-parquet"
    )


def predict_fn(frame: pd.DataFrame, model: dict[str, Any]) -> dict[str, Any]:
    """Score the rows with the model (its spec names the features), in row order.

    Raises:
        ValueError: the rows lack a feature of the model's spec.
    """
    trained: TrainedModel = model["model"]
    spec = trained.spec
    missing = [c for c in spec.feature_names if c not in frame.columns]
    if missing:
        raise ValueError(f"rows lack column(s): {', '.join(missing)}")
    raw = trained.predict_raw_rows(frame)
    key = spec.key_column
    ids = frame[key].astype(str).tolist() if key in frame.columns else [None] * len(frame)
    return {
        "model_version": model["version"],
        "key": key,
        "ids": ids,
        "answer": trained.answer(raw),
        "columns": {name: list(values) for name, values in trained.prediction_columns(raw).items()},
    }


def output_fn(prediction: dict[str, Any], accept: str) -> tuple[str, str]:
    """Serialize the answer as JSON (endpoint) or CSV (batch transform); returns (body, type)."""
    accept = (accept or "application/json").split(";")[0].strip()
    if accept == "text/csv":
        frame = pd.DataFrame({prediction["key"]: prediction["ids"], **prediction["columns"]})
        return frame.to_csv(index=False, float_format="%.17g"), "text/csv"
    answer = {"model_version": prediction["model_version"], "predictions": prediction["answer"]}
    return json.dumps(answer), "application/json"
