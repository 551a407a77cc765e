"""Loading a registered model safely and scoring data with it, in bounded memory.

``load_model`` checks the artifact's sha256 against the one recorded at registration *before*
unpickling it: unpickling runs arbitrary code, so a swapped or corrupted file must never reach
``joblib.load``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import joblib
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from include.errors import ArtifactIntegrityError
from include.ml.features import build_features
from include.ml.modeling import TrainedModel, model_matrix

_HASH_BLOCK = 1 << 20
_T = TypeVar("_T")


def file_sha256(path: str | Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB blocks (models can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def load_model(path: str | Path, expected_sha256: str) -> TrainedModel:
    """Load a joblib model after checking its sha256.

    Args:
        path: the ``model.joblib`` file.
        expected_sha256: the hex digest recorded when the model was registered.

    Returns:
        The unpickled :class:`TrainedModel`.

    Raises:
        ArtifactIntegrityError: the file's sha256 differs from ``expected_sha256`` (nothing was
            unpickled), no expected hash was given, or the file holds something else than a
            model of this project (e.g. one trained before models carried their dataset spec).
    """
    expected = (expected_sha256 or "").strip().lower()
    if not expected:
        raise ArtifactIntegrityError(f"refusing to load {path}: no expected sha256 was given")
    actual = file_sha256(path)
    if actual != expected:
        raise ArtifactIntegrityError(
            f"refusing to load {path}: its sha256 is {actual} but the registry expects {expected}; "
            "the file was changed or corrupted after registration - re-register or restore it"
        )
    model = joblib.load(path)
    if not isinstance(model, TrainedModel):
        raise ArtifactIntegrityError(
            f"{path} holds a {type(model).__name__}, not a model trained with its dataset spec (a model "
            "registered by an older version of this project): retrain it (trigger train_model)"
        )
    return model


def iter_parquet_chunks(
    path: str | Path, chunk_rows: int = 100_000, columns: Sequence[str] | None = None
) -> Iterator[pd.DataFrame]:
    """Stream a Parquet file as DataFrames of at most ``chunk_rows`` rows.

    Only one record batch is in memory at a time, so files much larger than RAM can be processed.

    Args:
        path: the Parquet file.
        chunk_rows: the largest chunk; a chunk can be smaller at row-group boundaries and at the end.
        columns: columns to read (all if ``None``).

    Yields:
        DataFrames with a fresh 0-based index each.

    Raises:
        ValueError: ``chunk_rows`` < 1 or a requested column is not in the file.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    # pre_buffer (pyarrow's default) keeps every column chunk it has read until the file is
    # closed: the reader's memory grew with the file (~20 MiB per million rows, measured)
    parquet = pq.ParquetFile(path, pre_buffer=False)
    if columns is not None:
        available = set(parquet.schema_arrow.names)
        missing = [column for column in columns if column not in available]
        if missing:
            raise ValueError(f"{path} lacks column(s): {', '.join(missing)}")
        columns = list(columns)
    try:
        for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
            yield batch.to_pandas()
    finally:
        parquet.close()


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


def read_ahead(items: Iterator[_T]) -> Iterator[_T]:
    """Yield ``items``, computing the next one in a background thread meanwhile.

    An exception raised while computing an item is raised here, in order; if the consumer stops
    early, the thread stops after the item it is computing.
    """
    import queue
    import threading

    ready: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    end = object()

    def put(value: tuple[Any, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                ready.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((end, None))
        except BaseException as exc:  # handed to the consumer, raised there
            put((end, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator's own clean-up (e.g. closing its file) runs now

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is end:
                return
            yield item
    finally:
        stop.set()
        thread.join()
