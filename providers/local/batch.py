"""Batch scoring on the local provider: in-process, streamed in chunks (bounded memory)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from providers.base import JobHandle, JobState, JobStatus, ModelRegistry, ModelVersion
from providers.local.storage import LocalObjectStore

if TYPE_CHECKING:
    from core.ml.modeling import TrainedModel


class ChunkedBatchScorer:
    """Loads the verified artifact once and scores a Parquet object chunk by chunk.

    ``submit`` fetches, checks and loads the version's model, and keeps it for ``results``: the
    scoring is in-process, so the stage's ``results`` right after its ``submit`` uses that
    model instead of fetching the artifact again. A ``results`` with no ``submit`` of that
    version before it in this scorer (a handle from another process) fetches it itself.
    """

    def __init__(self, storage: LocalObjectStore, registry: ModelRegistry, chunk_rows: int = 100_000) -> None:
        self.storage = storage
        self.registry = registry
        self.chunk_rows = chunk_rows
        self._submitted: tuple[tuple[str, str, str], TrainedModel] | None = None  # the last submit's model

    def submit(self, version: ModelVersion, input_key: str) -> JobHandle:
        """Check the input, then load the version's checked model; the scoring runs in ``results``."""
        path = self.storage.path(input_key)
        if not path.is_file():
            raise FileNotFoundError(f"no object {input_key!r} to score in {self.storage.uri(input_key)}")
        self._submitted = (_identity(version), self._load(version))  # refuses a tampered artifact
        return JobHandle(
            kind="batch", name=f"{version.model_name}-v{version.version}", details={"input_key": input_key}
        )

    def status(self, handle: JobHandle) -> JobStatus:
        """Always succeeded: there is no job to wait for, the scoring is in-process."""
        return JobStatus(JobState.SUCCEEDED)

    def results(self, version: ModelVersion, handle: JobHandle) -> Iterator[pd.DataFrame]:
        """Yield key + prediction-column chunks for every row of the input (see BatchScorer)."""
        from core.ml.scoring.prediction import score_parquet

        submitted, self._submitted = self._submitted, None  # held no longer than one scoring
        if submitted is not None and submitted[0] == _identity(version):
            model = submitted[1]
        else:
            model = self._load(version)
        yield from score_parquet(model, self.storage.path(handle.details["input_key"]), self.chunk_rows)

    def _load(self, version: ModelVersion) -> TrainedModel:
        """Fetch the version's artifact (the registry refuses a tampered one) and load it."""
        from core.ml.scoring.artifacts import load_model

        with tempfile.TemporaryDirectory(prefix="batch-model-") as tmp:
            artifact = self.registry.fetch_artifact(version, Path(tmp))
            return load_model(artifact, version.sha256)


def _identity(version: ModelVersion) -> tuple[str, str, str]:
    return version.model_name, str(version.version), version.sha256
