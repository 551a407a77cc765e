"""Fast drift statistics (numpy/scipy only): PSI, KS and chi-square per feature.

PSI (population stability index) is the decision statistic because, unlike p-values, it does not
turn every tiny difference into "significant" on millions of rows. Conventional reading: < 0.1 stable,
0.1-0.2 moderate, > 0.2 a real shift. KS / chi-square statistics and p-values are reported alongside.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from core.ml.uncertainty import psi_noise

# Proportion used for an empty bin: keeps log(0) out of PSI while adding almost nothing to it.
_EPSILON = 1e-4
_BINS = 10

FEATURE_TABLE_COLUMNS: tuple[str, ...] = (
    "feature",
    "kind",
    "psi",
    "psi_noise",
    "statistic",
    "p_value",
    "reference_mean",
    "current_mean",
    "drifted",
)


def _numeric_values(values: Any) -> np.ndarray:
    """Return the non-null values as float64 (nulls are ignored, not counted as a bin)."""
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    # pandas is untyped here: the declared type says what to_numpy(dtype=float64) gives
    array: npt.NDArray[np.float64] = pd.to_numeric(series, errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    return array[np.isfinite(array)]


def _categorical_values(values: Any) -> pd.Series:
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values, dtype=object))
    return series.dropna().astype("str")


def _psi(reference_share: np.ndarray, current_share: np.ndarray) -> float:
    ref = np.maximum(reference_share, _EPSILON)
    cur = np.maximum(current_share, _EPSILON)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _numeric_bins(
    reference: np.ndarray, current: np.ndarray, bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The inner bin edges and both sides' shares per bin."""
    # Quantile edges of the reference: each bin holds ~1/bins of it. Integer-valued features repeat
    # edges, so keep the unique ones; bins are [edge_i, edge_i+1) and the outer bins are open-ended so
    # current values outside the reference range still land somewhere.
    edges = np.unique(np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)))
    inner = edges[1:-1]
    n_bins = len(inner) + 1
    ref_counts = np.bincount(np.searchsorted(inner, reference, side="right"), minlength=n_bins)
    cur_counts = np.bincount(np.searchsorted(inner, current, side="right"), minlength=n_bins)
    return inner, ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()


