"""A week whose serving breaches a threshold, run through the whole pipeline with dag.test().

The local endpoint's hourly record (written with the server's own writer, at moments inside
the week) holds a week of 5xx errors and slow answers. The pipeline runs for that week on the
local provider, with astro.toml's [alerts] naming an SMTP Connection (a real SMTP server,
aiosmtpd) and a Slack Incoming Webhook Connection (a stand-in judging Slack's rules):
serving_alert fails, each channel receives exactly one message with the week's figures, and no
retrain is triggered.
"""

from __future__ import annotations

import html
import json
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers import EndpointServer, environment, free_port, run_dag, run_state, task_states, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
WEEK = "2026-W20"


@pytest.fixture(scope="module")
def breached_run(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path, smtp_inbox, slack_webhook):
    """One pipeline run for WEEK after a week of bad serving; yields the run and the context."""
    folder = tmp_path_factory.mktemp("serving-alert")
    port = free_port()
    config = write_config(
        folder,
        local={"endpoint_port": port},
        data={"rows_per_week": 600},
        model={"params": {"max_iter": 20}},
        alerts={
            "email_conn_id": "alerts_smtp",
            "email_to": ["ops@example.com"],
            "slack_conn_id": "alerts_slack",
        },
    )
    smtp_inbox.clear()
    slack_webhook.clear()
    connections = {
        "AIRFLOW_CONN_ALERTS_SMTP": json.dumps(smtp_inbox.connection()),
        "AIRFLOW_CONN_ALERTS_SLACK": json.dumps(slack_webhook.connection()),
        "MLOPS_CONFIG": str(config),
    }
    server = EndpointServer(folder / "mlops" / "endpoint" / "deployments", port).wait_ready()
    try:
        with environment(connections):
            from core.config import load_settings
            from lifecycle.context import StageContext

            ctx = StageContext(settings=load_settings(config), week=WEEK, actor="test")
            _serve_badly(ctx)
            run = run_dag("retrain_pipeline", WEEK)
            yield {"run": run, "ctx": ctx, "inbox": smtp_inbox, "slack": slack_webhook}
    finally:
        server.stop()


def _serve_badly(ctx) -> None:
    """Record the week's traffic: 190 answers in 10 ms, 10 answered 5xx (5%, limit 1%), 3 of 2 s."""
    from core.serving_metrics import HourlyRecord
    from lifecycle.operations import week_window

    record = HourlyRecord(ctx.provider.endpoint.metrics)
    start, _ = week_window(WEEK)
    for i in range(190):
        record.add(ctx.model_name, "2xx", 0.010, start + timedelta(hours=1 + i % 100))
    for i in range(10):
        record.add(ctx.model_name, "5xx", 0.004, start + timedelta(days=2, minutes=i))
    for _ in range(3):
        record.add(ctx.model_name, "2xx", 2.0, start + timedelta(days=3))
    record.flush()


def test_serving_alert_fails_and_everything_else_succeeds(breached_run):
    run = breached_run["run"]
    states = task_states(run)
    assert states["serving_alert"] == "failed", states
    assert run_state(run) == "failed"  # a failed leaf fails the run: the UI shows it
    others = {state for task, state in states.items() if task not in {"serving_alert", "trigger_retrain"}}
    assert others == {"success"}, states


def test_no_retrain_is_triggered(breached_run):
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    assert task_states(breached_run["run"])["trigger_retrain"] == "skipped"
    with create_session() as session:
        triggered = session.query(DagRun).filter(DagRun.run_id == f"drift_retrain__{WEEK}").count()
    assert triggered == 0


def test_each_channel_received_exactly_one_message_with_the_figures(breached_run):
    inbox, slack, run = breached_run["inbox"], breached_run["slack"], breached_run["run"]
    assert len(inbox.messages) == 1 and len(slack.posts) == 1 and slack.refused == []
    email = inbox.messages[0]
    assert email["Subject"] == f"[mlops] churn serving UNHEALTHY in {WEEK} (local)"
    assert email["To"] == "ops@example.com"
    body = html.unescape(email.get_body(("html", "plain")).get_content())
    text = html.unescape(slack.posts[0]["text"])
    row = breached_run["ctx"].provider.warehouse.read_rows("ops_summary", {"week": WEEK}).iloc[0]
    assert (row["requests"], row["errors_5xx"], bool(row["healthy"])) == (203, 10, False)
    for told in (body, text):
        assert f"week {WEEK}" in told and "provider local" in told
        assert "5xx error rate 4.93% > 1.00% (max_error_rate)" in told
        assert f"p99 latency {row['latency_p99_ms']:.0f} ms > 500 ms (max_p99_ms)" in told
        assert "203 requests" in told and "max_client_error_rate = 0.1" in told
        assert f"/dags/retrain_pipeline/runs/{quote(run.run_id)}/tasks/serving_alert" in told
        assert "No retrain was triggered" in told


def test_the_run_summary_says_unhealthy_and_no_retrain(breached_run):
    from apps.ui.run_note import summary_of_run

    run = breached_run["run"]
    summary = summary_of_run(run.dag_id, run.run_id)
    assert "Serving: UNHEALTHY: 5xx error rate 4.93% > 1.00% (max_error_rate)" in summary
    assert summary.rstrip().endswith("no retrain") or "; no retrain" in summary
