"""Inline SVG charts for the pages: a feature x week heat map and line charts.

Plain SVG strings (no JavaScript, no CDN: the machine running Airflow may have no internet).
Every mark carries a ``<title>``, so hovering shows its exact value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#7f7f7f", "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173")  # fmt: skip


def _heat_colour(value: float | None, threshold: float) -> str:
    """White at 0, amber at the threshold, deep red at twice the threshold and above."""
    if value is None:
        return "#eeeeee"
    t = max(0.0, min(value / (2 * threshold), 1.0)) if threshold > 0 else 1.0
    if t < 0.5:  # white -> amber
        f = t / 0.5
        r, g, b = 255, int(255 - (255 - 191) * f), int(255 - 255 * f)
    else:  # amber -> red
        f = (t - 0.5) / 0.5
        r, g, b = int(255 - (255 - 178) * f), int(191 - 191 * f), int(0 + 24 * f)
    return f"#{r:02x}{g:02x}{b:02x}"


def heat_map(
    features: Sequence[str],
    weeks: Sequence[str],
    values: Mapping[str, Mapping[str, float | None]],
    drifted: Mapping[str, Sequence[str]],
    threshold: float,
    marked_weeks: Sequence[str] = (),
    title: str = "PSI by feature and week",
) -> str:
    """A feature x week grid coloured by PSI; drifted cells outlined, marked weeks flagged below.

    Args:
        features: row labels.
        weeks: column labels, oldest first.
        values: ``{feature: {week: psi}}``; a missing value is drawn grey.
        drifted: ``{feature: [weeks in which it drifted]}``.
        threshold: the PSI above which a feature drifted (amber in the colour scale).
        marked_weeks: weeks to flag (e.g. the ones that triggered a retrain).
        title: the chart's accessible title.
    """
    cell_w, cell_h, left, top = 70, 22, 170, 30
    width = max(left + cell_w * max(len(weeks), 1) + 20, left + 11 * 18 + 300)
    height = top + cell_h * len(features) + 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart heatmap" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
    ]
    for j, week in enumerate(weeks):
        x = left + j * cell_w + cell_w / 2
        parts.append(f'<text x="{x}" y="{top - 10}" text-anchor="middle">{escape(week)}</text>')
        if week in marked_weeks:
            y = top + cell_h * len(features) + 16
            parts.append(
                f'<text x="{x}" y="{y}" text-anchor="middle" fill="#b2182b" font-weight="bold">'
                f"&#9650; retrain<title>{escape(week)}: drift triggered a retrain</title></text>"
            )
    for i, feature in enumerate(features):
        y = top + i * cell_h
        parts.append(
            f'<text x="{left - 8}" y="{y + cell_h / 2 + 4}" text-anchor="end">{escape(feature)}</text>'
        )
        for j, week in enumerate(weeks):
            value = values.get(feature, {}).get(week)
            x = left + j * cell_w
            is_drifted = week in drifted.get(feature, ())
            stroke = ' stroke="#222" stroke-width="2"' if is_drifted else ' stroke="#fff" stroke-width="1"'
            label = "n/a" if value is None else f"{value:.3f}"
            note = " (drifted)" if is_drifted else ""
            parts.append(
                f'<rect x="{x + 1}" y="{y + 1}" width="{cell_w - 2}" height="{cell_h - 2}" '
                f'fill="{_heat_colour(value, threshold)}"{stroke}>'
                f"<title>{escape(feature)}, {escape(week)}: PSI {label}{note}</title></rect>"
            )
            colour = "#fff" if value is not None and value > 1.5 * threshold else "#222"
            parts.append(
                f'<text x="{x + cell_w / 2}" y="{y + cell_h / 2 + 4}" text-anchor="middle" '
                f'fill="{colour}" pointer-events="none">{label}</text>'
            )
    # the colour scale
    y = top + cell_h * len(features) + 32
    for k in range(11):
        value = 2 * threshold * k / 10
        colour = _heat_colour(value, threshold)
        parts.append(f'<rect x="{left + k * 18}" y="{y}" width="18" height="10" fill="{colour}"/>')
    parts.append(f'<text x="{left - 8}" y="{y + 9}" text-anchor="end">PSI 0</text>')
    parts.append(
        f'<text x="{left + 11 * 18 + 6}" y="{y + 9}">{2 * threshold:g}+ (threshold {threshold:g}; '
        "outlined: drifted)</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    weeks: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    y_label: str,
    thresholds: Mapping[str, float] | None = None,
    marked_weeks: Sequence[str] = (),
    width: int = 720,
    height: int = 260,
) -> str:
    """A line per series over the weeks, with dashed threshold lines and flagged weeks.

    Args:
        weeks: the x axis, oldest first.
        series: ``{name: values per week}``; None leaves a gap.
        title: shown above the chart.
        y_label: the y axis's name.
        thresholds: ``{label: y}`` drawn as dashed horizontal lines.
        marked_weeks: weeks drawn as a red vertical band (e.g. retrain triggered).
        width: pixels.
        height: pixels.
    """
    thresholds = thresholds or {}
    left, right, top, bottom = 56, 210, 28, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for vs in series.values() for v in vs if v is not None] + list(thresholds.values())
    low, high = _y_range(values)
    # weeks sit where they fall in time: a backfill of W01-W02 beside W47-W48 keeps its gap
    position = _week_positions(weeks)
    slots = (position[-1] + 1) if weeks else 1

    def x_of(i: int) -> float:
        return left + (plot_w * (position[i] + 0.5) / slots)

    def y_of(v: float) -> float:
        return top + plot_h * (1 - (v - low) / (high - low))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart line" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ccc"/>',
    ]
    for i, week in enumerate(weeks):
        if week in marked_weeks:
            band = plot_w / slots
            parts.append(
                f'<rect x="{x_of(i) - band / 2}" y="{top}" width="{band}" height="{plot_h}" '
                f'fill="#b2182b" fill-opacity="0.10"><title>{escape(week)}: retrain triggered</title></rect>'
            )
    for k in range(5):  # y grid and ticks
        v = low + (high - low) * k / 4
        y = y_of(v)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y}" y2="{y}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{v:.3g}</text>')
    last_label = -1e9
    for i, week in enumerate(weeks):  # a label where it does not overlap the one before
        if x_of(i) - last_label >= 62:
            last_label = x_of(i)
            parts.append(
                f'<text x="{x_of(i)}" y="{top + plot_h + 16}" text-anchor="middle">{escape(week)}</text>'
            )
    parts.append(
        f'<text x="14" y="{top + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + plot_h / 2})">{escape(y_label)}</text>'
    )
    for label, value in thresholds.items():
        y = y_of(value)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y}" y2="{y}" stroke="#555" stroke-dasharray="5 4">'
            f"<title>{escape(label)}: {value:g}</title></line>"
        )
        parts.append(f'<text x="{left + plot_w - 4}" y="{y - 4}" text-anchor="end" fill="#555">'
                     f"{escape(label)} {value:g}</text>")  # fmt: skip
    legend_y = top + 4
    for n, (name, vs) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        segment: list[str] = []
        for i, point in enumerate(vs):
            if point is None or (i and position[i] - position[i - 1] > 1):  # no line across a gap
                if len(segment) > 1:
                    parts.append(_polyline(segment, colour))
                segment = []
            if point is None:
                continue
            segment.append(f"{x_of(i):.1f},{y_of(point):.1f}")
            parts.append(
                f'<circle cx="{x_of(i):.1f}" cy="{y_of(point):.1f}" r="3" fill="{colour}">'
                f"<title>{escape(name)}, {escape(weeks[i])}: {point:.4f}</title></circle>"
            )
        if len(segment) > 1:
            parts.append(_polyline(segment, colour))
        ly = legend_y + n * 15
        parts.append(
            f'<line x1="{left + plot_w + 10}" x2="{left + plot_w + 28}" y1="{ly}" y2="{ly}" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
        parts.append(f'<text x="{left + plot_w + 32}" y="{ly + 4}">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _week_positions(weeks: Sequence[str]) -> list[int]:
    """Each week's distance in weeks from the first (ISO weeks, oldest first)."""
    from core.weeks import week_start

    if not weeks:
        return []
    first = week_start(weeks[0])
    return [(week_start(week) - first).days // 7 for week in weeks]


def _y_range(values: Sequence[float]) -> tuple[float, float]:
    """The y axis: the values with a margin, from 0 for small shares and PSIs.

    It never zooms in closer than a fifth of the values' size, so a metric moving between 0.83
    and 0.84 draws as the near-flat line it is, not as a cliff.
    """
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    non_negative = low >= 0
    low = min(low, 0.0) if non_negative and high <= 1.5 and low < 0.3 else low
    least = max(0.2 * max(abs(low), abs(high)), 1e-9)
    if high - low < least:
        middle = (high + low) / 2
        low, high = middle - least / 2, middle + least / 2
    if high - low < 1e-9:
        high = low + 1.0
    pad = (high - low) * 0.08
    return (max(0.0, low - pad) if non_negative else low - pad), high + pad


def _polyline(points: list[str], colour: str) -> str:
    return f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" stroke-width="2"/>'
