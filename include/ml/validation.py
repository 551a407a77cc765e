"""Reading and validating one ISO week of raw data with Great Expectations, from the dataset spec.

Two kinds of check run on a week's frame, all derived from the spec's columns:

* **batch-level** checks: any failure rejects the whole week (it is quarantined whole). They are
  the column set, the row count, unique ids, numeric dtypes, no entirely-null column and no
  feature leaking the label;
* **row-level** checks: rows failing any of them are quarantined and the rest go on, unless more
  than ``max_bad_row_fraction`` of the rows fail, which rejects the whole week too.

Great Expectations takes seconds to import, so it is imported inside :func:`validate_week` only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd

from include.ml.dataset import FALSE_WORDS, ROW_KEY, TRUE_WORDS, DatasetSpec, canonical_values
from include.weeks import week_start

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

BATCH = "batch"
ROW = "row"
SAMPLE_IDS = 20
LEAK_THRESHOLD = 0.99
LEAK_MIN_LABELLED = 20
LEAK_MIN_CLASS = 5
LEAK_MAX_LEVELS = 20
BOOLEAN_VALUES = (*TRUE_WORDS, *FALSE_WORDS)

# GE's ExpectColumnValuesToBeInTypeList names: numpy dtypes and pandas' nullable dtypes.
NUMERIC_TYPE_LIST = [
    *(f"int{bits}" for bits in (8, 16, 32, 64)),
    *(f"uint{bits}" for bits in (8, 16, 32, 64)),
    *(f"float{bits}" for bits in (16, 32, 64)),
    *(f"Int{bits}Dtype" for bits in (8, 16, 32, 64)),
    *(f"UInt{bits}Dtype" for bits in (8, 16, 32, 64)),
    "Float32Dtype",
    "Float64Dtype",
]

# Checks done in plain pandas, reported like GE expectations.
LEAK_CHECK = "label_leak_check"
FRACTION_CHECK = "max_bad_row_fraction"
UNREADABLE = "unreadable"

_PARQUET_SUFFIXES = (".parquet", ".pq")
_CSV_SUFFIXES = (".csv",)
_LABEL_NAMES = {"label", "target"}


class BatchUnreadable(Exception):  # noqa: N818 - the name the rest of the project uses
    """A week's raw file cannot be read at all (empty, truncated, malformed or not UTF-8).

    Attributes:
        reason: what is wrong with the file, for a human.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


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
    return _normalise(df, spec)


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
    return _normalise(df, spec)


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


