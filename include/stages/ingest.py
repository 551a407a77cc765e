"""ingest_data: pull one week of raw data, store it immutably, record its data version."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from include.config import PROJECT_ROOT
from include.errors import ParamError
from include.stages.context import StageContext
from include.stages.keys import raw_key
from include.stages.tables import ensure_tables

log = logging.getLogger(__name__)
SUPPORTED_EXTENSIONS = ("parquet", "csv")


def ingest_week(ctx: StageContext, source: str | None = None) -> dict[str, str]:
    """Store the week's raw data under a content-hashed version and record it.

    The same bytes give the same version and the same object key, so a re-run writes nothing
    new; changed bytes for a week give a new version (the old one is kept) and the week's
    ``data_versions`` row points at the new one.

    Args:
        ctx: the run's context.
        source: ``sample``, or a local path / ``file://`` URI template with ``{week}``;
            default ``[data] source`` of astro.toml.

    Returns:
        ``week``, ``data_version`` and ``raw_key``.
    """
    source = source or ctx.settings.data.source
    data, extension, described = _read_source(ctx, source)
    sha256 = hashlib.sha256(data).hexdigest()
    data_version = sha256[:16]
    key = raw_key(ctx.week, data_version, extension)
    storage = ctx.provider.storage
    if storage.exists(key):
        log.info("Week %s: data version %s is already stored at %s", ctx.week, data_version, key)
    else:
        storage.put_bytes(key, data)
        log.info("Week %s: stored %d bytes as data version %s (%s)", ctx.week, len(data), data_version, key)
    warehouse = ctx.provider.warehouse
    ensure_tables(warehouse, "data_versions", spec=ctx.settings.dataset)
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
    return {"week": ctx.week, "data_version": data_version, "raw_key": key}


def _read_source(ctx: StageContext, source: str) -> tuple[bytes, str, str]:
    """Return the week's raw bytes, their file extension and a description of the source."""
    if source == "sample":
        from include.ml.sample_data import generate_week, write_parquet_bytes

        d = ctx.settings.data
        frame = generate_week(
            ctx.week,
            rows=d.rows_per_week,
            seed=d.seed,
            covariate_drift_from_week=d.covariate_drift_from_week,
            concept_drift_from_week=d.concept_drift_from_week,
        )
        log.info("Week %s: generated %d sample rows (seed %d)", ctx.week, len(frame), d.seed)
        return write_parquet_bytes(frame), "parquet", f"sample(seed={d.seed}, rows={d.rows_per_week})"
    if "{week}" not in source:
        raise ParamError(
            f"source {source!r} must be 'sample' or a path template containing {{week}}, "
            "e.g. data/churn_{week}.csv, so that each week reads its own file"
        )
    location = source.replace("{week}", ctx.week)
    parsed = urlparse(location)
    if parsed.scheme not in ("", "file"):
        raise ParamError(f"source {location!r}: only local paths and file:// URIs are supported for now")
    path = Path(parsed.path if parsed.scheme == "file" else location)
    path = path if path.is_absolute() else PROJECT_ROOT / path
    extension = path.suffix.lower().lstrip(".")
    if extension not in SUPPORTED_EXTENSIONS:
        raise ParamError(f"source {path}: the file must end in .csv or .parquet")
    if not path.is_file():
        raise ParamError(f"source file {path} for week {ctx.week} does not exist")
    data = path.read_bytes()
    log.info("Week %s: read %d bytes from %s", ctx.week, len(data), path)
    return data, extension, str(path)
