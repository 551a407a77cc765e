"""deploy_model: serve production on the online endpoint, smoke-test it, roll back on failure."""

from __future__ import annotations

import logging
import math
from typing import Any

from include.errors import MLOpsError, ParamError
from include.stages.context import StageContext
from include.stages.datasets import read_validated, validated_weeks
from include.stages.history import PRODUCTION, ProductionMove

log = logging.getLogger(__name__)
SMOKE_ROWS = 5


class SmokeTestFailedError(MLOpsError):
    """The endpoint did not serve the new version correctly (retryable: it may be starting)."""


def deploy_production(ctx: StageContext) -> dict[str, Any]:
    """Make the endpoint serve the production version and check that it does.

    If the smoke test fails, the endpoint goes back to the version it served before and the
    production alias is pointed back at it, so the registry never names a model nobody serves.

    Returns:
        ``version``, ``url`` and ``changed`` (False when it already served production).

    Raises:
        SmokeTestFailedError: the new version failed its smoke test (and was rolled back).
    """
    registry, endpoint = ctx.provider.registry, ctx.provider.endpoint
    production = registry.get_alias(ctx.model_name, PRODUCTION)
    if production is None:
        raise ParamError(
            f"model {ctx.model_name} has no production version to deploy: run the pipeline first"
        )
    from include.stages.score import require_compatible

    require_compatible(ctx, production)
    before = endpoint.current(ctx.model_name)
    rows = _smoke_rows(ctx)
    if before is not None and before.version == production.version:
        _smoke_test(ctx, rows, production.version)
        log.info("Endpoint already serves %s v%s; smoke test passed", ctx.model_name, production.version)
        return {"version": production.version, "url": before.url, "changed": False}

    deployment = endpoint.deploy(production)
    try:
        _smoke_test(ctx, rows, production.version)
    except Exception as exc:
        _roll_back(ctx, before, production.version, exc)
        raise SmokeTestFailedError(
            f"deploying {ctx.model_name} v{production.version} failed its smoke test ({exc}); "
            f"the endpoint and production were rolled back to "
            f"{'v' + before.version if before else 'nothing'}"
        ) from exc
    log.info("Endpoint now serves %s v%s at %s", ctx.model_name, production.version, deployment.url)
    return {"version": production.version, "url": deployment.url, "changed": True}


def _smoke_rows(ctx: StageContext) -> list[dict[str, Any]]:
    """A few real validated rows, as a client would send them: the week's, or the latest week's.

    A rollback or a redeploy may run for a week that has no data yet.
    """
    weeks = validated_weeks(ctx, "0000-W01", ctx.week) or validated_weeks(ctx, "0000-W01", "9999-W52")
    if not weeks:
        raise ParamError("there is no validated data to smoke-test the endpoint with: run the pipeline first")
    week = ctx.week if ctx.week in weeks else max(weeks)
    from include.ml.features import request_records

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


def _roll_back(ctx: StageContext, before: Any, failed_version: str, error: Exception) -> None:
    registry, endpoint = ctx.provider.registry, ctx.provider.endpoint
    if before is None:
        log.error("Deploy of v%s failed and there is no earlier deployment to go back to", failed_version)
        return
    endpoint.deploy(registry.get_version(ctx.model_name, before.version))
    registry.set_alias(
        ctx.model_name,
        PRODUCTION,
        before.version,
        reason=f"deploy of v{failed_version} failed its smoke test: {str(error)[:200]}",
        actor=ctx.actor,
        expected_current=failed_version,
        code=ProductionMove.DEPLOY_ROLLBACK,
    )
    log.error("Deploy of v%s failed; endpoint and production are back on v%s", failed_version, before.version)
