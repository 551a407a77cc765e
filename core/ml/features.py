"""The one feature function shared by training, batch scoring and the online endpoint.

Using the same function everywhere is what prevents training/serving skew: a model only ever sees
frames produced by :func:`build_features` from the dataset spec. It takes the spec's features,
runs the spec's feature function (if any) and types every column: numeric and boolean features
as float64 (missing: NaN, which the default model handles natively), categorical ones as text.
The function is vectorised (it runs on millions of rows in chunks) and also works on a single row
built from a request dict.

A feature function takes a DataFrame of raw rows, unless it is marked :func:`columnar`: then it
takes a mapping of the spec's features to numpy arrays, already typed (float64 for numeric and
boolean features, missing NaN; object arrays of text for categorical ones, missing None), and
returns a mapping of column -> array. Training, batch scoring and the endpoint then all call it
on the same typed arrays, and the endpoint builds no pandas frame per request.

This module is part of the code bundle that runs in a cloud container.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.ml.dataset import FALSE_WORDS, TRUE_WORDS, DatasetSpec, canonical_value


def _numeric(series: pd.Series, column: str) -> npt.NDArray[np.float64]:
    """Return a column as float64 with missing values as NaN."""
    values = series
    # Numeric columns (the usual case) skip the conversion: on a one-row online request the
    # per-column pandas calls cost more than the arithmetic.
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iuf":
        return np.asarray(series.to_numpy(), dtype=np.float64)  # NumPy dtypes hold no pd.NA
    # pandas is untyped here: the declared types say what to_numpy(dtype=float64) gives
    floats: npt.NDArray[np.float64]
    if pd.api.types.is_bool_dtype(series.dtype):
        floats = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return floats
    if not pd.api.types.is_numeric_dtype(series.dtype):
        try:
            values = pd.Series(pd.to_numeric(series, errors="raise"))
        except (ValueError, TypeError) as error:
            raise ValueError(f"column {column!r} must be numeric: {error}") from None
    # pandas nullable dtypes (Int64, Float64) would give pd.NA; ask for NaN explicitly.
    floats = values.to_numpy(dtype=np.float64, na_value=np.nan)
    return floats


_BOOLEAN_WORDS = {**dict.fromkeys(TRUE_WORDS, 1.0), **dict.fromkeys(FALSE_WORDS, 0.0)}


def _boolean(series: pd.Series) -> npt.NDArray[np.float64]:
    """Return a boolean column as 1.0 / 0.0 (missing or unreadable: NaN).

    True/False, 1/0 and the words true/false, yes/no, y/n, t/f (any case) are understood.
    """
    # pandas is untyped here: the declared type says what to_numpy(dtype=float64) gives
    numbers: npt.NDArray[np.float64]
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return np.where(np.isin(numbers, (0.0, 1.0)), numbers, np.nan)
    words = series.astype("str").str.strip().str.lower()
    numbers = words.map(_BOOLEAN_WORDS).to_numpy(dtype=np.float64, na_value=np.nan)
    return numbers


def _categorical(series: pd.Series) -> pd.Series:
    """Return a column as pandas ``str`` dtype with missing values kept as missing.

    ``astype("str")`` keeps None/NaN missing (it does not turn them into the text "nan"), and the
    one-hot encoder treats an unseen or missing value as all-zero at prediction time.
    """
    if series.dtype == "str":  # already (pandas 3 reads text columns so): astype would copy
        return series
    return series.astype("str")


FeatureFunction = Callable[[Any], Any]


# The functions marked columnar (a weak set: marking a function keeps nothing alive)
_COLUMNAR: weakref.WeakSet[FeatureFunction] = weakref.WeakSet()


def columnar(function: FeatureFunction) -> FeatureFunction:
    """Mark a feature function as taking and returning columns of numpy arrays (see the module doc).

    Such a function reads only the spec's features, from a mapping of typed arrays of equal
    length, and returns ``{column: array-like}`` of that length (or a DataFrame). It is the fast
    path of the endpoint: request rows become arrays without a pandas frame.
    """
    _COLUMNAR.add(function)
    return function


def is_columnar(function: FeatureFunction | None) -> bool:
    """True for a feature function marked with :func:`columnar`."""
    return function is not None and function in _COLUMNAR


def _feature_values(values: pd.Series, kind: str, name: str) -> np.ndarray | pd.Series:
    """A spec feature as the model takes it: float64 (numeric, boolean) or a ``str`` Series."""
    if kind == "numeric":
        return _numeric(values, name)
    if kind == "boolean":
        return _boolean(values)
    return _categorical(values)


def _typed_columns(df: pd.DataFrame, spec: DatasetSpec) -> dict[str, np.ndarray]:
    """The spec's features of raw rows as a columnar feature function takes them."""
    columns: dict[str, np.ndarray] = {}
    for feature in spec.features:
        typed = _feature_values(df[feature.name], feature.kind, feature.name)
        columns[feature.name] = (
            typed if isinstance(typed, np.ndarray) else typed.to_numpy(dtype=object, na_value=None)
        )
    return columns


