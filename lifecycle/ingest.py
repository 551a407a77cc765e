"""ingest_data: pull one week of raw data, store it immutably, record its data version."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import pandas as pd

from lifecycle.context import StageContext
from lifecycle.keys import raw_key
from lifecycle.sources import read_source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestedWeek:
    """A week's stored raw data and its version (ingest_data's XCom)."""

    week: str
    data_version: str
    raw_key: str


def ingest_week(ctx: StageContext, source: str | None = None) -> IngestedWeek:
    """Store the week's raw data under a content-hashed version and record it.

    The same bytes give the same version and the same object key, so a re-run writes nothing
    new; changed bytes for a week give a new version (the old one is kept) and the week's
    ``data_versions`` row points at the new one.

    Args:
        ctx: the run's context.
        source: ``sample``; a CSV/Parquet file template with ``{week}``; one file of many
            weeks (split by ``[dataset] event_time_column``); or ``query:SELECT ...`` on the
            warehouse (see :mod:`lifecycle.sources`). Default ``[data] source`` of astro.toml.

    Returns:
        ``week``, ``data_version`` and ``raw_key``.
    """
    source = source or ctx.settings.data.source
    data, extension, described = read_source(ctx, source)
    sha256 = hashlib.sha256(data).hexdigest()
    data_version = sha256[:16]
    key = raw_key(ctx.week, data_version, extension)
    storage = ctx.provider.storage
    if storage.exists(key):
        log.info("Week %s: data version %s is already stored at %s", ctx.week, data_version, key)
    else:
        storage.put_bytes(key, data)
        log.info("Week %s: stored %d bytes as data version %s (%s)", ctx.week, len(data), data_version, key)
    warehouse = ctx.warehouse
    # a re-run that finds the same version keeps the actor that first ingested it (lineage
    # names who produced the data, not who last looked at it)
    existing = warehouse.read_rows(
        "data_versions", {"week": ctx.week}, columns=["data_version", "ingested_by"]
    )
    same = not existing.empty and existing["data_version"].iloc[0] == data_version
    row = {
        "week": ctx.week,
        "data_version": data_version,
        "sha256": sha256,
        "source": described,
        "raw_key": key,
        "n_bytes": len(data),
        "ingested_by": str(existing["ingested_by"].iloc[0]) if same else ctx.actor,
    }
    warehouse.replace_rows("data_versions", {"week": ctx.week}, pd.DataFrame([row]))
    return IngestedWeek(week=ctx.week, data_version=data_version, raw_key=key)
