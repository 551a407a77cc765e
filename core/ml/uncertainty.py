"""How sure a drift decision is: PSI's sampling noise and a bootstrap interval of a metric.

A threshold alone cannot tell a real change from the noise of a small week: two samples of one
distribution differ, and the fewer their rows the more. These functions give each drift
statistic the size its noise has at the week's row counts, so a finding needs both an effect
over the threshold and an effect beyond what chance makes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

# Bootstrap weights are made in chunks of resamples holding at most this many cells: memory stays
# bounded (~32 MB) however many labelled rows a week has.
_CHUNK_CELLS = 4_000_000
_EPS = 1e-15

Floats = npt.NDArray[np.float64]


def psi_noise(n_reference: int, n_current: int, n_bins: int, confidence: float, n_tests: int = 1) -> float:
    """The PSI two samples of one distribution stay under, with this confidence, at these sizes.

    PSI is the symmetric (Jeffreys) divergence of the two sides' bin shares; for two samples of
    ``m`` and ``n`` rows drawn from one distribution over ``k`` bins it is distributed about as
    ``(1/m + 1/n) * chi2(k - 1)`` (B. Yurdakul, "Statistical properties of the population
    stability index", 2018; checked by simulation for 142 to 20,000 rows in the tests). Its
    expected value is ``(k - 1) * (1/m + 1/n)``: 0.063 for 142 rows against a large
    reference over 10 bins, 0.0002 for 50,000.

    Args:
        n_reference: the reference's rows with a value.
        n_current: the current week's rows with a value.
        n_bins: the bins (or categories) PSI compared.
        confidence: the share of clean samples whose PSI stays under the level (e.g. 0.95).
        n_tests: how many features are judged together: the level is Bonferroni-corrected so
            that a clean week has no feature over its level with this confidence.

    Returns:
        The noise level (0.0 with fewer than 2 bins: PSI is 0 then; NaN without rows).
    """
    if n_reference < 1 or n_current < 1:
        return float("nan")
    if n_bins < 2:
        return 0.0
    quantile = 1.0 - (1.0 - confidence) / max(n_tests, 1)
    return float((1.0 / n_reference + 1.0 / n_current) * stats.chi2.ppf(quantile, n_bins - 1))


def metric_interval(
    task: str,
    metric: str,
    labels: pd.Series,
    raw: np.ndarray,
    classes: Sequence[str],
    confidence: float,
    n_resamples: int = 400,
    seed: int = 0,
) -> tuple[float, float] | None:
    """A percentile bootstrap interval of a metric over the rows, with a fixed seed.

    Every resample is a row of weights (how often each row is drawn), and the
    metric is computed for all resamples at once with numpy (a few hundred resamples of a few
    thousand rows take milliseconds). The same inputs always give the same interval.

    Args:
        task: "binary", "multiclass" or "regression".
        metric: one of the task's metrics (``core.ml.dataset.TASK_METRICS``).
        labels: the known labels.
        raw: the model's raw predictions for those rows (``TrainedModel.predict_raw_rows``).
        classes: the model's classes (empty for regression).
        confidence: the interval's coverage (0.95: the 2.5% and 97.5% quantiles).
        n_resamples: bootstrap resamples.
        seed: the random seed.

    Returns:
        (low, high), or None without rows or when the metric is undefined in most resamples.

    Raises:
        ValueError: the metric is not one of the task's.
    """
    n = len(labels)
    if n == 0:
        return None
    per_resample = _weighted_metric_function(task, metric, labels, raw, classes)
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // n)
    values: list[Floats] = []
    done = 0
    while done < n_resamples:
        size = min(chunk, n_resamples - done)
        # each resample draws n rows with replacement; a row's weight is how often it was drawn
        # (counted in one bincount over all resamples: 2-3x faster than rng.multinomial)
        drawn = rng.integers(0, n, size=(size, n)) + np.arange(size)[:, None] * n
        weights = np.bincount(drawn.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)
        values.append(per_resample(weights))
        done += size
    found = np.concatenate(values)
    found = found[np.isfinite(found)]
    if len(found) < n_resamples / 2:
        return None
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(found, [tail, 1.0 - tail])
    return float(low), float(high)


def _weighted_metric_function(
    task: str, metric: str, labels: pd.Series, raw: np.ndarray, classes: Sequence[str]
) -> Any:
    """A function (resamples x rows weights) -> the metric per resample."""
    if task == "regression":
        y = labels.to_numpy(dtype=np.float64)
        predicted = np.asarray(raw, dtype=np.float64).reshape(-1)
        return _regression(metric, y, predicted)
    y = labels.to_numpy(dtype=object)
    if task == "binary":
        truth = (y == classes[1]).astype(np.float64)
        return _binary(metric, truth, np.asarray(raw, dtype=np.float64)[:, 1])
    return _multiclass(metric, y, np.asarray(raw, dtype=np.float64), classes)


def _mean(weights: Floats, per_row: Floats) -> Floats:
    result: Floats = weights @ per_row / weights.sum(axis=1)
    return result


def _regression(metric: str, y: Floats, predicted: Floats) -> Any:
    squared = (y - predicted) ** 2
    if metric == "rmse":
        return lambda w: np.sqrt(_mean(w, squared))
    if metric == "mae":
        return lambda w: _mean(w, np.abs(y - predicted))
    if metric == "r2":

        def r2(w: Floats) -> Floats:
            total = w.sum(axis=1)
            spread = w @ (y**2) - (w @ y) ** 2 / total
            with np.errstate(divide="ignore", invalid="ignore"):
                result: Floats = np.where(spread > 0, 1.0 - (w @ squared) / spread, np.nan)
            return result

        return r2
    raise ValueError(f"metric {metric!r} is not a regression metric (rmse, mae, r2)")


def _binary(metric: str, truth: Floats, p: Floats) -> Any:
    if metric == "log_loss":
        clipped = np.clip(p, _EPS, 1 - _EPS)
        loss = -(truth * np.log(clipped) + (1 - truth) * np.log(1 - clipped))
        return lambda w: _mean(w, loss)
    if metric not in ("roc_auc", "average_precision"):
        raise ValueError(f"metric {metric!r} is not a binary metric (roc_auc, average_precision, log_loss)")
    # rows sorted by score, ties grouped: both metrics only see how much positive and negative
    # weight each distinct score holds
    order = np.argsort(-p if metric == "average_precision" else p, kind="stable")
    scores, positive = p[order], truth[order]
    starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])

    def grouped(w: Floats) -> tuple[Floats, Floats]:
        w = w[:, order]
        return np.add.reduceat(w * positive, starts, axis=1), np.add.reduceat(
            w * (1 - positive), starts, axis=1
        )

    def roc_auc(w: Floats) -> Floats:
        pos, neg = grouped(w)
        below = np.cumsum(neg, axis=1) - neg  # negative weight scored strictly lower
        with np.errstate(divide="ignore", invalid="ignore"):
            result: Floats = (pos * (below + neg / 2)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))
        return result

    def average_precision(w: Floats) -> Floats:
        pos, neg = grouped(w)  # groups by descending score
        true_pos = np.cumsum(pos, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = true_pos / (true_pos + np.cumsum(neg, axis=1))
            result: Floats = np.nansum(pos * precision, axis=1) / pos.sum(axis=1)
        return result

    return roc_auc if metric == "roc_auc" else average_precision


def _multiclass(metric: str, y: npt.NDArray[Any], raw: Floats, classes: Sequence[str]) -> Any:
    predicted = np.asarray(classes, dtype=object)[raw.argmax(axis=1)]
    if metric == "accuracy":
        correct = (predicted == y).astype(np.float64)
        return lambda w: _mean(w, correct)
    if metric == "log_loss":
        # as task_metrics: a class the model never saw has probability 0 (clipped)
        probabilities = np.clip(raw, _EPS, 1.0)
        probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
        column = {c: i for i, c in enumerate(classes)}
        index = np.array([column.get(c, -1) for c in y])
        truth = np.where(index >= 0, probabilities[np.arange(len(y)), np.maximum(index, 0)], 0.0)
        loss = -np.log(np.clip(truth, _EPS, 1.0))
        return lambda w: _mean(w, loss)
    if metric != "macro_f1":
        raise ValueError(f"metric {metric!r} is not a multiclass metric (log_loss, macro_f1, accuracy)")
    labels = sorted(set(y.tolist()) | set(classes))
    hits = [(y == c).astype(np.float64) for c in labels]
    calls = [(predicted == c).astype(np.float64) for c in labels]

    def macro_f1(w: Floats) -> Floats:
        scores = []
        for hit, call in zip(hits, calls, strict=True):
            true_pos = w @ (hit * call)
            wrong = w @ (hit + call) - 2 * true_pos  # false positives + false negatives
            with np.errstate(divide="ignore", invalid="ignore"):
                scores.append(np.where(2 * true_pos + wrong > 0, 2 * true_pos / (2 * true_pos + wrong), 0.0))
        result: Floats = np.mean(scores, axis=0)
        return result

    return macro_f1
