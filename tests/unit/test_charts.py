"""The inline SVG charts of the Drift page (apps/ui/charts.py)."""

from __future__ import annotations

import re

from apps.ui.charts import line_chart


def _points(svg: str) -> dict[str, tuple[float, float]]:
    """``{week: (x, y)}`` of the chart's points, from their hover titles."""
    found = re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)"[^>]*><title>[^,]+, (\d{4}-W\d{2}):', svg)
    return {week: (float(x), float(y)) for x, y, week in found}


def test_weeks_sit_where_they_fall_in_time() -> None:
    weeks = ["2026-W01", "2026-W02", "2026-W47", "2026-W48"]  # a backfill beside recent weeks
    svg = line_chart(weeks, {"share": [0.1, 0.2, 0.1, 0.3]}, title="t", y_label="y")
    x = {week: point[0] for week, point in _points(svg).items()}
    step = x["2026-W02"] - x["2026-W01"]
    assert abs((x["2026-W48"] - x["2026-W47"]) - step) < 0.2
    assert abs((x["2026-W47"] - x["2026-W02"]) / step - 45) < 0.5  # the 45-week gap is drawn
    assert svg.count("<polyline") == 2  # no line drawn across the gap
    labels = re.findall(r'text-anchor="middle">(\d{4}-W\d{2})</text>', svg)
    assert labels == ["2026-W01", "2026-W47"]  # labels that would overlap are left out


def test_a_near_flat_metric_is_not_drawn_as_a_cliff() -> None:
    svg = line_chart(["2026-W01", "2026-W02"], {"auc": [0.8347, 0.8345]}, title="t", y_label="auc")
    ticks = [float(t) for t in re.findall(r'text-anchor="end">([\d.]+)</text>', svg)]
    assert max(ticks) - min(ticks) >= 0.16  # at least a fifth of the values' size
    ys = [point[1] for point in _points(svg).values()]
    assert abs(ys[0] - ys[1]) < 2  # pixels: the 0.0002 difference stays flat
