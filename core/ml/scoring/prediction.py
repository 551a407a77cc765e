"""Scoring a Parquet file of raw rows with a trained model, chunk by chunk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from core.ml.features import build_features
from core.ml.modeling import TrainedModel, model_matrix
from core.ml.scoring.chunking import iter_parquet_chunks, read_ahead


def score_parquet(model: TrainedModel, path: str | Path, chunk_rows: int = 100_000) -> Iterator[pd.DataFrame]:
    """Score a Parquet file of raw rows chunk by chunk.

    While the model scores a chunk, a second thread reads the next one and builds its features
    (the model's tree walk releases the GIL), so reading and scoring overlap; at most one chunk
    waits ahead.

    Args:
        model: a trained model.
        path: a Parquet file with the spec's key column and every feature.
        chunk_rows: the largest chunk read and scored at once.

    Yields:
        Frames with the key column (text) and the spec's prediction columns, in file order.
    """
    spec = model.spec
    key = spec.key_column

    def prepared() -> Iterator[tuple[np.ndarray, pd.DataFrame, np.ndarray | None]]:
        for chunk in iter_parquet_chunks(path, chunk_rows, columns=[key, *spec.feature_names]):
            features = build_features(chunk, spec)
            yield chunk[key].astype("str").to_numpy(), features, model_matrix(model.pipeline, features)

    for ids, features, matrix in read_ahead(prepared()):
        raw = model.raw_predict(features, matrix)
        yield pd.DataFrame({key: ids, **model.prediction_columns(raw)})
