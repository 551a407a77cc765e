import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from include.ml.features import build_features
from include.ml.sample_data import generate_week, write_parquet_bytes
from include.ml.train import fit_model, resolve_hyperparameters

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
    return folder, train, validation


def test_script_runs_and_writes_the_model_dir(data_files, tmp_path):
    folder, _, validation = data_files
    model_dir = tmp_path / "model"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_") and k != "PYTHONPATH"}
    result = subprocess.run(
        [
            sys.executable,
            "include/ml/train.py",
            "--train",
            str(folder / "train.parquet"),
            "--validation",
            str(folder / "validation.parquet"),
            "--model-dir",
            str(model_dir),
            "--hyperparameters",
            json.dumps(HPS),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "dropped 7 row(s) with a null label" in result.stdout
    assert "training finished" in result.stdout
    assert {p.name for p in model_dir.iterdir()} == {"model.joblib", "metrics.json", "feature_names.json"}
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["validation_roc_auc"] > 0.75
    assert 0 < metrics["validation_average_precision"] <= 1
    assert metrics["validation_log_loss"] > 0
    assert metrics["n_train"] == 2993
    assert metrics["n_validation"] == 3000
    assert metrics["train_seconds"] >= 0
    names = json.loads((model_dir / "feature_names.json").read_text())
    assert names["numeric"][0] == "age" and "contract_type" in names["categorical"]

    import joblib

    model = joblib.load(model_dir / "model.joblib")
    proba = model.predict_proba(build_features(validation))[:, 1]
    assert proba.shape == (3000,)


def test_sagemaker_environment_variables(data_files, tmp_path, monkeypatch, capsys):
    from include.ml.train import main

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
    assert main([]) == 0
    assert '"max_iter": 20' in capsys.readouterr().out
    assert (tmp_path / "model" / "model.joblib").is_file()


def test_fit_model_is_deterministic(data_files):
    _, train, validation = data_files
    small = {"max_iter": 25, "learning_rate": 0.2, "max_leaf_nodes": 15}
    a = fit_model(train, small, n_jobs=1)
    b = fit_model(train, small, n_jobs=1)
    features = build_features(validation)
    np.testing.assert_array_equal(a.predict_proba(features), b.predict_proba(features))


def test_hyperparameters_are_validated():
    assert resolve_hyperparameters({"max_iter": "50"}, {"learning_rate": 0.3})["max_iter"] == 50
    with pytest.raises(ValueError, match="unknown"):
        resolve_hyperparameters({"depth": 3})
    with pytest.raises(ValueError, match="whole number"):
        resolve_hyperparameters({"max_iter": 2.5})


def test_single_class_training_data_is_refused(data_files):
    _, train, _ = data_files
    with pytest.raises(ValueError, match="single class"):
        fit_model(train[train["churned"] == 0].head(200), {"max_iter": 5})


def test_missing_input_is_a_clean_exit_code(tmp_path, capsys):
    from include.ml.train import main

    code = main(
        ["--train", str(tmp_path / "nope.parquet"), "--validation", "x", "--model-dir", str(tmp_path / "m")]
    )
    assert code == 1
    assert "does not exist" in capsys.readouterr().err
