"""The weekly drift report: one self-contained HTML page.

No external JavaScript, CSS or fonts: the page is stored as an artifact and opened long after the run,
possibly offline, so everything (styles, SVG chart) is inline. Every value that reaches the page goes
through ``html.escape`` because feature names and week strings can come from user data.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from core.ml.drift import Distribution

_NOT_AVAILABLE = "not available yet (labels not arrived)"
_NOT_AVAILABLE_PREDICTIONS = "not available yet (no predictions for this week)"

_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:2rem;color:#1f2328}
body{max-width:70rem}
h1{font-size:1.6rem;margin-bottom:.2rem}
h1.drift{color:#b42318}h1.ok{color:#067647}
h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem}
.meta{color:#57606a}
table{border-collapse:collapse;margin-top:.5rem}
th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:right;font-size:.9rem}
th{background:#f6f8fa}td.name,th.name{text-align:left}
tr.drifted td{background:#fef3f2}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:.6rem;font-size:.8rem}
.badge.yes{background:#fee4e2;color:#b42318}.badge.no{background:#dcfae6;color:#067647}
.badge.na{background:#eaecf0;color:#475467}
dl{display:grid;grid-template-columns:max-content auto;gap:.3rem 1rem}dt{font-weight:600}dd{margin:0}
.dists{display:flex;flex-wrap:wrap;gap:1rem 2rem}.dist h3{font-size:1rem;margin:.8rem 0 .2rem}
"""
_REFERENCE_COLOUR, _CURRENT_COLOUR = "#98a2b3", "#d92d20"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _number(value: Any, digits: int = 4) -> str:
    if _is_missing(value):
        return "&ndash;"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return _e(value)
    if math.isinf(number):
        return _e(number)
    if number != 0 and abs(number) < 10**-digits:
        return _e(f"{number:.2e}")
    return _e(f"{number:.{digits}f}")


def _badge(flag: Any, missing_text: str = "n/a") -> str:
    if _is_missing(flag):
        return f'<span class="badge na">{_e(missing_text)}</span>'
    if bool(flag):
        return '<span class="badge yes">drifted</span>'
    return '<span class="badge no">stable</span>'


def _psi_chart(feature_table: pd.DataFrame, threshold: float) -> str:
    """Horizontal SVG bars of PSI per feature, with a dashed line at the threshold."""
    if feature_table.empty:
        return "<p>No features were compared.</p>"
    label_width, bar_width, row_height = 220, 460, 22
    psis = [0.0 if _is_missing(v) else max(float(v), 0.0) for v in feature_table["psi"]]
    # Cap the axis at 5x the threshold: one huge PSI would otherwise squash every other bar (and the
    # threshold line) against the left edge. Longer bars are clipped; their label shows the real value.
    scale_max = max(min(max(psis), threshold * 5), threshold * 1.5, 1e-9)
    height = row_height * len(psis) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_width + bar_width + 140}" height="{height}" '
        f'role="img" aria-label="PSI per feature">'
    ]
    for i, (name, psi, raw, drifted) in enumerate(
        zip(feature_table["feature"], psis, feature_table["psi"], feature_table["drifted"], strict=True)
    ):
        y = 10 + i * row_height
        width = bar_width * min(psi, scale_max) / scale_max
        colour = "#d92d20" if bool(drifted) else "#2e90fa"
        clipped = psi > scale_max
        parts.append(
            f'<text x="{label_width - 8}" y="{y + 14}" font-size="12" text-anchor="end">{_e(name)}</text>'
            f'<rect x="{label_width}" y="{y + 3}" width="{width:.1f}" height="{row_height - 8}" '
            f'fill="{colour}">'
            f"<title>{_e(name)}: PSI {_number(raw)}</title></rect>"
        )
        if clipped:  # a broken end: this bar goes on past the axis
            end = label_width + width
            parts.append(
                f'<path class="clipped" d="M{end - 10:.1f},{y + 1} l6,{row_height - 4} m4,-{row_height - 4} '
                f'l6,{row_height - 4}" stroke="white" stroke-width="3"/>'
            )
        weight, note = (' font-weight="bold"', " (clipped)") if clipped else ("", "")
        parts.append(
            f'<text x="{label_width + width + 4:.1f}" y="{y + 14}" font-size="11"{weight}>'
            f"{_number(raw, 3)}{note}</text>"
        )
    x = label_width + bar_width * threshold / scale_max
    parts.append(
        f'<line x1="{x:.1f}" y1="4" x2="{x:.1f}" y2="{height - 18}" stroke="#101828" '
        f'stroke-dasharray="4 3"/><text x="{x:.1f}" y="{height - 4}" font-size="11" '
        f'text-anchor="middle">threshold {_number(threshold, 2)}</text>'
    )
    parts.append("</svg>")
    if max(psis) > scale_max:
        parts.append(
            f"<p class='meta'>The axis ends at PSI {_number(scale_max, 2)} (5x the threshold) so that one "
            "large value does not flatten the others: longer bars are cut (a white break at their end, "
            '"clipped" after the value), their label shows the real PSI.</p>'
        )
    return "".join(parts)


