"""A fitted HistGradientBoosting ensemble flattened into arrays, walked for all trees at once.

scikit-learn predicts a HistGradientBoosting model tree by tree: a Python loop over the trees
that calls compiled code once per tree. For a few rows that loop is the cost: ~12 us per tree,
2.3 ms for the default 200 trees of a one-row request on the development machine, where the
trees' own work is a few comparisons. :class:`FlatForest` puts the nodes of every tree in one
set of arrays and moves every (row, tree) pair one level down per step with a handful of numpy
operations, so a one-row call costs ~depth x a few microseconds instead.

The result is bit for bit scikit-learn's: the same comparisons (``x <= threshold``, NaN to the
side the node learned), and the leaf values summed onto the baseline in the same order
(``cumsum`` is sequential), then the estimator's own link function. Large batches stay with
scikit-learn, which walks each row in compiled code (:data:`MAX_ROWS`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: above this many rows, scikit-learn's per-tree loop costs less than the arrays' size
MAX_ROWS = 32


class FlatForest:
    """The trees of one fitted ``HistGradientBoostingClassifier`` or ``...Regressor``.

    Build it with :meth:`of`, which returns None for what it does not cover (another
    estimator, native categorical splits), so callers keep scikit-learn for those.
    """

    def __init__(self, estimator: Any, nodes: list[np.ndarray]) -> None:
        offsets = np.cumsum([0] + [len(tree) for tree in nodes[:-1]])
        flat = np.concatenate(nodes)
        index = np.arange(len(flat))
        leaf = flat["is_leaf"].astype(bool)
        left = flat["left"].astype(np.intp) + np.repeat(offsets, [len(t) for t in nodes])
        right = flat["right"].astype(np.intp) + np.repeat(offsets, [len(t) for t in nodes])
        # a leaf points at itself both ways: rows that reached it stay there for the other steps
        left[leaf], right[leaf] = index[leaf], index[leaf]
        self._feature = np.where(leaf, 0, flat["feature_idx"]).astype(np.intp)
        self._threshold = np.where(leaf, np.inf, flat["num_threshold"])
        self._missing_left = flat["missing_go_to_left"].astype(bool)
        # children[2 * node + went_left]: one lookup per step
        self._children = np.column_stack([right, left]).ravel()
        self._value = flat["value"].astype(np.float64)
        self._roots = offsets.astype(np.intp)
        self._steps = int(flat["depth"].max())
        self._per_iteration = int(estimator.n_trees_per_iteration_)
        self._n_features = int(estimator.n_features_in_)
        self._baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64).reshape(-1)
        self._loss = estimator._loss
        self._classifier = hasattr(estimator, "classes_")

    @classmethod
    def of(cls, estimator: Any) -> FlatForest | None:
        """The flat forest of a fitted estimator, or None when it is not one this covers."""
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        if type(estimator) not in (HistGradientBoostingClassifier, HistGradientBoostingRegressor):
            return None
        predictors = getattr(estimator, "_predictors", None)
        categorical = getattr(estimator, "is_categorical_", None)
        if not predictors or (categorical is not None and np.any(categorical)):
            return None
        return cls(estimator, [predictor.nodes for iteration in predictors for predictor in iteration])

    def raw(self, matrix: np.ndarray) -> np.ndarray:
        """The summed leaf values plus the baseline, shape (rows, trees per iteration)."""
        rows = matrix.shape[0]
        data = np.ascontiguousarray(matrix, dtype=np.float64).ravel()
        row_start = (np.arange(rows, dtype=np.intp) * self._n_features)[:, None]
        node = np.broadcast_to(self._roots, (rows, len(self._roots))).copy()
        has_missing = bool(np.isnan(data).any())
        for _ in range(self._steps):
            value = data.take(row_start + self._feature.take(node))
            went_left = value <= self._threshold.take(node)
            if has_missing:
                went_left |= np.isnan(value) & self._missing_left.take(node)
            node = self._children.take(2 * node + went_left)
        leaves = self._value.take(node).reshape(rows, -1, self._per_iteration)
        # scikit-learn adds each iteration's leaf onto the baseline in turn: cumsum does the same
        # additions in the same order (a plain sum would pair them differently)
        start = np.broadcast_to(self._baseline, (rows, 1, self._per_iteration))
        return np.concatenate([start, leaves], axis=1).cumsum(axis=1)[:, -1, :]

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """``predict_proba`` of a classifier, ``predict`` of a regressor."""
        if matrix.ndim != 2 or matrix.shape[1] != self._n_features:
            raise ValueError(f"expected {self._n_features} model columns, got shape {matrix.shape}")
        raw = self.raw(matrix)
        if self._classifier:
            return np.asarray(self._loss.predict_proba(raw), dtype=np.float64)
        return np.asarray(self._loss.link.inverse(raw.ravel()), dtype=np.float64)
