import pickle
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import fit_model, predict_proba

from core.errors import ArtifactIntegrityError
from core.ml.modeling import task_metrics
from core.ml.scoring.artifacts import file_sha256, load_model
from core.ml.scoring.chunking import iter_parquet_chunks, read_ahead
from core.ml.scoring.prediction import score_parquet
from demo import spec as schema
from demo.sample_data import generate_week, write_parquet_bytes


def predict_proba_records(model, records):
    """The endpoint's path (request dicts, no pandas frames when the spec allows)."""
    return model.predict_records(records)[:, 1] if records else np.empty(0)


def classification_metrics(y, p):
    """The binary task's metrics from 0/1 labels (None: unknown) and probabilities of 1."""
    labels = pd.Series(
        [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(int(v)) for v in y]
    )
    known = labels.notna().to_numpy()
    p = np.asarray(p, dtype=float)[known]
    return task_metrics("binary", labels[known], np.column_stack([1 - p, p]), ["0", "1"])


class _Tripwire:
    """Unpickling this creates a file: proof that untrusted bytes were deserialised."""

    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return (Path.touch, (self.sentinel,))


@pytest.fixture(scope="module")
def model():
    return fit_model(generate_week("2026-W05", 1500, seed=9), {"max_iter": 20, "max_leaf_nodes": 8}, n_jobs=1)


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.joblib"
    joblib.dump(model, path)
    return path


def test_file_sha256_matches_hashlib(model_file):
    import hashlib

    assert file_sha256(model_file) == hashlib.sha256(model_file.read_bytes()).hexdigest()


def test_load_model_with_the_right_hash(model_file):
    loaded = load_model(model_file, file_sha256(model_file).upper())
    raw = generate_week("2026-W06", 50, seed=9)
    assert predict_proba(loaded, raw).shape == (50,)


def test_tampered_file_is_refused_before_unpickling(model_file, tmp_path):
    registered_sha = file_sha256(model_file)
    sentinel = tmp_path / "unpickled.flag"
    tampered = tmp_path / "model.joblib"
    tampered.write_bytes(pickle.dumps(_Tripwire(sentinel)))

    with pytest.raises(ArtifactIntegrityError) as caught:
        load_model(tampered, registered_sha)
    message = str(caught.value)
    assert str(tampered) in message
    assert registered_sha in message and file_sha256(tampered) in message
    assert not sentinel.exists()  # nothing was unpickled

    # the tripwire is real: loading without the check would have run it
    joblib.load(tampered)
    assert sentinel.exists()


def test_empty_expected_hash_is_refused(model_file):
    with pytest.raises(ArtifactIntegrityError):
        load_model(model_file, "")


def test_chunked_scoring_covers_every_row_once(model, tmp_path):
    raw = generate_week("2026-W06", 2500, seed=9)
    path = tmp_path / "week.parquet"
    # several row groups, so chunks also cross row-group boundaries
    pq.write_table(pa.Table.from_pandas(raw, preserve_index=False), path, row_group_size=1000)

    chunks = list(score_parquet(model, path, chunk_rows=700))
    assert all(0 < len(c) <= 700 for c in chunks)
    assert len(chunks) >= 4
    scored = pd.concat(chunks, ignore_index=True)
    assert list(scored.columns) == [schema.ID_COLUMN, schema.PREDICTION_COLUMN, "churn_class"]
    assert scored[schema.PREDICTION_COLUMN].dtype == np.float64
    assert set(scored["churn_class"]) <= {"0", "1"}
    assert scored[schema.ID_COLUMN].tolist() == raw[schema.ID_COLUMN].tolist()
    np.testing.assert_allclose(scored[schema.PREDICTION_COLUMN].to_numpy(), predict_proba(model, raw))


def test_iter_parquet_chunks_sizes_and_columns(tmp_path):
    raw = generate_week("2026-W06", 1000, seed=9)
    path = tmp_path / "week.parquet"
    path.write_bytes(write_parquet_bytes(raw))
    chunks = list(iter_parquet_chunks(path, chunk_rows=300, columns=["customer_id", "age"]))
    assert [len(c) for c in chunks] == [300, 300, 300, 100]
    assert all(list(c.columns) == ["customer_id", "age"] for c in chunks)
    with pytest.raises(ValueError, match="no_such_column"):
        list(iter_parquet_chunks(path, columns=["no_such_column"]))


def test_classification_metrics():
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.3, 0.8, 0.7, 0.2, 0.9])
    m = classification_metrics(y, p)
    assert m["roc_auc"] == pytest.approx(1.0)
    assert m["average_precision"] == pytest.approx(1.0)
    assert m["log_loss"] > 0 and m["n"] == 6

    single = classification_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    assert single["roc_auc"] is None and single["n"] == 3 and single["log_loss"] > 0

    partial = classification_metrics([0, None, 1, np.nan], [0.2, 0.5, 0.9, 0.4])
    assert partial["n"] == 2 and partial["roc_auc"] == pytest.approx(1.0)

    nothing = classification_metrics([None, None], [0.2, 0.5])
    assert nothing == {"roc_auc": None, "average_precision": None, "log_loss": None, "n": 0}


def test_predict_proba_equals_the_sklearn_pipeline(model):
    # predict_proba applies the fitted one-hot encoding with numpy (fast for one-row requests):
    # it must give exactly what the pipeline gives, unseen and missing categories included.
    from core.ml.features import build_features

    raw = generate_week("2026-W06", 400, seed=4)
    raw["region"] = raw["region"].astype(object)
    raw.loc[:9, "region"] = "atlantis"  # never seen in training
    raw.loc[10:19, "plan_tier"] = None
    raw.loc[20:29, "monthly_charges"] = np.nan
    raw.loc[30:39, "contract_type"] = None  # a feature the feature function reads
    expected = model.pipeline.predict_proba(build_features(raw, model.spec))[:, 1]
    np.testing.assert_array_equal(predict_proba(model, raw), expected)
    for i in (0, 15, 25, 100):  # one row at a time
        np.testing.assert_array_equal(predict_proba(model, raw.iloc[[i]]), expected[[i]])

    # the endpoint's path: request dicts (None for a missing value)
    records = raw.astype(object).where(raw.notna(), None).to_dict(orient="records")
    assert records[10]["plan_tier"] is None and records[20]["monthly_charges"] is None
    np.testing.assert_array_equal(predict_proba_records(model, records), expected)
    for i in (0, 15, 25, 100):
        np.testing.assert_array_equal(predict_proba_records(model, [records[i]]), expected[[i]])
    assert predict_proba_records(model, []).shape == (0,)


def test_read_ahead_keeps_order_raises_in_order_and_stops_early():
    import threading

    assert list(read_ahead(iter(range(50)))) == list(range(50))
    assert list(read_ahead(iter([]))) == []

    def failing():
        yield 1
        yield 2
        raise ValueError("chunk 3 is bad")

    seen = []
    with pytest.raises(ValueError, match="chunk 3 is bad"):
        for item in read_ahead(failing()):
            seen.append(item)
    assert seen == [1, 2]

    closed = threading.Event()

    def endless():
        try:
            n = 0
            while True:
                n += 1
                yield n
        finally:
            closed.set()

    reader = read_ahead(endless())
    assert [next(reader) for _ in range(3)] == [1, 2, 3]
    reader.close()  # the consumer stops: the thread stops and closes the generator
    assert closed.wait(5)
    assert not [t for t in threading.enumerate() if t.name == "read-ahead"]
