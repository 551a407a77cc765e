"""Point in time: which model version was production, or served a week, as of that week.

A version's ``week`` tag is the week it was trained for (set by register_model). A run for
week W uses only the versions of W's time: the gate compares with the production version as
of W, scoring a past week uses the version that served it, and concept drift of W is
measured on the version that was serving when W's rows arrived.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from core.errors import DeterministicError, ParamError
from lifecycle.context import StageContext
from providers.base import ModelVersion

log = logging.getLogger(__name__)
PRODUCTION = "production"  # the alias the gate moves and every stage serves from


class ProductionMove(StrEnum):
    """Why production moved: the code recorded with each move (``AliasChange.code``)."""

    PROMOTED = "promoted"  # the gate passed on a scheduled or manual retrain
    DRIFT_PROMOTED = "drift_promoted"  # the gate passed on a retrain that drift triggered
    MANUAL_ROLLBACK = "manual_rollback"  # rollback_model
    DEPLOY_ROLLBACK = "deploy_rollback"  # the new version failed its smoke test: back automatically


class ProductionMovedError(DeterministicError):
    """Production moved while a run went on, between its register step and a later step."""


def current_production(ctx: StageContext, expected: str | None = None) -> ModelVersion:
    """The production version, which must be ``expected`` when the run's register step set it.

    The version register_model decided travels to deploy_model and batch_score in the same run
    (an XCom), so a rollback or another run moving the alias meanwhile is noticed, not followed.

    Raises:
        ParamError: the model has no production version yet.
        ProductionMovedError: production is no longer ``expected``.
    """
    production = ctx.provider.registry.get_alias(ctx.model_name, PRODUCTION)
    if production is None:
        raise ParamError(f"model {ctx.model_name} has no production version: run the pipeline first")
    if expected is not None and str(expected) != production.version:
        raise ProductionMovedError(
            f"production of {ctx.model_name} is v{production.version}, but this run's register step "
            f"left it at v{expected}: another run or a rollback moved it meanwhile. Re-run the week "
            f"to serve and score v{production.version}, or roll back with rollback_model"
        )
    return production


def trained_week(version: ModelVersion) -> str:
    """The week a version was trained for ("" when it has no ``week`` tag)."""
    return str(version.tags.get("week") or "")


def newer_production(ctx: StageContext) -> ModelVersion | None:
    """Today's production version if it was trained for a week later than the run's week."""
    production = ctx.provider.registry.get_alias(ctx.model_name, PRODUCTION)
    if production is not None and trained_week(production) > ctx.week:
        return production
    return None


def production_as_of(ctx: StageContext, week: str, *, before: bool = False) -> ModelVersion | None:
    """The production version as of ``week`` (None if there was none).

    That is the latest version production pointed at that was trained for ``week`` or an
    earlier week (strictly earlier with ``before``). A version without a ``week`` tag counts as
    trained before any week.
    """
    registry = ctx.provider.registry

    def of_its_time(version: ModelVersion) -> bool:
        trained = trained_week(version)
        return not trained or (trained < week if before else trained <= week)

    seen: dict[str, ModelVersion | None] = {}
    for change in reversed(registry.alias_history(ctx.model_name, PRODUCTION)):
        if change.version not in seen:
            try:
                seen[change.version] = registry.get_version(ctx.model_name, change.version)
            except KeyError:
                seen[change.version] = None
        version = seen[change.version]
        if version is not None and of_its_time(version):
            return version
    if not seen:  # a registry without alias history: today's production, if of the week's time
        production = registry.get_alias(ctx.model_name, PRODUCTION)
        if production is not None and of_its_time(production):
            return production
    return None


def newest_registered_as_of(ctx: StageContext, week: str) -> ModelVersion | None:
    """The newest registered version trained for ``week`` or an earlier week, or None."""
    versions = [v for v in ctx.provider.registry.list_versions(ctx.model_name) if trained_week(v) <= week]
    return max(versions, key=lambda v: (trained_week(v), _number(v.version)), default=None)


def served_week(ctx: StageContext) -> ModelVersion | None:
    """The version that was serving when the run's week's rows arrived (before any retrain of it).

    That is the champion the week's gate compared with when it was trained before the week (the
    production version at the start of the week's first run), else the production version as of
    the week before. None when no model served the week (its first week, or a backfilled week
    older than every production version).
    """
    registry = ctx.provider.registry
    evaluations = ctx.warehouse.read_rows("evaluations", {"week": ctx.week}, columns=["champion_version"])
    champions = []
    for recorded in sorted({str(v) for v in evaluations["champion_version"] if v and str(v) != "nan"}):
        try:
            version = registry.get_version(ctx.model_name, recorded)
        except KeyError:
            continue
        if trained_week(version) < ctx.week:  # not a version trained for this week (a drift retrain's)
            champions.append(version)
    if champions:
        return max(champions, key=lambda v: (trained_week(v), _number(v.version)))
    return production_as_of(ctx, ctx.week, before=True)


def _number(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)
