"""Job stages resume by name: a deferred step's event carries a stage and step name, never code."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import write_config

from core.config import load_settings
from lifecycle.context import StageContext
from lifecycle.jobs import Done, JobStage, Wait, after, done, ended_job, run_inline
from providers.base import JobHandle, JobState, JobStatus


class Watcher:
    """A capability whose job runs for ``polls`` status calls, then succeeds."""

    def __init__(self, polls: int) -> None:
        self.polls = polls

    def status(self, handle: JobHandle) -> JobStatus:
        self.polls -= 1
        return JobStatus(JobState.RUNNING if self.polls >= 0 else JobState.SUCCEEDED, "")


def _finish(ctx: StageContext, event: dict[str, Any], answer: int) -> Done[int] | Wait[int]:
    handle, status = ended_job(event)
    assert status.state is JobState.SUCCEEDED and handle.name == "job-1"
    return done(answer * 2)


def _start(ctx: StageContext, watcher: Watcher) -> Done[int] | Wait[int]:
    return after(ctx, watcher, JobHandle("training", "job-1", poll_seconds=0), DEMO, "finish", answer=21)


DEMO: JobStage[int] = JobStage("demo", start=_start, steps={"finish": _finish})


@pytest.fixture
def ctx(tmp_path):
    return StageContext(settings=load_settings(write_config(tmp_path)), week="2026-W05", actor="t")


def test_an_ended_job_continues_at_once(ctx):
    assert _start(ctx, Watcher(polls=0)) == Done(42)


def test_a_running_job_waits_with_only_names_and_json_in_the_trigger(ctx):
    step = _start(ctx, Watcher(polls=1))
    assert isinstance(step, Wait)
    assert step.trigger["resume"] == {"stage": "demo", "step": "finish", "carry": {"answer": 21}}
    # what the triggerer stores and fires: JSON only
    event = json.loads(json.dumps({"handle": step.trigger["handle"], "state": "succeeded", "reason": ""}))
    resume = json.loads(json.dumps(step.trigger["resume"]))
    assert DEMO.resume(ctx, {**event, "resume": resume}) == Done(42)


def test_a_stage_refuses_another_stages_event_or_an_unknown_step(ctx):
    event = {"handle": JobHandle("training", "job-1").to_dict(), "state": "succeeded", "reason": ""}
    with pytest.raises(ValueError, match="cannot resume"):
        DEMO.resume(ctx, {**event, "resume": {"stage": "train", "step": "finish", "carry": {}}})
    with pytest.raises(ValueError, match="cannot resume"):
        DEMO.resume(ctx, {**event, "resume": {"stage": "demo", "step": "rolled_back", "carry": {}}})
    with pytest.raises(ValueError, match="has no step"):
        after(ctx, Watcher(0), JobHandle("training", "job-1"), DEMO, "nowhere")


def test_the_registry_knows_every_job_stage_of_lifecycle():
    from lifecycle import deploy, score, train
    from lifecycle.stages import JOB_STAGES, resume

    assert JOB_STAGES == {"train": train.TRAIN, "deploy": deploy.DEPLOY, "score": score.SCORE}
    assert set(train.TRAIN.steps) == {"finish"} and set(score.SCORE.steps) == {"finish"}
    assert set(deploy.DEPLOY.steps) == {"finish", "rolled_back"}
    with pytest.raises(ValueError, match="unknown stage 'lifecycle.train.finish_training'"):
        resume(None, {"resume": {"stage": "lifecycle.train.finish_training", "step": "finish"}})


def test_run_inline_waits_in_this_process(ctx, monkeypatch):
    import providers.jobs

    watcher = Watcher(polls=2)
    monkeypatch.setattr(providers.jobs, "watcher", lambda provider, handle: watcher)
    monkeypatch.setattr(StageContext, "provider", None)
    assert run_inline(ctx, _start(ctx, watcher)) == 42
