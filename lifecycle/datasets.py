"""The data a stage works on: the training window, the holdout split, a week's validated rows."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from core.errors import ParamError
from core.weeks import shift_week, weeks_between
from lifecycle.context import StageContext


def holdout_mask(keys: pd.Series, fraction: float) -> np.ndarray:
    """Return True for the rows held out of training, chosen by a stable hash of the row key.

    The same row (the spec's id, or its derived ``row_key``) is held out in every run, so a
    re-run sees the same split.
    """
    hashes = pd.util.hash_pandas_object(keys.astype("string"), index=False).to_numpy()
    held_out: np.ndarray = (hashes % np.uint64(10_000)).astype(np.float64) / 10_000 < fraction
    return held_out


def last_drift_week(ctx: StageContext, up_to: str) -> str | None:
    """Return the latest week at or before ``up_to`` in which the monitor detected drift."""
    warehouse = ctx.warehouse
    rows = warehouse.read_rows("drift_summary", columns=["week", "drift_detected"])
    weeks = [w for w, d in zip(rows["week"], rows["drift_detected"], strict=True) if bool(d) and w <= up_to]
    return max(weeks) if weeks else None


def validated_weeks(ctx: StageContext, first: str, last: str) -> dict[str, str]:
    """Return ``{week: data_version}`` for the weeks in [first, last] whose current data passed."""
    warehouse = ctx.warehouse
    current = warehouse.read_rows("data_versions", columns=["week", "data_version"])
    current_versions = dict(zip(current["week"], current["data_version"], strict=True))
    results = warehouse.read_rows("validation_results", columns=["week", "data_version", "passed"])
    found = {}
    for week, version, passed in zip(
        results["week"], results["data_version"], results["passed"], strict=True
    ):
        if first <= week <= last and bool(passed) and current_versions.get(week) == version:
            found[week] = version
    return dict(sorted(found.items()))


def training_window(ctx: StageContext) -> dict[str, str]:
    """Return the validated weeks a model for ``ctx.week`` trains on, with their data versions.

    The window is the last ``window_weeks`` weeks up to this one, clipped at the latest week
    in which drift was detected: data from before a drift no longer describes the population.
    A drift retrain of a week counts that week's own drift; the week's scheduled run does not
    (its monitor runs after training), so re-running it trains the same model again.

    Raises:
        ParamError: this week has not passed validation.
    """
    first = shift_week(ctx.week, -(ctx.settings.training.window_weeks - 1))
    drift_week = last_drift_week(ctx, ctx.week if ctx.reason == "drift" else shift_week(ctx.week, -1))
    if drift_week and drift_week > first:
        first = drift_week
    window = validated_weeks(ctx, first, ctx.week)
    if ctx.week not in window:
        raise ParamError(
            f"week {ctx.week} has no validated data: run ingest_data and validate_data for it first"
        )
    return window


def read_validated(ctx: StageContext, week: str) -> pd.DataFrame:
    """Read a week's validated rows."""
    from lifecycle.keys import validated_key

    return pd.read_parquet(io.BytesIO(ctx.provider.storage.get_bytes(validated_key(week))))


def reference_weeks(ctx: StageContext) -> list[str]:
    """Return the weeks the monitor compares ``ctx.week`` with: the window before it."""
    previous = shift_week(ctx.week, -1)
    first = shift_week(ctx.week, -ctx.settings.training.window_weeks)
    drift_week = last_drift_week(ctx, previous)
    if drift_week and drift_week > first:
        first = drift_week
    return [w for w in weeks_between(first, previous) if w in validated_weeks(ctx, first, previous)]
