"""How the endpoint served a week: the ops row beside the drift rows, judged against thresholds.

Operations are not drift: a slow or failing endpoint is the platform's trouble, not the
model's, so a breach marks the week's serving unhealthy (and the monitor's alert task fails,
loudly) but never triggers a retrain.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pandas as pd

from core.config import MonitoringSettings
from core.errors import ConfigError
from core.weeks import week_start
from lifecycle.context import StageContext

log = logging.getLogger(__name__)
#: below this many requests in a week, rates and the p99 say more about chance than about the
#: endpoint (a deploy's smoke test, the first call that loads the model): they are not judged
MIN_REQUESTS_TO_JUDGE = 100


@dataclass(frozen=True)
class ServingWatch:
    """How the endpoint served a week, judged (its fields are XCom keys of monitor_drift)."""

    serving_healthy: bool | None  # None: unknown, the serving report could not be read
    serving_breaches: list[str]
    serving_requests: int | None = None
    serving_p99_ms: float | None = None
    serving_figures: dict[str, Any] = field(default_factory=dict)  # the figures an alert quotes

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> ServingWatch:
        """The watch inside monitor_drift's XCom (its other keys are ignored)."""
        return cls(
            serving_healthy=data.get("serving_healthy"),
            serving_breaches=list(data.get("serving_breaches") or []),
            serving_requests=data.get("serving_requests"),
            serving_p99_ms=data.get("serving_p99_ms"),
            serving_figures=dict(data.get("serving_figures") or {}),
        )


def week_window(week: str) -> tuple[datetime, datetime]:
    """The UTC window of an ISO week: Monday 00:00 to the next Monday 00:00."""
    start = datetime.combine(week_start(week), time.min, UTC)
    return start, start + timedelta(days=7)


def breaches(report: Any, limits: MonitoringSettings) -> list[str]:
    """What was out of bounds in a serving report (empty: healthy, or too little traffic to judge)."""
    if report.requests < MIN_REQUESTS_TO_JUDGE:
        return []
    checks = (
        ("5xx error rate", report.error_rate_5xx, "max_error_rate", "{:.2%}"),
        ("4xx error rate", report.error_rate_4xx, "max_client_error_rate", "{:.2%}"),
        ("p99 latency", report.latency_p99_ms, "max_p99_ms", "{:.0f} ms"),
    )
    found = []
    for label, value, setting, shown in checks:
        limit = getattr(limits, setting)
        if value is not None and value > limit:  # the setting named, so the reader knows what to raise
            found.append(f"{label} {shown.format(value)} > {shown.format(limit)} ({setting})")
    return found


def watch_serving(ctx: StageContext) -> ServingWatch:
    """Record the week's serving report in ``ops_summary`` (one row per week, replaced on re-run).

    A report that cannot be read (a missing monitoring permission, the monitoring service
    down) leaves health unknown (None) and says why: drift is still judged.

    Returns:
        ``serving_healthy`` (True, False, or None when unknown), ``serving_breaches`` and the
        week's figures.
    """
    start, end = week_window(ctx.week)
    endpoint = ctx.provider.endpoint
    try:
        report = endpoint.serving_report(ctx.model_name, start, end)
    except Exception as exc:  # noqa: BLE001 - operations must not stop the drift verdict
        log.error("Week %s: the serving report could not be read: %s", ctx.week, exc, exc_info=True)
        return ServingWatch(serving_healthy=None, serving_breaches=[f"serving report unreadable: {exc}"])
    found = breaches(report, ctx.settings.monitoring)
    row = {
        "week": ctx.week,
        "model_name": ctx.model_name,
        "window_start": start,
        "window_end": end,
        "requests": report.requests,
        "errors_4xx": report.errors_4xx,
        "errors_5xx": report.errors_5xx,
        "error_rate_4xx": report.error_rate_4xx,
        "error_rate_5xx": report.error_rate_5xx,
        "latency_p50_ms": report.latency_p50_ms,
        "latency_p95_ms": report.latency_p95_ms,
        "latency_p99_ms": report.latency_p99_ms,
        "instance_hours": report.instance_hours,
        "cost_usd": report.cost_usd,
        "cost_basis": report.cost_basis,
        "source": report.source,
        "healthy": not found,
        "breaches": json.dumps(found),
    }
    warehouse = ctx.warehouse
    warehouse.replace_rows("ops_summary", {"week": ctx.week}, pd.DataFrame([row]))
    log.info(
        "Week %s serving of %s: %d requests, 4xx %.2f%%, 5xx %.2f%%, p99 %s ms, ~$%s (%s): %s",
        ctx.week, ctx.model_name, report.requests, 100 * report.error_rate_4xx, 100 * report.error_rate_5xx,
        _fmt(report.latency_p99_ms), _fmt(report.cost_usd), report.cost_basis,
        "UNHEALTHY: " + "; ".join(found) if found else "healthy",
    )  # fmt: skip
    return ServingWatch(
        serving_healthy=not found,
        serving_breaches=found,
        serving_requests=report.requests,
        serving_p99_ms=report.latency_p99_ms,
        # the week's figures, for the alert a breach sends (serving_alert)
        serving_figures={key: _plain(row[key]) for key in ALERT_FIGURES},
    )


