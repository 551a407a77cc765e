import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

import joblib
import pytest
from helpers import fit_model, predict_proba, seed_mlflow_db

from core.errors import ArtifactIntegrityError
from core.ml.scoring.artifacts import file_sha256, load_model
from demo.sample_data import generate_week
from providers.base import ModelRegistry, ModelVersion
from providers.local.registry import MlflowModelRegistry
from providers.local.storage import LocalObjectStore

METRICS = {"validation_roc_auc": 0.81, "validation_log_loss": 0.42, "n_train": 1000.0}


def new_registry(root: Path, tmp_path_factory) -> MlflowModelRegistry:
    seed_mlflow_db(root / "mlflow", tmp_path_factory)
    return MlflowModelRegistry(root / "mlflow", LocalObjectStore(root / "storage"))


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> MlflowModelRegistry:
    registry = new_registry(tmp_path_factory.mktemp("registry"), tmp_path_factory)
    for seed in (1, 2):
        model = fit_model(generate_week("2026-W05", 1000, seed=seed), {"max_iter": 10})
        local = registry.root.parent / f"model-{seed}.joblib"
        joblib.dump(model, local)
        registry.storage.put_file(f"models/seed={seed}/model.joblib", local)
    return registry


def _register(registry, model_name: str, key: str, seed: int = 1) -> ModelVersion:
    return registry.register(
        model_name,
        f"models/seed={seed}/model.joblib",
        registry_key=key,
        metrics=METRICS,
        params={"learning_rate": 0.1, "max_iter": 10},
        tags={"week": "2026-W05", "train_data_sha256": "abc"},
    )


def _artifact_file(registry, version: ModelVersion) -> Path:
    path = Path(unquote(urlparse(version.artifact_uri).path)) / "model.joblib"
    assert path.is_file()
    assert path.is_relative_to(registry.root)  # the registry keeps its own copy
    return path


def test_is_a_model_registry(registry):
    assert isinstance(registry, ModelRegistry)


def test_register_records_the_version(registry):
    version = _register(registry, "reg_basic", "2026-W05-abc")
    expected_sha = file_sha256(registry.storage.path("models/seed=1/model.joblib"))
    assert version.model_name == "reg_basic"
    assert version.version == "1"
    assert version.sha256 == expected_sha
    assert version.registry_key == "2026-W05-abc"
    assert dict(version.metrics) == pytest.approx(METRICS)
    assert version.tags["week"] == "2026-W05"
    assert version.tags["train_data_sha256"] == "abc"
    assert version.tags["sha256"] == expected_sha
    assert version.tags["model_key"] == "models/seed=1/model.joblib"
    assert version.artifact_uri.startswith("file://")
    assert version.created_at.endswith("+00:00")
    assert file_sha256(_artifact_file(registry, version)) == expected_sha
    # params and the run are in MLflow
    run = registry.client.get_run(registry.client.get_model_version("reg_basic", "1").run_id)
    assert run.data.params == {"learning_rate": "0.1", "max_iter": "10"}
    assert registry.get_version("reg_basic", "1") == version


def test_register_again_with_the_same_key_returns_the_same_version(registry):
    first = _register(registry, "reg_idem", "key-1")
    again = _register(registry, "reg_idem", "key-1", seed=2)  # even with other inputs: the key decides
    assert again == first
    assert [v.version for v in registry.list_versions("reg_idem")] == ["1"]
    assert (
        len(registry.client.search_runs([registry.client.get_experiment_by_name("reg_idem").experiment_id]))
        == 1
    )
    other = _register(registry, "reg_idem", "key-2")
    assert other.version == "2"
    assert other.sha256 == first.sha256  # same artifact, new key: a new version


def test_list_versions_oldest_first(registry):
    assert registry.list_versions("reg_never_registered") == []
    keys = [f"week-{i:02d}" for i in range(11)]
    for key in keys:
        _register(registry, "reg_list", key, seed=1 + len(key) % 2)
    versions = registry.list_versions("reg_list")
    assert [v.version for v in versions] == [str(i) for i in range(1, 12)]  # 10 after 9, not after 1
    assert [v.registry_key for v in versions] == keys


