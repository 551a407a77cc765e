"""batch_score: score the week's rows with the production model into the warehouse."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from core.errors import MLOpsError
from lifecycle.context import StageContext
from lifecycle.evaluate import check_compatible, trained_spec
from lifecycle.history import current_production, newest_registered_as_of, production_as_of, trained_week
from lifecycle.jobs import JobStage, Step, after, done, ended_job, run_inline
from lifecycle.keys import validated_key
from providers.base import JobState, ModelVersion

log = logging.getLogger(__name__)


class BatchScoringFailedError(MLOpsError):
    """The provider's batch scoring job failed (retryable)."""


@dataclass(frozen=True)
class ScoringOutcome:
    """The week's predictions partition after batch_score (its fields are the task's XCom)."""

    n_rows: int
    model_version: str


def score_week(
    ctx: StageContext, rescore_with_production: bool = False, production_version: str | None = None
) -> ScoringOutcome:
    """Replace the week's predictions partition with the production model's scores.

    The partition is deleted and re-inserted in one transaction, so a re-run leaves exactly
    one prediction per row. A past week is scored with the model of its time: a re-run after a
    later week promoted its own model keeps the version the week was scored with, and a first
    scoring (a backfill) uses the production version as of the week (see ``_scoring_version``).
    The batch_score task runs the same steps but defers while a cloud job scores
    (:func:`start_scoring`).

    Args:
        ctx: the run's context.
        rescore_with_production: score with today's production whatever week it was trained
            for (batch_score's Param of the same name: a deliberate re-score of history).
        production_version: the version this run deployed (None outside the pipeline).

    Returns:
        ``n_rows`` and ``model_version``.
    """
    return run_inline(ctx, start_scoring(ctx, rescore_with_production, production_version))


def start_scoring(
    ctx: StageContext, rescore_with_production: bool = False, production_version: str | None = None
) -> Step[ScoringOutcome]:
    """Choose the version for the week and submit its scoring job; continue with :func:`finish_scoring`.

    Args:
        ctx: the run's context.
        rescore_with_production: as :func:`score_week`.
        production_version: as :func:`score_week`.
    """
    production = current_production(ctx, production_version)
    if rescore_with_production:
        log.info("Week %s: re-scoring with today's production v%s, as asked", ctx.week, production.version)
        version = production
    else:
        version = _scoring_version(ctx, production)
    require_compatible(ctx, version)
    batch = ctx.provider.batch
    handle = batch.submit(version, validated_key(ctx.week))
    return after(ctx, batch, handle, SCORE, "finish", version=version.version)


def finish_scoring(ctx: StageContext, event: dict[str, Any], version: str) -> Step[ScoringOutcome]:
    """Write the ended job's predictions into the week's partition, in one transaction.

    Raises:
        BatchScoringFailedError: the scoring job failed; the task's retry submits it again.
    """
    handle, status = ended_job(event)
    if status.state is JobState.FAILED:
        raise BatchScoringFailedError(
            f"batch scoring job {handle.name} failed: {status.reason or 'no reason given'}"
        )
    model = ctx.provider.registry.get_version(ctx.model_name, version)
    chunks = ctx.provider.batch.results(model, handle)
    n_rows = ctx.warehouse.replace_rows("predictions", {"week": ctx.week}, _tagged(ctx, chunks, version))
    log.info("Week %s: %d rows scored with %s v%s", ctx.week, n_rows, ctx.model_name, version)
    return done(ScoringOutcome(n_rows=n_rows, model_version=version))


def _scoring_version(ctx: StageContext, production: ModelVersion) -> ModelVersion:
    """The version to score the week with: production, unless it was trained for a later week.

    A past week is scored with the model of its time: a re-run of an earlier week after a later
    week promoted its model keeps the version the week was scored with, so its predictions (and
    its drift verdict) do not change; a first scoring of a past week (a backfill) uses the
    production version as of that week, or, when there was none, the newest version registered
    for that week or an earlier one. A version trained for this week or an earlier one (a drift
    retrain of this week, a rollback) re-scores.
    """
    trained_for = trained_week(production)
    if not trained_for or trained_for <= ctx.week:
        return production
    scored = ctx.warehouse.read_rows("predictions", {"week": ctx.week}, columns=["model_version"])
    versions = set(scored["model_version"].astype(str))
    if not versions:
        of_its_time = production_as_of(ctx, ctx.week) or newest_registered_as_of(ctx, ctx.week)
        if of_its_time is None:
            log.warning(
                "Week %s: no version of its time (production v%s was trained for %s) scores it",
                ctx.week, production.version, trained_for,
            )  # fmt: skip
            return production
        log.info(
            "Week %s: scoring with %s v%s, trained for %s (production v%s was trained for %s)",
            ctx.week, ctx.model_name, of_its_time.version, trained_week(of_its_time) or "an unknown week",
            production.version, trained_for,
        )  # fmt: skip
        return of_its_time
    if len(versions) != 1 or production.version in versions:
        return production
    try:
        kept = ctx.provider.registry.get_version(ctx.model_name, versions.pop())
    except KeyError:
        return production
    log.info(
        "Week %s: keeping %s v%s it was scored with (production v%s was trained for %s)",
        ctx.week, ctx.model_name, kept.version, production.version, trained_for,
    )  # fmt: skip
    return kept


def require_compatible(ctx: StageContext, version: ModelVersion) -> None:
    """Refuse a version trained under a dataset spec that cannot score the current spec's rows."""
    spec = trained_spec(ctx, version.registry_key)
    if spec is not None:
        check_compatible(ctx, spec, f"{ctx.model_name} v{version.version}")


def _tagged(ctx: StageContext, chunks: Iterator[pd.DataFrame], version: str) -> Iterator[pd.DataFrame]:
    spec, week = ctx.settings.dataset, ctx.week
    columns = ["week", spec.key_table_column, *spec.prediction_columns(), "model_version"]
    scored = 0
    for chunk in chunks:
        scored += len(chunk)
        log.info("Week %s: %d rows scored so far", week, scored)
        chunk = chunk.rename(columns={spec.key_column: spec.key_table_column})
        yield chunk.assign(week=week, model_version=version)[columns]


#: batch_score as a job stage: submit the week's scoring job; ``finish`` writes its predictions
SCORE: JobStage[ScoringOutcome] = JobStage("score", start=start_scoring, steps={"finish": finish_scoring})
