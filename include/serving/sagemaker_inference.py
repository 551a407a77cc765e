"""The inference script of the SageMaker scikit-learn container (endpoint and batch transform).

SageMaker's serving stack calls ``model_fn`` once, then ``input_fn`` -> ``predict_fn`` ->
``output_fn`` per request. Inside the container only this file, ``features.py`` and
``schema.py`` are present (no ``include`` package), hence the import fallback below; keep this
file free of other project imports.

The model's container environment (set by the provider when it creates the SageMaker model)
carries ``MODEL_VERSION`` (answered with every prediction, so a smoke test sees what serves)
and ``MODEL_SHA256`` (checked before the artifact is unpickled).

Requests: ``application/json`` ``{"rows": [{...}, ...]}`` (the endpoint) or
``application/x-parquet`` (batch transform, one file per request). Answers: ``application/json``
``{"model_version": "3", "predictions": [0.12, ...]}`` or ``text/csv``
``customer_id,churn_probability`` lines with a header.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

try:
    from include.ml.features import build_features
    from include.ml.schema import ID_COLUMN, PREDICTION_COLUMN, RAW_FEATURES
except ImportError:  # in the container: this file's directory is on sys.path, the package is not
    from features import build_features  # type: ignore[no-redef]
    from schema import ID_COLUMN, PREDICTION_COLUMN, RAW_FEATURES  # type: ignore[no-redef]

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
    return {"model": joblib.load(path), "version": os.environ.get("MODEL_VERSION", "")}


def input_fn(body: bytes | str, content_type: str) -> pd.DataFrame:
    """Parse a request into raw rows.

    Raises:
        ValueError: an unsupported content type, a malformed body or missing columns.
    """
    content_type = (content_type or "").split(";")[0].strip()
    if content_type == "application/json":
        payload = json.loads(body)
        rows = payload.get("rows") if isinstance(payload, dict) else None
        if not isinstance(rows, list) or not rows or len(rows) > MAX_ROWS:
            raise ValueError(f'the body must be {{"rows": [...]}} with 1 to {MAX_ROWS} rows')
        frame = pd.DataFrame.from_records(rows)
    elif content_type == "application/x-parquet":
        frame = pd.read_parquet(io.BytesIO(body if isinstance(body, bytes) else body.encode()))
    else:
        raise ValueError(
            f"unsupported content type {content_type!r}: use application/json or application/x-parquet"
        )
    missing = [c for c in RAW_FEATURES if c not in frame.columns]
    if missing:
        raise ValueError(f"rows lack column(s): {', '.join(missing)}")
    return frame


def predict_fn(frame: pd.DataFrame, model: dict[str, Any]) -> dict[str, Any]:
    """Score the rows: churn probability per row, in row order."""
    proba = np.asarray(model["model"].predict_proba(build_features(frame))[:, 1], dtype=np.float64)
    ids = frame[ID_COLUMN].astype(str).tolist() if ID_COLUMN in frame.columns else [None] * len(frame)
    return {"model_version": model["version"], "ids": ids, "predictions": proba.tolist()}


def output_fn(prediction: dict[str, Any], accept: str) -> tuple[str, str]:
    """Serialize the answer as JSON (endpoint) or CSV (batch transform); returns (body, type)."""
    accept = (accept or "application/json").split(";")[0].strip()
    if accept == "text/csv":
        frame = pd.DataFrame({ID_COLUMN: prediction["ids"], PREDICTION_COLUMN: prediction["predictions"]})
        return frame.to_csv(index=False, float_format="%.17g"), "text/csv"
    answer = {"model_version": prediction["model_version"], "predictions": prediction["predictions"]}
    return json.dumps(answer), "application/json"
