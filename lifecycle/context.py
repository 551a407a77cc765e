"""What every stage function gets: the settings, the provider and the week, for one run."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from core.config import Settings, load_settings
from core.errors import ParamError
from core.weeks import parse_week, week_partition

if TYPE_CHECKING:
    from providers.base import Provider, Warehouse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageContext:
    """One run's settings, week and actor; the provider is built on first use."""

    settings: Settings
    week: str
    actor: str  # who or what runs the stage: the DAG run id, or "cli"
    reason: str = "scheduled"  # why: scheduled, manual, drift, rollback

    @cached_property
    def provider(self) -> Provider:
        """The provider the settings select, loaded lazily."""
        from providers import get_provider

        return get_provider(self.settings)

    @cached_property
    def warehouse(self) -> Warehouse:
        """The provider's warehouse, its tables migrated to their schemas once per context.

        Every stage reads and writes the warehouse through this, so a run (one task, or one
        call of the stages outside Airflow) checks the schema versions once, and a stage run
        alone still finds its tables (see :func:`lifecycle.tables.ensure_tables`).
        """
        from lifecycle.tables import ensure_tables

        warehouse = self.provider.warehouse
        ensure_tables(warehouse, spec=self.settings.dataset)
        return warehouse

    @property
    def model_name(self) -> str:
        """The registered model's name."""
        return self.settings.model_name


REASONS = ("scheduled", "manual", "drift", "backfill", "rollback")


def reject_unknown_conf(conf: Mapping[str, Any] | None, declared: Iterable[str]) -> None:
    """Refuse a ``dag_run.conf`` key that the DAG has no Param for.

    Airflow merges every conf key into the run's params, so a misspelt key (``gate_margn``)
    would otherwise be ignored in silence and the run would use astro.toml's value.

    Raises:
        ParamError: names the unknown keys and the Params the DAG takes.
    """
    unknown = sorted(set(conf or {}) - set(declared))
    if unknown:
        shown = ", ".join(repr(str(key)[:60]) for key in unknown[:5])
        raise ParamError(
            f"unknown run parameter(s) {shown} in the run's conf; this DAG takes: {sorted(declared)}"
        )


def build_context(
    *,
    week: str | None,
    logical_date: datetime | date | None,
    actor: str,
    reason: str = "scheduled",
    overrides: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> StageContext:
    """Check a run's parameters and build its context, before any work is done.

    Args:
        week: an ISO week from a Param or ``dag_run.conf``; None or "" derives it from the date.
        logical_date: the run's logical date (used when ``week`` is empty).
        actor: the run id (recorded in lineage and alias history).
        reason: why this run happens (one of ``REASONS``).
        overrides: per-run settings overrides (see ``Settings.with_overrides``).
        settings: settings to start from (default: astro.toml).

    Raises:
        ParamError: a parameter is invalid; the message says which and what is allowed.
    """
    if reason not in REASONS:
        raise ParamError(f"reason {reason!r} is not one of {list(REASONS)}")
    if week:
        week = parse_week(week)
    elif logical_date is not None:
        week = week_partition(logical_date)
    else:
        raise ParamError("the run has no logical date: set the week Param, e.g. 2026-W05")
    settings = (settings or load_settings()).with_overrides(**(overrides or {}))
    return StageContext(settings=settings, week=week, actor=actor, reason=reason)
