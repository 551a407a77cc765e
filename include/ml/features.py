"""The one feature function shared by training, batch scoring and the online endpoint.

Using the same function everywhere is what prevents training/serving skew: a model only ever sees
frames produced by :func:`build_features` from the dataset spec. It takes the spec's features,
runs the spec's feature function (if any) and types every column: numeric and boolean features
as float64 (missing: NaN, which the default model handles natively), categorical ones as text.
The function is vectorised (it runs on millions of rows in chunks) and also works on a single row
built from a request dict.

This module is part of the code bundle that runs in a cloud container.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from include.ml.dataset import FALSE_WORDS, TRUE_WORDS, DatasetSpec, canonical_value


def _numeric(series: pd.Series, column: str) -> np.ndarray:
    """Return a column as float64 with missing values as NaN."""
    values = series
    # Numeric columns (the usual case) skip the conversion: on a one-row online request the
    # per-column pandas calls cost more than the arithmetic.
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iuf":
        return np.asarray(series.to_numpy(), dtype=np.float64)  # NumPy dtypes hold no pd.NA
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if not pd.api.types.is_numeric_dtype(series.dtype):
        try:
            values = pd.Series(pd.to_numeric(series, errors="raise"))
        except (ValueError, TypeError) as error:
            raise ValueError(f"column {column!r} must be numeric: {error}") from None
    # pandas nullable dtypes (Int64, Float64) would give pd.NA; ask for NaN explicitly.
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


_BOOLEAN_WORDS = {**dict.fromkeys(TRUE_WORDS, 1.0), **dict.fromkeys(FALSE_WORDS, 0.0)}


def _boolean(series: pd.Series) -> np.ndarray:
    """Return a boolean column as 1.0 / 0.0 (missing or unreadable: NaN).

    True/False, 1/0 and the words true/false, yes/no, y/n, t/f (any case) are understood.
    """
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return np.where(np.isin(numbers, (0.0, 1.0)), numbers, np.nan)
    words = series.astype("str").str.strip().str.lower()
    return words.map(_BOOLEAN_WORDS).to_numpy(dtype=np.float64, na_value=np.nan)


def _categorical(series: pd.Series) -> pd.Series:
    """Return a column as pandas ``str`` dtype with missing values kept as missing.

    ``astype("str")`` keeps None/NaN missing (it does not turn them into the text "nan"), and the
    one-hot encoder treats an unseen or missing value as all-zero at prediction time.
    """
    if series.dtype == "str":  # already (pandas 3 reads text columns so): astype would copy
        return series
    return series.astype("str")


def _derived(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame | None:
    """Run the spec's feature function; return its output (None without one)."""
    function = spec.feature_callable()
    if function is None:
        return None
    out = function(df)
    if not isinstance(out, pd.DataFrame) or len(out) != len(df):
        raise ValueError(
            f"the feature function {spec.feature_function} must return a DataFrame with one row per "
            f"input row ({len(df)}), it returned {type(out).__name__} of length {len(out)}"
        )
    return out


def build_features(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Turn raw rows into the model-input frame.

    Args:
        df: raw rows with at least every feature of the spec; other columns (id, time, label,
            ignored ones) are left out. A one-row frame from a request dict works too.
        spec: the dataset spec.

    Returns:
        A new frame on the input's index: the spec's numeric and boolean features and the
        numeric columns the feature function added (float64), then the categorical features and
        the text columns it added (pandas ``str``).

    Raises:
        ValueError: a feature is missing, a numeric column holds text, or the feature function
            returned something else than a frame of the same length.
    """
    missing = [column for column in spec.feature_names if column not in df.columns]
    if missing:
        raise ValueError(f"build_features: missing required column(s): {', '.join(missing)}")
    derived = _derived(df, spec)
    source = df
    added: list[str] = []
    if derived is not None:
        added = [column for column in derived.columns if column not in df.columns]
        replaced = [column for column in spec.feature_names if column in derived.columns]
        if replaced:  # the function may rewrite a feature (e.g. clip it): use its version
            source = df.assign(**{column: derived[column].to_numpy() for column in replaced})
    numeric: dict[str, Any] = {}
    categorical: dict[str, Any] = {}
    for feature in spec.features:
        values = source[feature.name]
        if feature.kind == "numeric":
            numeric[feature.name] = _numeric(values, feature.name)
        elif feature.kind == "boolean":
            numeric[feature.name] = _boolean(values)
        else:
            # .array is used positionally: no index alignment, so duplicate labels are harmless.
            categorical[feature.name] = _categorical(values).array
    for column in added:
        values = derived[column]  # type: ignore[index]
        if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
            numeric[column] = _numeric(values, column)
        else:
            categorical[column] = _categorical(values).array
    # One constructor call in the final column order: adding columns one by one costs more than
    # the arithmetic on a single row.
    return pd.DataFrame({**numeric, **categorical}, index=df.index)


def record_features(rows: Sequence[Mapping[str, Any]], spec: DatasetSpec) -> dict[str, np.ndarray] | None:
    """The model-input columns of request rows, as arrays: ``build_features`` without pandas.

    The online endpoint scores a few rows per call, where building pandas frames cost more than
    the model (~2 ms of a ~6 ms one-row call, profiled). A spec with a feature function (which
    takes a DataFrame) returns None: the caller builds a frame and calls ``build_features``.

    Args:
        rows: dicts with every feature of the spec: numbers or booleans (None: missing) and
            category strings (None: missing), as the endpoint's request schema validates them.
        spec: the dataset spec.

    Returns:
        ``{column: array}`` for every model column (float64 for numeric and boolean features,
        object for categorical ones), or None when the spec has a feature function.

    Raises:
        ValueError: a row lacks a feature or holds a non-numeric value in a numeric one.
    """
    if spec.feature_function:
        return None
    out: dict[str, np.ndarray] = {}
    try:
        for feature in spec.features_of_kind("numeric", "boolean"):
            values = [row[feature.name] for row in rows]
            out[feature.name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        for feature in spec.features_of_kind("categorical"):
            out[feature.name] = np.array([row[feature.name] for row in rows], dtype=object)
    except KeyError as error:
        raise ValueError(f"record_features: a row lacks the required column {error}") from None
    except (TypeError, ValueError) as error:
        raise ValueError(f"record_features: a numeric column holds a non-numeric value: {error}") from None
    return out


def request_records(frame: pd.DataFrame, spec: DatasetSpec) -> list[dict[str, Any]]:
    """Raw rows as a client sends them to the endpoint: the key column and the spec's features.

    Numbers as floats, booleans as true/false, categories as text; missing values as None.
    """
    records: list[dict[str, Any]] = []
    columns = [c for c in (spec.id_column,) if c and c in frame.columns]
    for row in frame[[*columns, *spec.feature_names]].to_dict(orient="records"):
        record: dict[str, Any] = {c: None if pd.isna(row[c]) else str(row[c]) for c in columns}
        for feature in spec.features:
            value = row[feature.name]
            if value is None or (not isinstance(value, str) and pd.isna(value)):
                record[feature.name] = None
            elif feature.kind == "numeric":
                record[feature.name] = float(value)
            elif feature.kind == "boolean":
                word = canonical_value(value) or ""
                word = word.lower()
                record[feature.name] = _BOOLEAN_WORDS.get(word) == 1.0  # validated: a known word
            else:
                record[feature.name] = str(value)
        records.append(record)
    return records
