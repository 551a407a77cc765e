import dataclasses
import json
import tomllib
from pathlib import Path

import pytest
from helpers import write_config

from core.config import PROJECT_ROOT, Settings, load_settings
from core.errors import ConfigError, ParamError


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(PROJECT_ROOT / "astro.toml")


@pytest.fixture(scope="module")
def raw() -> dict:
    """astro.toml as plain TOML: the values the settings must reflect (the file may be retuned)."""
    return tomllib.loads((PROJECT_ROOT / "astro.toml").read_text())


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path


def _config_error(path: Path) -> str:
    """Load ``path``, expect a ConfigError naming the file; return the message without the path."""
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert str(path) in message
    return message.replace(str(path), "<file>")


def test_project_astro_toml_loads(settings, raw):
    assert settings.provider == raw["project"]["provider"]
    assert settings.model_name == raw["project"]["model_name"]
    assert settings.config_path == PROJECT_ROOT / "astro.toml"
    for section in ("data", "validation", "training", "gate", "drift"):
        for key, value in raw.get(section, {}).items():
            assert getattr(getattr(settings, section), key) == value, (section, key)
    assert isinstance(settings.drift.feature_psi_threshold, float)
    assert settings.provider_sections["local"] == raw["local"]
    assert set(settings.provider_sections) == {"local", "aws", "gcp", "azure"}
    assert dataclasses.is_dataclass(settings)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.provider = "aws"  # type: ignore[misc]


def test_written_config_loads(tmp_path):
    path = write_config(
        tmp_path, model={"params": {"max_iter": 20, "learning_rate": 1}}, gate={"margin": 0.01}
    )
    settings = load_settings(path)
    assert settings.model.params["max_iter"] == 20
    assert settings.model.params["learning_rate"] == 1
    assert settings.model.params["max_leaf_nodes"] == 31  # the shipped value: merged, not replaced
    assert settings.gate.margin == 0.01
    assert settings.provider_sections["local"]["root"] == str(tmp_path / "mlops")
    assert settings.config_path == path


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="nope.toml") as info:
        load_settings(missing)
    assert "not found" in str(info.value)


def test_invalid_toml(tmp_path):
    path = _write(tmp_path, "[project\nprovider = 'local'\n")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_settings(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("sections", "words"),
    [
        ({"training": {"max_iterations": 3}}, ["max_iterations", "[training]"]),
        ({"project": {"modelname": "x"}}, ["modelname", "[project]"]),
        ({"trainig": {"max_iter": 3}}, ["trainig"]),
    ],
)
def test_unknown_key(tmp_path, sections, words):
    message = _config_error(write_config(tmp_path, **sections))
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("sections", "key"),
    [
        ({"model": {"estimator": 5}}, "estimator"),
        ({"model": {"estimator": "not a path"}}, "estimator"),
        ({"model": {"params": 3}}, "params"),
        ({"training": {"window_weeks": True}}, "window_weeks"),
        ({"drift": {"feature_psi_threshold": "0.2"}}, "feature_psi_threshold"),
        ({"gate": {"margin": False}}, "margin"),
        ({"data": {"source": 5}}, "source"),
        ({"project": {"provider": 5}}, "provider"),
        ({"project": {"model_name": 5}}, "model_name"),
    ],
)
def test_wrong_type(tmp_path, sections, key):
    assert key in _config_error(write_config(tmp_path, **sections))


@pytest.mark.parametrize(
    ("sections", "key"),
    [
        ({"training": {"window_weeks": 0}}, "window_weeks"),
        ({"training": {"window_weeks": 105}}, "window_weeks"),
        ({"training": {"holdout_fraction": 0.9}}, "holdout_fraction"),
        ({"validation": {"max_bad_row_fraction": 1.5}}, "max_bad_row_fraction"),
        ({"data": {"rows_per_week": 0}}, "rows_per_week"),
        ({"gate": {"margin": -0.1}}, "margin"),
        ({"drift": {"feature_psi_threshold": 0.0}}, "feature_psi_threshold"),
        ({"drift": {"drifted_share_threshold": 2.0}}, "drifted_share_threshold"),
        ({"gate": {"metric": "accuracy"}}, "metric"),
        ({"gate": {"metric": "rmse"}}, "metric"),
    ],
)
def test_out_of_range(tmp_path, sections, key):
    assert key in _config_error(write_config(tmp_path, **sections))


def test_nan_is_out_of_range(tmp_path):
    text = (PROJECT_ROOT / "astro.toml").read_text().replace("margin = 0.0", "margin = nan")
    assert "margin" in _config_error(_write(tmp_path, text))
    text = (PROJECT_ROOT / "astro.toml").read_text().replace("learning_rate = 0.1", "learning_rate = nan")
    assert "learning_rate" in _config_error(_write(tmp_path, text))


