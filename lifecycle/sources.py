"""Where ingest reads a week from: the kinds of ``[data] source`` (or the ``source_uri`` Param).

- ``sample``: the demo's generator.
- A CSV/Parquet file template with ``{week}``: each week is its own file, stored byte for byte.
- One CSV/Parquet file without ``{week}`` holding many weeks: the week's rows, chosen by
  ``[dataset] event_time_column``, stored as Parquet.
- ``query:SELECT ...``: a query on the provider's warehouse, with the placeholders ``:week``,
  ``:week_start`` and ``:week_end`` bound by the driver; its result is stored as Parquet.

A file is a local path (relative to the project), a ``file://`` URI, or a URI under the
provider's storage root (``s3://bucket/prefix/...``), which is read through the ObjectStore.
Parquet written here is deterministic, so the same rows always give the same data version.
"""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd

from core.config import PROJECT_ROOT
from core.errors import ParamError
from core.weeks import week_start
from lifecycle.context import StageContext

log = logging.getLogger(__name__)
SUPPORTED_EXTENSIONS = ("parquet", "csv")
QUERY_PREFIX = "query:"


def read_source(ctx: StageContext, source: str) -> tuple[bytes, str, str]:
    """Return the week's raw bytes, their file extension and a description of the source.

    Raises:
        ParamError: the source is not one of the kinds above, or has nothing for the week.
    """
    if source == "sample":
        return _sample(ctx)
    if source.startswith(QUERY_PREFIX):
        return _query(ctx, source[len(QUERY_PREFIX) :].strip())
    if "{week}" in source:
        return _weekly_file(ctx, source)
    return _multi_week_file(ctx, source)


def week_bounds(week: str) -> tuple[datetime, datetime]:
    """The UTC instants a week runs over: its Monday 00:00 and the next Monday 00:00."""
    start = datetime.combine(week_start(week), time.min, tzinfo=UTC)
    return start, start + timedelta(days=7)


# --------------------------------------------------------------------------------------------
# the kinds of source


def _sample(ctx: StageContext) -> tuple[bytes, str, str]:
    from demo.sample_data import generate_week, write_parquet_bytes

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


def _weekly_file(ctx: StageContext, template: str) -> tuple[bytes, str, str]:
    """One file per week: the template with the week filled in, stored as it is."""
    return _read_file(ctx, template.replace("{week}", ctx.week), f"for week {ctx.week}")


def _multi_week_file(ctx: StageContext, location: str) -> tuple[bytes, str, str]:
    """One file of many weeks: the rows whose event time falls in the week, as Parquet."""
    column = ctx.settings.dataset.event_time_column
    if not column:
        raise ParamError(
            f"source {location!r}: a source without {{week}} needs [dataset] event_time_column to split "
            "it by week (or write a template with {week}, e.g. data/sales_{week}.csv, one file a week)"
        )
    data, extension, described = _read_file(ctx, location, "")
    frame = _parse_file(ctx, data, extension, described)
    if column not in frame.columns:
        raise ParamError(
            f"source {described}: it has no column {column!r} ([dataset] event_time_column); "
            f"its columns are {list(frame.columns)[:30]}"
        )
    times = _utc_times(frame[column], column, described)
    unreadable = int((times.isna() & frame[column].notna()).sum())
    if unreadable:
        log.warning("source %s: %d %s value(s) are not ISO 8601 times; no week gets those rows",
                    described, unreadable, column)  # fmt: skip
    start, end = week_bounds(ctx.week)
    rows = frame[(times >= start) & (times < end)]
    if rows.empty:
        known = times.dropna()
        span = f"from {known.min():%Y-%m-%d %H:%M} to {known.max():%Y-%m-%d %H:%M} UTC" if len(known) else ""
        span = span or f"none of its {len(times)} values is an ISO 8601 time"
        raise ParamError(
            f"source {described} has no rows in week {ctx.week} ({start:%Y-%m-%d} to "
            f"{end - timedelta(days=1):%Y-%m-%d}); its {column} times: {span}"
        )
    log.info("Week %s: %d of the %d rows of %s", ctx.week, len(rows), len(frame), described)
    return _parquet(rows, described), "parquet", f"{described} ({column} in {ctx.week})"