#: the [monitoring] settings a week is judged by
THRESHOLDS = ("max_error_rate", "max_client_error_rate", "max_p99_ms")
#: the ops row's figures an alert quotes
ALERT_FIGURES = (
    "requests", "error_rate_4xx", "error_rate_5xx", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
    "cost_usd",
)  # fmt: skip


def alert_on_serving(ctx: StageContext, serving: ServingWatch, week: str | None = None) -> None:
    """serving_alert: fail on the week's breach, and on an ``[alerts]`` channel that cannot send.

    The channels are checked every week, healthy or not, so a missing or mistyped Connection is
    found before the week it is needed; a breach is raised whatever the channels' state (their
    problems are added to its message, never put in its place).

    Args:
        ctx: the run's context.
        serving: the week's serving, as monitor_drift judged it.
        week: the week monitor_drift judged (default: the run's week).

    Raises:
        ServingBreach: the week broke a ``[monitoring]`` threshold (its notifier sends the alert).
        ConfigError: a healthy week, but a channel of ``[alerts]`` cannot send; says what to fix.
    """
    from lifecycle.alerts.channels import check_channels
    from lifecycle.alerts.message import ServingAlert, ServingBreach

    problems = check_channels(ctx.settings.alerts)
    if serving.serving_healthy is False:
        limits = ctx.settings.monitoring
        alert = ServingAlert(
            week=week or ctx.week,
            model_name=ctx.model_name,
            provider=ctx.settings.provider,
            breaches=list(serving.serving_breaches),
            figures=dict(serving.serving_figures),
            thresholds={name: getattr(limits, name) for name in THRESHOLDS},
            problems=problems,
        )
        raise ServingBreach(alert, ctx.settings.alerts)
    if problems:
        raise ConfigError(
            f"serving alerts could not be sent (week {ctx.week} itself was not judged unhealthy): "
            + "; ".join(problems.values())
        )


def _plain(value: Any) -> Any:
    """A figure as plain JSON data (numpy scalars and NaN are not)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value.item() if hasattr(value, "item") else value


def ops_text(row: dict[str, Any]) -> str:
    """One line of a week's ops row for the run summary."""
    if not row:
        return "-"
    p99 = row.get("latency_p99_ms")
    figures = (
        f"{int(row['requests'])} requests, 5xx {row['error_rate_5xx']:.1%}, 4xx {row['error_rate_4xx']:.1%}, "
        f"p99 {_fmt(p99)} ms"
    )
    if row.get("healthy"):
        return f"healthy ({figures})"
    return f"UNHEALTHY: {'; '.join(json.loads(row.get('breaches') or '[]'))} ({figures}); no retrain"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.1f}"
