"""The Great Expectations suite derived from the dataset spec, and reading its results back.

Great Expectations takes seconds to import, so it is imported inside the functions only.
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from core.ml.dataset import FALSE_WORDS, TRUE_WORDS, DatasetSpec
from core.ml.validation.outcome import BATCH, ROW, ValidationOutcome
from core.ml.validation.reading import is_numeric
from core.weeks import week_start

if TYPE_CHECKING:  # Great Expectations takes seconds to import: only for the types here
    from great_expectations.core.expectation_validation_result import ExpectationValidationResult
    from great_expectations.expectations.expectation import Expectation

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

SAMPLE_IDS = 20
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


def build_expectations(frame: pd.DataFrame, week: str, min_rows: int, spec: DatasetSpec) -> list[Expectation]:
    """Return the GE expectations that can run on ``frame``, each tagged with its level."""
    import great_expectations.expectations as gxe

    present = set(frame.columns)
    expectations: list[Expectation] = []

    def add(level: str, expectation: Expectation, note: str = "") -> None:
        expectation.meta = {"level": level, "order": len(expectations), "note": note}
        expectations.append(expectation)

    id_column, time_column, label = spec.id_column, spec.event_time_column, spec.label
    numeric = [f for f in spec.features_of_kind("numeric")]
    # batch level
    add(BATCH, gxe.ExpectTableColumnsToMatchSet(column_set=list(spec.raw_columns), exact_match=True))
    add(BATCH, gxe.ExpectTableRowCountToBeBetween(min_value=min_rows))
    if id_column is not None and id_column in present:
        add(BATCH, gxe.ExpectColumnValuesToBeUnique(column=id_column))
    numeric_ok = set()
    typed = [f.name for f in numeric]
    if spec.task == "regression" and label in present and frame[label].notna().any():
        typed.append(label)
    for column in typed:
        if column in present:
            add(BATCH, gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=NUMERIC_TYPE_LIST))
            if is_numeric(frame[column]):
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
    if time_column is not None and time_column in present and _is_utc_time(frame[time_column]):
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


def _is_utc_time(values: pd.Series) -> bool:
    """True for timestamps with a time zone (``normalise`` makes the event time UTC when it parses)."""
    return isinstance(values.dtype, pd.DatetimeTZDtype)


def _bound(value: float | None) -> str:
    if value is None:
        return "..."
    return str(int(value)) if float(value).is_integer() else str(value)


def collect_result(
    item: ExpectationValidationResult,
    frame: pd.DataFrame,
    id_column: str | None,
    outcome: ValidationOutcome,
    spec: DatasetSpec,
) -> None:
    """Add one GE expectation result to ``outcome`` (as a batch or a row failure).

    Raises:
        ValueError: the result does not carry its expectation (a suite's run always sets it).
    """
    config = item.expectation_config
    if config is None:
        raise ValueError("a Great Expectations result without its expectation cannot be reported")
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
