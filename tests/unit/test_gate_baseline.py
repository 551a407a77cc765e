"""The gate's baseline and early stopping.

- every challenger is compared with a trivial baseline fitted on its own training rows (the
  class prior, or the mean), scored with the gate's metric on the gate's holdout: a model that
  does not beat it by the margin is refused, whatever the champion, the first model too;
- early stopping (on by default) stops on a split of the training rows: the holdout never
  reaches ``fit``; ``[training] early_stopping = false`` turns it off.

Small seeded synthetic tables for each task; the gate through the real stages on the local
provider once.
"""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import free_port, run_stages, write_config

from core.ml.dataset import parse_spec
from core.ml.modeling import TrainedModel, early_stopping_params, fit, make_estimator
from lifecycle.evaluate import Evaluation, baseline_name, gate_verdict

GOOD = ("", {"max_iter": 40})  # HistGradientBoosting of the task
BAD = {  # (estimator, params): no better than the baseline on the gate's metric
    "binary": ("sklearn.dummy.DummyClassifier", {"strategy": "uniform"}),
    "multiclass": ("sklearn.dummy.DummyClassifier", {"strategy": "uniform"}),
    "regression": ("sklearn.dummy.DummyRegressor", {"strategy": "quantile", "quantile": 0.9}),
}


def _spec(task: str):
    extra = {"positive_class": "yes"} if task == "binary" else {}
    return parse_spec(
        {
            "name": f"synthetic_{task}",
            "label": "y",
            "task": task,
            **extra,
            "features": {
                "x": {"kind": "numeric"},
                "z": {"kind": "numeric"},
                "colour": {"kind": "categorical"},
            },
        }
    )


def _rows(task: str, n: int, seed: int, colours: tuple[str, ...] = ("red", "blue")) -> pd.DataFrame:
    """Rows whose label follows ``x`` with noise: imbalanced classes, a skewed regression label."""
    rng = np.random.default_rng(seed)
    x, z = rng.normal(size=n), rng.normal(size=n)
    signal = x + 0.5 * rng.normal(size=n)
    if task == "binary":
        y: np.ndarray = np.where(signal > 0.8, "yes", "no")
    elif task == "multiclass":
        y = np.select([signal < -0.3, signal < 1.0], ["a", "b"], "c")
    else:
        y = np.exp(signal) * 10.0
    return pd.DataFrame({"x": x, "z": z, "colour": rng.choice(colours, size=n), "y": y})


def _model(task: str, estimator: str, params: dict, train: pd.DataFrame) -> TrainedModel:
    spec = _spec(task)
    path = estimator or (
        "sklearn.ensemble.HistGradientBoostingRegressor"
        if task == "regression"
        else "sklearn.ensemble.HistGradientBoostingClassifier"
    )
    return fit(train, spec, path, params)


def _scores(model: TrainedModel, holdout: pd.DataFrame, metric: str) -> tuple[float, float]:
    baseline = model.baseline_metrics(holdout)
    assert baseline is not None
    return model.metrics(holdout)[metric], baseline[metric]


METRICS = [("binary", "roc_auc"), ("binary", "log_loss"), ("multiclass", "log_loss"), ("regression", "rmse")]


@pytest.mark.parametrize(("task", "metric"), METRICS)
def test_a_model_no_better_than_its_baseline_is_refused_first_model_too(task, metric):
    train, holdout = _rows(task, 1500, seed=1), _rows(task, 400, seed=2)
    model = _model(task, *BAD[task], train)
    challenger, baseline = _scores(model, holdout, metric)
    name = baseline_name(model.spec)

    first = gate_verdict(metric, 0.0, challenger, baseline, None, None, name)
    assert first[0] is False, first
    assert first[1].startswith(f"reject: challenger {metric} {challenger:.4f} does not beat the baseline")
    assert f"({name}) {baseline:.4f}" in first[1] and "no production model is set" in first[1]
    # whatever the champion: one much worse than the challenger keeps production all the same
    worse = challenger - 1.0 if metric == "roc_auc" else challenger + 100.0
    against = gate_verdict(metric, 0.0, challenger, baseline, "3", worse, name)
    assert against[0] is False and "does not beat the baseline" in against[1], against
    assert "production stays v3" in against[1]


@pytest.mark.parametrize(("task", "metric"), METRICS)
def test_a_model_that_beats_its_baseline_is_promoted(task, metric):
    train, holdout = _rows(task, 1500, seed=1), _rows(task, 400, seed=2)
    model = _model(task, *GOOD, train)
    challenger, baseline = _scores(model, holdout, metric)

    passed, decision = gate_verdict(metric, 0.01, challenger, baseline, None, None, baseline_name(model.spec))
    assert passed, decision
    assert decision.startswith("promote: there is no production model yet"), decision
    # then the champion decides, as before
    assert gate_verdict(metric, 0.0, challenger, baseline, "3", challenger, "x")[0] is False


