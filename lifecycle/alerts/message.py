"""What a serving alert says: the week, the provider, the breached figures and their thresholds."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.errors import DeterministicError

if TYPE_CHECKING:
    from core.config import AlertSettings


@dataclass(frozen=True)
class ServingAlert:
    """A week whose serving broke a ``[monitoring]`` threshold, as the alert tells it.

    Attributes:
        week: the ISO week judged.
        model_name: the model served.
        provider: where it was served (local, aws, ...).
        breaches: one line per breached threshold: the figure, the limit and its setting.
        figures: the week's ops row (requests, error rates, latency quantiles, cost).
        thresholds: ``[monitoring]`` as judged.
        problems: channels of ``[alerts]`` that cannot send, and what to fix (channel -> why).
    """

    week: str
    model_name: str
    provider: str
    breaches: list[str]
    figures: dict[str, Any]
    thresholds: dict[str, float]
    problems: dict[str, str] = field(default_factory=dict)

    def subject(self) -> str:
        """A one-line title: what, which week, where."""
        return f"[mlops] {self.model_name} serving UNHEALTHY in {self.week} ({self.provider})"

    def lines(self, run_url: str | None = None) -> list[str]:
        """The alert as plain-text lines (what the Slack message and the email body say)."""
        f = self.figures
        lines = [
            f"Serving of model {self.model_name} on provider {self.provider} broke its thresholds "
            f"in week {self.week}:",
            *(f"- {breach}" for breach in self.breaches),
            f"Week {self.week}: {f.get('requests', 0)} requests; 5xx {_pct(f.get('error_rate_5xx'))}, "
            f"4xx {_pct(f.get('error_rate_4xx'))}; latency p50 {_ms(f.get('latency_p50_ms'))}, "
            f"p95 {_ms(f.get('latency_p95_ms'))}, p99 {_ms(f.get('latency_p99_ms'))}.",
            "Thresholds (astro.toml [monitoring]): "
            + ", ".join(f"{key} = {value:g}" for key, value in self.thresholds.items())
            + ".",
            "No retrain was triggered: operational trouble alerts, it never retrains. "
            "The week's row is in the ops_summary table and on the Drift page.",
        ]
        if run_url:
            lines.append(f"Run: {run_url}")
        return lines

    def mrkdwn(self, run_url: str | None = None) -> str:
        """The alert as a Slack message: ``&``, ``<`` and ``>`` escaped as Slack asks, the run a link."""
        lines = [f"*{_slack_escape(self.subject())}*", *map(_slack_escape, self.lines(None))]
        if run_url:
            lines.append(f"Run: <{run_url}|{_slack_escape(self.week)} serving_alert>")
        return "\n".join(lines)

    def html(self, run_url: str | None = None) -> str:
        """The alert as a small HTML email body (the same lines, escaped)."""
        lines = self.lines(None)
        breaches = [line[2:] for line in lines if line.startswith("- ")]
        others = [line for line in lines if not line.startswith("- ")]
        body = [f"<p>{html.escape(others[0])}</p>", "<ul>"]
        body += [f"<li>{html.escape(b)}</li>" for b in breaches]
        body += ["</ul>", *(f"<p>{html.escape(line)}</p>" for line in others[1:])]
        if run_url:
            url = html.escape(run_url, quote=True)
            body.append(f'<p>Run: <a href="{url}">{url}</a></p>')
        return "\n".join(body)


class ServingBreach(DeterministicError):
    """serving_alert's failure on a breach: its message is the alert, ``alert`` its data.

    The task fails without retries (a retry would find the same week), and the notifier on the
    task reads ``alert`` and ``alerts`` from the exception to tell the channels of ``[alerts]``.
    """

    def __init__(self, alert: ServingAlert, alerts: AlertSettings) -> None:
        self.alert = alert
        self.alerts = alerts  # the [alerts] channels the task judged with
        message = (
            f"serving of week {alert.week} ({alert.provider}) was unhealthy: {'; '.join(alert.breaches)} "
            "(table ops_summary; thresholds in astro.toml [monitoring]); no retrain was triggered for it"
        )
        if alert.problems:
            message += ". Not every channel of [alerts] can tell it: " + "; ".join(alert.problems.values())
        super().__init__(message)


def breach_of(error: BaseException | None) -> ServingBreach | None:
    """The ServingBreach an exception is, or was raised from (run_stage wraps it), else None."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, ServingBreach):
            return error
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None


def _slack_escape(text: str) -> str:
    # Slack reads <...> as a link or mention and & as an entity: the three are escaped, nothing else
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"
