"""register_model: register the challenger; move production only if the gate passed."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from core.errors import ArtifactIntegrityError, ParamError
from lifecycle.context import StageContext
from lifecycle.evaluate import Evaluation, training_run
from lifecycle.history import PRODUCTION, ProductionMove

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registration:
    """The challenger's registered version and where production is (register_model's XCom)."""

    version: str
    promoted: bool
    production_version: str | None  # None: the model has no production version yet


@dataclass(frozen=True)
class Rollback:
    """Where rollback_model left production (its XCom)."""

    production_version: str
    changed: bool  # False when production was that version already


def register_challenger(ctx: StageContext, job_name: str | None = None) -> Registration:
    """Register the week's challenger and promote it when its evaluation passed.

    Registration is idempotent (keyed by the training job name). Promotion is a
    compare-and-set against the champion the gate compared with, so a stale re-run never
    moves production back.

    Returns:
        ``version``, ``promoted``, ``production_version``.
    """
    run = training_run(ctx, job_name)
    job_name = run.job_name
    evaluations = ctx.warehouse.read_rows("evaluations", {"week": ctx.week, "job_name": job_name})
    if evaluations.empty:
        raise ParamError(f"challenger {job_name} was not evaluated: run evaluate_model for {ctx.week} first")
    evaluation = Evaluation.from_row(evaluations.iloc[-1].to_dict())
    registry = ctx.provider.registry
    metrics = {
        **json.loads(run.metrics),
        f"holdout_{evaluation.metric}": evaluation.challenger_score,
    }
    tags = {
        "week": ctx.week,
        "train_weeks": run.train_weeks,
        "data_versions": run.data_versions,
        "code_version": run.code_version,
        "dataset": ctx.settings.dataset.name,
        "dataset_spec": ctx.settings.dataset.spec_hash(),
        "task": ctx.settings.dataset.task,
        "hardware_profile": run.hardware,
        "training_job": job_name,
        "trained_by": ctx.actor,
        "reason": run.reason,
    }
    version = registry.register(
        ctx.model_name,
        run.model_key,
        registry_key=job_name,
        metrics=metrics,
        params=json.loads(run.hyperparameters),
        tags=tags,
    )
    if version.sha256 != run.model_sha256:
        raise ArtifactIntegrityError(
            f"registered artifact of {job_name} has sha256 {version.sha256}, but training produced "
            f"{run.model_sha256}: the training output changed after training; re-run train_model"
        )
    change = None
    if evaluation.promote:
        reason = f"{ctx.reason} retrain, week {ctx.week}: {evaluation.decision}"
        change = registry.set_alias(
            ctx.model_name,
            PRODUCTION,
            version.version,
            reason=reason,
            actor=ctx.actor,
            expected_current=evaluation.champion_version or None,
            code=ProductionMove.DRIFT_PROMOTED if ctx.reason == "drift" else ProductionMove.PROMOTED,
        )
    production = registry.get_alias(ctx.model_name, PRODUCTION)
    log.info(
        "Registered %s as %s v%s; %s; production is v%s",
        job_name, ctx.model_name, version.version,
        "promoted" if change else "not promoted", production.version if production else "none",
    )  # fmt: skip
    return Registration(
        version=version.version,
        promoted=change is not None,
        production_version=production.version if production else None,
    )


def rollback_production(ctx: StageContext, to_version: str | None = None) -> Rollback:
    """Point production back at an earlier version (default: the one before the current one).

    Raises:
        ParamError: there is nothing to roll back to, or the version does not exist.
    """
    registry = ctx.provider.registry
    current = registry.get_alias(ctx.model_name, PRODUCTION)
    if to_version is None:
        history = registry.alias_history(ctx.model_name, PRODUCTION)
        if not history or history[-1].previous_version is None:
            raise ParamError("production has no earlier version to roll back to: give the version Param")
        to_version = history[-1].previous_version
    try:
        registry.get_version(ctx.model_name, to_version)
    except KeyError:
        raise ParamError(f"model {ctx.model_name} has no version {to_version!r}") from None
    change = registry.set_alias(
        ctx.model_name,
        PRODUCTION,
        to_version,
        reason=f"manual rollback from v{current.version if current else 'none'}",
        actor=ctx.actor,
        code=ProductionMove.MANUAL_ROLLBACK,
    )
    log.info("Production of %s: v%s -> v%s", ctx.model_name, current.version if current else None, to_version)
    return Rollback(production_version=to_version, changed=change is not None)
