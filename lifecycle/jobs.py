"""Stages that wait for a provider's job: a step either has its result or waits for one job.

A stage with a long wait (train, deploy, score) is written as steps. Its start function
submits a job and returns :func:`after`'s step: the result, when the job has ended already
(always on the local provider, and on a re-run that finds the finished job), or a *wait* that
names the job, the function to continue with and what that function needs (``carry``,
JSON-safe). The Airflow task defers on the wait (``dags/wiring/stages.py``) and continues
with :func:`resume` and the trigger's event; :func:`run_inline` does the same in this process
for callers that cannot defer. A continuation never prepares or submits the first job again.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from lifecycle.context import StageContext
from providers.base import JobHandle, JobState, JobStatus

Step = dict[
    str, Any
]  # {"result": ...} or {"wait": <trigger kwargs>, "then": "<module.function>", "carry": {...}}


def done(result: Any) -> Step:
    """The step of a stage that has its result."""
    return {"result": result}


def after(
    ctx: StageContext, capability: Any, handle: JobHandle, then: Callable[..., Step], **carry: Any
) -> Step:
    """Continue with ``then(ctx, event=..., **carry)`` now if the job has ended, else wait for it.

    Args:
        ctx: the run's context.
        capability: the provider's capability that submitted the job (its ``status`` answers).
        handle: the submitted job.
        then: a module-level function of ``lifecycle``, called with the job's event.
        carry: what ``then`` needs besides the event (JSON-safe: it travels through the
            triggerer).
    """
    status = capability.status(handle)
    if status.ended:
        return then(ctx, event=job_event(handle, status), **carry)
    from providers.jobs import ProviderJobTrigger

    trigger = ProviderJobTrigger.for_job(ctx.settings, handle)
    trigger.resume = {"then": f"{then.__module__}.{then.__name__}", "carry": carry}
    return {"wait": trigger.serialize()[1]}


def run_inline(ctx: StageContext, step: Step) -> Any:
    """Drive ``step`` to its result, waiting for its jobs in this process."""
    from providers.jobs import wait, watcher

    while "wait" in step:
        handle = JobHandle.from_dict(step["wait"]["handle"])
        status = wait(watcher(ctx.provider, handle), handle)
        step = resume(ctx, {**job_event(handle, status), "resume": step["wait"]["resume"]})
    return step["result"]


def resume(ctx: StageContext, event: Mapping[str, Any]) -> Step:
    """Continue a stage with its job's end event: call the step's ``then`` with its ``carry``."""
    target = event["resume"]
    module, function = target["then"].rsplit(".", 1)
    then = getattr(importlib.import_module(module), function)
    return then(ctx, event={k: v for k, v in event.items() if k != "resume"}, **target["carry"])


def job_event(handle: JobHandle, status: JobStatus) -> dict[str, Any]:
    """The event of an ended job, as :class:`providers.jobs.ProviderJobTrigger` fires it."""
    return {"handle": handle.to_dict(), "state": status.state.value, "reason": status.reason}


def ended_job(event: Mapping[str, Any] | None) -> tuple[JobHandle, JobStatus]:
    """The job and its final status from a trigger's event.

    Raises:
        ValueError: the event is not one of a job's end (the task was resumed without one).
    """
    if not event or "handle" not in event or "state" not in event:
        raise ValueError(f"the task was resumed without a job's end event: {event!r}")
    return JobHandle.from_dict(event["handle"]), JobStatus(
        JobState(event["state"]), str(event.get("reason", ""))
    )
