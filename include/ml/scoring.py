"""Loading a registered model safely and scoring data with it, in bounded memory.

``load_model`` checks the artifact's sha256 against the one recorded at registration *before*
unpickling it: unpickling runs arbitrary code, so a swapped or corrupted file must never reach
``joblib.load``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import joblib
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from include.errors import ArtifactIntegrityError
from include.ml.features import build_features, record_features
from include.ml.schema import ID_COLUMN, PREDICTION_COLUMN, RAW_FEATURES

_HASH_BLOCK = 1 << 20
_T = TypeVar("_T")


def file_sha256(path: str | Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB blocks (models can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def load_model(path: str | Path, expected_sha256: str) -> Any:
    """Load a joblib model after checking its sha256.

    Args:
        path: the ``model.joblib`` file.
        expected_sha256: the hex digest recorded when the model was registered.

    Returns:
        The unpickled model (an sklearn Pipeline taking ``build_features`` output).

    Raises:
        ArtifactIntegrityError: the file's sha256 differs from ``expected_sha256`` (nothing was
            unpickled), or no expected hash was given.
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
    return joblib.load(path)


def predict_proba(model: Any, raw: pd.DataFrame) -> np.ndarray:
    """Return the churn probability of each raw row.

    Args:
        model: a fitted pipeline from ``train.fit_model`` (or ``load_model``).
        raw: raw rows with every column of ``schema.RAW_FEATURES``; other columns are ignored.

    Returns:
        A float64 array with one probability per row, in row order.
    """
    if len(raw) == 0:
        return np.empty(0, dtype=np.float64)
    features = build_features(raw)
    matrix = _model_matrix(model, features)
    if matrix is None:
        return np.asarray(model.predict_proba(features)[:, 1], dtype=np.float64)
    return np.asarray(model[-1].predict_proba(matrix)[:, 1], dtype=np.float64)


