import html
import re

import numpy as np
import pandas as pd
import pytest

from core.ml.drift import dataset_drift, distribution, feature_drift
from core.ml.report import render_drift_report
from demo import spec as schema
from demo.sample_data import generate_week

THRESHOLDS = {"psi_threshold": 0.2, "share_threshold": 0.2}


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
        "prediction_psi": 0.31,
        "prediction_drifted": True,
        "live_roc_auc": None,
        "reference_roc_auc": 0.86,
        "concept_drifted": None,
    }
    page = render_drift_report(
        "2026-W11", ["2026-W09", "2026-W10"], table, summary, psi_threshold=0.2, share_threshold=0.2
    )
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
    page = render_drift_report("2026-W11", ["2026-W10"], table, dataset_drift(table, 0.2), **THRESHOLDS)
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
    page = render_drift_report('W"<x>', ["<img src=x>"], table, dataset_drift(table, 0.5), **THRESHOLDS)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img" not in page and "categorical<b>" not in page
    assert "W&quot;&lt;x&gt;" in page


def test_clipped_bars_and_the_tests_behind_the_statistics_are_named():
    table = _table(covariate_drift=True)
    table.loc[table["feature"] == "monthly_charges", "psi"] = 3.0  # far past the 5x-threshold axis
    page = render_drift_report("2026-W11", ["2026-W10"], table, dataset_drift(table, 0.2), **THRESHOLDS)
    assert page.count('class="clipped"') == int((table["psi"] > 1.0).sum()) >= 1
    assert "3.000 (clipped)" in page
    assert "The axis ends at PSI 1.00 (5x the threshold)" in page
    assert "test statistic</th>" in page
    numeric = table[table["kind"] == "numeric"].iloc[0]
    categorical = table[table["kind"] == "categorical"].iloc[0]
    assert re.search(rf"{numeric['feature']}</td>.*?<td>KS \d", page)
    assert re.search(rf"{categorical['feature']}</td>.*?<td>&chi;&sup2; \d", page)
    clean = _table(covariate_drift=False)
    assert "clipped" not in render_drift_report(
        "2026-W11", ["2026-W10"], clean, dataset_drift(clean, 0.2), **THRESHOLDS
    )


def _plotted_shares(page: str, feature: str, side: str) -> dict[str, float]:
    """``{bin label: share}`` of one side's bars in a feature's distribution plot."""
    [svg] = re.findall(rf'<svg class="distribution" data-feature="{re.escape(feature)}".*?</svg>', page)
    bars = re.findall(rf'<rect class="{side}" [^>]*data-label="([^"]*)" data-share="([^"]*)"', svg)
    return {html.unescape(label): float(share) for label, share in bars}


def test_drifted_features_get_distribution_plots_of_the_bins_psi_compared():
    reference = generate_week("2026-W10", 1500, seed=2)
    current = generate_week("2026-W11", 1500, seed=2, covariate_drift_from_week="2026-W11")
    table = feature_drift(
        reference, current, list(schema.NUMERIC_FEATURES), list(schema.CATEGORICAL_FEATURES), 0.2
    )
    drifted = table[table["drifted"]]
    assert {"numeric", "categorical"} <= set(drifted["kind"])  # both kinds of plot are exercised
    dists = [
        distribution(r.feature, r.kind, reference[r.feature], current[r.feature])
        for r in drifted.itertuples()
    ]
    page = render_drift_report(
        "2026-W11", ["2026-W10"], table, dataset_drift(table, 0.2), **THRESHOLDS, distributions=dists
    )
    plotted = re.findall(r'<svg class="distribution" data-feature="([^"]*)"', page)
    assert plotted == list(drifted["feature"])  # every drifted feature, and no stable one
    assert "Distributions of the drifted features" in page
    assert not re.search(r"<script|<link|@import|src=|url\(", page)

    # a numeric feature: the reference's deciles as bins, each side's share of rows per bin
    numeric = drifted[drifted["kind"] == "numeric"]["feature"].iloc[0]
    ref, cur = reference[numeric].dropna().to_numpy(), current[numeric].dropna().to_numpy()
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11)))[1:-1]
    expected_ref = np.histogram(ref, [-np.inf, *edges, np.inf])[0] / len(ref)
    expected_cur = np.histogram(cur, [-np.inf, *edges, np.inf])[0] / len(cur)
    # np.histogram's bins are [a, b) like the PSI's, except that its last bin is closed: with +inf
    # as the last edge that changes nothing
    for side, expected in (("reference", expected_ref), ("current", expected_cur)):
        shares = _plotted_shares(page, numeric, side)
        assert len(shares) == len(edges) + 1
        assert list(shares.values()) == pytest.approx(list(expected), abs=1e-6)
    labels = list(_plotted_shares(page, numeric, "current"))
    assert labels[0] == f"< {edges[0]:.4g}" and labels[-1] == f">= {edges[-1]:.4g}"

    # a categorical feature: each category's share on each side
    categorical = drifted[drifted["kind"] == "categorical"]["feature"].iloc[0]
    for side, frame in (("reference", reference), ("current", current)):
        expected = frame[categorical].dropna().astype(str).value_counts(normalize=True)
        shares = _plotted_shares(page, categorical, side)
        assert shares == pytest.approx({k: expected.get(k, 0.0) for k in shares}, abs=1e-6)
        assert set(expected.index) <= set(shares)


def test_the_monitors_report_shows_the_thresholds_of_the_settings_and_plots_its_drifted_features(
    tmp_path,
) -> None:
    """The thresholds come from astro.toml ([drift]); both were missing or defaulted before."""
    from helpers import STAGES_BEFORE_TRAINING, free_port, run_stages, write_config

    config = write_config(
        tmp_path,
        local={"endpoint_port": free_port()},
        data={"rows_per_week": 600, "covariate_drift_from_week": "2026-W11"},
        drift={"drifted_share_threshold": 0.35, "feature_psi_threshold": 0.25},
    )
    run_stages(config, "2026-W10", STAGES_BEFORE_TRAINING)
    ctx, results = run_stages(config, "2026-W11", (*STAGES_BEFORE_TRAINING, "monitor.monitor_week"))
    page = ctx.provider.storage.get_bytes(results["monitor.monitor_week"]["report_key"]).decode()
    assert "<dt>share threshold</dt><dd>0.350</dd>" in page
    assert "<dt>PSI threshold</dt><dd>0.250</dd>" in page
    drifted = results["monitor.monitor_week"]["drifted_features"]
    assert drifted, "the injected covariate drift was not seen"
    assert sorted(re.findall(r'<svg class="distribution" data-feature="([^"]*)"', page)) == drifted
