from pathlib import Path
from urllib.parse import unquote, urlparse

import joblib
import numpy as np
import pandas as pd
import pytest
from helpers import fit_model, predict_proba, seed_mlflow_db

from core.errors import ArtifactIntegrityError
from demo.sample_data import generate_week, write_parquet_bytes
from demo.spec import ID_COLUMN, PREDICTION_COLUMN
from providers.base import BatchScorer, ModelVersion
from providers.jobs import score
from providers.local.batch import ChunkedBatchScorer
from providers.local.registry import MlflowModelRegistry
from providers.local.storage import LocalObjectStore

INPUT_KEY = "validated/week=2026-W07/data.parquet"


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[MlflowModelRegistry, object, pd.DataFrame]:
    root = tmp_path_factory.mktemp("batch")
    storage = LocalObjectStore(root / "storage")
    model = fit_model(generate_week("2026-W05", 1000, seed=4), {"max_iter": 10})
    joblib.dump(model, root / "model.joblib")
    storage.put_file("models/a/model.joblib", root / "model.joblib")
    frame = generate_week("2026-W07", 2500, seed=4)
    storage.put_bytes(INPUT_KEY, write_parquet_bytes(frame))
    seed_mlflow_db(root / "mlflow", tmp_path_factory)
    registry = MlflowModelRegistry(root / "mlflow", storage)
    return registry, model, frame


@pytest.fixture(scope="module")
def version(setup) -> ModelVersion:
    registry, _, _ = setup
    return registry.register("churn", "models/a/model.joblib", "key-a", {}, {}, {})


def test_is_a_batch_scorer(setup):
    registry, _, _ = setup
    assert isinstance(ChunkedBatchScorer(registry.storage, registry), BatchScorer)


def test_scores_every_row_once_in_chunks(setup, version):
    registry, model, frame = setup
    chunks = list(score(ChunkedBatchScorer(registry.storage, registry, chunk_rows=1000), version, INPUT_KEY))
    assert [len(chunk) for chunk in chunks] == [1000, 1000, 500]
    for chunk in chunks:
        assert list(chunk.columns) == [ID_COLUMN, PREDICTION_COLUMN, "churn_class"]
        assert chunk[PREDICTION_COLUMN].dtype == np.float64
    scored = pd.concat(chunks, ignore_index=True)
    assert scored[ID_COLUMN].is_unique
    assert scored[ID_COLUMN].tolist() == frame[ID_COLUMN].tolist()  # every customer once, in file order
    probabilities = scored[PREDICTION_COLUMN].to_numpy()
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    np.testing.assert_allclose(probabilities, predict_proba(model, frame), rtol=0, atol=1e-12)


def test_default_chunk_size_gives_one_chunk(setup, version):
    registry, model, frame = setup
    chunks = list(score(ChunkedBatchScorer(registry.storage, registry), version, INPUT_KEY))
    assert len(chunks) == 1 and len(chunks[0]) == 2500


def test_a_tampered_artifact_is_refused_before_scoring(setup):
    registry, _, _ = setup
    other = registry.register("churn", "models/a/model.joblib", "key-tampered", {}, {}, {})
    artifact = Path(unquote(urlparse(other.artifact_uri).path)) / "model.joblib"
    artifact.write_bytes(artifact.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ArtifactIntegrityError):
        next(score(ChunkedBatchScorer(registry.storage, registry, chunk_rows=1000), other, INPUT_KEY))


def test_a_missing_input_raises(setup, version):
    registry, _, _ = setup
    with pytest.raises(FileNotFoundError):
        list(
            score(
                ChunkedBatchScorer(registry.storage, registry),
                version,
                "validated/week=2026-W01/data.parquet",
            )
        )
    with pytest.raises(ValueError):
        list(score(ChunkedBatchScorer(registry.storage, registry), version, "../outside.parquet"))


class CountingRegistry:
    """The real registry, counting its artifact fetches."""

    def __init__(self, registry: MlflowModelRegistry) -> None:
        self.registry, self.fetched = registry, 0

    def __getattr__(self, name: str):
        return getattr(self.registry, name)

    def fetch_artifact(self, version: ModelVersion, directory: Path) -> Path:
        self.fetched += 1
        return self.registry.fetch_artifact(version, directory)


def test_a_scoring_fetches_the_artifact_once_and_a_handle_from_elsewhere_fetches_its_own(setup, version):
    registry, _, frame = setup
    counting = CountingRegistry(registry)
    scorer = ChunkedBatchScorer(registry.storage, counting, chunk_rows=1000)
    assert sum(len(chunk) for chunk in score(scorer, version, INPUT_KEY)) == len(frame)
    assert counting.fetched == 1  # submit's model served results
    handle = scorer.submit(version, INPUT_KEY)
    elsewhere = ChunkedBatchScorer(registry.storage, counting)  # the results of another process
    assert sum(len(chunk) for chunk in elsewhere.results(version, handle)) == len(frame)
    assert counting.fetched == 3