def predict_proba_records(model: Any, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """``predict_proba`` for a few request rows (dicts), without building pandas frames.

    Args:
        model: a fitted pipeline from ``train.fit_model`` (or ``load_model``).
        rows: dicts with every column of ``schema.RAW_FEATURES`` (see ``record_features``).

    Returns:
        A float64 array with one probability per row, in row order.
    """
    if not rows:
        return np.empty(0, dtype=np.float64)
    matrix = _model_matrix(model, record_features(rows))
    if matrix is None:  # a model of another shape: sklearn's own path
        return predict_proba(model, pd.DataFrame(list(rows)))
    return np.asarray(model[-1].predict_proba(matrix)[:, 1], dtype=np.float64)


def _model_matrix(model: Any, features: Mapping[str, Any]) -> np.ndarray | None:
    """The fitted preprocessing of ``train.make_pipeline`` applied with numpy, or None.

    sklearn checks its input column by column on every call (``check_array``, narwhals): on the
    online endpoint's one-row requests that took most of the time of a prediction (profiled with
    pyinstrument). The fitted one-hot categories and the column order are read from the model, so
    the matrix is the one ``ColumnTransformer.transform`` builds (``test_scoring`` checks they are
    equal); any other model shape returns None and is scored by sklearn itself.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    if not (isinstance(model, Pipeline) and len(model.steps) == 2):
        return None
    preprocess = model[0]
    if not isinstance(preprocess, ColumnTransformer) or getattr(preprocess, "sparse_output_", True):
        return None
    blocks = []
    for _, transformer, columns in preprocess.transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        # a fitted "passthrough" is an identity FunctionTransformer
        if transformer == "passthrough" or (
            isinstance(transformer, FunctionTransformer) and transformer.func is None
        ):
            blocks.append(np.column_stack([np.asarray(features[c], dtype=np.float64) for c in columns]))
        elif _plain_one_hot(transformer, OneHotEncoder):
            for column, categories in zip(columns, transformer.categories_, strict=True):
                values = np.asarray(features[column], dtype=object)
                # an unseen or missing value matches no category: all zeros (handle_unknown="ignore")
                blocks.append((values[:, None] == categories[None, :]).astype(np.float64))
        else:
            return None
    return np.hstack(blocks) if blocks else None


def _plain_one_hot(transformer: Any, one_hot: type) -> bool:
    """A dense one-hot encoder without dropped, infrequent or missing-value categories."""
    return (
        isinstance(transformer, one_hot)
        and transformer.drop is None
        and transformer.handle_unknown == "ignore"
        and getattr(transformer, "_infrequent_enabled", False) is False
        and not transformer.sparse_output
        and all(
            categories.dtype == object and all(isinstance(value, str) for value in categories)
            for categories in transformer.categories_
        )
    )


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


def score_parquet(model: Any, path: str | Path, chunk_rows: int = 100_000) -> Iterator[pd.DataFrame]:
    """Score a Parquet file of raw rows chunk by chunk.

    While the model scores a chunk, a second thread reads the next one and builds its features
    (the model's tree walk releases the GIL), so reading and scoring overlap; at most one chunk
    waits ahead.

    Args:
        model: a fitted pipeline.
        path: a Parquet file with ``customer_id`` and every column of ``schema.RAW_FEATURES``.
        chunk_rows: the largest chunk read and scored at once.

    Yields:
        Frames with the columns ``customer_id`` and ``churn_probability`` (float64), in file order.
    """

    def prepared() -> Iterator[tuple[np.ndarray, pd.DataFrame, np.ndarray | None]]:
        for chunk in iter_parquet_chunks(path, chunk_rows, columns=[ID_COLUMN, *RAW_FEATURES]):
            features = build_features(chunk)
            yield chunk[ID_COLUMN].to_numpy(), features, _model_matrix(model, features)

    for ids, features, matrix in read_ahead(prepared()):
        if matrix is None:
            probabilities = model.predict_proba(features)[:, 1]
        else:
            probabilities = model[-1].predict_proba(matrix)[:, 1]
        yield pd.DataFrame({ID_COLUMN: ids, PREDICTION_COLUMN: np.asarray(probabilities, dtype=np.float64)})


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


def classification_metrics(y_true: Any, proba: Any) -> dict[str, Any]:
    """ROC AUC, average precision and log loss of probabilities against 0/1 labels.

    Rows whose label is missing (labels not arrived yet) are left out. A metric that is undefined
    (no labelled rows; a single class for ROC AUC and average precision) is ``None``, so the result
    is JSON-safe.

    Args:
        y_true: 0/1 labels, possibly with missing values.
        proba: predicted probabilities of class 1, same length.

    Returns:
        ``{"roc_auc", "average_precision", "log_loss", "n"}`` where ``n`` counts the labelled rows.

    Raises:
        ValueError: the lengths differ or a label is not 0/1.
    """
    series = y_true if isinstance(y_true, pd.Series) else pd.Series(np.asarray(y_true))
    labels = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    scores = np.asarray(proba, dtype=np.float64)
    if labels.shape != scores.shape:
        raise ValueError(f"y_true has {labels.shape[0]} rows but proba has {scores.shape[0]}")
    known = ~np.isnan(labels) & ~np.isnan(scores)
    if not np.isin(labels[known], (0.0, 1.0)).all():
        raise ValueError("y_true must hold only 0, 1 or missing values")
    y, p = labels[known].astype(np.int64), scores[known]
    result: dict[str, Any] = {"roc_auc": None, "average_precision": None, "log_loss": None, "n": int(len(y))}
    if len(y) == 0:
        return result
    result["log_loss"] = float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1]))
    if len(np.unique(y)) == 2:
        auc = float(roc_auc_score(y, p))
        ap = float(average_precision_score(y, p))
        result["roc_auc"] = None if math.isnan(auc) else auc
        result["average_precision"] = None if math.isnan(ap) else ap
    return result
