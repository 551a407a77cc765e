"""The known job stages, by the name a trigger's event carries: the one place a name is resolved.

A deferred task resumes at a named step of one of these stages (``{"stage": "train", "step":
"finish", "carry": {...}}``); no event names code by an import path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lifecycle.context import StageContext
from lifecycle.deploy import DEPLOY
from lifecycle.jobs import JobStage, Step
from lifecycle.score import SCORE
from lifecycle.train import TRAIN

#: stage name -> stage: every stage a trigger's event may resume
JOB_STAGES: dict[str, JobStage[Any]] = {stage.name: stage for stage in (TRAIN, DEPLOY, SCORE)}


def resume(ctx: StageContext, event: Mapping[str, Any]) -> Step[Any]:
    """Continue the stage and step the event's ``resume`` names, with the job's end event.

    Raises:
        ValueError: the event names no known stage (or a step its stage lacks).
    """
    name = (event.get("resume") or {}).get("stage")
    if name not in JOB_STAGES:
        raise ValueError(
            f"the event resumes an unknown stage {name!r}: the job stages are {sorted(JOB_STAGES)}"
        )
    return JOB_STAGES[name].resume(ctx, event)
