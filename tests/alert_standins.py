"""Where serving alerts land in the tests: a real SMTP server, and a Slack Incoming Webhook stand-in.

- :class:`SmtpInbox`: aiosmtpd (a real SMTP server, PyPI ``aiosmtpd``, pinned) on 127.0.0.1 and a
  free port, keeping each message it accepts; it can refuse the next message on cue, with the
  reply code a mail server gives.
- :class:`SlackWebhook`: Slack cannot run here, so an HTTP server answers as an Incoming Webhook
  does, judging each request by Slack's published rules (api.slack.com/messaging/webhooks and
  its changelog of webhook errors, 2016-05-17): a POST to ``/services/T.../B.../<secret>`` with a
  JSON object body, whose ``text`` is a non-empty string unless ``blocks`` or ``attachments``
  carry the message, answered ``200 ok``; otherwise the documented status and error string
  (``invalid_payload``, ``no_text``, ``no_service``, ``invalid_token``), and any of them on cue.

Both run in threads of the test process (the notifier runs in-process under ``dag.test()``)
and stop at the fixture's teardown, whatever the test did.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from helpers import free_port


@dataclass
class SmtpInbox:
    """aiosmtpd on 127.0.0.1:<free port>; ``messages`` holds what it accepted."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    refuse_next: str | None = None  # an SMTP reply (e.g. "550 5.7.1 relaying denied") for the next DATA

    def __post_init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        """Keep the message (or refuse it, on cue), as a mail server's DATA reply."""
        if self.refuse_next:
            reply, self.refuse_next = self.refuse_next, None
            return reply
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(message_from_bytes(envelope.original_content, policy=policy.default))
        return "250 Message accepted for delivery"

    def connection(self, from_email: str = "airflow@example.com") -> dict[str, Any]:
        """An Airflow SMTP Connection to this server (plain SMTP: no SSL, no STARTTLS, no login)."""
        return {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": self.port,
            "extra": {"from_email": from_email, "disable_ssl": True, "disable_tls": True, "timeout": 10,
                      "retry_limit": 0},
        }  # fmt: skip

    def clear(self) -> None:
        """Forget the messages (a shared fixture between tests)."""
        self.messages.clear()
        self.envelopes.clear()
        self.refuse_next = None

    def stop(self) -> None:
        """Stop the server thread."""
        self._controller.stop()


_HOOK_PATH = re.compile(r"^/services/(T[A-Z0-9]+)/(B[A-Z0-9]+)/([A-Za-z0-9]+)$")
# the fields an Incoming Webhook message takes (app webhooks ignore the legacy channel/username)
_FIELDS = {"text", "blocks", "attachments", "mrkdwn", "thread_ts", "unfurl_links", "unfurl_media",
           "channel", "username", "icon_emoji", "icon_url", "response_type", "replace_original",
           "delete_original", "metadata"}  # fmt: skip


class SlackWebhook:
    """An Incoming Webhook on 127.0.0.1:<free port>; ``posts`` holds the messages it accepted.

    Args:
        token: the webhook's secret (the last part of its path); another one answers 403.
    """

    TEAM, CHANNEL = "T0TEST", "B0ALERTS"

    def __init__(self, token: str = "secret123") -> None:
        self.token = token
        self.posts: list[dict[str, Any]] = []
        self.refused: list[tuple[int, str]] = []
        self.fail_next: tuple[int, str] | None = None  # e.g. (410, "channel_is_archived") on cue
        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="slack-webhook", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The webhook's URL (what Slack shows when the webhook is created)."""
        return f"http://127.0.0.1:{self.port}/services/{self.TEAM}/{self.CHANNEL}/{self.token}"

    def connection(self) -> dict[str, Any]:
        """An Airflow ``slackwebhook`` Connection holding the webhook's URL in its password."""
        return {"conn_type": "slackwebhook", "password": self.url}

    def judge(self, method: str, path: str, content_type: str, body: bytes) -> tuple[int, str]:
        """Slack's answer to one request: ``(status, body)``."""
        match = _HOOK_PATH.match(path)
        if method != "POST" or match is None or match.group(1, 2) != (self.TEAM, self.CHANNEL):
            return 404, "no_service"
        if match.group(3) != self.token:
            return 403, "invalid_token"
        try:
            payload = json.loads(body) if content_type.split(";")[0].strip() == "application/json" else None
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or set(payload) - _FIELDS:
            return 400, "invalid_payload"
        text, blocks, attachments = payload.get("text"), payload.get("blocks"), payload.get("attachments")
        if text is not None and not isinstance(text, str):
            return 400, "invalid_payload"
        if (
            blocks is not None
            and not isinstance(blocks, list)
            or attachments is not None
            and not isinstance(attachments, list)
        ):
            return 400, "invalid_payload"
        if not (text and text.strip()) and not blocks and not attachments:
            return 400, "no_text"
        if self.fail_next:
            answer, self.fail_next = self.fail_next, None
            return answer
        self.posts.append(payload)
        return 200, "ok"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                kind = self.headers.get("Content-Type", "")
                status, text = webhook.judge(self.command, self.path, kind, body)
                if status != 200:
                    webhook.refused.append((status, text))
                self.send_response(status)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text.encode())

            do_POST = do_GET = do_PUT = _answer  # noqa: N815 - http.server's method names

            def log_message(self, *_: Any) -> None:  # quiet: pytest shows failures, not access lines
                pass

        return Handler

    def clear(self) -> None:
        """Forget the posts and refusals."""
        self.posts.clear()
        self.refused.clear()
        self.fail_next = None

    def stop(self) -> None:
        """Stop the server and its thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
