"""Stages that wait for a provider's job: a step either has its result or waits for one job.

A stage with a long wait (train, deploy, score) is a :class:`JobStage`: a ``start`` function
and a fixed mapping of named steps (``{"finish": finish_training}``). ``start`` submits a job
and returns :func:`after`'s step: :class:`Done` with the result, when the job has ended already
(always on the local provider, and on a re-run that finds the finished job), or a
:class:`Wait` that names the job, the step of the same stage to continue with and what that
step needs (``carry``, JSON-safe). The Airflow task defers on the wait
(``dags/wiring/stages.py``) and continues with :meth:`JobStage.resume` and the trigger's event,
which carries only ``{"stage": "train", "step": "finish", "carry": {...}}``: the step is found
by name in the stage's own mapping (``lifecycle.stages.JOB_STAGES`` lists the stages), never
by an import path. :func:`run_inline` does the same in this process for callers that cannot
defer. A continuation never prepares or submits the first job again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from lifecycle.context import StageContext
from providers.base import JobHandle, JobState, JobStatus

if TYPE_CHECKING:
    from providers.jobs import JobWatcher

R = TypeVar("R")


@dataclass(frozen=True)
class Done(Generic[R]):
    """The step of a stage that has its result."""

    result: R


@dataclass(frozen=True)
class Wait(Generic[R]):
    """The step of a stage that waits for one job, then continues with ``stage.steps[step]``.

    Attributes:
        stage: the stage the step belongs to (in this process; only its name travels).
        step: the name of the step to continue with, a key of ``stage.steps``.
        trigger: the keyword arguments of :class:`providers.jobs.ProviderJobTrigger`; its
            ``resume`` is ``{"stage": stage.name, "step": step, "carry": {...}}``.
    """

    stage: JobStage[R]
    step: str
    trigger: dict[str, Any]


Step: TypeAlias = Done[R] | Wait[R]
StepFunction: TypeAlias = Callable[..., Step[R]]


@dataclass(frozen=True)
class JobStage(Generic[R]):
    """A stage that waits for provider jobs: its start and its named continuations.

    Modelled on Airflow's deferrable operators (``SageMakerTrainingOperator.execute`` submits,
    ``execute_complete`` continues): ``start(ctx, ...)`` submits, and each entry of ``steps``
    continues from a job's end event as ``step(ctx, event=..., **carry)``.

    Attributes:
        name: the stage's name in a trigger's event (``train``, ``deploy``, ``score``).
        start: the first step, called with the run's context and the stage's keyword arguments.
        steps: step name -> the function continuing from an ended job.
    """

    name: str
    start: StepFunction[R]
    steps: Mapping[str, StepFunction[R]] = field(default_factory=dict)

    def resume(self, ctx: StageContext, event: Mapping[str, Any]) -> Step[R]:
        """Continue with the step the event names (its ``resume``), with the job's end event.

        Raises:
            ValueError: the event belongs to another stage or names a step this stage lacks.
        """
        target = event.get("resume") or {}
        if target.get("stage") != self.name or target.get("step") not in self.steps:
            raise ValueError(
                f"stage {self.name} cannot resume {target!r}: its steps are {sorted(self.steps)}"
            )
        then = self.steps[target["step"]]
        return then(ctx, event={k: v for k, v in event.items() if k != "resume"}, **target.get("carry", {}))


def done(result: R) -> Done[R]:
    """The step of a stage that has its result."""
    return Done(result)


def after(
    ctx: StageContext, watcher: JobWatcher, handle: JobHandle, stage: JobStage[R], step: str, **carry: Any
) -> Step[R]:
    """Continue with ``stage.steps[step](ctx, event=..., **carry)`` now if the job has ended, else wait.

    Args:
        ctx: the run's context.
        watcher: the provider's capability that submitted the job (its ``status`` answers).
        handle: the submitted job.
        stage: the stage this step belongs to.
        step: the name of the continuation in ``stage.steps``.
        carry: what the continuation needs besides the event (JSON-safe: it travels through
            the triggerer).

    Raises:
        ValueError: ``step`` is not one of the stage's steps.
    """
    if step not in stage.steps:
        raise ValueError(f"stage {stage.name} has no step {step!r}: its steps are {sorted(stage.steps)}")
    status = watcher.status(handle)
    if status.ended:
        return stage.steps[step](ctx, event=job_event(handle, status), **carry)
    from providers.jobs import ProviderJobTrigger

    trigger = ProviderJobTrigger.for_job(ctx.settings, handle)
    trigger.resume = {"stage": stage.name, "step": step, "carry": carry}
    return Wait(stage=stage, step=step, trigger=trigger.serialize()[1])


def run_inline(ctx: StageContext, step: Step[R]) -> R:
    """Drive ``step`` to its result, waiting for its jobs in this process."""
    from providers.jobs import wait, watcher

    while isinstance(step, Wait):
        handle = JobHandle.from_dict(step.trigger["handle"])
        status = wait(watcher(ctx.provider, handle), handle)
        # the same resume payload the triggerer's event carries: the same path as a deferred task
        step = step.stage.resume(ctx, {**job_event(handle, status), "resume": step.trigger["resume"]})
    return step.result


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
