import re

import pandas as pd

from include.demo import spec as schema
from include.ml.drift import dataset_drift, feature_drift
from include.ml.report import render_drift_report
from include.ml.sample_data import generate_week


def _table(covariate_drift: bool) -> pd.DataFrame:
    reference = generate_week("2026-W10", 1500, seed=2)
    current = generate_week(
        "2026-W11", 1500, seed=2, covariate_drift_from_week="2026-W11" if covariate_drift else ""
    )
    return feature_drift(
        reference, current, list(schema.NUMERIC_FEATURES), list(schema.CATEGORICAL_FEATURES), 0.2
    )


def test_drifted_report():
    table = _table(covariate_drift=True)
    summary = dataset_drift(table, 0.2) | {
        "psi_threshold": 0.2,
        "prediction_psi": 0.31,
        "prediction_drifted": True,
        "live_roc_auc": None,
        "reference_roc_auc": 0.86,
        "concept_drifted": None,
    }
    page = render_drift_report("2026-W11", ["2026-W09", "2026-W10"], table, summary)
    assert page.startswith("<!DOCTYPE html>")
    assert "Drift detected in week 2026-W11" in page
    assert "<svg" in page and "threshold" in page
    assert page.count("<rect") == len(table)
    for section in ("Data drift", "Prediction drift", "Concept drift"):
        assert section in page
    assert "not available yet (labels not arrived)" in page
    assert "2026-W09, 2026-W10" in page
    # self-contained: nothing loaded from elsewhere
    assert not re.search(r"<script|<link|@import|src=|url\(", page)


def test_clean_report_and_missing_values():
    table = _table(covariate_drift=False)
    page = render_drift_report("2026-W11", ["2026-W10"], table, dataset_drift(table, 0.2))
    assert "No drift in week 2026-W11" in page
    assert "Drift detected" not in page
    assert page.count("not available yet") >= 2


def test_hostile_values_are_escaped():
    table = pd.DataFrame(
        {
            "feature": ["<script>alert(1)</script>", "ok"],
            "kind": ["numeric", "categorical<b>"],
            "psi": [0.5, float("nan")],
            "statistic": [0.3, 1.0],
            "p_value": [0.0, 0.5],
            "reference_mean": [1.0, float("nan")],
            "current_mean": [2.0, float("nan")],
            "drifted": [True, False],
        }
    )
    page = render_drift_report('W"<x>', ["<img src=x>"], table, dataset_drift(table, 0.5))
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img" not in page and "categorical<b>" not in page
    assert "W&quot;&lt;x&gt;" in page


def test_clipped_bars_and_the_tests_behind_the_statistics_are_named():
    table = _table(covariate_drift=True)
    table.loc[table["feature"] == "monthly_charges", "psi"] = 3.0  # far past the 5x-threshold axis
    page = render_drift_report("2026-W11", ["2026-W10"], table, dataset_drift(table, 0.2))
    assert page.count('class="clipped"') == int((table["psi"] > 1.0).sum()) >= 1
    assert "3.000 (clipped)" in page
    assert "The axis ends at PSI 1.00 (5x the threshold)" in page
    assert "test statistic</th>" in page
    numeric = table[table["kind"] == "numeric"].iloc[0]
    categorical = table[table["kind"] == "categorical"].iloc[0]
    assert re.search(rf"{numeric['feature']}</td>.*?<td>KS \d", page)
    assert re.search(rf"{categorical['feature']}</td>.*?<td>&chi;&sup2; \d", page)
    clean = _table(covariate_drift=False)
    assert "clipped" not in render_drift_report("2026-W11", ["2026-W10"], clean, dataset_drift(clean, 0.2))
