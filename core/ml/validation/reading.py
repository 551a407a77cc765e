"""Reading one week's raw file (CSV or Parquet) into a frame with the types validation expects."""

from __future__ import annotations

import csv
import hashlib
import io
from typing import TypedDict

import numpy as np
import pandas as pd

from core.ml.dataset import ROW_KEY, DatasetSpec, canonical_values

_PARQUET_SUFFIXES = (".parquet", ".pq")
_CSV_SUFFIXES = (".csv",)


class BatchUnreadable(Exception):  # noqa: N818 - the name the rest of the project uses
    """A week's raw file cannot be read at all (empty, truncated, malformed or not UTF-8).

    Attributes:
        reason: what is wrong with the file, for a human.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_raw(data: bytes, filename: str, spec: DatasetSpec) -> pd.DataFrame:
    """Parse a week's raw file from its bytes.

    Parquet is read when ``filename`` ends with ``.parquet`` or ``.pq``, CSV when it ends with
    ``.csv``. The spec's id and categorical columns are read as strings and its event-time column
    as UTC timestamps; a timestamp that cannot be parsed becomes ``NaT`` (the row-level not-null
    expectation then quarantines that row) and ``df.attrs["unparseable_event_time"]`` counts
    them, with a few examples.

    Args:
        data: the file's bytes.
        filename: the file's name (only its suffix matters).
        spec: the dataset spec.

    Returns:
        The frame, with the file's columns as they are (validation checks them).

    Raises:
        BatchUnreadable: the file is empty, has a header but no rows, is truncated or corrupt
            Parquet, is malformed CSV (bad quoting, rows with too many or too few fields), is not
            UTF-8, or has a suffix that is neither CSV nor Parquet.
    """
    name = filename.lower()
    if not data:
        raise BatchUnreadable(f"the file {filename!r} is empty (0 bytes)")
    if name.endswith(_PARQUET_SUFFIXES):
        df = _parse_parquet(data, spec)
    elif name.endswith(_CSV_SUFFIXES):
        df = _parse_csv(data, spec)
    else:
        raise BatchUnreadable(
            f"cannot read {filename!r}: only CSV (.csv) and Parquet (.parquet, .pq) files are supported"
        )
    return df


def _text_columns(spec: DatasetSpec) -> list[str]:
    """The columns read as text: the id, categorical and boolean features, a class label."""
    columns = [f.name for f in spec.features_of_kind("categorical", "boolean")]
    if spec.id_column:
        columns.append(spec.id_column)
    if spec.is_classification:
        columns.append(spec.label)
    return columns


def _parse_parquet(data: bytes, spec: DatasetSpec) -> pd.DataFrame:
    try:
        df = pd.read_parquet(io.BytesIO(data))
    except Exception as error:  # pyarrow raises ArrowInvalid, OSError, ValueError...
        raise BatchUnreadable(
            f"the Parquet file is truncated or corrupt ({type(error).__name__}: {error})"
        ) from None
    if len(df) == 0:
        raise BatchUnreadable(f"the Parquet file has no rows (it has {len(df.columns)} columns but no data)")
    if spec.id_column in df.columns and not pd.api.types.is_string_dtype(df[spec.id_column].dtype):
        df[spec.id_column] = df[spec.id_column].astype("str")  # as in a CSV
    return normalise(df, spec)


def _parse_csv(data: bytes, spec: DatasetSpec) -> pd.DataFrame:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise BatchUnreadable(
            f"the CSV is not valid UTF-8 (invalid byte 0x{data[error.start]:02x} at position "
            f"{error.start}, line {line}); save it as UTF-8"
        ) from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise BatchUnreadable("the CSV is empty (no header and no rows)")
    _check_csv_shape(text)
    strings = dict.fromkeys(_text_columns(spec), "str")
    try:
        df = pd.read_csv(io.StringIO(text), dtype=strings, on_bad_lines="error", index_col=False)
    except pd.errors.EmptyDataError:
        raise BatchUnreadable("the CSV is empty (no header and no rows)") from None
    except (pd.errors.ParserError, ValueError) as error:
        raise BatchUnreadable(f"the CSV is malformed ({error})") from None
    if len(df) == 0:
        raise BatchUnreadable(f"the CSV has a header ({len(df.columns)} columns) but no data rows")
    return normalise(df, spec)


def _check_csv_shape(text: str) -> None:
    """Raise :class:`BatchUnreadable` for bad quoting or a row whose field count is not the header's.

    pandas silently pads short rows with NaN and, on the first row, takes an extra field as the
    index, so the shape is checked here with the csv module first.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    width = None
    try:
        for row in reader:
            if not row:  # a blank line: pandas skips it too
                continue
            if width is None:
                width = len(row)
            elif len(row) != width:
                raise BatchUnreadable(
                    f"the CSV is malformed (ragged rows): line {reader.line_num} has {len(row)} "
                    f"fields but the header has {width}"
                )
    except csv.Error as error:
        raise BatchUnreadable(
            f"the CSV is malformed (bad quoting near line {reader.line_num}: {error})"
        ) from None


