"""The channels of astro.toml's ``[alerts]``: their Connections checked, and an alert sent through them.

Each channel is an Airflow Connection (credentials never sit in astro.toml) sent through the
Airflow provider's own notifier: ``SmtpNotifier`` (apache-airflow-providers-smtp) for email,
``SlackWebhookNotifier`` (apache-airflow-providers-slack) for a Slack Incoming Webhook. Both are
imported when an alert is sent, never while a DAG file is parsed.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from core.config import AlertSettings
from lifecycle.alerts.message import ServingAlert

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)  # one object per channel: hashed by identity
class Channel:
    """One way to send an alert: its ``[alerts]`` key and the Connection type it needs."""

    name: str
    key: str
    conn_type: str
    example: dict[str, Any]  # a Connection of this type, for the error message


EMAIL = Channel(
    "email", "email_conn_id", "smtp",
    {"conn_type": "smtp", "host": "smtp.example.com", "port": 587, "login": "...", "password": "...",
     "extra": {"from_email": "airflow@example.com"}},
)  # fmt: skip
SLACK = Channel(
    "slack", "slack_conn_id", "slackwebhook",
    {"conn_type": "slackwebhook", "password": "https://hooks.slack.com/services/T000/B000/XXXX"},
)  # fmt: skip
CHANNELS = (EMAIL, SLACK)


def configured(alerts: AlertSettings) -> dict[Channel, str]:
    """The channels ``[alerts]`` names, with their connection ids (empty: no alert is sent)."""
    return {channel: getattr(alerts, channel.key) for channel in CHANNELS if getattr(alerts, channel.key)}


def check_channels(alerts: AlertSettings) -> dict[str, str]:
    """Look up each Connection ``[alerts]`` names; say what is wrong with those that cannot send.

    Returns:
        ``{channel name: what is wrong and how to fix it}``; empty when every channel can send.
    """
    from airflow.sdk import BaseHook

    problems = {}
    for channel, conn_id in configured(alerts).items():
        try:
            conn = BaseHook.get_connection(conn_id)
        except Exception as exc:  # noqa: BLE001 - not found, or a secrets backend's own error
            problems[channel.name] = (
                f"[alerts] {channel.key} names Airflow Connection {conn_id!r}, which could not be read "
                f"({type(exc).__name__}: {exc}): create it (Admin > Connections, or the environment "
                f"variable {_env_name(conn_id)}='{json.dumps(channel.example)}') or empty [alerts] "
                f"{channel.key}"
            )
            continue
        problem = _problem(channel, conn, alerts)
        if problem:
            problems[channel.name] = f"[alerts] {channel.key}: Connection {conn_id!r} {problem}"
    return problems


def _problem(channel: Channel, conn: Any, alerts: AlertSettings) -> str | None:
    """What keeps a Connection that exists from sending on its channel, if anything."""
    if conn.conn_type != channel.conn_type:
        return (
            f"is of type {conn.conn_type!r}; {channel.name} alerts need a {channel.conn_type!r} Connection "
            f"(e.g. {json.dumps(channel.example)})"
        )
    if channel is EMAIL:
        if not conn.host:
            return "has no host: set the SMTP server's host (and port)"
        if not (alerts.email_from or (conn.extra_dejson or {}).get("from_email")):
            return "has no sender: set [alerts] email_from or the Connection's extra from_email"
    if channel is SLACK and not (conn.password or "").strip():
        return (
            "has no webhook in its password field: put the Incoming Webhook's URL there "
            "(https://hooks.slack.com/services/T.../B.../...)"
        )
    return None


def _env_name(conn_id: str) -> str:
    return "AIRFLOW_CONN_" + re.sub(r"[^A-Za-z0-9]", "_", conn_id).upper()


def send(alert: ServingAlert, alerts: AlertSettings, context: Any, run_url: str | None) -> dict[str, str]:
    """Send the alert through every channel of ``[alerts]`` that can send; report those that failed.

    A channel with a known problem (``alert.problems``) is not tried; one failing does not keep the
    others from sending.

    Returns:
        ``{channel name: why it did not send}``; empty when every channel sent.
    """
    failed = dict(alert.problems)
    for channel, conn_id in configured(alerts).items():
        if channel.name in failed:
            continue
        try:
            _SENDERS[channel.name](alert, alerts, conn_id, context, run_url)
            log.info("Serving alert for %s sent by %s (Connection %r)", alert.week, channel.name, conn_id)
        except Exception as exc:  # noqa: BLE001 - the other channels still send
            log.error("Serving alert for %s not sent by %s: %s", alert.week, channel.name, exc, exc_info=True)
            failed[channel.name] = (
                f"{channel.name} through Connection {conn_id!r}: {type(exc).__name__}: {exc}"
            )
    return failed


def _send_email(
    alert: ServingAlert, alerts: AlertSettings, conn_id: str, context: Any, run_url: str | None
) -> None:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    SmtpNotifier(
        to=list(alerts.email_to),
        from_email=alerts.email_from or None,  # None: the Connection's from_email extra
        subject=alert.subject(),
        html_content=alert.html(run_url),
        smtp_conn_id=conn_id,
    ).notify(context)  # notify(), not __call__: the text is ours, not a Jinja template


def _send_slack(
    alert: ServingAlert, alerts: AlertSettings, conn_id: str, context: Any, run_url: str | None
) -> None:
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    # the Slack provider's notify() is not annotated (the SMTP one's is): call it through Any
    notifier: Any = SlackWebhookNotifier(
        slack_webhook_conn_id=conn_id, text=alert.mrkdwn(run_url), timeout=30
    )
    notifier.notify(context)


_SENDERS = {EMAIL.name: _send_email, SLACK.name: _send_slack}