def test_get_version_of_a_missing_version_raises_key_error(registry):
    _register(registry, "reg_missing", "only")
    with pytest.raises(KeyError, match="no version '7'"):
        registry.get_version("reg_missing", "7")
    with pytest.raises(KeyError):
        registry.get_version("reg_does_not_exist", "1")
    assert registry.get_alias("reg_missing", "production") is None
    assert registry.get_alias("reg_does_not_exist", "production") is None


def test_set_alias_and_its_history(registry):
    v1 = _register(registry, "reg_alias", "a", seed=1)
    v2 = _register(registry, "reg_alias", "b", seed=2)
    assert registry.alias_history("reg_alias", "production") == []

    first = registry.set_alias("reg_alias", "production", v1.version, "first model", "dag-run-1")
    assert first.version == "1" and first.previous_version is None
    assert registry.get_alias("reg_alias", "production") == v1
    second = registry.set_alias("reg_alias", "production", v2.version, "gate passed", "dag-run-2")
    assert second.previous_version == "1"
    rollback = registry.set_alias("reg_alias", "production", "1", "rollback: v2 misbehaves", "alice")
    assert rollback.previous_version == "2"
    assert registry.get_alias("reg_alias", "production").version == "1"

    history = registry.alias_history("reg_alias", "production")
    assert history == [first, second, rollback]
    assert [(h.version, h.previous_version) for h in history] == [("1", None), ("2", "1"), ("1", "2")]
    assert [h.reason for h in history] == ["first model", "gate passed", "rollback: v2 misbehaves"]
    assert [h.actor for h in history] == ["dag-run-1", "dag-run-2", "alice"]
    assert all(h.model_name == "reg_alias" and h.alias == "production" for h in history)
    assert [h.changed_at for h in history] == sorted(h.changed_at for h in history)
    # another alias has its own history
    assert registry.alias_history("reg_alias", "staging") == []


def test_set_alias_to_the_current_version_records_nothing(registry):
    _register(registry, "reg_same", "a")
    assert registry.set_alias("reg_same", "production", "1", "first", "run-1") is not None
    assert registry.set_alias("reg_same", "production", "1", "again", "run-2") is None
    assert registry.set_alias("reg_same", "production", "1", "again", "run-3", expected_current="1") is None
    assert len(registry.alias_history("reg_same", "production")) == 1


def test_set_alias_to_a_missing_version_moves_nothing(registry):
    _register(registry, "reg_nover", "a")
    with pytest.raises(KeyError):
        registry.set_alias("reg_nover", "production", "5", "typo", "bob")
    assert registry.alias_history("reg_nover", "production") == []
    assert registry.get_alias("reg_nover", "production") is None


def test_expected_current_compare_and_set(registry):
    for key in ("a", "b", "c"):
        _register(registry, "reg_cas", key)
    # alias points nowhere: only expected_current=None (or the default) moves it
    assert registry.set_alias("reg_cas", "production", "1", "stale", "run-x", expected_current="3") is None
    assert registry.get_alias("reg_cas", "production") is None
    assert registry.set_alias("reg_cas", "production", "1", "first", "run-1", expected_current=None)
    # a stale run that still believes the alias points nowhere moves nothing
    assert registry.set_alias("reg_cas", "production", "2", "stale", "run-old", expected_current=None) is None
    # nor does one that expects another version
    assert registry.set_alias("reg_cas", "production", "3", "stale", "run-old", expected_current="2") is None
    assert registry.get_alias("reg_cas", "production").version == "1"
    assert [h.version for h in registry.alias_history("reg_cas", "production")] == ["1"]
    # the right expectation moves it
    change = registry.set_alias("reg_cas", "production", "2", "gate passed", "run-2", expected_current="1")
    assert change.previous_version == "1"
    assert registry.get_alias("reg_cas", "production").version == "2"
    assert [h.version for h in registry.alias_history("reg_cas", "production")] == ["1", "2"]


