"""Serving alerts: [alerts] checked, a breach told by email and Slack through Connections.

The email goes to a real SMTP server (aiosmtpd) through the SMTP provider's SmtpNotifier; the
Slack message to a stand-in judging each request by Slack's Incoming Webhook rules, through the
Slack provider's SlackWebhookNotifier (tests/alert_standins.py).
"""

from __future__ import annotations

import html
import json

import pytest
from helpers import environment, write_config

from core.config import AlertSettings, load_settings
from core.errors import ConfigError
from lifecycle.alerts.message import ServingAlert, ServingBreach, breach_of
from lifecycle.alerts.notifier import ServingAlertNotifier

WEEK = "2026-W20"
RUN_URL = "http://airflow.example.com/dags/retrain_pipeline/runs/manual__1/tasks/serving_alert?try_number=1"
FIGURES = {"requests": 200, "error_rate_4xx": 0.0, "error_rate_5xx": 0.05, "latency_p50_ms": 8.6,
           "latency_p95_ms": 9.8, "latency_p99_ms": 1750.0, "cost_usd": 0.0}  # fmt: skip
BREACHES = ["5xx error rate 5.00% > 1.00% (max_error_rate)", "p99 latency 1750 ms > 500 ms (max_p99_ms)"]


@pytest.fixture
def channels(smtp_inbox, slack_webhook):
    """Connections ``alerts_smtp`` and ``alerts_slack`` (environment variables), servers emptied."""
    smtp_inbox.clear()
    slack_webhook.clear()
    variables = {
        "AIRFLOW_CONN_ALERTS_SMTP": json.dumps(smtp_inbox.connection()),
        "AIRFLOW_CONN_ALERTS_SLACK": json.dumps(slack_webhook.connection()),
        "AIRFLOW_CONN_NOT_SMTP": json.dumps({"conn_type": "http", "host": "127.0.0.1"}),
    }
    with environment(variables):
        yield smtp_inbox, slack_webhook


BOTH = AlertSettings(email_conn_id="alerts_smtp", email_to=["ops@example.com", "oncall@example.com"],
                     slack_conn_id="alerts_slack")  # fmt: skip


def _alert(problems: dict | None = None) -> ServingAlert:
    return ServingAlert(
        week=WEEK, model_name="churn", provider="local", breaches=BREACHES, figures=FIGURES,
        thresholds={"max_error_rate": 0.01, "max_client_error_rate": 0.1, "max_p99_ms": 500.0},
        problems=problems or {},
    )  # fmt: skip


class _TaskInstance:
    """What the notifier reads of the failed task instance: its log URL (the run's page)."""

    log_url = RUN_URL


def _notify(breach: BaseException) -> None:
    """Call the notifier as Airflow's task runner does after a failure (the context it passes)."""
    try:  # run_stage raises the task's AirflowFailException from the breach
        raise RuntimeError("AirflowFailException stand-in: ServingBreach") from breach
    except RuntimeError as wrapped:
        ServingAlertNotifier()({"exception": wrapped, "ti": _TaskInstance()})


def test_a_breach_is_told_once_by_email_and_once_on_slack(channels):
    inbox, slack = channels
    _notify(ServingBreach(_alert(), BOTH))
    assert len(inbox.messages) == 1 and len(slack.posts) == 1
    email = inbox.messages[0]
    assert email["Subject"] == "[mlops] churn serving UNHEALTHY in 2026-W20 (local)"
    assert inbox.envelopes[0] == ("airflow@example.com", ["ops@example.com", "oncall@example.com"])
    body = html.unescape(email.get_body(("html", "plain")).get_content())
    told = (WEEK, "provider local", *BREACHES, "200 requests", "5xx 5.00%", "p99 1750 ms",
                "max_error_rate = 0.01", "max_p99_ms = 500", "No retrain was triggered", RUN_URL)  # fmt: skip
    for expected in told:
        assert expected in body, expected
    text = slack.posts[0]["text"]
    assert text.startswith("*[mlops] churn serving UNHEALTHY in 2026-W20 (local)*\n")
    assert "5xx error rate 5.00% &gt; 1.00% (max_error_rate)" in text  # Slack's escaping of >
    assert all(b in html.unescape(text) for b in BREACHES) and "200 requests" in text
    assert f"Run: <{RUN_URL}|2026-W20 serving_alert>" in text
    assert slack.refused == []


def test_one_channel_failing_does_not_keep_the_other_from_telling(channels):
    inbox, slack = channels
    inbox.refuse_next = "550 5.7.1 Relaying denied"
    with pytest.raises(RuntimeError, match=r"did not reach every channel: email through .*'alerts_smtp'"):
        _notify(ServingBreach(_alert(), BOTH))
    assert inbox.messages == [] and len(slack.posts) == 1
    slack.clear()
    slack.fail_next = (410, "channel_is_archived")
    with pytest.raises(RuntimeError, match=r"slack through Connection 'alerts_slack'.*channel_is_archived"):
        _notify(ServingBreach(_alert(), BOTH))
    assert len(inbox.messages) == 1 and slack.posts == []