@pytest.mark.parametrize(
    "name", ["Churn", "1churn", "churn-model", "churn model", "churn\n", "", "../x", "a" * 64]
)
def test_bad_model_name(tmp_path, name):
    path = _write(tmp_path, f"[project]\nmodel_name = {json.dumps(name)}\n")  # JSON strings are TOML
    assert "model_name" in _config_error(path)


def test_unknown_provider_in_file(tmp_path):
    assert "'oracle' is not one of" in _config_error(write_config(tmp_path, project={"provider": "oracle"}))


@pytest.mark.parametrize(
    "week", ["2026-5", "2026-W5", "W05", "next week", "2026-W05/../x", "2026-W05\n", "2026-W54", "2027-W53"]
)
@pytest.mark.parametrize("key", ["covariate_drift_from_week", "concept_drift_from_week"])
def test_bad_drift_week(tmp_path, key, week):
    path = _write(tmp_path, f"[data]\n{key} = {json.dumps(week)}\n")
    assert f"[data] {key}" in _config_error(path)


def test_drift_week_set_or_empty(tmp_path):
    path = write_config(
        tmp_path, data={"covariate_drift_from_week": "2026-W53", "concept_drift_from_week": ""}
    )
    settings = load_settings(path)
    assert settings.data.covariate_drift_from_week == "2026-W53"  # 2026 has 53 ISO weeks
    assert settings.data.concept_drift_from_week == ""


def test_mlops_config_env_var(tmp_path, monkeypatch):
    path = write_config(tmp_path, model={"params": {"max_iter": 7}})
    monkeypatch.setenv("MLOPS_CONFIG", str(path))
    settings = load_settings()
    assert settings.model.params["max_iter"] == 7
    assert settings.config_path == path
    # an explicit path wins over the variable
    assert load_settings(PROJECT_ROOT / "astro.toml").config_path == PROJECT_ROOT / "astro.toml"


def test_mlops_config_env_var_missing_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_CONFIG", str(tmp_path / "elsewhere.toml"))
    with pytest.raises(ConfigError, match="elsewhere.toml"):
        load_settings()


def test_mlops_provider_env_var(monkeypatch, raw):
    monkeypatch.setenv("MLOPS_PROVIDER", "gcp")
    settings = load_settings(PROJECT_ROOT / "astro.toml")
    assert settings.provider == "gcp"
    assert settings.provider_settings() == raw["gcp"]
    assert settings.hardware_profile("training") == raw["hardware"]["training"]["gcp"]
    monkeypatch.setenv("MLOPS_PROVIDER", "oracle")
    with pytest.raises(ConfigError, match="oracle"):
        load_settings(PROJECT_ROOT / "astro.toml")


def test_with_overrides_valid(settings, raw):
    changed = settings.with_overrides(
        provider="aws",
        gate_margin=0.02,
        feature_psi_threshold=0.3,
        drifted_share_threshold=0.5,
        window_weeks=8,
    )
    assert changed.provider == "aws"
    assert changed.gate.margin == 0.02
    assert changed.drift.feature_psi_threshold == 0.3
    assert changed.drift.drifted_share_threshold == 0.5
    assert changed.training.window_weeks == 8
    # the original is untouched, and the other values are kept
    assert settings.provider == raw["project"]["provider"]
    assert settings.training.window_weeks == raw["training"]["window_weeks"]
    assert changed.gate.metric == settings.gate.metric
    assert changed.drift.prediction_psi_threshold == settings.drift.prediction_psi_threshold


def test_with_overrides_none_and_empty_keep_values(settings):
    same = settings.with_overrides(
        provider=None, gate_margin=None, window_weeks="", feature_psi_threshold=None
    )
    assert same == settings


def test_with_overrides_integral_float_window(settings):
    changed = settings.with_overrides(window_weeks=6.0)  # a JSON "integer" Param may be a float
    assert changed.training.window_weeks == 6 and isinstance(changed.training.window_weeks, int)


@pytest.mark.parametrize(
    "overrides",
    [
        {"gate_margin": -0.01},
        {"gate_margin": 5},
        {"feature_psi_threshold": -1.0},
        {"feature_psi_threshold": 1e9},
        {"feature_psi_threshold": float("nan")},
        {"feature_psi_threshold": "0.3"},
        {"drifted_share_threshold": 0.0},
        {"drifted_share_threshold": 1.5},
        {"window_weeks": 0},
        {"window_weeks": 1000},
        {"window_weeks": 2.5},
        {"window_weeks": True},
        {"provider": "oracle"},
        {"provider": 3},
    ],
)
def test_with_overrides_rejects_bad_values(settings, overrides):
    name = next(iter(overrides))
    with pytest.raises(ParamError) as info:
        settings.with_overrides(**overrides)
    message = str(info.value)
    assert "invalid run parameter" in message
    assert name.split("_")[-1] in message