def _columnar_derived(columns: Mapping[str, np.ndarray], spec: DatasetSpec, n: int) -> dict[str, np.ndarray]:
    """Run a columnar feature function on typed columns of ``n`` rows; check and return its columns."""
    function = spec.feature_callable()
    if function is None:
        return {}
    out = function(columns)
    if isinstance(out, pd.DataFrame):
        out = {column: out[column].to_numpy() for column in out.columns}
    if not isinstance(out, Mapping):
        raise ValueError(
            f"the feature function {spec.feature_function} must return a mapping of column -> array "
            f"(or a DataFrame), it returned {type(out).__name__}"
        )
    arrays = {str(column): np.asarray(values) for column, values in out.items()}
    wrong = {column: values.shape for column, values in arrays.items() if values.shape != (n,)}
    if wrong:
        raise ValueError(
            f"the feature function {spec.feature_function} must return one value per input row ({n}) in "
            f"each column; it returned columns of shape {wrong}"
        )
    return arrays


def _typed(values: np.ndarray) -> tuple[bool, np.ndarray]:
    """A derived column typed as the model takes it: (numeric?, float64 or object array)."""
    if values.dtype.kind in "biuf":
        return True, values.astype(np.float64, copy=False)
    return False, pd.Series(values, dtype=object).astype("str").to_numpy(dtype=object, na_value=None)


def _columnar_features(columns: dict[str, np.ndarray], spec: DatasetSpec, n: int) -> dict[str, np.ndarray]:
    """Model columns from typed feature columns and a columnar feature function's output.

    The same for a frame (training, batch) and for request rows (the endpoint): no skew.
    """
    derived = _columnar_derived(columns, spec, n)
    numeric: dict[str, np.ndarray] = {}
    categorical: dict[str, np.ndarray] = {}
    for feature in spec.features:  # the function may rewrite a feature (e.g. clip it): use its version
        is_number, values = (
            _typed(derived[feature.name])
            if feature.name in derived
            else (feature.kind != "categorical", columns[feature.name])
        )
        (numeric if is_number else categorical)[feature.name] = values
    for column, raw_values in derived.items():
        if column not in columns:
            is_number, values = _typed(raw_values)
            (numeric if is_number else categorical)[column] = values
    return {**numeric, **categorical}


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
    if is_columnar(spec.feature_callable()):
        columns = _columnar_features(_typed_columns(df, spec), spec, len(df))
        return pd.DataFrame(
            {
                column: values if values.dtype != object else pd.array(values, dtype="str")
                for column, values in columns.items()
            },
            index=df.index,
        )
    derived = _derived(df, spec)
    source = df
    added: dict[str, pd.Series] = {}  # the columns the feature function adds
    if derived is not None:
        added = {column: derived[column] for column in derived.columns if column not in df.columns}
        replaced = [column for column in spec.feature_names if column in derived.columns]
        if replaced:  # the function may rewrite a feature (e.g. clip it): use its version
            source = df.assign(**{column: derived[column].to_numpy() for column in replaced})
    numeric: dict[str, Any] = {}
    categorical: dict[str, Any] = {}
    for feature in spec.features:
        typed = _feature_values(source[feature.name], feature.kind, feature.name)
        if isinstance(typed, np.ndarray):
            numeric[feature.name] = typed
        else:
            # .array is used positionally: no index alignment, so duplicate labels are harmless.
            categorical[feature.name] = typed.array
    for column, values in added.items():
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
    the model (~2 ms of a ~6 ms one-row call, profiled). A spec whose feature function takes a
    DataFrame (not marked :func:`columnar`) returns None: the caller builds a frame and calls
    ``build_features``; a columnar one runs here on the typed arrays, as in ``build_features``.

    Args:
        rows: dicts with every feature of the spec: numbers or booleans (None: missing) and
            category strings (None: missing), as the endpoint's request schema validates them.
        spec: the dataset spec.

    Returns:
        ``{column: array}`` for every model column (float64 for numeric and boolean features,
        object for categorical ones), or None when the spec's feature function takes a DataFrame.

    Raises:
        ValueError: a row lacks a feature or holds a non-numeric value in a numeric one.
    """
    function = spec.feature_callable()
    if function is not None and not is_columnar(function):
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
    if function is not None:
        return _columnar_features(out, spec, len(rows))
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