def test_a_channel_with_a_known_problem_is_not_tried_and_is_named(channels):
    inbox, slack = channels
    problems = {"slack": "[alerts] slack_conn_id: Connection 'x' has no webhook"}
    with pytest.raises(RuntimeError, match="has no webhook"):
        _notify(ServingBreach(_alert(problems), BOTH))
    assert len(inbox.messages) == 1 and slack.posts == [] and slack.refused == []


def test_nothing_is_sent_without_channels_or_without_a_breach(channels):
    inbox, slack = channels
    _notify(ServingBreach(_alert(), AlertSettings()))
    ServingAlertNotifier()({"exception": TimeoutError("the task timed out"), "ti": _TaskInstance()})
    assert inbox.messages == [] and slack.posts == []


def test_channels_are_checked_and_each_problem_says_what_to_fix(channels):
    from lifecycle.alerts.channels import check_channels

    assert check_channels(BOTH) == {}
    assert check_channels(AlertSettings()) == {}
    problems = check_channels(
        AlertSettings(email_conn_id="not_smtp", email_to=["ops@example.com"], slack_conn_id="nowhere")
    )
    assert "is of type 'http'; email alerts need a 'smtp' Connection" in problems["email"]
    assert "[alerts] slack_conn_id names Airflow Connection 'nowhere'" in problems["slack"]
    assert "AIRFLOW_CONN_NOWHERE=" in problems["slack"] and "slackwebhook" in problems["slack"]
    half_set = {"AIRFLOW_CONN_EMPTY_HOOK": json.dumps({"conn_type": "slackwebhook"}),
                "AIRFLOW_CONN_NO_SENDER": json.dumps({"conn_type": "smtp", "host": "127.0.0.1"})}  # fmt: skip
    with environment(half_set):
        problems = check_channels(
            AlertSettings(email_conn_id="no_sender", email_to=["ops@example.com"], slack_conn_id="empty_hook")
        )
    assert "has no sender: set [alerts] email_from or the Connection's extra from_email" in problems["email"]
    assert "has no webhook in its password field" in problems["slack"]


@pytest.fixture(scope="module")
def context_of(tmp_path_factory):
    """A StageContext for a week on a settings file with the given [alerts]."""
    from lifecycle.context import StageContext

    def make(**alerts):
        folder = tmp_path_factory.mktemp("alerts")
        return StageContext(settings=load_settings(write_config(folder, alerts=alerts)), week=WEEK, actor="t")

    return make


def _verdict(healthy: bool | None):
    from lifecycle.operations import ServingWatch

    breaches = BREACHES if healthy is False else []
    return ServingWatch(serving_healthy=healthy, serving_breaches=breaches, serving_figures=FIGURES)


def test_serving_alert_fails_a_breach_and_names_broken_channels_beside_it(channels, context_of):
    from lifecycle.operations import alert_on_serving

    ctx = context_of(email_conn_id="alerts_smtp", email_to=["ops@example.com"], slack_conn_id="missing_hook")
    with pytest.raises(ServingBreach) as raised:
        alert_on_serving(ctx, _verdict(False))
    message = str(raised.value)
    assert message.startswith(f"serving of week {WEEK} (local) was unhealthy: {BREACHES[0]}; {BREACHES[1]}")
    assert "no retrain was triggered" in message and "'missing_hook'" in message
    alert = raised.value.alert
    assert (alert.provider, alert.figures, alert.thresholds["max_p99_ms"]) == ("local", FIGURES, 500.0)
    assert list(alert.problems) == ["slack"]


def test_a_healthy_week_fails_fast_on_a_channel_that_cannot_send(channels, context_of):
    from lifecycle.operations import alert_on_serving

    broken = context_of(slack_conn_id="missing_hook")
    for healthy in (True, None):  # judged healthy, or not judged (no report)
        with pytest.raises(ConfigError, match=r"alerts could not be sent .*'missing_hook'.*AIRFLOW_CONN_"):
            alert_on_serving(broken, _verdict(healthy))
    assert alert_on_serving(context_of(**BOTH.__dict__), _verdict(True)) is None
    assert alert_on_serving(context_of(), _verdict(True)) is None


@pytest.mark.parametrize(
    ("alerts", "error"),
    [
        ({"email_conn_id": "smtp_ops"}, "email_to is empty"),
        ({"email_to": ["ops@example.com"]}, "email_conn_id is empty"),
        ({"email_conn_id": "smtp ops", "email_to": ["ops@example.com"]}, "is not an Airflow connection id"),
        ({"email_conn_id": "s", "email_to": ["ops(at)example.com"]}, "is not an email address"),
        ({"slack_conn_id": 3}, "should be of type str"),
        ({"email_to": "ops@example.com"}, "should be of type list"),
        ({"webhook": "x"}, r"unknown key\(s\) \['webhook'\] in \[alerts\]"),
    ],
)
def test_bad_alert_settings_are_refused_with_what_to_fix(tmp_path, alerts, error):
    with pytest.raises(ConfigError, match=error):
        load_settings(write_config(tmp_path, alerts=alerts))


def test_the_breach_is_found_behind_the_exceptions_that_wrap_it():
    breach = ServingBreach(_alert(), BOTH)
    try:
        try:
            raise breach
        except ServingBreach as exc:
            raise ValueError("wrapped") from exc
    except ValueError as wrapped:
        assert breach_of(wrapped) is breach
    assert breach_of(ValueError("other")) is None and breach_of(None) is None
