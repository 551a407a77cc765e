"""Batch scoring on the local provider: in-process, streamed in chunks (bounded memory)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from providers.base import JobHandle, JobState, JobStatus, ModelRegistry, ModelVersion
from providers.local.storage import LocalObjectStore


class ChunkedBatchScorer:
    """Loads the verified artifact once and scores a Parquet object chunk by chunk."""

    def __init__(self, storage: LocalObjectStore, registry: ModelRegistry, chunk_rows: int = 100_000) -> None:
        self.storage = storage
        self.registry = registry
        self.chunk_rows = chunk_rows

    def submit(self, version: ModelVersion, input_key: str) -> JobHandle:
        """Check the input and the version's artifact; the scoring itself runs in ``results``."""
        path = self.storage.path(input_key)
        if not path.is_file():
            raise FileNotFoundError(f"no object {input_key!r} to score in {self.storage.uri(input_key)}")
        with tempfile.TemporaryDirectory(prefix="batch-check-") as tmp:
            self.registry.fetch_artifact(version, Path(tmp))  # refuses a tampered artifact
        return JobHandle(
            kind="batch", name=f"{version.model_name}-v{version.version}", details={"input_key": input_key}
        )

    def status(self, handle: JobHandle) -> JobStatus:
        """Always succeeded: there is no job to wait for, the scoring is in-process."""
        return JobStatus(JobState.SUCCEEDED)

    def results(self, version: ModelVersion, handle: JobHandle) -> Iterator[pd.DataFrame]:
        """Yield key + prediction-column chunks for every row of the input (see BatchScorer)."""
        from include.ml.scoring.artifacts import load_model
        from include.ml.scoring.prediction import score_parquet

        with tempfile.TemporaryDirectory(prefix="batch-score-") as tmp:
            artifact = self.registry.fetch_artifact(version, Path(tmp))
            model = load_model(artifact, version.sha256)
        yield from score_parquet(model, self.storage.path(handle.details["input_key"]), self.chunk_rows)
