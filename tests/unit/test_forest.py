"""core/ml/forest.py: the flat forest predicts exactly what scikit-learn predicts, for every task."""

import numpy as np
import pytest
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)

from core.ml.forest import MAX_ROWS, FlatForest


def _data(task: str, rows: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Numeric features with missing values in training (so splits learn a side for NaN)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 5))
    signal = x[:, 0] + 0.5 * x[:, 1] * x[:, 2]
    x[rng.random(rows) < 0.15, 1] = np.nan
    x[rng.random(rows) < 0.15, 3] = np.nan
    if task == "regression":
        return x, signal + rng.normal(scale=0.1, size=rows)
    if task == "binary":
        return x, (signal > 0).astype(int)
    return x, np.digitize(signal, [-0.7, 0.0, 0.7])  # 4 classes


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_the_flat_forest_gives_sklearns_predictions_bit_for_bit(task):
    x, y = _data(task)
    kind = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    estimator = kind(max_iter=25, max_leaf_nodes=15, early_stopping=False, random_state=0).fit(x, y)
    forest = FlatForest.of(estimator)
    assert forest is not None
    fresh, _ = _data(task, rows=MAX_ROWS, seed=1)
    fresh[0, :] = np.nan  # a row of nothing but missing values
    fresh[1, 0] = 1e300  # beyond every threshold
    for row, node in ((2, 0), (3, 1)):  # on a split's threshold exactly: it goes left (<=)
        split = estimator._predictors[0][0].nodes[node]
        fresh[row, split["feature_idx"]] = split["num_threshold"]
    expected = estimator.predict(fresh) if task == "regression" else estimator.predict_proba(fresh)
    # exactly equal: the same comparisons, the leaf values added in the same order
    np.testing.assert_array_equal(forest.predict(fresh), expected)
    for row in range(4):  # one row at a time, as the endpoint's lone requests
        np.testing.assert_array_equal(forest.predict(fresh[[row]]), expected[[row]])


def test_what_the_flat_forest_does_not_cover_stays_with_sklearn():
    x, y = _data("binary")
    assert FlatForest.of(RandomForestClassifier(n_estimators=3).fit(x, y)) is None
    categories = np.column_stack([np.arange(len(y)) % 4, x[:, 0]])
    native = HistGradientBoostingClassifier(max_iter=5, categorical_features=[0]).fit(categories, y)
    assert FlatForest.of(native) is None  # native categorical splits use bitsets


def test_a_matrix_of_the_wrong_width_is_refused():
    x, y = _data("binary")
    forest = FlatForest.of(HistGradientBoostingClassifier(max_iter=3).fit(x, y))
    assert forest is not None
    with pytest.raises(ValueError, match="expected 5 model columns"):
        forest.predict(x[:2, :4])