def normalise(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Give the columns the types validation expects, without hiding bad values.

    The event-time column becomes timezone-aware UTC (unparseable values become ``NaT``, counted
    in ``df.attrs["unparseable_event_time"]``); categoricals held as objects or pandas categories
    become strings; booleans and a class label become their canonical text (``1.0`` -> ``"1"``,
    ``True`` -> ``"true"``); a numeric column held as Python objects that are all numbers becomes
    numeric. Anything else (e.g. text in a numeric column) is left for the expectations to report.
    """
    df = df.copy()
    time_column = spec.event_time_column
    if time_column and time_column in df.columns:
        df[time_column], unparseable = _to_utc(df[time_column])
        if unparseable["count"]:
            df.attrs["unparseable_event_time"] = unparseable
    for feature in spec.features_of_kind("categorical"):
        column = feature.name
        if column in df.columns and (
            df[column].dtype == object or isinstance(df[column].dtype, pd.CategoricalDtype)
        ):
            df[column] = df[column].astype("str")
    canonical = [f.name for f in spec.features_of_kind("boolean")]
    if spec.is_classification:
        canonical.append(spec.label)
    for column in canonical:
        if column in df.columns:
            text = canonical_values(df[column])
            if column != spec.label:
                text = text.str.lower()  # booleans: "True" and "true" are one word
            df[column] = text.astype("str")
    numeric = [f.name for f in spec.features_of_kind("numeric")]
    if spec.task == "regression":
        numeric.append(spec.label)
    for column in numeric:
        if column in df.columns and df[column].dtype == object:
            try:
                df[column] = pd.to_numeric(df[column], errors="raise")
            except (TypeError, ValueError):
                pass  # really not numeric: the dtype expectation reports it
    return df


class _Unparseable(TypedDict):
    """The event times that could not be parsed: how many, and the first few as text."""

    count: int
    examples: list[str]


def _to_utc(values: pd.Series) -> tuple[pd.Series, _Unparseable]:
    """Return ``values`` as UTC timestamps and a note of the ones that could not be parsed."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC"), {"count": 0, "examples": []}
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.dt.tz_localize("UTC"), {"count": 0, "examples": []}
    try:
        parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
        retry = parsed.isna() & values.notna()
        if retry.any():  # not ISO 8601: let pandas guess each one (the parts may differ in unit)
            guessed = pd.to_datetime(values[retry], utc=True, errors="coerce", format="mixed")
            parsed = pd.concat([parsed[~retry], guessed]).reindex(values.index)
    except (TypeError, ValueError, OverflowError):  # e.g. numbers out of range: none parse
        parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    failed = parsed.isna() & values.notna()
    examples = [str(value) for value in values[failed].head(5)]
    return parsed, {"count": int(failed.sum()), "examples": examples}


def add_row_keys(frame: pd.DataFrame, data_version: str) -> pd.DataFrame:
    """Add the ``row_key`` column a spec without an id column identifies rows by.

    The key is derived from the row's content and its position in the week's data version, so
    re-running a week keys every row the same way and each prediction is written once.
    """
    content = pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False).to_numpy()
    salt = int(hashlib.sha256(data_version.encode()).hexdigest()[:15], 16)
    positions = np.arange(len(frame), dtype=np.uint64)
    keys = content ^ (positions * np.uint64(0x9E3779B97F4A7C15)) ^ np.uint64(salt)
    return frame.assign(**{ROW_KEY: [f"{position}-{key:016x}" for position, key in enumerate(keys)]})


def is_numeric(values: pd.Series) -> bool:
    """True for a numeric column that is not boolean (pandas counts booleans as numbers)."""
    return pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)
