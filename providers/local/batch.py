"""Batch scoring on the local provider: in-process, streamed in chunks (bounded memory)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from providers.base import ModelRegistry, ModelVersion
from providers.local.storage import LocalObjectStore


class ChunkedBatchScorer:
    """Loads the verified artifact once and scores a Parquet object chunk by chunk."""

    def __init__(self, storage: LocalObjectStore, registry: ModelRegistry, chunk_rows: int = 100_000) -> None:
        self.storage = storage
        self.registry = registry
        self.chunk_rows = chunk_rows

    def score(self, version: ModelVersion, input_key: str) -> Iterator[pd.DataFrame]:
        """Yield key + prediction-column chunks for every row of ``input_key`` (see BatchScorer)."""
        from include.ml.scoring.artifacts import load_model
        from include.ml.scoring.prediction import score_parquet

        with tempfile.TemporaryDirectory(prefix="batch-score-") as tmp:
            artifact = self.registry.fetch_artifact(version, Path(tmp))
            model = load_model(artifact, version.sha256)
        yield from score_parquet(model, self.storage.path(input_key), self.chunk_rows)
