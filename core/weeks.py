"""ISO weeks: the partition key of every artifact and table row.

A run processes the last complete ISO week before its logical date. The weekly cron fires on
Monday 06:00 UTC, so the run of Monday 2026-11-30 processes 2026-W48 (23-29 November); a manual
run on any day of week N processes week N-1. A ``week`` Param overrides this.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from core.errors import ParamError

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def week_partition(logical_date: datetime | date) -> str:
    """Return the ISO week (``YYYY-Www``) a run with this logical date processes.

    Args:
        logical_date: the run's logical date.

    Returns:
        The ISO week before the one holding ``logical_date``, e.g. ``2026-W48``.
    """
    day = logical_date.date() if isinstance(logical_date, datetime) else logical_date
    year, week, _ = (day - timedelta(days=7)).isocalendar()
    return f"{year}-W{week:02d}"


def parse_week(value: str) -> str:
    """Check a user-given ISO week and return it normalised.

    Raises:
        ParamError: the value is not a real ISO week like ``2026-W05``.
    """
    match = _WEEK.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise ParamError(f"week {value!r} is not an ISO week: write it like 2026-W05")
    year, week = int(match.group(1)), int(match.group(2))
    try:
        date.fromisocalendar(year, week, 1)
    except ValueError:
        raise ParamError(f"week {value!r} does not exist: {year} has no ISO week {week}") from None
    return f"{year}-W{week:02d}"


def week_start(week: str) -> date:
    """Return the Monday that starts an ISO week."""
    year, number = (int(part) for part in parse_week(week).split("-W"))
    return date.fromisocalendar(year, number, 1)


def shift_week(week: str, weeks: int) -> str:
    """Return the ISO week ``weeks`` weeks after (or before, if negative) ``week``."""
    year, number, _ = (week_start(week) + timedelta(weeks=weeks)).isocalendar()
    return f"{year}-W{number:02d}"


def weeks_between(first: str, last: str) -> list[str]:
    """Return the ISO weeks from ``first`` to ``last``, both included, in order."""
    start, end = week_start(first), week_start(last)
    count = (end - start).days // 7
    return [shift_week(first, i) for i in range(count + 1)]
