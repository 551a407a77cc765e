"""A deferrable wait for SageMaker jobs, run by Airflow's triggerer (no worker slot held).

The amazon provider's SageMakerTrigger needs aiobotocore, which is not in this project's lock;
this trigger polls the same Describe* call through the SageMakerHook in a thread instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

_DESCRIBE = {
    "training": ("describe_training_job", "TrainingJobStatus"),
    "transform": ("describe_transform_job", "TransformJobStatus"),
}
_RUNNING = ("InProgress", "Stopping")


class SageMakerJobTrigger(BaseTrigger):
    """Fires once a SageMaker training or transform job has ended (any final status)."""

    def __init__(
        self,
        job_name: str,
        job_type: str = "training",
        aws_conn_id: str = "aws_default",
        poll_seconds: float = 30,
        timeout_seconds: float = 7 * 24 * 3600,
    ) -> None:
        super().__init__()
        if job_type not in _DESCRIBE:
            raise ValueError(f"job_type must be one of {sorted(_DESCRIBE)}, not {job_type!r}")
        self.job_name = job_name
        self.job_type = job_type
        self.aws_conn_id = aws_conn_id
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Where the triggerer finds this class, and its arguments."""
        return (
            "providers.aws.triggers.SageMakerJobTrigger",
            {
                "job_name": self.job_name,
                "job_type": self.job_type,
                "aws_conn_id": self.aws_conn_id,
                "poll_seconds": self.poll_seconds,
                "timeout_seconds": self.timeout_seconds,
            },
        )

    def _describe(self) -> dict[str, Any]:
        from providers.aws.hooks import sagemaker_hook

        method, _ = _DESCRIBE[self.job_type]
        return getattr(sagemaker_hook(self.aws_conn_id), method)(self.job_name)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the job ends; the event carries its final status and failure reason."""
        _, field = _DESCRIBE[self.job_type]
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            job = await asyncio.to_thread(self._describe)
            status = job[field]
            if status not in _RUNNING:
                yield TriggerEvent(
                    {
                        "job_name": self.job_name,
                        "status": status,
                        "failure_reason": job.get("FailureReason", ""),
                    }
                )
                return
            if time.monotonic() > deadline:
                yield TriggerEvent({"job_name": self.job_name, "status": "Timeout", "failure_reason": ""})
                return
            self.log.info("SageMaker %s job %s is %s", self.job_type, self.job_name, status)
            await asyncio.sleep(self.poll_seconds)