def test_the_baseline_is_the_prior_or_mean_of_the_training_rows():
    train, holdout = _rows("binary", 1500, seed=1), _rows("binary", 400, seed=2)
    binary = _model("binary", *GOOD, train)
    share = float((train["y"] == "yes").mean())
    assert binary.classes == ["no", "yes"] and binary.baseline == pytest.approx([1 - share, share])
    metrics = binary.baseline_metrics(holdout)
    assert metrics is not None and metrics["roc_auc"] == 0.5  # a constant predictor
    truth = (holdout["y"] == "yes").to_numpy()
    prior_loss = -np.mean(np.where(truth, math.log(share), math.log(1 - share)))
    assert metrics["log_loss"] == pytest.approx(prior_loss)

    train, holdout = _rows("multiclass", 1500, seed=1), _rows("multiclass", 400, seed=2)
    multiclass = _model("multiclass", *GOOD, train)
    shares = train["y"].value_counts(normalize=True)
    assert multiclass.baseline == pytest.approx([shares[c] for c in multiclass.classes])

    train, holdout = _rows("regression", 1500, seed=1), _rows("regression", 400, seed=2)
    regression = _model("regression", *GOOD, train)
    mean = float(train["y"].mean())
    assert regression.baseline == pytest.approx([mean])
    metrics = regression.baseline_metrics(holdout)
    assert metrics is not None
    assert metrics["rmse"] == pytest.approx(float(np.sqrt(np.mean((holdout["y"] - mean) ** 2))))
    assert metrics["mae"] == pytest.approx(float(np.mean(np.abs(holdout["y"] - mean))))


def test_a_model_saved_before_baselines_and_an_older_evaluation_still_read(tmp_path):
    from lifecycle.tables import TABLES, ensure_tables
    from providers.local.warehouse import DuckDBWarehouse

    model = _model("binary", *GOOD, _rows("binary", 600, seed=1))
    state = model.__getstate__()
    del state["baseline"]  # as model.joblib was written before baselines
    old = pickle.loads(pickle.dumps(state))
    restored = TrainedModel.__new__(TrainedModel)
    restored.__setstate__(old)
    assert restored.baseline is None and restored.baseline_metrics(_rows("binary", 50, seed=2)) is None
    # no baseline to compare with: the champion alone decides
    assert gate_verdict("roc_auc", 0.0, 0.9, None, None, None)[0]

    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    old_schema = {k: v for k, v in TABLES["evaluations"].items() if k != "baseline_score"}
    warehouse.ensure_table("evaluations", old_schema)
    row = {
        "week": "2026-W01", "job_name": "j", "metric": "roc_auc", "higher_is_better": True,
        "challenger_score": 0.9, "champion_version": "", "champion_score": None, "margin": 0.0,
        "passed": True, "promote": True, "decision": "promote: there is no production model yet",
        "n_holdout": 10,
    }  # fmt: skip
    warehouse.replace_rows("evaluations", {"week": "2026-W01"}, pd.DataFrame([row]))
    ensure_tables(warehouse, "evaluations", spec=_spec("binary"))
    read = Evaluation.from_row(warehouse.read_rows("evaluations").iloc[0].to_dict())
    assert read.baseline_score is None and read.passed and read.challenger_score == 0.9


def test_the_gate_refuses_a_first_model_no_better_than_the_prior_then_promotes_a_good_one(tmp_path):
    """Through the real stages: train, evaluate and register on the local provider."""
    stages = (
        "ingest.ingest_week",
        "validate.validate_week_data",
        "train.train_challenger",
        "evaluate.evaluate_challenger",
        "register.register_challenger",
    )
    port = free_port()
    prior = write_config(
        tmp_path,
        local={"endpoint_port": port},
        data={"rows_per_week": 600},
        model={"estimator": "sklearn.dummy.DummyClassifier", "params": {"strategy": "prior"}},
    )
    ctx, results = run_stages(prior, "2026-W01", stages)
    evaluation = results["evaluate.evaluate_challenger"]
    assert evaluation["passed"] is False and evaluation["promote"] is False, evaluation
    assert evaluation["champion_version"] == "" and evaluation["baseline_score"] == 0.5
    assert evaluation["challenger_score"] == 0.5  # the prior itself: not better by more than 0
    assert "does not beat the baseline (class prior) 0.5000" in evaluation["decision"], evaluation
    assert ctx.provider.registry.get_alias(ctx.model_name, "production") is None
    row = ctx.warehouse.read_rows("evaluations", {"week": "2026-W01"}).iloc[0]
    assert row["baseline_score"] == 0.5 and not bool(row["passed"])

    good = write_config(
        tmp_path,
        local={"endpoint_port": port},
        data={"rows_per_week": 600},
        model={"params": {"max_iter": 20}},
    )
    ctx, results = run_stages(good, "2026-W02", stages[:4])
    evaluation = results["evaluate.evaluate_challenger"]
    assert evaluation["passed"] is True, evaluation
    assert evaluation["challenger_score"] > 0.5 and evaluation["baseline_score"] == 0.5
    assert evaluation["decision"].startswith("promote: there is no production model yet"), evaluation


