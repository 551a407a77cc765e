"""The notifier on ``serving_alert``: a breached week's figures, sent to the channels of ``[alerts]``.

It is attached when the DAG file is parsed, so this module imports nothing heavy: astro.toml,
the Connections and the providers' notifiers are all read when a failure is being told.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseNotifier


class ServingAlertNotifier(BaseNotifier):
    """Tell ``[alerts]``'s channels (email, Slack) of a serving breach that failed ``serving_alert``.

    Only a breach is told (the task's :class:`~lifecycle.alerts.message.ServingBreach`): the task
    failing for any other reason (a Connection of ``[alerts]`` missing on a healthy week) says so
    itself. A channel that cannot send makes this notifier raise, after the others sent; Airflow
    logs that and the task keeps its failure, so a broken channel never hides the breach.
    """

    def notify(self, context: Any) -> None:
        """Send the breach's alert; raise naming the channels that could not send it."""
        from lifecycle.alerts.channels import configured, send
        from lifecycle.alerts.message import breach_of

        breach = breach_of(context.get("exception"))
        if breach is None:
            self.log.info("serving_alert failed without a serving breach: nothing to alert")
            return
        if not configured(breach.alerts):
            self.log.info("No channel in astro.toml [alerts]: the failed task is the only alert")
            return
        ti = context.get("ti")
        failed = send(breach.alert, breach.alerts, context, getattr(ti, "log_url", None))
        if failed:
            raise RuntimeError(
                f"the serving alert of week {breach.alert.week} did not reach every channel: "
                + "; ".join(failed.values())
            )