def _query(ctx: StageContext, sql: str) -> tuple[bytes, str, str]:
    """A query on the warehouse; its result is stored as Parquet, rows in a canonical order."""
    start, end = week_bounds(ctx.week)
    try:
        frame = ctx.warehouse.query(sql, {"week": ctx.week, "week_start": start, "week_end": end})
    except ParamError as exc:
        raise ParamError(f"source query: {exc}") from None
    if frame.empty:
        raise ParamError(
            f"the source query returned no rows for week {ctx.week} (:week_start {start:%Y-%m-%d %H:%M} "
            f"to :week_end {end:%Y-%m-%d %H:%M} UTC): {sql[:200]}"
        )
    # a query without ORDER BY may return the same rows in another order next time: sorting
    # them by content keeps the data version of the same rows the same
    try:
        order = pd.util.hash_pandas_object(frame, index=False).sort_values(kind="stable").index
        frame = frame.loc[order].reset_index(drop=True)
    except TypeError:  # a column of values pandas cannot hash (lists, maps): keep the query's order
        log.warning("Week %s: the query's rows are stored in the order it returned them", ctx.week)
    log.info("Week %s: the source query returned %d rows", ctx.week, len(frame))
    return _parquet(frame, "the source query"), "parquet", f"{QUERY_PREFIX}{sql}"


# --------------------------------------------------------------------------------------------
# files


def _storage_root(ctx: StageContext) -> str:
    """The URI every object of the provider's storage starts with (ending in ``/``)."""
    # uri("") is refused (an empty key), so the root is a key's URI without the key
    probe = "key"
    return ctx.provider.storage.uri(probe)[: -len(probe)]


def _read_file(ctx: StageContext, location: str, purpose: str) -> tuple[bytes, str, str]:
    """Read a source file: through the ObjectStore if under the storage root, else a local path.

    Returns:
        The bytes, the file's extension and the file's URI or path (for messages and lineage).
    """
    root = _storage_root(ctx)
    where = f" {purpose}" if purpose else ""
    if location.startswith(root):
        extension = _extension(location)
        try:
            data = ctx.provider.storage.get_bytes(location[len(root) :])
        except FileNotFoundError:
            raise ParamError(f"source {location}{where} does not exist") from None
        except ValueError as exc:  # the key is not one the store accepts
            raise ParamError(f"source {location}: {exc}") from None
        log.info("Week %s: read %d bytes from %s", ctx.week, len(data), location)
        return data, extension, location
    parsed = urlparse(location)
    if parsed.scheme not in ("", "file"):
        raise ParamError(
            f"source {location!r}: the supported sources are 'sample', 'query:SELECT ...', a local path, "
            f"a file:// URI, or a URI under the provider's storage root {root}"
        )
    path = Path(unquote(parsed.path) if parsed.scheme == "file" else location)
    path = path if path.is_absolute() else PROJECT_ROOT / path
    extension = _extension(str(path))
    if not path.is_file():
        raise ParamError(f"source file {path}{where} does not exist")
    data = path.read_bytes()
    log.info("Week %s: read %d bytes from %s", ctx.week, len(data), path)
    return data, extension, str(path)


def _extension(location: str) -> str:
    extension = location.rsplit("/", 1)[-1].rpartition(".")[2].lower()
    if extension not in SUPPORTED_EXTENSIONS:
        raise ParamError(f"source {location}: the file must end in .csv or .parquet")
    return extension


def _parse_file(ctx: StageContext, data: bytes, extension: str, described: str) -> pd.DataFrame:
    """Read a many-weeks file; CSV ids, categories and times are kept as text, as written."""
    spec = ctx.settings.dataset
    text = [spec.id_column, spec.event_time_column, *(f.name for f in spec.features_of_kind("categorical"))]
    try:
        if extension == "parquet":
            return pd.read_parquet(io.BytesIO(data))
        strings = {name: "str" for name in text if name}
        return pd.read_csv(io.BytesIO(data), dtype=strings, encoding="utf-8-sig")
    except Exception as exc:  # pyarrow and the CSV parser raise many types
        raise ParamError(f"source {described} is not a readable {extension.upper()} file: {exc}") from None


def _utc_times(values: pd.Series, column: str, described: str) -> pd.Series:
    """Times in UTC: a timestamp column (naive ones are UTC) or ISO 8601 text; NaT if unreadable."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return pd.to_datetime(values, utc=True)
    if pd.api.types.is_numeric_dtype(values):
        raise ParamError(
            f"source {described}: {column} holds numbers; write ISO 8601 times (2026-01-26T09:30:00Z) "
            "or store it as a timestamp column"
        )
    return pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")


def _parquet(frame: pd.DataFrame, described: str) -> bytes:
    from demo.sample_data import write_parquet_bytes

    try:
        return write_parquet_bytes(frame)
    except (ValueError, TypeError) as exc:  # pyarrow: duplicate or mixed-type columns
        raise ParamError(f"{described}: the rows cannot be stored as Parquet: {exc}") from None