def test_with_overrides_rejects_unknown_name(settings):
    with pytest.raises(ParamError, match="learning_rate") as info:
        settings.with_overrides(learning_rate=0.5)
    assert "window_weeks" in str(info.value)  # lists the known ones


def test_param_and_config_errors_are_deterministic():
    from core.errors import DeterministicError

    assert issubclass(ConfigError, DeterministicError)
    assert issubclass(ParamError, DeterministicError)


def test_hardware_profile(settings, raw):
    hardware = raw["hardware"]
    assert settings.hardware_profile("training") == hardware["training"]["local"]
    assert settings.hardware_profile("inference") == hardware["inference"]["local"]
    assert "n_jobs" in settings.hardware_profile("training")
    aws = settings.with_overrides(provider="aws")
    assert aws.hardware_profile("training") == hardware["training"]["aws"]
    assert {"instance_type", "instance_count"} <= set(aws.hardware_profile("training"))
    # a copy: changing it does not change the settings
    profile = settings.hardware_profile("training")
    profile["n_jobs"] = 99
    assert settings.hardware_profile("training") == hardware["training"]["local"]
    with pytest.raises(ValueError, match="purpose"):
        settings.hardware_profile("gpu")


def test_hardware_profile_missing_is_empty():
    assert Settings().hardware_profile("training") == {}


def test_the_demo_spec_is_the_default_dataset(settings):
    from demo.spec import DEMO_SPEC

    assert settings.dataset == DEMO_SPEC
    assert settings.gate_metric == "roc_auc"  # [gate] metric empty: the binary task's first
    assert settings.estimator == "sklearn.ensemble.HistGradientBoostingClassifier"


def test_an_inline_dataset_spec(tmp_path):
    dataset = {
        "label": "price",
        "task": "regression",
        "features": {"rooms": {"kind": "numeric", "min": 0}, "city": {"kind": "categorical"}},
    }
    settings = load_settings(write_config(tmp_path, dataset=dataset))
    assert settings.dataset.task == "regression" and settings.dataset.feature_names == ("rooms", "city")
    assert settings.gate_metric == "rmse"
    assert settings.estimator == "sklearn.ensemble.HistGradientBoostingRegressor"
    assert settings.dataset.key_column == "row_key"  # no id column: derived keys
    assert settings.dataset.prediction_columns() == {"price_prediction": "float"}


@pytest.mark.parametrize(
    ("dataset", "words"),
    [
        ({"task": "binary", "positive_class": "1"}, ["label", "required"]),
        ({"label": "y", "task": "ordinal"}, ["task", "ordinal"]),
        ({"label": "y", "task": "binary"}, ["positive_class", "required"]),
        ({"label": "y", "task": "regression", "positive_class": "1"}, ["positive_class", "regression"]),
        ({"label": "y", "task": "multiclass", "positive_class": "a"}, ["positive_class"]),
        (
            {"label": "y", "task": "binary", "positive_class": "1", "classes": ["a", "b"]},
            ["positive_class", "classes"],
        ),
        ({"label": "x", "task": "regression"}, ["x", "features", "label"]),
        (
            {"label": "y", "task": "regression", "features": {"x": {"kind": "text"}}},
            ["features.x.kind", "text"],
        ),
        (
            {"label": "y", "task": "regression", "features": {"x": {"kind": "numeric", "min": 5, "max": 1}}},
            ["features.x", "min"],
        ),
        (
            {"label": "y", "task": "regression", "features": {"x": {"kind": "categorical", "min": 1}}},
            ["features.x.min", "numeric"],
        ),
        ({"label": "y", "task": "regression", "id_column": "x"}, ["x", "features", "id_column"]),
        ({"label": "y", "task": "regression", "colour": "red"}, ["unknown", "colour"]),
        ({"label": "y", "task": "regression", "feature_function": "nope"}, ["feature_function"]),
        ({"label": "week", "task": "regression"}, ["week", "reserved"]),
    ],
)
def test_a_bad_dataset_spec_names_the_key(tmp_path, dataset, words):
    dataset = {"features": {"x": {"kind": "numeric"}}, **dataset}
    message = _config_error(write_config(tmp_path, dataset=dataset))
    for word in words:
        assert word in message, (word, message)


def test_a_spec_file_that_is_missing_is_named(tmp_path):
    message = _config_error(write_config(tmp_path, dataset={"spec": "nowhere/spec.toml"}))
    assert "nowhere/spec.toml" in message and "[dataset] spec" in message
