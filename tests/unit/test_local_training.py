import json
import logging
import time

import pytest
from helpers import predict_proba

from core.errors import DeterministicError
from core.ml.scoring.artifacts import file_sha256, load_model
from demo.sample_data import generate_week, write_parquet_bytes
from demo.spec import DEMO_SPEC
from providers.base import TrainingJobResult, TrainingJobs, TrainingJobSpec
from providers.jobs import run_training
from providers.local.storage import LocalObjectStore
from providers.local.training import (
    SUCCESS_MARKER,
    SubprocessTrainingJobs,
    TrainingInputError,
)

HPS = {"learning_rate": 0.1, "max_iter": 20, "max_leaf_nodes": 15}


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> LocalObjectStore:
    store = LocalObjectStore(tmp_path_factory.mktemp("training") / "storage")
    train = generate_week("2026-W05", 2000, seed=11)
    validation = generate_week("2026-W06", 500, seed=11)
    store.put_bytes("datasets/week=2026-W06/train.parquet", write_parquet_bytes(train))
    store.put_bytes("datasets/week=2026-W06/validation.parquet", write_parquet_bytes(validation))
    store.put_bytes("datasets/broken/train.parquet", write_parquet_bytes(train.drop(columns=["churned"])))
    return store


def _spec(name: str, train_key: str = "datasets/week=2026-W06/train.parquet") -> TrainingJobSpec:
    return TrainingJobSpec(
        job_name=name,
        train_data_key=train_key,
        validation_data_key="datasets/week=2026-W06/validation.parquet",
        output_prefix=f"models/{name}",
        hyperparameters=HPS,
        hardware={"n_jobs": 1},
        dataset_spec=DEMO_SPEC.to_json(),
    )


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def finished(storage) -> tuple[TrainingJobResult, float, list[str]]:
    """One real training run (a few seconds), shared by the tests below."""
    # outputs without the success marker, as a job killed half-way leaves them: they are redone
    storage.put_bytes("models/train-2026-W06-abc/model.joblib", b"half a model")
    storage.put_bytes("models/train-2026-W06-abc/metrics.json", b"{}")
    logger = logging.getLogger("providers.local.training")
    handler, level = _Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        started = time.monotonic()
        result = run_training(SubprocessTrainingJobs(storage), _spec("train-2026-W06-abc"))
        seconds = time.monotonic() - started
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return result, seconds, handler.lines


def test_is_training_jobs(storage):
    assert isinstance(SubprocessTrainingJobs(storage), TrainingJobs)


def test_run_writes_the_outputs_and_returns_the_metrics(storage, finished):
    result, _, _ = finished
    prefix = "models/train-2026-W06-abc"
    assert result.job_name == "train-2026-W06-abc"
    assert result.reused is False
    assert result.model_key == f"{prefix}/model.joblib"
    assert storage.list_keys(f"{prefix}/") == sorted(
        f"{prefix}/{name}" for name in ("model.joblib", "metrics.json", "feature_names.json", SUCCESS_MARKER)
    )
    metrics = json.loads(storage.get_bytes(f"{prefix}/metrics.json"))
    assert dict(result.metrics) == metrics
    assert metrics["n_train"] == 2000
    assert metrics["n_validation"] == 500
    assert 0.6 < metrics["validation_roc_auc"] <= 1.0
    assert json.loads(storage.get_bytes(f"{prefix}/{SUCCESS_MARKER}")) == {"job_name": "train-2026-W06-abc"}
    # the artifact is a working model
    path = storage.path(result.model_key)
    model = load_model(path, file_sha256(path))
    probabilities = predict_proba(model, generate_week("2026-W07", 50, seed=1))
    assert ((probabilities >= 0) & (probabilities <= 1)).all()


def test_a_second_run_reuses_the_finished_job(storage, finished):
    first, first_seconds, _ = finished
    model_sha = file_sha256(storage.path(first.model_key))
    started = time.monotonic()
    again = run_training(SubprocessTrainingJobs(storage), _spec("train-2026-W06-abc"))
    seconds = time.monotonic() - started
    assert again.reused is True
    assert again.metrics == first.metrics
    assert again.model_key == first.model_key
    assert seconds < 0.5 and seconds < first_seconds / 4
    assert file_sha256(storage.path(first.model_key)) == model_sha  # not rewritten


def test_the_training_log_goes_to_the_task_log(finished):
    _, _, lines = finished
    assert any(line.startswith("[train-2026-W06-abc] [train] training finished") for line in lines)


def test_a_job_killed_before_its_marker_runs_again(storage, finished):
    result, _, _ = finished  # its prefix held a half-written model and no marker before the run
    assert result.reused is False
    assert storage.get_bytes(result.model_key) != b"half a model"
    assert json.loads(storage.get_bytes("models/train-2026-W06-abc/metrics.json")) == dict(result.metrics)


def test_a_failing_training_script_raises_and_leaves_no_marker(storage, caplog):
    spec = _spec("train-broken", train_key="datasets/broken/train.parquet")
    with caplog.at_level(logging.INFO, logger="providers.local.training"):
        with pytest.raises(TrainingInputError, match="train-broken") as info:
            run_training(SubprocessTrainingJobs(storage), spec)
    # bad input fails the same way on every try: deterministic (the task does not retry), and
    # the script's own reason is the message (a crash or a kill stays retryable)
    assert "refused its input: the data has no label column 'churned'" in str(info.value)
    assert isinstance(info.value, DeterministicError)
    assert not storage.exists(f"models/train-broken/{SUCCESS_MARKER}")
    assert storage.list_keys("models/train-broken/") == []
    # the script's reason is in the task log
    assert any("no label column" in r.getMessage() for r in caplog.records)


def test_a_missing_input_raises_before_starting(storage):
    spec = _spec("train-missing-input", train_key="datasets/nothing/train.parquet")
    with pytest.raises(FileNotFoundError):
        run_training(SubprocessTrainingJobs(storage), spec)
    assert storage.list_keys("models/train-missing-input/") == []
