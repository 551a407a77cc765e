"""monitor_drift watches operations too: a weekly ops row, thresholds, no retrain for ops trouble.

The week's serving is what the local endpoint's hourly record holds, written here by the same
writer the server uses (core/serving_metrics.py) with moments inside the week.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from helpers import free_port, run_stages, seed_loop, write_config

from core.serving_metrics import HourlyRecord
from lifecycle.operations import MIN_REQUESTS_TO_JUDGE, week_window

WEEK = "2026-W10"


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ops")
    config = write_config(
        folder,
        local={"endpoint_port": free_port()},
        data={"rows_per_week": 600},
        model={"params": {"max_iter": 20}},
        monitoring={"max_error_rate": 0.02, "max_p99_ms": 400.0},
    )
    ctx = seed_loop(config, [WEEK])  # its monitor run finds no traffic yet
    return config, ctx


def _serve(ctx, week: str, ok: int, failed: int, slow: int) -> None:
    """Record a week of traffic: answered requests at 10 ms, 5xx at 5 ms, slow ones at 2 s."""
    record = HourlyRecord(ctx.provider.endpoint.metrics)
    start, _ = week_window(week)
    for i in range(ok):
        record.add(ctx.model_name, "2xx", 0.010, start + timedelta(hours=1 + i % 50))
    for _ in range(failed):
        record.add(ctx.model_name, "5xx", 0.005, start + timedelta(days=2))
    for _ in range(slow):
        record.add(ctx.model_name, "2xx", 2.0, start + timedelta(days=3))
    record.flush()


def _ops_rows(ctx, week: str):
    return ctx.provider.warehouse.read_rows("ops_summary", {"week": week})


def _watch(ctx, week: str):
    from lifecycle.operations import watch_serving

    return watch_serving(type(ctx)(settings=ctx.settings, week=week, actor="ops-test"))


def test_a_quiet_week_gets_a_healthy_row_of_zero_requests(loop):
    _, ctx = loop
    assert _watch(ctx, "2026-W13").serving_healthy is True
    rows = _ops_rows(ctx, "2026-W13")
    assert len(rows) == 1
    row = rows.iloc[0]
    assert (row["requests"], bool(row["healthy"]), row["cost_usd"]) == (0, True, 0.0)


def test_an_unhealthy_week_is_recorded_and_alerted_but_never_retrains(loop):
    config, ctx = loop
    week = WEEK
    assert _ops_rows(ctx, week).iloc[0]["requests"] == 0  # the seeding run's row
    _serve(ctx, week, ok=180, failed=10, slow=10)
    _, results = run_stages(config, week, ("monitor.monitor_week", "summary.run_summary"), actor="ops-test")
    verdict = results["monitor.monitor_week"]
    assert verdict["serving_healthy"] is False
    assert [b.split(" ")[0] for b in verdict["serving_breaches"]] == ["5xx", "p99"]
    assert verdict["drift_detected"] is False and verdict["should_trigger_retrain"] is False
    assert "Serving: UNHEALTHY: 5xx error rate 5.00% > 2.00%" in results["summary.run_summary"]
    rows = _ops_rows(ctx, week)
    assert len(rows) == 1
    row = rows.iloc[0]
    assert (row["requests"], row["errors_5xx"], row["errors_4xx"]) == (200, 10, 0)
    assert row["error_rate_5xx"] == pytest.approx(0.05)
    # the 10 slowest of 200 took 2 s: the p99 is in the (1, 2.5] s bucket, the p50 in (7.5, 10] ms
    assert 1000 < row["latency_p99_ms"] <= 2500 and 7.5 < row["latency_p50_ms"] <= 10
    assert json.loads(row["breaches"]) == verdict["serving_breaches"]


def test_a_rerun_replaces_the_weeks_row(loop):
    config, ctx = loop
    run_stages(config, WEEK, ("monitor.monitor_week",), actor="ops-test-again")
    rows = _ops_rows(ctx, WEEK)
    assert len(rows) == 1 and rows.iloc[0]["requests"] == 200


def test_too_few_requests_are_not_judged(loop):
    config, ctx = loop
    week = "2026-W12"
    _serve(ctx, week, ok=MIN_REQUESTS_TO_JUDGE - 10, failed=5, slow=4)
    assert _watch(ctx, week).serving_healthy is True
    assert _ops_rows(ctx, week).iloc[0]["requests"] == MIN_REQUESTS_TO_JUDGE - 1