def _normalise(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
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


def _to_utc(values: pd.Series) -> tuple[pd.Series, dict[str, Any]]:
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


# --------------------------------------------------------------------------------------------
# validating
# --------------------------------------------------------------------------------------------


@dataclass
class ValidationOutcome:
    """What validating one week found.

    Attributes:
        passed: True if the batch is accepted (its good rows go on).
        batch_failures: failed batch-level checks, each ``{"expectation", "column", "detail"}``.
        row_failures: failed row-level checks, each ``{"expectation", "column", "n_rows",
            "sample_ids", "detail"}`` (``sample_ids``: the first 20 failing ids, or row numbers
            without an id column).
        bad_row_ids: ids of the rows failing any row-level check.
        bad_positions: positions of the failing rows, when the spec has no id column.
        id_column: the spec's id column (None: rows are known by position).
        n_rows: rows in the batch.
        n_bad_rows: rows failing any row-level check (rows without an id included).
        n_expectations: checks evaluated: the GE expectations plus the pandas label-leak and
            bad-row-fraction checks.
        week: the ISO week validated.
        max_bad_row_fraction: the limit the batch was held to.
    """

    passed: bool
    batch_failures: list[dict[str, Any]] = field(default_factory=list)
    row_failures: list[dict[str, Any]] = field(default_factory=list)
    bad_row_ids: set[Any] = field(default_factory=set)
    bad_positions: set[int] = field(default_factory=set)
    id_column: str | None = None
    n_rows: int = 0
    n_bad_rows: int = 0
    n_expectations: int = 0
    week: str = ""
    max_bad_row_fraction: float | None = None

    def _bad_mask(self, df: pd.DataFrame) -> pd.Series:
        if not self.passed:
            return pd.Series(True, index=df.index)
        if self.id_column is None:  # rows are known by their position in the week's file
            bad = np.zeros(len(df), dtype=bool)
            bad[sorted(self.bad_positions)] = True
            return pd.Series(bad, index=df.index)
        if self.id_column not in df.columns:
            return pd.Series(True, index=df.index)
        ids = df[self.id_column]
        return ids.isin(self.bad_row_ids) | ids.isna()

    def good_rows(self, df: pd.DataFrame) -> pd.DataFrame:
        """Return the rows of ``df`` that go on: none if the batch was rejected."""
        return df[~self._bad_mask(df)]

    def bad_rows(self, df: pd.DataFrame) -> pd.DataFrame:
        """Return the rows of ``df`` to quarantine: all of them if the batch was rejected."""
        return df[self._bad_mask(df)]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable summary (at most 100 of the bad row ids, sorted)."""
        return {
            "week": self.week,
            "passed": self.passed,
            "n_rows": self.n_rows,
            "n_bad_rows": self.n_bad_rows,
            "n_expectations": self.n_expectations,
            "max_bad_row_fraction": self.max_bad_row_fraction,
            "batch_failures": [_jsonable(failure) for failure in self.batch_failures],
            "row_failures": [_jsonable(failure) for failure in self.row_failures],
            "bad_row_ids_sample": sorted(str(i) for i in self.bad_row_ids)[:100],
        }


def validate_week(
    df: pd.DataFrame, week: str, max_bad_row_fraction: float, min_rows: int, *, spec: DatasetSpec
) -> ValidationOutcome:
    """Validate one week's raw frame with Great Expectations.

    Structural failures (missing columns, wrong dtypes) do not stop the run: the expectations
    that cannot run on such a frame are left out and the rest still run.

    Args:
        df: the week's raw rows (as :func:`parse_raw` returns them, or any frame).
        week: the ISO week the rows belong to, e.g. ``2026-W05``.
        max_bad_row_fraction: the largest fraction of rows that may fail row-level checks
            before the whole batch is rejected.
        min_rows: the fewest rows a batch may have.
        spec: the dataset spec the expectations are derived from.

    Returns:
        The outcome: whether the batch is accepted, what failed and which rows to quarantine.
    """
    # GE logs ~200 "Skipping registering function ... because it is a closure" lines at INFO when
    # it is imported: they buried the real outcome in the task log
    logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    frame = _normalise(df, spec)
    frame = frame.reset_index(drop=True)
    id_column = spec.id_column
    has_id = id_column is not None and id_column in frame.columns
    expectations = _build_expectations(frame, week, min_rows, spec)

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch_definition = (
        context.data_sources.add_pandas("raw")
        .add_dataframe_asset(f"week_{week}")
        .add_batch_definition_whole_dataframe("whole_week")
    )
    # One suite built whole: suite.add_expectation re-serialises the suite each time (quadratic).
    suite = context.suites.add(gx.ExpectationSuite(name=f"raw_{week}", expectations=expectations))
    if len(suite.expectations) != len(expectations):  # GE logs and drops an invalid one
        raise RuntimeError("Great Expectations rejected an expectation of the validation suite")
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"validate_{week}", data=batch_definition, suite=suite)
    )
    result_format: dict[str, Any] = {"result_format": "COMPLETE"}
    if has_id:
        result_format["unexpected_index_column_names"] = [id_column]
    result = definition.run(batch_parameters={"dataframe": frame}, result_format=result_format)

    outcome = ValidationOutcome(
        passed=True,
        n_rows=len(frame),
        n_expectations=len(expectations) + 2,
        week=week,
        max_bad_row_fraction=max_bad_row_fraction,
        id_column=id_column,
    )
    for item in sorted(result.results, key=lambda r: r.expectation_config.meta.get("order", 0)):
        _collect(item, frame, id_column if has_id else None, outcome, spec)

    outcome.batch_failures.extend(_label_leaks(frame, spec))
    if has_id:
        ids = frame[id_column]
        outcome.n_bad_rows = int((ids.isin(outcome.bad_row_ids) | ids.isna()).sum())
    else:
        outcome.n_bad_rows = len(outcome.bad_positions)
    if outcome.n_rows and outcome.n_bad_rows / outcome.n_rows > max_bad_row_fraction:
        outcome.batch_failures.append(
            {
                "expectation": FRACTION_CHECK,
                "column": None,
                "detail": (
                    f"{outcome.n_bad_rows} of {outcome.n_rows} rows "
                    f"({outcome.n_bad_rows / outcome.n_rows:.1%}) fail row-level checks, more "
                    f"than the {max_bad_row_fraction:.1%} allowed"
                ),
            }
        )
    outcome.passed = not outcome.batch_failures
    return outcome


def _build_expectations(frame: pd.DataFrame, week: str, min_rows: int, spec: DatasetSpec) -> list[Any]:
    """Return the GE expectations that can run on ``frame``, each tagged with its level."""
    import great_expectations.expectations as gxe

    present = set(frame.columns)
    expectations: list[Any] = []

    def add(level: str, expectation: Any, note: str = "") -> None:
        expectation.meta = {"level": level, "order": len(expectations), "note": note}
        expectations.append(expectation)

    id_column, time_column, label = spec.id_column, spec.event_time_column, spec.label
    numeric = [f for f in spec.features_of_kind("numeric")]
    # batch level
    add(BATCH, gxe.ExpectTableColumnsToMatchSet(column_set=list(spec.raw_columns), exact_match=True))
    add(BATCH, gxe.ExpectTableRowCountToBeBetween(min_value=min_rows))
    if id_column in present:
        add(BATCH, gxe.ExpectColumnValuesToBeUnique(column=id_column))
    numeric_ok = set()
    typed = [f.name for f in numeric]
    if spec.task == "regression" and label in present and frame[label].notna().any():
        typed.append(label)
    for column in typed:
        if column in present:
            add(BATCH, gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=NUMERIC_TYPE_LIST))
            if _is_numeric(frame[column]):
                numeric_ok.add(column)
    if len(frame):
        # a week whose outcomes are all still unknown is fine; an ignored column is not read
        skip = {label, *spec.ignore}
        for column in frame.columns:
            if column not in skip:
                add(
                    BATCH,
                    gxe.ExpectColumnProportionOfNonNullValuesToBeBetween(
                        column=column, min_value=0, strict_min=True
                    ),
                )

    # row level
    required = [c for c in (id_column, time_column) if c] + [f.name for f in spec.features if not f.nullable]
    for column in required:
        if column in present:
            add(ROW, gxe.ExpectColumnValuesToNotBeNull(column=column))
    for feature in numeric:
        if feature.name in numeric_ok and (feature.min is not None or feature.max is not None):
            add(
                ROW,
                gxe.ExpectColumnValuesToBeBetween(
                    column=feature.name, min_value=feature.min, max_value=feature.max
                ),
                note=f"outside [{_bound(feature.min)}, {_bound(feature.max)}]",
            )
    for feature in spec.features:
        if feature.name not in present:
            continue
        if feature.kind == "categorical" and feature.values:
            add(ROW, gxe.ExpectColumnValuesToBeInSet(column=feature.name, value_set=list(feature.values)))
        if feature.kind == "boolean":
            add(ROW, gxe.ExpectColumnValuesToBeInSet(column=feature.name, value_set=list(BOOLEAN_VALUES)))
    if label in present and spec.classes:
        add(ROW, gxe.ExpectColumnValuesToBeInSet(column=label, value_set=list(spec.classes)))
    if time_column in present and isinstance(frame[time_column].dtype, pd.DatetimeTZDtype):
        start = datetime.combine(week_start(week), time(), tzinfo=UTC)
        add(
            ROW,
            gxe.ExpectColumnValuesToBeBetween(
                column=time_column, min_value=start, max_value=start + timedelta(days=7), strict_max=True
            ),
            note=f"not in {week} ({start:%Y-%m-%d} 00:00 UTC to {start + timedelta(days=6):%Y-%m-%d} "
            "23:59:59 UTC)",
        )
    return expectations


def _bound(value: float | None) -> str:
    if value is None:
        return "..."
    return str(int(value)) if float(value).is_integer() else str(value)


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


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)


def _collect(
    item: Any, frame: pd.DataFrame, id_column: str | None, outcome: ValidationOutcome, spec: DatasetSpec
) -> None:
    """Add one GE expectation result to ``outcome`` (as a batch or a row failure)."""
    config = item.expectation_config
    kwargs = config.kwargs
    name = config.type
    column = kwargs.get("column")
    level = config.meta.get("level", BATCH)
    info = item.exception_info or {}
    if info.get("raised_exception"):
        outcome.batch_failures.append(
            {
                "expectation": name,
                "column": column,
                "detail": f"Great Expectations could not evaluate it: {info.get('exception_message')}",
            }
        )
        return
    if item.success:
        return
    result = item.result or {}
    if level == BATCH:
        outcome.batch_failures.append(
            {
                "expectation": name,
                "column": column,
                "detail": _batch_detail(name, kwargs, result, spec)
                + _non_numeric_examples(name, column, frame),
            }
        )
        return

    has_id = id_column is not None
    ids = _unexpected_ids(result, id_column)
    if has_id:
        outcome.bad_row_ids.update(i for i in ids if not _is_missing(i))
    else:
        outcome.bad_positions.update(ids)
    samples = []
    for i in ids:
        text = "(no id)" if _is_missing(i) else (str(i) if has_id else f"row {i}")
        if text not in samples:
            samples.append(text)
        if len(samples) == SAMPLE_IDS:
            break
    outcome.row_failures.append(
        {
            "expectation": name,
            "column": column,
            "n_rows": int(result.get("unexpected_count", len(ids))),
            "sample_ids": samples,
            "detail": _row_detail(name, kwargs, result, config.meta.get("note", ""), frame, spec),
        }
    )


def _unexpected_ids(result: dict[str, Any], id_column: str | None) -> list[Any]:
    entries = result.get("unexpected_index_list") or []
    if id_column is not None:
        return [entry.get(id_column) if isinstance(entry, dict) else entry for entry in entries]
    return [int(entry) for entry in entries]


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _examples(result: dict[str, Any], limit: int = 5) -> str:
    counts = result.get("partial_unexpected_counts") or []
    values = [entry.get("value") for entry in counts[:limit]]
    return ", ".join(repr(value) for value in values)


def _batch_detail(name: str, kwargs: dict[str, Any], result: dict[str, Any], spec: DatasetSpec) -> str:
    observed = result.get("observed_value")
    if name == "expect_table_columns_to_match_set":
        mismatched = (result.get("details") or {}).get("mismatched") or {}
        parts = []
        if mismatched.get("missing"):
            parts.append("missing columns: " + ", ".join(sorted(mismatched["missing"])))
        if mismatched.get("unexpected"):
            parts.append(
                "extra columns: "
                + ", ".join(sorted(mismatched["unexpected"]))
                + " (if the data is right, list them in the dataset spec: as features, or under ignore)"
            )
        return "; ".join(parts) or "the columns differ from the dataset spec"
    if name == "expect_table_row_count_to_be_between":
        return f"{observed} rows, fewer than the {kwargs.get('min_value')} required"
    if name == "expect_column_values_to_be_unique":
        return f"{result.get('unexpected_count')} rows share an id (e.g. {_examples(result)})"
    if name == "expect_column_values_to_be_in_type_list":
        if observed is None:
            return f"non-numeric values (e.g. {_examples(result)}) in a numeric column"
        return f"dtype is {observed}; a numeric dtype (int or float) is expected"
    if name == "expect_column_proportion_of_non_null_values_to_be_between":
        return "the column is entirely null"
    return f"observed {observed!r}"


def _non_numeric_examples(name: str, column: Any, frame: pd.DataFrame) -> str:
    """Name a few values that are not numbers, for a numeric column read as text.

    pandas 3 reads such a column as ``str`` (not ``object``), so GE reports only the dtype.
    """
    if name != "expect_column_values_to_be_in_type_list" or column not in frame.columns:
        return ""
    values = frame[column]
    if not pd.api.types.is_string_dtype(values.dtype):
        return ""
    values = values.dropna()
    bad = values[pd.to_numeric(values, errors="coerce").isna()]
    if bad.empty:
        return ""
    examples = ", ".join(repr(str(value)) for value in bad.unique()[:5])
    return f" ({len(bad)} non-numeric values, e.g. {examples})"


def _row_detail(
    name: str,
    kwargs: dict[str, Any],
    result: dict[str, Any],
    note: str,
    frame: pd.DataFrame,
    spec: DatasetSpec,
) -> str:
    column = kwargs.get("column")
    if name == "expect_column_values_to_not_be_null":
        detail = "missing values (null, NaN or empty)"
        unparseable = frame.attrs.get("unparseable_event_time") or {}
        if column == spec.event_time_column and unparseable.get("count"):
            examples = ", ".join(repr(value) for value in unparseable.get("examples", []))
            detail += f"; {unparseable['count']} could not be parsed as timestamps (e.g. {examples})"
        return detail
    if name == "expect_column_values_to_be_between":
        note = note or f"outside [{kwargs.get('min_value')}, {kwargs.get('max_value')}]"
        return f"{note} (e.g. {_examples(result)})"
    if name == "expect_column_values_to_be_in_set":
        allowed = ", ".join(str(value) for value in kwargs.get("value_set", []))
        return f"not one of {{{allowed}}} (e.g. {_examples(result)})"
    return f"unexpected values (e.g. {_examples(result)})"


def _label_leaks(frame: pd.DataFrame, spec: DatasetSpec) -> list[dict[str, Any]]:
    """Return a batch failure for each column that looks like (or is named like) the label.

    A feature leaks the label when its name contains the label's stem (``defaulted`` -> ``default``)
    or is ``label``/``target``, or, over the labelled rows, it equals the label (or its
    complement, binary) in more than 99% of them, predicts it from its value in more than 99% of
    them (a column with few distinct values), or correlates with it beyond 0.99 (binary and
    regression labels).
    """
    failures = []
    label_name = spec.label
    stem = label_name.removesuffix("ed").lower()
    # the features, and any column the spec does not know (already a batch failure: name why)
    not_read = {label_name, spec.id_column, spec.event_time_column, *spec.ignore}
    features = [column for column in frame.columns if column not in not_read]
    for column in features:
        simple = re.sub(r"[^a-z0-9]", "", str(column).lower())
        if (len(stem) >= 4 and stem in simple) or simple in _LABEL_NAMES:
            failures.append(
                {
                    "expectation": LEAK_CHECK,
                    "column": column,
                    "detail": f"the column is named like the label {label_name!r}",
                }
            )
    if label_name not in frame.columns:
        return failures
    label = _leak_label(frame[label_name], spec)
    labelled = label.notna()
    label = label[labelled]
    if spec.is_classification:
        counts = label.value_counts()
        if len(label) < LEAK_MIN_LABELLED or len(counts) < 2 or counts.min() < LEAK_MIN_CLASS:
            return failures
    elif len(label) < LEAK_MIN_LABELLED or label.nunique() < 2:
        return failures
    named = {failure["column"] for failure in failures}
    for column in features:
        if column in named:
            continue
        detail = _leak_detail(frame.loc[labelled, column], label, spec)
        if detail:
            failures.append({"expectation": LEAK_CHECK, "column": column, "detail": detail})
    return failures


def _leak_label(values: pd.Series, spec: DatasetSpec) -> pd.Series:
    """The label as the leak checks compare it: 0/1 (binary), class text, or a number."""
    if spec.task == "regression":
        return pd.to_numeric(values, errors="coerce").astype(float)
    text = canonical_values(values)
    if spec.task == "binary":
        return text.map(lambda v: None if v is None else float(v == spec.positive_class))
    return text


def _leak_detail(values: pd.Series, label: pd.Series, spec: DatasetSpec) -> str | None:
    name = spec.label
    if spec.task != "multiclass" and (_is_numeric(values) or pd.api.types.is_bool_dtype(values.dtype)):
        numbers = pd.to_numeric(values, errors="coerce").astype(float)
        if spec.task == "binary":
            same = float((numbers == label).mean())
            opposite = float((numbers == 1 - label).mean())
            if max(same, opposite) > LEAK_THRESHOLD:
                kind = "equals" if same >= opposite else "is the complement of"
                return f"it {kind} {name} in {max(same, opposite):.1%} of labelled rows"
        finite = numbers.notna() & numbers.abs().ne(float("inf"))
        if finite.sum() >= LEAK_MIN_LABELLED and numbers[finite].nunique() > 1:
            correlation = numbers[finite].corr(label[finite].astype(float))
            if abs(correlation) > LEAK_THRESHOLD:
                return f"its correlation with {name} is {correlation:.3f}"
    if spec.task == "regression":
        return None
    known = values.notna()
    levels = values[known].nunique()
    if 1 < levels <= LEAK_MAX_LEVELS and known.mean() > LEAK_THRESHOLD:
        keyed = pd.DataFrame({"value": values[known].astype(str), "label": label[known].astype(str)})
        majority = keyed.groupby("value")["label"].agg(lambda s: s.value_counts().iloc[0]).sum()
        accuracy = majority / len(keyed)
        if accuracy > LEAK_THRESHOLD:
            return f"its value gives {name} in {accuracy:.1%} of labelled rows"
    return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(item) for item in value]
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return value if not isinstance(value, float) or math.isfinite(value) else str(value)
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return str(value)


# --------------------------------------------------------------------------------------------
# reporting
# --------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _rerun(week: str, source: str) -> str:
    return (
        f"fix the source data (`{source}`), then re-run `ingest_data` and `validate_data` for week "
        f"{week} (a run with the Param `week={week}`)."
    )


def render_validation_report(week: str, outcome: ValidationOutcome, source: str) -> str:
    """Return a Markdown report of a week's validation, for a human.

    Args:
        week: the ISO week validated.
        outcome: what :func:`validate_week` found.
        source: where the raw data came from (a path or URI).

    Returns:
        The report: a headline saying whether the batch was accepted, tables naming each failed
        expectation (GE expectation type, column, rows and sample ids) and what to do next.
    """
    n_bad = outcome.n_bad_rows
    failures = [*outcome.batch_failures, *outcome.row_failures]
    if not outcome.passed:
        headline = f"# Week {week}: batch REJECTED (quarantined whole)"
    elif n_bad:
        headline = f"# Week {week}: batch accepted, {n_bad} rows quarantined"
    else:
        headline = f"# Week {week}: batch accepted, all rows passed"
    share = f" ({n_bad / outcome.n_rows:.2%})" if outcome.n_rows else ""
    limit = f", limit {outcome.max_bad_row_fraction:.1%}" if outcome.max_bad_row_fraction is not None else ""
    lines = [
        headline,
        "",
        f"- Source: `{source}`",
        f"- Rows: {outcome.n_rows}; rows failing a row-level check: {n_bad}{share}{limit}",
        f"- Checks evaluated: {outcome.n_expectations}; batch-level failures: "
        f"{len(outcome.batch_failures)}; row-level failures: {len(outcome.row_failures)}",
        "",
    ]
    if outcome.batch_failures:
        lines += [
            "## Why the whole batch was rejected",
            "",
            "| Expectation | Column | Detail |",
            "| --- | --- | --- |",
        ]
        for failure in outcome.batch_failures:
            lines.append(
                f"| `{_cell(failure['expectation'])}` | {_cell(failure.get('column') or '(table)')} "
                f"| {_cell(failure.get('detail'))} |"
            )
        lines.append("")
    if outcome.row_failures:
        title = "Rows failing row-level checks" + (" (quarantined)" if outcome.passed else "")
        lines += [
            f"## {title}",
            "",
            "| Expectation | Column | Rows | Sample ids | Detail |",
            "| --- | --- | ---: | --- | --- |",
        ]
        for failure in outcome.row_failures:
            samples = ", ".join(failure.get("sample_ids", []))
            lines.append(
                f"| `{_cell(failure['expectation'])}` | {_cell(failure.get('column'))} "
                f"| {failure.get('n_rows')} | {_cell(samples)} | {_cell(failure.get('detail'))} |"
            )
        lines.append("")
    own = sorted({f["expectation"] for f in failures if not f["expectation"].startswith("expect_")})
    if own:
        names = ", ".join(f"`{name}`" for name in own)
        lines += [f"({names}: this project's own checks, done in pandas, not GE expectations.)", ""]
    lines += ["## What to do", ""]
    if not outcome.passed:
        lines.append(
            f"None of the {outcome.n_rows} rows of {week} go on to training or scoring: "
            + _rerun(week, source)
        )
        if any(f["expectation"] == "expect_table_columns_to_match_set" for f in outcome.batch_failures):
            lines += [
                "",
                "The columns differ from the dataset spec. If the data is right, fix the expected "
                "columns in the dataset spec instead (`[dataset]` of the settings, or the file its "
                f"`spec` names: label, id_column, event_time_column, features, ignore), then re-run "
                f"`validate_data` for week {week}: it validates the stored data again with the new spec.",
            ]
    elif n_bad:
        lines.append(
            f"The other {outcome.n_rows - n_bad} rows go on; the {n_bad} quarantined rows are kept aside. "
            "To use them too, " + _rerun(week, source)
        )
    else:
        lines.append("Nothing to do.")
    return "\n".join(lines) + "\n"


def render_unreadable_report(week: str, reason: str, source: str) -> str:
    """Return a Markdown report for a week whose raw file could not be read at all.

    Args:
        week: the ISO week.
        reason: :attr:`BatchUnreadable.reason`.
        source: where the raw data came from (a path or URI).

    Returns:
        The report: the headline, the reason and what to do next.
    """
    return "\n".join(
        [
            f"# Week {week}: batch REJECTED (file unreadable, quarantined whole)",
            "",
            f"- Source: `{source}`",
            "",
            "| Expectation | Column | Detail |",
            "| --- | --- | --- |",
            f"| `{UNREADABLE}` | (file) | {_cell(reason)} |",
            "",
            "No expectation could run: the file could not be parsed.",
            "",
            "## What to do",
            "",
            "Make the file readable: " + _rerun(week, source),
            "",
        ]
    )
