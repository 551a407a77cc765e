"""Waiting for a provider's long-running jobs: one trigger for every cloud, and an inline wait.

Training, batch scoring and an endpoint rollout are each ``submit -> status -> collect`` (see
``providers/base.py``). A task submits, then defers on :class:`ProviderJobTrigger`: Airflow's
triggerer builds the same provider from the same settings, polls the capability's ``status``
in a thread and fires one event when the job has ended, so no worker slot is held while a
cloud works. The resumed task collects from the handle in the event; it never prepares or
submits again. :func:`wait` is the same loop for callers that cannot defer (scripts, tests).

This module is imported by the triggerer and by DAG-side code: it imports no cloud SDK.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from airflow.triggers.base import BaseTrigger, TriggerEvent

from core.errors import MLOpsError
from providers.base import JobHandle, JobState, JobStatus

if TYPE_CHECKING:
    import pandas as pd

    from core.config import Settings
    from providers.base import (
        BatchScorer,
        Deployment,
        ModelVersion,
        OnlineEndpoint,
        Provider,
        TrainingJobResult,
        TrainingJobs,
        TrainingJobSpec,
    )

# which capability of a Provider watches each kind of job
CAPABILITY_OF_KIND = {"training": "training", "batch": "batch", "rollout": "endpoint"}
DEFAULT_TIMEOUT_SECONDS = 7 * 24 * 3600


class JobWatcher(Protocol):
    """A capability that answers for its jobs (training, batch, endpoint)."""

    def status(self, handle: JobHandle) -> JobStatus:
        """The job's state now."""
        ...


class JobTimeoutError(MLOpsError):
    """A job was still running when its wait ran out of time."""


def watcher(provider: Provider, handle: JobHandle) -> JobWatcher:
    """The capability of ``provider`` whose ``status`` answers for ``handle``.

    Raises:
        ValueError: the handle's kind is not one of the job model's.
    """
    try:
        capability: JobWatcher = getattr(provider, CAPABILITY_OF_KIND[handle.kind])
        return capability
    except KeyError:
        raise ValueError(f"unknown job kind {handle.kind!r}: one of {sorted(CAPABILITY_OF_KIND)}") from None


def wait(
    capability: JobWatcher, handle: JobHandle, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
) -> JobStatus:
    """Poll ``capability.status(handle)`` in this process until the job ends; return its status.

    Raises:
        JobTimeoutError: the job was still running after ``timeout_seconds``.
    """
    deadline = time.monotonic() + timeout_seconds
    while True:
        status = capability.status(handle)
        if status.ended:
            return status
        if time.monotonic() > deadline:
            raise JobTimeoutError(
                f"{handle.kind} job {handle.name} still running after {timeout_seconds:.0f} s"
            )
        time.sleep(handle.poll_seconds)


def run_training(training: TrainingJobs, spec: TrainingJobSpec) -> TrainingJobResult:
    """Submit, wait for and collect a training job in this process (for callers that cannot defer)."""
    handle = training.submit(spec)
    wait(training, handle)
    return training.collect(spec, handle)


def deploy(endpoint: OnlineEndpoint, version: ModelVersion) -> Deployment:
    """Roll ``version`` out on the endpoint and wait for it in this process."""
    handle = endpoint.start_rollout(version)
    wait(endpoint, handle)
    return endpoint.finish_rollout(version, handle)


def score(batch: BatchScorer, version: ModelVersion, input_key: str) -> Iterator[pd.DataFrame]:
    """Score ``input_key`` with ``version``, waiting in this process; yield the prediction chunks."""
    handle = batch.submit(version, input_key)
    wait(batch, handle)
    yield from batch.results(version, handle)


class ProviderJobTrigger(BaseTrigger):
    """Fires once a provider's job has ended, with its final state and the service's reason.

    It carries what it needs to build the provider again in the triggerer (the settings file
    and the provider's name) and the job's handle; the event is ``{"handle", "state",
    "reason", "resume"}``. ``resume`` is what the deferring task needs to continue, JSON data
    naming a step of a known stage, never code: ``{"stage": "train", "step": "finish",
    "carry": {...}}`` (see :class:`lifecycle.jobs.JobStage`). It travels in the event rather
    than in the deferral's kwargs, which ``dag.test()`` drops. A job still running after
    ``timeout_seconds`` is reported as failed.
    """

    def __init__(
        self,
        config_path: str,
        provider: str,
        handle: dict[str, Any],
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        resume: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.config_path = config_path
        self.provider = provider
        self.handle = handle
        self.timeout_seconds = timeout_seconds
        self.resume = resume or {}

    @classmethod
    def for_job(
        cls, settings: Settings, handle: JobHandle, timeout_seconds: float | None = None
    ) -> ProviderJobTrigger:
        """The trigger of ``handle``, submitted by the provider that ``settings`` select."""
        return cls(
            config_path=str(settings.config_path),
            provider=settings.provider,
            handle=handle.to_dict(),
            timeout_seconds=timeout_seconds or DEFAULT_TIMEOUT_SECONDS,
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Where the triggerer finds this class, and its arguments."""
        return (
            "providers.jobs.ProviderJobTrigger",
            {
                "config_path": self.config_path,
                "provider": self.provider,
                "handle": self.handle,
                "timeout_seconds": self.timeout_seconds,
                "resume": self.resume,
            },
        )

    def _capability(self) -> Any:
        from core.config import load_settings
        from providers import get_provider

        settings = load_settings(self.config_path).with_overrides(provider=self.provider)
        return watcher(get_provider(settings), JobHandle.from_dict(self.handle))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll the job's status until it ends; yield one event."""
        handle = JobHandle.from_dict(self.handle)
        capability = await asyncio.to_thread(self._capability)
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            status = await asyncio.to_thread(capability.status, handle)
            if status.ended:
                break
            if time.monotonic() > deadline:
                status = JobStatus(JobState.FAILED, f"still running after {self.timeout_seconds:.0f} s")
                break
            self.log.info("%s job %s is running (%s)", handle.kind, handle.name, status.reason or "no detail")
            await asyncio.sleep(handle.poll_seconds)
        self.log.info("%s job %s ended %s %s", handle.kind, handle.name, status.state.value, status.reason)
        event = {"handle": self.handle, "state": status.state.value, "reason": status.reason}
        yield TriggerEvent({**event, "resume": self.resume})
