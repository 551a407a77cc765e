import numpy as np
import pandas as pd
import pytest

from core.ml.drift import categorical_psi, dataset_drift, feature_drift, population_stability_index
from demo import spec as schema
from demo.sample_data import generate_week

NUMERIC = list(schema.NUMERIC_FEATURES)
CATEGORICAL = list(schema.CATEGORICAL_FEATURES)
SHIFTED = {"monthly_charges", "sessions_last_30d", "contract_type", "days_since_last_login", "data_usage_gb"}


@pytest.fixture(scope="module")
def reference():
    return generate_week("2026-W10", 5000, seed=21)


def test_clean_weeks_do_not_drift(reference):
    current = generate_week("2026-W11", 5000, seed=21)
    table = feature_drift(reference, current, NUMERIC, CATEGORICAL, psi_threshold=0.2)
    assert list(table.columns) == [
        "feature",
        "kind",
        "psi",
        "psi_noise",
        "statistic",
        "p_value",
        "reference_mean",
        "current_mean",
        "drifted",
    ]
    assert len(table) == len(NUMERIC) + len(CATEGORICAL)
    assert (table["psi"] < 0.05).all(), table[["feature", "psi"]]
    assert not table["drifted"].any()
    assert table.loc[table["kind"] == "categorical", "reference_mean"].isna().all()
    assert table.loc[table["kind"] == "numeric", "reference_mean"].notna().all()
    summary = dataset_drift(table, share_threshold=0.2)
    assert summary == {
        "n_features": 21,
        "n_drifted": 0,
        "share_drifted": 0.0,
        "drifted": False,
        "drifted_features": [],
    }


def test_covariate_drift_is_flagged(reference):
    current = generate_week("2026-W11", 5000, seed=21, covariate_drift_from_week="2026-W11")
    table = feature_drift(reference, current, NUMERIC, CATEGORICAL, psi_threshold=0.2).set_index("feature")
    for feature in SHIFTED:
        assert table.loc[feature, "psi"] > 0.3, feature
        assert table.loc[feature, "p_value"] < 1e-6, feature
    assert set(table.index[table["drifted"]]) == SHIFTED
    summary = dataset_drift(table.reset_index(), share_threshold=0.2)
    assert summary["drifted"] is True
    assert summary["n_drifted"] == 5
    assert set(summary["drifted_features"]) == SHIFTED


def test_psi_of_identical_data_is_about_zero():
    values = np.random.default_rng(0).normal(size=10_000)
    assert population_stability_index(values, values) == pytest.approx(0.0, abs=1e-12)
    cats = np.array(["a", "b", "b", "c"] * 100, dtype=object)
    assert categorical_psi(cats, cats) == pytest.approx(0.0, abs=1e-12)


def test_psi_grows_with_a_shift_and_handles_edge_cases():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=5000)
    small = population_stability_index(reference, rng.normal(0.1, 1, 5000))
    large = population_stability_index(reference, rng.normal(1.0, 1, 5000))
    assert small < 0.1 < 0.2 < large
    # integer-valued feature with ties; values outside the reference range still count
    ints = rng.integers(0, 3, 5000)
    assert population_stability_index(ints, ints + 5) > 1.0
    # nulls ignored, empty side -> NaN
    with_nans = np.concatenate([reference, [np.nan] * 100])
    assert population_stability_index(with_nans, reference) == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(population_stability_index([], reference))
    # constant reference: one bin, no crash
    assert population_stability_index(np.ones(100), np.ones(50)) == pytest.approx(0.0)
    # categories only on one side count
    assert categorical_psi(["a"] * 100, ["a"] * 50 + ["z"] * 50) > 1.0


def test_feature_drift_ignores_nulls_and_names_missing_columns():
    reference = pd.DataFrame({"x": [1.0, 2.0, 3.0, None] * 50, "c": ["a", "b", None, "a"] * 50})
    current = reference.copy()
    table = feature_drift(reference, current, ["x"], ["c"], psi_threshold=0.2)
    assert table["psi"].tolist() == pytest.approx([0.0, 0.0], abs=1e-12)
    assert table["reference_mean"].iloc[0] == pytest.approx(2.0)
    all_null = pd.DataFrame({"x": [None] * 10, "c": [None] * 10})
    table = feature_drift(reference, all_null, ["x"], ["c"], psi_threshold=0.2)
    assert table["psi"].isna().all() and not table["drifted"].any()
    with pytest.raises(ValueError, match="missing_feature"):
        feature_drift(reference, current, ["missing_feature"], [], psi_threshold=0.2)


def test_dataset_drift_of_an_empty_table():
    empty = feature_drift(pd.DataFrame(), pd.DataFrame(), [], [], psi_threshold=0.2)
    assert dataset_drift(empty, 0.5) == {
        "n_features": 0,
        "n_drifted": 0,
        "share_drifted": 0.0,
        "drifted": False,
        "drifted_features": [],
    }