# ---------------------------------------------------------------------------------- early stopping


def test_early_stopping_is_written_into_the_params_of_estimators_that_have_it():
    hgb = make_estimator("sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 50}, "binary")
    assert early_stopping_params(hgb, {"max_iter": 50}, True) == {
        "max_iter": 50,
        "early_stopping": True,
        "random_state": 0,  # the split, and so the model, is the same on every run
    }
    assert early_stopping_params(hgb, {"max_iter": 50}, False) == {"max_iter": 50, "early_stopping": False}
    # a parameter of [model.params] wins
    assert early_stopping_params(hgb, {"early_stopping": False}, True) == {"early_stopping": False}
    boosting = make_estimator("sklearn.ensemble.GradientBoostingRegressor", {}, "regression")
    assert early_stopping_params(boosting, {}, True) == {"n_iter_no_change": 10, "random_state": 0}
    assert early_stopping_params(boosting, {}, False) == {}
    linear = make_estimator("sklearn.linear_model.LogisticRegression", {"C": 2.0}, "binary")
    assert early_stopping_params(linear, {"C": 2.0}, True) == {"C": 2.0}


def test_the_training_job_gets_early_stopping_from_the_settings(tmp_path):
    from core.config import load_settings
    from lifecycle.context import StageContext
    from lifecycle.train import model_hyperparameters

    def hyperparameters(**training) -> dict:
        config = write_config(tmp_path / str(len(training)), training=training)
        ctx = StageContext(settings=load_settings(config), week="2026-W01", actor="t", reason="manual")
        return model_hyperparameters(ctx)

    on = hyperparameters()  # the default
    assert on["early_stopping"] is True and on["random_state"] == 0
    assert hyperparameters(early_stopping=False)["early_stopping"] is False


def _train_job(tmp_path: Path, hyperparameters: dict) -> tuple[dict, TrainedModel]:
    """Run the training entry point on train/holdout files; return its metrics and model."""
    import joblib

    from core.ml.train import main

    task = "binary"
    train = _rows(task, 3000, seed=1)
    holdout = _rows(task, 500, seed=2, colours=("only-in-holdout",))
    folder = tmp_path / json.dumps(sorted(hyperparameters.items())).replace('"', "")[:40]
    folder.mkdir(parents=True)
    train.to_parquet(folder / "train.parquet")
    holdout.to_parquet(folder / "validation.parquet")
    (folder / "spec.json").write_text(_spec(task).to_json())
    code = main(
        [
            "--train", str(folder / "train.parquet"),
            "--validation", str(folder / "validation.parquet"),
            "--model-dir", str(folder / "model"),
            "--dataset-spec", str(folder / "spec.json"),
            "--hyperparameters", json.dumps(hyperparameters),
        ]
    )  # fmt: skip
    assert code == 0
    metrics = json.loads((folder / "model" / "metrics.json").read_text())
    return metrics, joblib.load(folder / "model" / "model.joblib")


def test_early_stopping_stops_on_a_split_of_the_training_rows_never_the_holdout(tmp_path):
    params = {"max_iter": 300, "learning_rate": 0.3}
    estimator = make_estimator("sklearn.ensemble.HistGradientBoostingClassifier", params, "binary")
    metrics, model = _train_job(tmp_path, early_stopping_params(estimator, params, True))
    booster = model.pipeline[-1]
    assert 0 < metrics["n_rounds"] < 300 and metrics["n_rounds"] == booster.n_iter_, metrics
    assert len(booster.validation_score_) == booster.n_iter_ + 1  # scored on its own split
    # the holdout's rows (the only ones with this colour) never reached fit: unseen category
    encoder = model.pipeline[0].named_transformers_["categorical"]
    assert "only-in-holdout" not in encoder.categories_[0] and set(encoder.categories_[0]) == {"blue", "red"}
    assert metrics["n_train"] == 3000 and metrics["n_validation"] == 500


def test_early_stopping_can_be_turned_off(tmp_path):
    params = {"max_iter": 60, "learning_rate": 0.3}
    estimator = make_estimator("sklearn.ensemble.HistGradientBoostingClassifier", params, "binary")
    metrics, model = _train_job(tmp_path, early_stopping_params(estimator, params, False))
    assert metrics["n_rounds"] == 60 == model.pipeline[-1].n_iter_
    assert len(model.pipeline[-1].validation_score_) == 0
