"""evaluate_model: the gate. Challenger and champion are scored on the same holdout."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from include.errors import ParamError
from include.ml.schema import LABEL_COLUMN
from include.stages.context import StageContext
from include.stages.datasets import holdout_mask, read_validated
from include.stages.tables import ensure_tables

log = logging.getLogger(__name__)
PRODUCTION = "production"
_LOWER_IS_BETTER = {"log_loss"}


def training_run(ctx: StageContext, job_name: str | None = None) -> dict[str, Any]:
    """Return a training run's record: the named job, or the week's latest one.

    Raises:
        ParamError: there is no such training run.
    """
    ensure_tables(ctx.provider.warehouse, "training_runs")
    where = {"job_name": job_name} if job_name else {"week": ctx.week}
    rows = ctx.provider.warehouse.read_rows("training_runs", where)
    if rows.empty:
        what = f"training job {job_name}" if job_name else f"a training run for week {ctx.week}"
        raise ParamError(f"there is no {what}: run train_model for {ctx.week} first")
    return rows.iloc[-1].to_dict()


def evaluate_challenger(ctx: StageContext, job_name: str | None = None) -> dict[str, Any]:
    """Score the challenger and the champion on the week's holdout and decide the gate.

    The champion is the production version when the week was first evaluated; a re-run
    compares against the same version again, so its decision does not change later.

    Returns:
        The evaluation record (``passed``, ``decision``, scores, champion version).
    """
    from include.ml.scoring import classification_metrics, load_model, predict_proba

    run = training_run(ctx, job_name)
    job_name = run["job_name"]
    holdout = _holdout(ctx)
    metric, margin = ctx.settings.gate.metric, ctx.settings.gate.margin
    registry, storage, warehouse = ctx.provider.registry, ctx.provider.storage, ctx.provider.warehouse
    ensure_tables(warehouse, "evaluations")

    with tempfile.TemporaryDirectory(prefix="evaluate-") as tmp:
        artifact = storage.get_file(run["model_key"], Path(tmp) / "challenger" / "model.joblib")
        challenger = load_model(artifact, run["model_sha256"])
        challenger_score = classification_metrics(holdout[LABEL_COLUMN], predict_proba(challenger, holdout))[
            metric
        ]

        champion = _champion(ctx, job_name)
        champion_score = None
        if champion is not None and champion.registry_key != job_name:
            path = registry.fetch_artifact(champion, Path(tmp) / "champion")
            model = load_model(path, champion.sha256)
            champion_score = classification_metrics(holdout[LABEL_COLUMN], predict_proba(model, holdout))[
                metric
            ]

    if champion is None:
        passed, decision = True, "promote: there is no production model yet"
    elif champion.registry_key == job_name:
        passed, decision = True, f"keep: the challenger is already production (v{champion.version})"
    else:
        better = (
            challenger_score < champion_score - margin
            if metric in _LOWER_IS_BETTER
            else challenger_score > champion_score + margin
        )
        passed = bool(better)
        verb = "promote" if passed else "reject"
        decision = (
            f"{verb}: challenger {metric} {challenger_score:.4f} vs champion v{champion.version} "
            f"{champion_score:.4f} (margin {margin})"
        )
    record = {
        "week": ctx.week,
        "job_name": job_name,
        "metric": metric,
        "challenger_score": float(challenger_score),
        "champion_version": champion.version if champion else "",
        "champion_score": float(champion_score) if champion_score is not None else None,
        "margin": float(margin),
        "passed": passed,
        "decision": decision,
        "n_holdout": len(holdout),
    }
    warehouse.replace_rows("evaluations", {"week": ctx.week, "job_name": job_name}, pd.DataFrame([record]))
    log.info("Gate for %s, week %s: %s", job_name, ctx.week, decision)
    return record


def _holdout(ctx: StageContext) -> pd.DataFrame:
    """The week's held-out rows that have a label."""
    week = read_validated(ctx, ctx.week)
    holdout = week[holdout_mask(week["customer_id"], ctx.settings.training.holdout_fraction)]
    holdout = holdout[holdout[LABEL_COLUMN].notna()]
    if holdout[LABEL_COLUMN].nunique() < 2:
        raise ParamError(
            f"week {ctx.week} has no labelled holdout with both classes ({len(holdout)} rows): "
            "the gate needs labels; wait until they arrive or lower [training] holdout_fraction"
        )
    return holdout


def _champion(ctx: StageContext, job_name: str) -> Any:
    """Return the version to compare with.

    That is the one recorded by an earlier evaluation of this challenger if there is one (so
    re-runs are stable), else the current production version.
    """
    registry = ctx.provider.registry
    previous = ctx.provider.warehouse.read_rows("evaluations", {"week": ctx.week, "job_name": job_name})
    if not previous.empty:
        recorded = previous.iloc[-1]["champion_version"]
        return registry.get_version(ctx.model_name, recorded) if recorded else None
    return registry.get_alias(ctx.model_name, PRODUCTION)
