import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import fit_model, predict_proba

from core.ml.modeling import LabelError, ModelConfigError, TrainedModel, make_estimator
from core.ml.train import resolve_hyperparameters
from demo.sample_data import generate_week, write_parquet_bytes
from demo.spec import DEMO_SPEC

ROOT = Path(__file__).resolve().parents[2]
HPS = {"learning_rate": 0.1, "max_iter": 60, "max_leaf_nodes": 15}


@pytest.fixture(scope="module")
def data_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train_data")
    train = generate_week("2026-W05", 3000, seed=5)
    train.loc[:6, "churned"] = None  # outcome not known yet for some rows
    validation = generate_week("2026-W06", 3000, seed=5)
    (folder / "train.parquet").write_bytes(write_parquet_bytes(train))
    (folder / "validation.parquet").write_bytes(write_parquet_bytes(validation))
    (folder / "spec.json").write_text(DEMO_SPEC.to_json())
    return folder, train, validation


def test_script_runs_and_writes_the_model_dir(data_files, tmp_path):
    folder, _, validation = data_files
    model_dir = tmp_path / "model"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_") and k != "PYTHONPATH"}
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "core/ml/train.py",
            "--train",
            str(folder / "train.parquet"),
            "--validation",
            str(folder / "validation.parquet"),
            "--model-dir",
            str(model_dir),
            "--dataset-spec",
            str(folder / "spec.json"),
            "--hyperparameters",
            json.dumps(HPS),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert "dropped 7 row(s) with a null label" in result.stdout
    assert "training finished" in result.stdout
    assert {p.name for p in model_dir.iterdir()} == {
        "model.joblib",
        "metrics.json",
        "feature_names.json",
        "dataset_spec.json",
    }
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["validation_roc_auc"] > 0.75
    assert 0 < metrics["validation_average_precision"] <= 1
    assert metrics["validation_log_loss"] > 0
    assert metrics["n_train"] == 2993
    assert metrics["n_validation"] == 3000
    # the fit's own time: more than nothing, less than the whole process's (imports, data, eval)
    assert 0 < metrics["train_seconds"] < elapsed
    names = json.loads((model_dir / "feature_names.json").read_text())
    assert names["columns"][0] == "age" and "contract_type" in names["columns"]
    assert "engagement_minutes" in names["columns"]  # the demo's feature function's columns
    assert names["classes"] == ["0", "1"]

    import joblib

    model = joblib.load(model_dir / "model.joblib")
    assert isinstance(model, TrainedModel) and model.spec == DEMO_SPEC
    proba = predict_proba(model, validation)
    assert proba.shape == (3000,)


def test_sagemaker_environment_variables(data_files, tmp_path, monkeypatch, capsys):
    from core.ml.train import main

    folder, _, _ = data_files
    train_dir, validation_dir = tmp_path / "train", tmp_path / "validation"
    train_dir.mkdir()
    validation_dir.mkdir()
    (train_dir / "part.parquet").write_bytes((folder / "train.parquet").read_bytes())
    (validation_dir / "part.parquet").write_bytes((folder / "validation.parquet").read_bytes())
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(train_dir))
    monkeypatch.setenv("SM_CHANNEL_VALIDATION", str(validation_dir))
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("SM_HPS", json.dumps({"max_iter": "20", "learning_rate": "0.2"}))
    assert main(["--dataset-spec", str(folder / "spec.json")]) == 0
    assert '"max_iter": 20' in capsys.readouterr().out
    assert (tmp_path / "model" / "model.joblib").is_file()


def test_fit_model_is_deterministic(data_files):
    _, train, validation = data_files
    small = {"max_iter": 25, "learning_rate": 0.2, "max_leaf_nodes": 15}
    a = fit_model(train, small, n_jobs=1)
    b = fit_model(train, small, n_jobs=1)
    np.testing.assert_array_equal(predict_proba(a, validation), predict_proba(b, validation))


def test_hyperparameters_are_the_estimator_and_its_parameters():
    estimator, params = resolve_hyperparameters(DEMO_SPEC, {"max_iter": "50"}, {"learning_rate": 0.3})
    assert estimator == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert params == {"max_iter": 50, "learning_rate": 0.3}
    other, _ = resolve_hyperparameters(DEMO_SPEC, {"estimator": "sklearn.linear_model.LogisticRegression"})
    assert other == "sklearn.linear_model.LogisticRegression"
    assert resolve_hyperparameters(DEMO_SPEC, {"loss": "log_loss"})[1] == {"loss": "log_loss"}


@pytest.mark.parametrize(
    ("path", "params", "task", "message"),
    [
        ("sklearn.ensemble.HistGradientBoostingClassifier", {"depth": 3}, "binary", "params do not fit"),
        ("sklearn.ensemble.NoSuchModel", {}, "binary", "cannot be imported"),
        ("sklearn.ensemble.HistGradientBoostingRegressor", {}, "binary", "is a regressor"),
        ("sklearn.ensemble.RandomForestClassifier", {}, "regression", "is a classifier"),
        ("sklearn.svm.LinearSVC", {}, "binary", "no predict_proba"),
    ],
)
def test_bad_estimators_are_named(path, params, task, message):
    with pytest.raises(ModelConfigError, match=message):
        make_estimator(path, params, task)


def test_any_installed_estimator_trains(data_files):
    from core.ml.modeling import fit

    _, train, validation = data_files
    model = fit(
        train, DEMO_SPEC, "sklearn.ensemble.RandomForestClassifier", {"n_estimators": 20, "random_state": 0}
    )
    metrics = model.metrics(validation)
    assert 0.6 < metrics["roc_auc"] <= 1 and metrics["n"] == 3000


def test_single_class_training_data_is_refused(data_files):
    _, train, _ = data_files
    with pytest.raises(LabelError, match="is '0' in every labelled training row"):
        fit_model(train[train["churned"] == 0].head(200), {"max_iter": 5})


def test_missing_input_is_a_clean_exit_code(tmp_path, capsys):
    from core.ml.train import main

    code = main(
        ["--train", str(tmp_path / "nope.parquet"), "--validation", "x", "--model-dir", str(tmp_path / "m")]
    )
    assert code == 1
    assert "does not exist" in capsys.readouterr().err