def test_fetch_artifact_checks_the_sha(registry, tmp_path):
    version = _register(registry, "reg_fetch", "a", seed=2)
    path = registry.fetch_artifact(version, tmp_path / "deploy" / "v1")
    assert path == tmp_path / "deploy" / "v1" / "model.joblib"
    assert file_sha256(path) == version.sha256
    model = load_model(path, version.sha256)
    assert predict_proba(model, generate_week("2026-W06", 20, seed=3)).shape == (20,)
    # fetching again over the existing file works
    assert file_sha256(registry.fetch_artifact(version, tmp_path / "deploy" / "v1")) == version.sha256
    # changing the storage object after registration does not change the registered artifact
    registry.storage.put_bytes("models/seed=2/model.joblib", b"overwritten later")
    try:
        assert file_sha256(registry.fetch_artifact(version, tmp_path / "again")) == version.sha256
    finally:
        registry.storage.put_file("models/seed=2/model.joblib", path)


def test_tampered_artifact_is_refused(registry, tmp_path):
    version = _register(registry, "reg_tamper", "a")
    artifact = _artifact_file(registry, version)
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError) as info:
        registry.fetch_artifact(version, tmp_path / "out")
    message = str(info.value)
    assert version.sha256 in message and "reg_tamper" in message
    assert not (tmp_path / "out" / "model.joblib").exists()  # nothing handed out


def test_version_without_a_recorded_sha_is_refused(registry, tmp_path):
    version = _register(registry, "reg_nosha", "a")
    unsigned = ModelVersion(**{**version.__dict__, "sha256": ""})
    with pytest.raises(ArtifactIntegrityError, match="nothing was recorded"):
        registry.fetch_artifact(unsigned, tmp_path / "out")
    assert not (tmp_path / "out" / "model.joblib").exists()


def test_concurrent_set_alias_leaves_one_linear_history(registry):
    for key in ("a", "b", "c", "d"):
        _register(registry, "reg_race", key)
    # separate registry objects, as separate Airflow tasks would have, on the same store
    workers = [MlflowModelRegistry(registry.root, registry.storage) for _ in range(4)]
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def move(index: int, worker: MlflowModelRegistry) -> None:
        try:
            barrier.wait(timeout=30)
            for step in range(4):
                version = str((index + step) % 4 + 1)
                worker.set_alias("reg_race", "production", version, f"step {step}", f"worker-{index}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=move, args=(i, w)) for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    history = registry.alias_history("reg_race", "production")
    assert history, "no move recorded"
    assert history[0].previous_version is None
    for before, after in zip(history, history[1:], strict=False):
        assert after.previous_version == before.version  # linear: each move starts where the last ended
        assert after.version != before.version
    assert registry.get_alias("reg_race", "production").version == history[-1].version


def test_concurrent_compare_and_set_lets_exactly_one_win(registry):
    for key in ("a", "b", "c", "d", "e"):
        _register(registry, "reg_cas_race", key)
    registry.set_alias("reg_cas_race", "production", "1", "first", "setup")
    workers = [MlflowModelRegistry(registry.root, registry.storage) for _ in range(4)]
    barrier = threading.Barrier(len(workers))
    results: dict[int, object] = {}

    def promote(index: int, worker: MlflowModelRegistry) -> None:
        barrier.wait(timeout=30)
        results[index] = worker.set_alias(
            "reg_cas_race", "production", str(index + 2), "gate passed", f"run-{index}", expected_current="1"
        )

    threads = [threading.Thread(target=promote, args=(i, w)) for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    winners = [change for change in results.values() if change is not None]
    assert len(results) == 4 and len(winners) == 1
    history = registry.alias_history("reg_cas_race", "production")
    assert [h.version for h in history] == ["1", winners[0].version]
    assert registry.get_alias("reg_cas_race", "production").version == winners[0].version
