"""deploy_model: serve production on the online endpoint, smoke-test it, roll back on failure."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from core.errors import MLOpsError, ParamError
from lifecycle.context import StageContext
from lifecycle.datasets import read_validated, validated_weeks
from lifecycle.history import PRODUCTION, ProductionMove, current_production
from lifecycle.jobs import JobStage, Step, after, done, ended_job, run_inline
from providers.base import JobState

log = logging.getLogger(__name__)
SMOKE_ROWS = 5


class SmokeTestFailedError(MLOpsError):
    """The endpoint did not serve the new version correctly (retryable: it may be starting)."""


@dataclass(frozen=True)
class DeployOutcome:
    """What the endpoint serves after deploy_model (its fields are the task's XCom keys)."""

    version: str
    url: str
    changed: bool  # False when the endpoint served production already


def deploy_production(ctx: StageContext) -> DeployOutcome:
    """Make the endpoint serve the production version and check that it does.

    If the rollout or the smoke test fails, the endpoint goes back to the version it served
    before and the production alias is pointed back at it, so the registry never names a model
    nobody serves. The deploy_model task runs the same steps but defers while a cloud endpoint
    rolls out (:func:`start_deploy`).

    Returns:
        ``version``, ``url`` and ``changed`` (False when it already served production).

    Raises:
        SmokeTestFailedError: the new version failed its rollout or smoke test (and was rolled
            back).
    """
    return run_inline(ctx, start_deploy(ctx))


def start_deploy(ctx: StageContext, production_version: str | None = None) -> Step[DeployOutcome]:
    """Check production and start its rollout; continue with :func:`finish_deploy`.

    Args:
        ctx: the run's context.
        production_version: the version this run's register step left in production (None
            outside the pipeline: whatever production is).
    """
    endpoint = ctx.provider.endpoint
    production = current_production(ctx, production_version)
    from lifecycle.score import require_compatible

    require_compatible(ctx, production)
    before = endpoint.current(ctx.model_name)
    rows = _smoke_rows(ctx)
    if before is not None and before.version == production.version:
        _smoke_test(ctx, rows, production.version)
        log.info("Endpoint already serves %s v%s; smoke test passed", ctx.model_name, production.version)
        return done(DeployOutcome(version=production.version, url=before.url, changed=False))
    handle = endpoint.start_rollout(production)
    log.info("Rolling out %s v%s on %s", ctx.model_name, production.version, handle.name)
    return after(
        ctx,
        endpoint,
        handle,
        DEPLOY,
        "finish",
        version=production.version,
        before=before.version if before else None,
    )


def finish_deploy(
    ctx: StageContext, event: dict[str, Any], version: str, before: str | None
) -> Step[DeployOutcome]:
    """Complete the ended rollout and smoke-test it; on failure, start rolling back to ``before``."""
    registry, endpoint = ctx.provider.registry, ctx.provider.endpoint
    handle, status = ended_job(event)
    try:
        if status.state is JobState.FAILED:
            raise MLOpsError(f"the rollout failed: {status.reason or 'no reason given'}")
        deployment = endpoint.finish_rollout(registry.get_version(ctx.model_name, version), handle)
        _smoke_test(ctx, _smoke_rows(ctx), version)
    except Exception as exc:
        return _roll_back(ctx, before, version, exc)
    log.info("Endpoint now serves %s v%s at %s", ctx.model_name, version, deployment.url)
    return done(DeployOutcome(version=version, url=deployment.url, changed=True))


def _smoke_rows(ctx: StageContext) -> list[dict[str, Any]]:
    """A few real validated rows, as a client would send them: the week's, or the latest week's.

    A rollback or a redeploy may run for a week that has no data yet.
    """
    weeks = validated_weeks(ctx, "0000-W01", ctx.week) or validated_weeks(ctx, "0000-W01", "9999-W52")
    if not weeks:
        raise ParamError("there is no validated data to smoke-test the endpoint with: run the pipeline first")
    week = ctx.week if ctx.week in weeks else max(weeks)
    from core.ml.features import request_records

    return request_records(read_validated(ctx, week).head(SMOKE_ROWS), ctx.settings.dataset)


def _smoke_test(ctx: StageContext, rows: list[dict[str, Any]], version: str) -> None:
    answer = ctx.provider.endpoint.invoke(ctx.model_name, rows)
    served = str(answer.get("model_version"))
    predictions = answer.get("predictions") or []
    if served != version:
        raise SmokeTestFailedError(f"the endpoint serves v{served}, not v{version}")
    task = ctx.settings.dataset.task
    if task == "multiclass":
        valid = all(isinstance(p, str) and p for p in predictions)
    else:  # a probability of the positive class, or a regression value
        valid = all(
            isinstance(p, float | int) and math.isfinite(p) and (task == "regression" or 0 <= p <= 1)
            for p in predictions
        )
    if len(predictions) != len(rows) or not valid:
        raise SmokeTestFailedError(f"the endpoint returned invalid predictions: {predictions!r}")


def _roll_back(
    ctx: StageContext, before: str | None, failed_version: str, error: Exception
) -> Step[DeployOutcome]:
    """Start serving ``before`` again; continue with :func:`finish_roll_back`."""
    if before is None:
        log.error("Deploy of v%s failed and there is no earlier deployment to go back to", failed_version)
        raise SmokeTestFailedError(
            f"deploying {ctx.model_name} v{failed_version} failed ({error}); there was no earlier "
            "deployment to roll back to"
        ) from error
    endpoint = ctx.provider.endpoint
    handle = endpoint.start_rollout(ctx.provider.registry.get_version(ctx.model_name, before))
    log.error("Deploy of v%s failed (%s); rolling the endpoint back to v%s", failed_version, error, before)
    return after(
        ctx,
        endpoint,
        handle,
        DEPLOY,
        "rolled_back",
        before=before,
        failed_version=failed_version,
        error=str(error),
    )


def finish_roll_back(
    ctx: StageContext, event: dict[str, Any], before: str, failed_version: str, error: str
) -> Step[DeployOutcome]:
    """Point production back at ``before`` once the endpoint serves it again; fail the task.

    Raises:
        SmokeTestFailedError: always (the deploy failed); the message says where things are.
    """
    registry, endpoint = ctx.provider.registry, ctx.provider.endpoint
    handle, status = ended_job(event)
    if status.state is JobState.FAILED:
        raise SmokeTestFailedError(
            f"deploying {ctx.model_name} v{failed_version} failed ({error}) and rolling the endpoint back "
            f"to v{before} failed too ({status.reason}): check the endpoint {handle.name}"
        )
    endpoint.finish_rollout(registry.get_version(ctx.model_name, before), handle)
    registry.set_alias(
        ctx.model_name,
        PRODUCTION,
        before,
        reason=f"deploy of v{failed_version} failed its smoke test: {error[:200]}",
        actor=ctx.actor,
        expected_current=failed_version,
        code=ProductionMove.DEPLOY_ROLLBACK,
    )
    log.error("Deploy of v%s failed; endpoint and production are back on v%s", failed_version, before)
    raise SmokeTestFailedError(
        f"deploying {ctx.model_name} v{failed_version} failed its smoke test ({error}); "
        f"the endpoint and production were rolled back to v{before}"
    )


#: deploy_model as a job stage: start the rollout; ``finish`` smoke-tests it (and may start a
#: roll back); ``rolled_back`` points production back once the endpoint serves the old version
DEPLOY: JobStage[DeployOutcome] = JobStage(
    "deploy", start=start_deploy, steps={"finish": finish_deploy, "rolled_back": finish_roll_back}
)