def _numeric_shares(reference: np.ndarray, current: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    _, ref_shares, cur_shares = _numeric_bins(reference, current, bins)
    return ref_shares, cur_shares


def population_stability_index(reference: Any, current: Any, bins: int = 10) -> float:
    """PSI of a numeric feature, binned by the reference's quantiles.

    Args:
        reference: reference values (array-like); nulls and infinities are ignored.
        current: current values; nulls and infinities are ignored.
        bins: the number of quantile bins (fewer when the reference has repeated values).

    Returns:
        The PSI (>= 0), or NaN when either side has no values.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    ref, cur = _numeric_values(reference), _numeric_values(current)
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    return _psi(*_numeric_shares(ref, cur, bins))


def _category_counts(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    _, ref_counts, cur_counts = _categories_and_counts(reference, current)
    return ref_counts, cur_counts


def _categories_and_counts(
    reference: pd.Series, current: pd.Series
) -> tuple[list[str], np.ndarray, np.ndarray]:
    ref_counts = reference.value_counts()
    cur_counts = current.value_counts()
    # Sorted union: a category present on one side only counts as 0 on the other.
    categories = sorted(set(ref_counts.index) | set(cur_counts.index))
    return (
        categories,
        ref_counts.reindex(categories, fill_value=0).to_numpy(dtype=np.float64),
        cur_counts.reindex(categories, fill_value=0).to_numpy(dtype=np.float64),
    )


def categorical_psi(reference: Any, current: Any) -> float:
    """PSI of a categorical feature over the union of the categories seen on both sides.

    Args:
        reference: reference values; nulls are ignored.
        current: current values; nulls are ignored.

    Returns:
        The PSI (>= 0), or NaN when either side has no values.
    """
    ref, cur = _categorical_values(reference), _categorical_values(current)
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    ref_counts, cur_counts = _category_counts(ref, cur)
    return _psi(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum())


_Noise = Callable[[int, int, int], float]  # (reference rows, current rows, bins) -> PSI's noise level


class _FeatureRow(TypedDict):
    """A row of the feature table before ``drifted`` is added (NaN: not measured)."""

    feature: str
    kind: str
    psi: float
    psi_noise: float
    statistic: float
    p_value: float
    reference_mean: float
    current_mean: float


def _numeric_row(name: str, reference: Any, current: Any, noise: _Noise) -> _FeatureRow:
    ref, cur = _numeric_values(reference), _numeric_values(current)
    nan = float("nan")
    if len(ref) == 0 or len(cur) == 0:
        psi = noise_level = statistic = p_value = nan
    else:
        ks = stats.ks_2samp(ref, cur)
        inner, ref_shares, cur_shares = _numeric_bins(ref, cur, _BINS)
        psi, noise_level = _psi(ref_shares, cur_shares), noise(len(ref), len(cur), len(inner) + 1)
        statistic, p_value = float(ks.statistic), float(ks.pvalue)
    return {
        "feature": name,
        "kind": "numeric",
        "psi": psi,
        "psi_noise": noise_level,
        "statistic": statistic,
        "p_value": p_value,
        "reference_mean": float(ref.mean()) if len(ref) else nan,
        "current_mean": float(cur.mean()) if len(cur) else nan,
    }


def _categorical_row(name: str, reference: Any, current: Any, noise: _Noise) -> _FeatureRow:
    ref, cur = _categorical_values(reference), _categorical_values(current)
    nan = float("nan")
    if len(ref) == 0 or len(cur) == 0:
        psi = noise_level = statistic = p_value = nan
    else:
        ref_counts, cur_counts = _category_counts(ref, cur)
        if len(ref_counts) < 2:
            # One category on both sides: identical distributions, and chi-square is undefined.
            statistic, p_value = 0.0, 1.0
        else:
            test = stats.chi2_contingency(np.vstack([ref_counts, cur_counts]), correction=False)
            statistic, p_value = float(test.statistic), float(test.pvalue)
        psi = _psi(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum())
        noise_level = noise(len(ref), len(cur), len(ref_counts))
    return {
        "feature": name,
        "kind": "categorical",
        "psi": psi,
        "psi_noise": noise_level,
        "statistic": statistic,
        "p_value": p_value,
        "reference_mean": nan,
        "current_mean": nan,
    }


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    psi_threshold: float,
    confidence: float | None = None,
) -> pd.DataFrame:
    """Per-feature drift between a reference and a current frame.

    Args:
        reference: reference rows (e.g. the training weeks).
        current: current rows (the week being monitored).
        numeric: numeric columns to compare (PSI on reference quantile bins + two-sample KS test).
        categorical: categorical columns to compare (PSI over categories + chi-square test).
        psi_threshold: a feature has drifted when its PSI is above this (0.2 is the usual choice).
        confidence: when given, a feature has drifted only if its PSI is also above its sampling
            noise: the PSI two samples of one distribution of these sizes and bins stay under
            with this confidence, Bonferroni-corrected over the features
            (:func:`core.ml.uncertainty.psi_noise`). None: the threshold alone decides.

    Returns:
        One row per feature, numeric ones first, with the columns ``feature``, ``kind``
        ("numeric"/"categorical"), ``psi``, ``psi_noise`` (0.0 without ``confidence``),
        ``statistic`` (KS or chi-square), ``p_value``,
        ``reference_mean``/``current_mean`` (NaN for categoricals) and ``drifted`` (bool). Nulls are
        ignored per column; a feature with no values on one side has NaN statistics and is not drifted.

    Raises:
        ValueError: a listed column is missing from either frame.
    """
    wanted = [*numeric, *categorical]
    for label, frame in (("reference", reference), ("current", current)):
        missing = [column for column in wanted if column not in frame.columns]
        if missing:
            raise ValueError(f"feature_drift: {label} frame lacks column(s): {', '.join(missing)}")

    def noise(n_reference: int, n_current: int, n_bins: int) -> float:
        if confidence is None:
            return 0.0
        return psi_noise(n_reference, n_current, n_bins, confidence, n_tests=len(wanted))

    rows = [_numeric_row(name, reference[name], current[name], noise) for name in numeric]
    rows += [_categorical_row(name, reference[name], current[name], noise) for name in categorical]
    table = pd.DataFrame(rows, columns=[c for c in FEATURE_TABLE_COLUMNS if c != "drifted"])
    for column in ("psi", "psi_noise", "statistic", "p_value", "reference_mean", "current_mean"):
        table[column] = table[column].astype(np.float64)
    # NaN > threshold is False: a feature we could not measure is not reported as drifted.
    table["drifted"] = ((table["psi"] > psi_threshold) & (table["psi"] > table["psi_noise"])).astype(bool)
    return table[list(FEATURE_TABLE_COLUMNS)]


class DatasetDrift(TypedDict):
    """The dataset-level drift verdict of a week (JSON-safe).

    Attributes:
        n_features: features compared.
        n_drifted: features that drifted.
        share_drifted: ``n_drifted / n_features`` (0.0 without features).
        drifted: True when the share reached the threshold (never without features).
        drifted_features: the drifted features' names, in the table's order.
    """

    n_features: int
    n_drifted: int
    share_drifted: float
    drifted: bool
    drifted_features: list[str]


def dataset_drift(feature_table: pd.DataFrame, share_threshold: float) -> DatasetDrift:
    """Summarise a :func:`feature_drift` table into a dataset-level verdict.

    Args:
        feature_table: the output of :func:`feature_drift`.
        share_threshold: the dataset has drifted when at least this share of features drifted.

    Returns:
        The verdict, JSON-safe.
    """
    n_features = len(feature_table)
    drifted_mask = feature_table["drifted"].astype(bool) if n_features else pd.Series([], dtype=bool)
    drifted_features = (
        [str(name) for name in feature_table.loc[drifted_mask, "feature"]] if n_features else []
    )
    n_drifted = len(drifted_features)
    share = n_drifted / n_features if n_features else 0.0
    return {
        "n_features": int(n_features),
        "n_drifted": int(n_drifted),
        "share_drifted": float(share),
        "drifted": bool(n_features > 0 and share >= share_threshold),
        "drifted_features": drifted_features,
    }


@dataclass(frozen=True)
class Distribution:
    """What PSI compared for one feature: the share of each side's rows per bin or category.

    Attributes:
        feature: the feature's name.
        kind: "numeric" (bins of the reference's deciles) or "categorical" (one per category).
        labels: one label per bin ("< 3.2", "[3.2, 5)", ">= 9.1") or category.
        reference: the reference rows' share per bin (sums to 1).
        current: the current rows' share per bin (sums to 1).
    """

    feature: str
    kind: str
    labels: tuple[str, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]


def distribution(name: str, kind: str, reference: Any, current: Any) -> Distribution | None:
    """The bins or categories PSI compares for a feature, with both sides' shares.

    Args:
        name: the feature's name.
        kind: "numeric", or anything else for categorical (booleans compare as categories).
        reference: the reference values; nulls are ignored.
        current: the current values; nulls are ignored.

    Returns:
        The distribution, or None when either side has no values (PSI is NaN then too).
    """
    if kind == "numeric":
        ref, cur = _numeric_values(reference), _numeric_values(current)
        if len(ref) == 0 or len(cur) == 0:
            return None
        inner, ref_shares, cur_shares = _numeric_bins(ref, cur, _BINS)
        return Distribution(name, "numeric", _bin_labels(inner), _floats(ref_shares), _floats(cur_shares))
    ref_values, cur_values = _categorical_values(reference), _categorical_values(current)
    if len(ref_values) == 0 or len(cur_values) == 0:
        return None
    categories, ref_counts, cur_counts = _categories_and_counts(ref_values, cur_values)
    return Distribution(
        name,
        "categorical",
        tuple(categories),
        _floats(ref_counts / ref_counts.sum()),
        _floats(cur_counts / cur_counts.sum()),
    )


def _floats(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(value) for value in values)


def _bin_labels(inner: np.ndarray) -> tuple[str, ...]:
    """Labels of the bins [edge_i, edge_i+1) around the inner edges; the outer bins are open."""
    edges = [f"{edge:.4g}" for edge in inner]
    if not edges:
        return ("all values",)  # a constant reference: one bin
    middle = [f"[{low}, {high})" for low, high in zip(edges, edges[1:], strict=False)]
    return (f"< {edges[0]}", *middle, f">= {edges[-1]}")


def psi_with_bins(kind: str, reference: Any, current: Any) -> tuple[float, int]:
    """The PSI of one column and how many bins (or categories) it compared, for its noise level.

    Args:
        kind: "numeric" (the reference's decile bins), or anything else for categorical.
        reference: the reference values; nulls are ignored.
        current: the current values; nulls are ignored.

    Returns:
        (PSI, bins), or (NaN, 0) when either side has no values.
    """
    compared = distribution("column", kind, reference, current)
    if compared is None:
        return float("nan"), 0
    return _psi(np.asarray(compared.reference), np.asarray(compared.current)), len(compared.labels)