def _distribution_chart(dist: Distribution) -> str:
    """Side-by-side SVG bars of the reference's and the current week's share per bin or category.

    Numeric features use the bins PSI compared (the reference's deciles: each holds about a
    tenth of the reference, so a shift shows as current bars above or below that level).
    """
    n = len(dist.labels)
    slot, left, top, plot_height = max(22, min(60, 560 // max(n, 1))), 44, 8, 150
    width, height = left + slot * n + 10, top + plot_height + 86
    top_share = max(max(dist.reference, default=0.0), max(dist.current, default=0.0), 1e-9)
    y_max = min(1.0, math.ceil(top_share * 10) / 10)  # the axis to the next tenth

    def bar(x: float, share: float, colour: str, side: str, label: str) -> str:
        h = plot_height * share / y_max
        return (
            f'<rect class="{side}" x="{x:.1f}" y="{top + plot_height - h:.1f}" width="{slot * 0.4:.1f}" '
            f'height="{h:.1f}" fill="{colour}" data-label="{_e(label)}" data-share="{share:.6f}">'
            f"<title>{_e(label)}: {side} {share:.1%}</title></rect>"
        )

    parts = [
        f'<svg class="distribution" data-feature="{_e(dist.feature)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" role="img" '
        f'aria-label="{_e(dist.feature)}: reference vs current">',
        f'<line x1="{left}" y1="{top + plot_height}" x2="{width - 6}" y2="{top + plot_height}" '
        'stroke="#667085"/>',
    ]
    for tick in (0.0, y_max / 2, y_max):
        y = top + plot_height - plot_height * tick / y_max
        parts.append(
            f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{tick:.0%}</text>'
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - 6}" y2="{y:.1f}" stroke="#eaecf0"/>'
        )
    for i, (label, ref, cur) in enumerate(zip(dist.labels, dist.reference, dist.current, strict=True)):
        x = left + i * slot + slot * 0.1
        parts.append(bar(x, ref, _REFERENCE_COLOUR, "reference", label))
        parts.append(bar(x + slot * 0.4, cur, _CURRENT_COLOUR, "current", label))
        cx, cy = left + i * slot + slot / 2, top + plot_height + 10
        parts.append(
            f'<text x="{cx:.1f}" y="{cy}" font-size="10" text-anchor="end" '
            f'transform="rotate(-45 {cx:.1f} {cy})">{_e(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _distributions_html(distributions: Sequence[Distribution]) -> str:
    if not distributions:
        return ""
    legend = (
        f'<p class="meta"><span style="color:{_REFERENCE_COLOUR}">&#9632;</span> reference weeks '
        f'<span style="color:{_CURRENT_COLOUR}">&#9632;</span> this week. Share of rows per bin: for '
        "numeric features the bins PSI compared (the reference's deciles, about 10% of the reference "
        "each), for categorical ones each category.</p>"
    )
    charts = "".join(
        f'<div class="dist" id="dist-{_e(d.feature)}"><h3>{_e(d.feature)} ({_e(d.kind)})</h3>'
        f"{_distribution_chart(d)}</div>"
        for d in distributions
    )
    return f"<h3>Distributions of the drifted features</h3>{legend}<div class='dists'>{charts}</div>"


def _feature_table_html(feature_table: pd.DataFrame) -> str:
    header = (
        "<tr><th class='name'>feature</th><th class='name'>kind</th><th>PSI</th>"
        "<th title='the PSI a clean sample of these sizes stays under ([drift] confidence)'>PSI noise</th>"
        "<th title='Kolmogorov-Smirnov for numeric features, chi-square for categorical ones'>"
        "test statistic</th>"
        "<th>p-value</th><th>reference mean</th><th>current mean</th><th>status</th></tr>"
    )
    body = []
    for row in feature_table.itertuples(index=False):
        drifted = bool(row.drifted)
        body.append(
            f"<tr class='{'drifted' if drifted else 'stable'}'>"
            f"<td class='name'>{_e(row.feature)}</td><td class='name'>{_e(row.kind)}</td>"
            f"<td>{_number(row.psi)}</td><td>{_number(getattr(row, 'psi_noise', None))}</td>"
            f"<td>{_statistic(row.kind, row.statistic)}</td>"
            f"<td>{_number(row.p_value)}</td>"
            f"<td>{_number(row.reference_mean)}</td><td>{_number(row.current_mean)}</td>"
            f"<td>{_badge(drifted)}</td></tr>"
        )
    return f"<table>{header}{''.join(body)}</table>"


def _decision_html(decision: Any) -> str:
    """The monitor's reasons, one per cause: judged or not, found or within noise, cooldown."""
    if _is_missing(decision) or not str(decision):
        return ""
    items = "".join(f"<li>{_e(part)}</li>" for part in str(decision).split("; ") if part)
    return f"<h2>Decision</h2><ul class='decision'>{items}</ul>"


def _statistic(kind: str, value: Any) -> str:
    """The test statistic with its test's name: KS for numeric features, chi-square otherwise."""
    if _is_missing(value):
        return _number(value)
    return f"{'KS' if kind == 'numeric' else '&chi;&sup2;'} {_number(value)}"


def _definition_list(items: list[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{_e(term)}</dt><dd>{value}</dd>" for term, value in items) + "</dl>"


def render_drift_report(
    week: str,
    reference_weeks: list[str],
    feature_table: pd.DataFrame,
    summary: dict[str, Any],
    *,
    psi_threshold: float,
    share_threshold: float,
    distributions: Sequence[Distribution] = (),
) -> str:
    """Render the drift report of a week as a self-contained HTML page.

    Args:
        week: the monitored ISO week.
        reference_weeks: the weeks the reference data came from.
        feature_table: the output of ``drift.feature_drift``.
        summary: the output of ``drift.dataset_drift``, optionally merged with ``prediction_psi``,
            ``prediction_drifted``, ``metric``, ``live_metric``, ``reference_metric``,
            ``concept_drifted`` and ``concept_model_version``. A missing or ``None`` value means
            "not available yet" (e.g. labels have not arrived). If ``drifted`` is absent, data
            drift means any feature drifted.
        psi_threshold: the PSI above which a feature drifted (the chart's dashed line).
        share_threshold: the share of drifted features from which the week drifted.
        distributions: ``drift.distribution`` of the features to plot (the drifted ones).

    Returns:
        The HTML document as a string.
    """
    table = feature_table.reset_index(drop=True)
    data_drifted = summary.get("drifted")
    if _is_missing(data_drifted):
        data_drifted = bool(table["drifted"].astype(bool).any()) if len(table) else False
    prediction_drifted = summary.get("prediction_drifted")
    concept_drifted = summary.get("concept_drifted")
    flags = (("data", data_drifted), ("prediction", prediction_drifted), ("concept", concept_drifted))
    kinds = [label for label, flag in flags if not _is_missing(flag) and bool(flag)]
    any_drift = bool(kinds)
    headline = f"Drift detected in week {week}" if any_drift else f"No drift in week {week}"
    subline = (
        f"Kinds: {', '.join(kinds)} drift." if any_drift else "All available checks are within thresholds."
    )

    n_features = summary.get("n_features", len(table))
    n_drifted = summary.get("n_drifted", int(table["drifted"].astype(bool).sum()) if len(table) else 0)
    drifted_features = summary.get("drifted_features")
    if drifted_features is None:
        drifted_features = (
            [str(f) for f in table.loc[table["drifted"].astype(bool), "feature"]] if len(table) else []
        )
    data_items = [
        ("status", _badge(data_drifted)),
        ("drifted features", f"{_e(n_drifted)} of {_e(n_features)}"),
        ("share drifted", _number(summary.get("share_drifted"), 3)),
        ("share threshold", _number(share_threshold, 3)),
        ("PSI threshold", _number(psi_threshold, 3)),
        ("drifted", _e(", ".join(str(f) for f in drifted_features)) or "none"),
    ]
    prediction_items = [
        ("status", _badge(prediction_drifted, _NOT_AVAILABLE_PREDICTIONS)),
        (
            "PSI of predictions",
            _e(_NOT_AVAILABLE_PREDICTIONS)
            if _is_missing(summary.get("prediction_psi"))
            else _number(summary.get("prediction_psi")),
        ),
    ]
    metric = str(summary.get("metric") or "metric")
    measured = str(summary.get("concept_model_version") or "")
    concept_items = [
        ("status", _badge(concept_drifted, _NOT_AVAILABLE)),
        (
            "measured on",
            _e(f"v{measured}, the model serving when the week's rows arrived")
            if measured
            else _e("no model served this week before its own retrain"),
        ),
        (
            f"live {metric}",
            _e(_NOT_AVAILABLE)
            if _is_missing(summary.get("live_metric"))
            else _number(summary.get("live_metric")),
        ),
        (
            f"{metric} at validation",
            _e("not available")
            if _is_missing(summary.get("reference_metric"))
            else _number(summary.get("reference_metric")),
        ),
    ]
    reference_text = ", ".join(str(w) for w in reference_weeks) or "none"
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(headline)}</title><style>{_CSS}</style></head><body>"
        f"<h1 class='{'drift' if any_drift else 'ok'}'>{_e(headline)}</h1>"
        f"<p class='meta'>{_e(subline)} Reference weeks: {_e(reference_text)}.</p>"
        f"{_decision_html(summary.get('decision'))}"
        "<h2>Data drift</h2>"
        f"{_definition_list(data_items)}"
        f"{_psi_chart(table, float(psi_threshold))}"
        f"{_feature_table_html(table)}"
        f"{_distributions_html(distributions)}"
        "<h2>Prediction drift</h2>"
        f"{_definition_list(prediction_items)}"
        "<h2>Concept drift</h2>"
        f"{_definition_list(concept_items)}"
        "</body></html>\n"
    )
