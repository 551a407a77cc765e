"""The model: an estimator from configuration, fitted on the spec's features, and its metrics.

A :class:`TrainedModel` is what ``model.joblib`` holds: the fitted scikit-learn pipeline (the
preprocessing ships inside it), the dataset spec it was trained under and the classes it
predicts. It scores raw rows into the spec's prediction columns by itself, so batch scoring,
the endpoint, the gate, the monitor and a cloud container all score the same way.

This module is part of the code bundle that runs in a cloud container.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.ml.dataset import TASK_METRICS, DatasetSpec, canonical_values, spec_from_json
from core.ml.features import build_features, record_features
from core.ml.forest import MAX_ROWS, FlatForest


class ModelConfigError(ValueError):
    """The estimator or its parameters are wrong; the message says what to fix."""


class LabelError(ValueError):
    """The labels cannot train or evaluate a model of the spec's task (e.g. a single class)."""


def default_estimator(task: str) -> str:
    """HistGradientBoosting for the task: a strong default that handles NaN natively."""
    kind = "Regressor" if task == "regression" else "Classifier"
    return f"sklearn.ensemble.HistGradientBoosting{kind}"


def make_estimator(path: str, params: Mapping[str, Any], task: str) -> Any:
    """Import the estimator class and instantiate it with its parameters.

    Args:
        path: an import path like ``sklearn.ensemble.RandomForestClassifier``.
        params: keyword arguments of the class (checked with ``set_params``).
        task: the dataset's task; a classifier for a regression task (or the reverse) is refused.

    Raises:
        ModelConfigError: the class cannot be imported, takes no such parameter, or does not
            fit the task.
    """
    module_name, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise ModelConfigError(f"[model] estimator {path!r} cannot be imported: {error}") from None
    try:
        estimator = cls()
        estimator.set_params(**dict(params))
    except (TypeError, ValueError) as error:
        raise ModelConfigError(f"[model] params do not fit {path}: {error}") from None
    kind = getattr(estimator, "_estimator_type", None)
    if kind is None and hasattr(estimator, "__sklearn_tags__"):
        kind = getattr(estimator.__sklearn_tags__(), "estimator_type", None)
    if task == "regression" and kind == "classifier":
        raise ModelConfigError(
            f"[model] estimator {path} is a classifier but the dataset's task is regression"
        )
    if task != "regression" and kind == "regressor":
        raise ModelConfigError(f"[model] estimator {path} is a regressor but the dataset's task is {task}")
    if task != "regression" and not hasattr(estimator, "predict_proba"):
        raise ModelConfigError(f"[model] estimator {path} has no predict_proba: the gate needs probabilities")
    return estimator


def make_pipeline(features: pd.DataFrame, estimator: Any) -> Any:
    """The unfitted pipeline: one-hot text columns, numeric columns as they are, the estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    numeric = [c for c in features.columns if pd.api.types.is_float_dtype(features[c].dtype)]
    text = [c for c in features.columns if c not in numeric]
    # handle_unknown="ignore": a category never seen in training scores as all-zero instead of
    # failing a 5-million-row batch; dense output because many estimators take no sparse input.
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64)
    # a group with no column is left out: an empty encoder is never fitted and breaks
    # get_feature_names_out (a dataset of numeric features only)
    groups = [("categorical", encoder, text), ("numeric", "passthrough", numeric)]
    preprocess = ColumnTransformer([group for group in groups if group[2]], remainder="drop")
    return Pipeline([("preprocess", preprocess), ("classifier", estimator)])


def labels_of(frame: pd.DataFrame, spec: DatasetSpec) -> pd.Series:
    """The label column as the task reads it: canonical text for classes, float for regression.

    Missing labels (outcomes not known yet) are NaN / None.

    Raises:
        LabelError: the label column is missing, or a regression label holds text.
    """
    if spec.label not in frame.columns:
        raise LabelError(f"the data has no label column {spec.label!r}")
    values = frame[spec.label]
    if spec.task == "regression":
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna() & values.notna()
        if bad.any():
            raise LabelError(f"the regression label {spec.label!r} holds text, e.g. {values[bad].iloc[0]!r}")
        return numbers.astype(np.float64)
    return canonical_values(values)


class TrainedModel:
    """A fitted pipeline with the spec it was trained under and the classes it predicts.

    Attributes:
        pipeline: the fitted scikit-learn Pipeline (preprocessing + estimator).
        spec_json: the dataset spec, as JSON.
        classes: classification: the class names in the order of ``predict_proba``'s columns
            (binary: ``[negative, positive]``); regression: empty.
        baseline: the trivial model of the same training rows, which the gate asks a model to
            beat: classification: each class's share of the rows (the class prior, in the order
            of ``classes``); regression: ``[the label's mean]``. None for a model saved before
            baselines were kept.
    """

    def __init__(
        self,
        pipeline: Any,
        spec: DatasetSpec,
        classes: Sequence[str],
        baseline: Sequence[float] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.spec_json = spec.to_json()
        self.classes = list(classes)
        self.baseline = None if baseline is None else [float(v) for v in baseline]
        self._spec: DatasetSpec | None = spec
        self._prepare_nothing()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "spec_json": self.spec_json,
            "classes": self.classes,
            "baseline": self.baseline,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"baseline": None, **state})  # older artifacts have no baseline
        self._spec = None
        self._prepare_nothing()

    def _prepare_nothing(self) -> None:
        # what prepare() builds from the fitted pipeline on first use; never pickled
        self._prepared = False
        self._plan: MatrixPlan | None = None
        self._forest: FlatForest | None = None

    @property
    def spec(self) -> DatasetSpec:
        """The dataset spec the model was trained under."""
        if self._spec is None:
            self._spec = spec_from_json(self.spec_json)
        return self._spec

    @property
    def task(self) -> str:
        """binary, multiclass or regression."""
        return self.spec.task

    # ------------------------------------------------------------------ predicting
    def raw_predict(
        self, features: pd.DataFrame | Mapping[str, Any], matrix: np.ndarray | None = None
    ) -> np.ndarray:
        """Probabilities (classification: one column per class) or values, from model features.

        ``matrix`` is ``model_matrix(self.pipeline, features)`` when the caller has it already.
        """
        if not self._prepared:
            self.prepare()
        if matrix is None and self._plan is not None:
            matrix = self._plan.apply(features)
        if matrix is not None and self._forest is not None and len(matrix) <= MAX_ROWS:
            # a few rows (the online endpoint's requests): all trees at once, bit for bit the same
            return self._forest.predict(matrix)
        if self.task == "regression":
            if matrix is None:
                return np.asarray(self.pipeline.predict(_frame(features)), dtype=np.float64)
            return np.asarray(self.pipeline[-1].predict(matrix), dtype=np.float64)
        if matrix is None:
            return np.asarray(self.pipeline.predict_proba(_frame(features)), dtype=np.float64)
        return np.asarray(self.pipeline[-1].predict_proba(matrix), dtype=np.float64)

    def prepare(self) -> None:
        """Build what fast predictions use, once: the matrix plan and the flat forest.

        The first prediction calls it; the endpoint calls it when it loads a model, so no
        request pays for it.
        """
        if not self._prepared:
            self._plan = matrix_plan(self.pipeline)
            self._forest = FlatForest.of(self.pipeline[-1])
            self._prepared = True

    def predict_raw_rows(self, raw: pd.DataFrame) -> np.ndarray:
        """``raw_predict`` of raw rows (the spec's columns)."""
        return self.raw_predict(build_features(raw, self.spec))

    def predict_records(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """``raw_predict`` of request rows (dicts), without pandas when the spec allows it."""
        features = record_features(rows, self.spec)
        if features is None:
            return self.predict_raw_rows(pd.DataFrame(list(rows)))
        return self.raw_predict(features)

    def answer(self, raw: np.ndarray) -> list[Any]:
        """One prediction per row as the endpoint answers it.

        binary: the positive class's probability; multiclass: the predicted class; regression:
        the value.
        """
        # numpy types tolist() as Any: a 1-D array gives a list of Python floats
        answers: list[Any]
        if self.task == "binary":
            answers = raw[:, 1].tolist()
        elif self.task == "multiclass":
            answers = [self.classes[i] for i in raw.argmax(axis=1)]
        else:
            answers = raw.tolist()
        return answers

    def prediction_columns(self, raw: np.ndarray) -> dict[str, Any]:
        """The spec's prediction columns (see ``DatasetSpec.prediction_columns``) of ``raw_predict``."""
        spec = self.spec
        p = spec.prediction_prefix
        if self.task == "regression":
            return {f"{p}_prediction": raw}
        index = raw.argmax(axis=1)
        names = np.asarray(self.classes, dtype=object)[index]
        if self.task == "binary":
            return {f"{p}_probability": raw[:, 1], f"{p}_class": names}
        probabilities = [
            json.dumps({c: round(float(v), 6) for c, v in zip(self.classes, row, strict=True)}) for row in raw
        ]
        return {
            f"{p}_class": names,
            f"{p}_probability": raw[np.arange(len(raw)), index],
            f"{p}_probabilities": np.asarray(probabilities, dtype=object),
        }

    def predict_frame(self, raw: pd.DataFrame) -> pd.DataFrame:
        """The spec's prediction columns for raw rows, on their index."""
        if len(raw) == 0:
            columns = self.spec.prediction_columns()
            return pd.DataFrame(
                {c: pd.Series(dtype="float64" if t == "float" else "str") for c, t in columns.items()}
            )
        return pd.DataFrame(self.prediction_columns(self.predict_raw_rows(raw)), index=raw.index)

    # ------------------------------------------------------------------ metrics
    def metrics(self, frame: pd.DataFrame) -> dict[str, Any]:
        """The task's metrics on the labelled rows of ``frame`` (see :func:`task_metrics`)."""
        labels = labels_of(frame, self.spec)
        known = labels.notna().to_numpy()
        if not known.any():
            return task_metrics(
                self.task, labels[known], np.empty((0, max(len(self.classes), 1))), self.classes
            )
        return task_metrics(self.task, labels[known], self.predict_raw_rows(frame.loc[known]), self.classes)

    def baseline_metrics(self, frame: pd.DataFrame) -> dict[str, Any] | None:
        """The task's metrics of :attr:`baseline` on the labelled rows of ``frame``, or None.

        The baseline predicts the same for every row: the class prior (ROC AUC 0.5, the prior's
        log loss) or the training mean (its RMSE and MAE). None when the model kept no baseline.
        """
        if self.baseline is None:
            return None
        labels = labels_of(frame, self.spec)
        known = labels.notna().to_numpy()
        n = int(known.sum())
        constant = np.asarray(self.baseline, dtype=np.float64)
        raw = np.tile(constant, (n, 1)) if self.spec.is_classification else np.full(n, constant[0])
        return task_metrics(self.task, labels[known], raw, self.classes)


def model_matrix(model: Any, features: Mapping[str, Any]) -> np.ndarray | None:
    """The fitted preprocessing of ``modeling.make_pipeline`` applied with numpy, or None.

    See :func:`matrix_plan`; None when the model is not of that shape.
    """
    plan = matrix_plan(model)
    return None if plan is None else plan.apply(features)


class MatrixPlan:
    """What the fitted preprocessing does to each feature column, read once from the model.

    sklearn checks its input column by column on every call (``check_array``, narwhals): on the
    online endpoint's one-row requests that took most of the time of a prediction (profiled with
    pyinstrument). The fitted one-hot categories and the column order are read from the model, so
    the matrix is the one ``ColumnTransformer.transform`` builds (``test_scoring`` checks they are
    equal).

    Attributes:
        blocks: in output order, ``(column, None)`` for a column passed through as float64 and
            ``(column, categories)`` for a one-hot encoded one.
    """

    def __init__(self, blocks: list[tuple[str, np.ndarray | None]]) -> None:
        self.blocks = blocks

    def apply(self, features: Mapping[str, Any]) -> np.ndarray:
        """The model matrix of the model-input columns ``features``."""
        parts = []
        for column, categories in self.blocks:
            if categories is None:
                parts.append(np.asarray(features[column], dtype=np.float64).reshape(-1, 1))
            else:
                values = np.asarray(features[column], dtype=object)
                # an unseen or missing value matches no category: all zeros (handle_unknown="ignore")
                parts.append((values[:, None] == categories[None, :]).astype(np.float64))
        return np.hstack(parts)


def matrix_plan(model: Any) -> MatrixPlan | None:
    """The :class:`MatrixPlan` of a fitted ``make_pipeline`` pipeline; None for any other shape.

    A model of another shape is scored by sklearn itself.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    if not (isinstance(model, Pipeline) and len(model.steps) == 2):
        return None
    preprocess = model[0]
    if not isinstance(preprocess, ColumnTransformer) or getattr(preprocess, "sparse_output_", True):
        return None
    blocks: list[tuple[str, np.ndarray | None]] = []
    for _, transformer, columns in preprocess.transformers_:
        # a transformer with no columns (a spec without categorical, or without numeric features)
        # is left unfitted by ColumnTransformer and adds no output column: skip it
        if (isinstance(transformer, str) and transformer == "drop") or len(columns) == 0:
            continue
        # a fitted "passthrough" is an identity FunctionTransformer
        if transformer == "passthrough" or (
            isinstance(transformer, FunctionTransformer) and transformer.func is None
        ):
            blocks.extend((column, None) for column in columns)
        elif _plain_one_hot(transformer, OneHotEncoder):
            blocks.extend(zip(columns, transformer.categories_, strict=True))
        else:
            return None
    return MatrixPlan(blocks) if blocks else None


def _plain_one_hot(transformer: Any, one_hot: type[Any]) -> bool:
    """A dense one-hot encoder without dropped, infrequent or missing-value categories."""
    return (
        isinstance(transformer, one_hot)
        and transformer.drop is None
        and transformer.handle_unknown == "ignore"
        and getattr(transformer, "_infrequent_enabled", False) is False
        and not transformer.sparse_output
        and all(
            categories.dtype == object and all(isinstance(value, str) for value in categories)
            for categories in transformer.categories_
        )
    )


def _frame(features: pd.DataFrame | Mapping[str, Any]) -> pd.DataFrame:
    return features if isinstance(features, pd.DataFrame) else pd.DataFrame(dict(features))


def task_metrics(task: str, labels: pd.Series, raw: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """The metrics of a task from known labels and ``TrainedModel.raw_predict`` output.

    binary: ``roc_auc``, ``average_precision`` (PR AUC), ``log_loss``; multiclass: ``log_loss``,
    ``macro_f1``, ``accuracy``; regression: ``rmse``, ``mae``, ``r2``. A metric that is undefined
    (no rows; one class for ROC AUC) is None, so the result is JSON-safe. ``n`` counts the rows;
    for multiclass ``n_unseen_class`` counts labels the model never saw in training (they count
    as wrong for accuracy and F1, and with probability 0 - clipped to 1e-15 - in the log loss).
    """
    from sklearn import metrics as m

    result: dict[str, Any] = dict.fromkeys(TASK_METRICS[task])
    result["n"] = int(len(labels))
    if len(labels) == 0:
        return result
    if task == "regression":
        y = labels.to_numpy(dtype=np.float64)
        result["rmse"] = float(np.sqrt(np.mean((y - raw) ** 2)))
        result["mae"] = float(np.mean(np.abs(y - raw)))
        result["r2"] = float(m.r2_score(y, raw)) if len(y) > 1 and np.var(y) > 0 else None
        return result
    y = labels.to_numpy(dtype=object)
    if task == "binary":
        positive = classes[1]
        truth = (y == positive).astype(np.int64)
        p = raw[:, 1]
        result["log_loss"] = float(m.log_loss(truth, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1]))
        if len(np.unique(truth)) == 2:
            result["roc_auc"] = _finite(m.roc_auc_score(truth, p))
            result["average_precision"] = _finite(m.average_precision_score(truth, p))
        return result
    known = np.isin(y, list(classes))
    result["n_unseen_class"] = int((~known).sum())
    predicted = np.asarray(classes, dtype=object)[raw.argmax(axis=1)]
    result["accuracy"] = float(np.mean(predicted == y))
    labels_seen = sorted(set(y.tolist()) | set(classes))
    result["macro_f1"] = float(m.f1_score(y, predicted, labels=labels_seen, average="macro", zero_division=0))
    # Every row counts in the log loss: a row of a class the model never saw has probability 0
    # for its class, clipped to 1e-15 like the others (~34.5). Leaving those rows out made a
    # champion that cannot predict a class score better than a challenger that can, so the gate
    # kept it, and the monitor saw no concept drift while it got a whole class wrong.
    probabilities = np.clip(raw, 1e-15, 1.0)
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    column = {c: i for i, c in enumerate(classes)}
    truth = np.array([probabilities[row, column[c]] if c in column else 0.0 for row, c in enumerate(y)])
    result["log_loss"] = float(-np.mean(np.log(np.clip(truth, 1e-15, 1.0))))
    return result


def _finite(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def fit(
    train: pd.DataFrame, spec: DatasetSpec, estimator: str, params: Mapping[str, Any], n_jobs: int = 1
) -> TrainedModel:
    """Fit a model on raw training rows; rows with a missing label are left out.

    Args:
        train: raw rows (the spec's features and label).
        spec: the dataset spec.
        estimator: the estimator's import path.
        params: its parameters.
        n_jobs: threads for OpenMP/BLAS; ``<= 0`` means all cores.

    Returns:
        The fitted model.

    Raises:
        LabelError: no labelled rows; a single class; a binary label with more than two values.
        ModelConfigError: a bad estimator or parameter.
    """
    from threadpoolctl import threadpool_limits

    labels = labels_of(train, spec)
    known = labels.notna().to_numpy()
    rows, y = train.loc[known], labels[known]
    if len(y) == 0:
        raise LabelError(
            f"the training data has no row with a label ({spec.label!r} is empty in all {len(train)})"
        )
    classes: list[str] = []
    target: Any = y.to_numpy()
    if spec.is_classification:
        seen = sorted(set(y.tolist()))
        if len(seen) < 2:
            raise LabelError(
                f"the label {spec.label!r} is {seen[0]!r} in every labelled training row: a classifier "
                "needs at least two classes in the training window (widen [training] window_weeks or wait "
                "for labels)"
            )
        if spec.task == "binary":
            if len(seen) > 2:
                raise LabelError(
                    f"the binary label {spec.label!r} has {len(seen)} values in the training data "
                    f'({seen[:6]}); set task = "multiclass" or fix the labels'
                )
            if spec.positive_class not in seen:
                raise LabelError(
                    f"the positive class {spec.positive_class!r} never occurs in the label {spec.label!r} "
                    f"(its values: {seen}): fix [dataset] positive_class"
                )
            negative = next(c for c in seen if c != spec.positive_class)
            classes = [negative, str(spec.positive_class)]
            target = (y.to_numpy() == spec.positive_class).astype(np.int64)
        else:
            classes = seen
            target = y.to_numpy().astype(str)
    features = build_features(rows, spec)
    pipeline = make_pipeline(features, make_estimator(estimator, params, spec.task))
    limit = None if n_jobs is None or n_jobs <= 0 else n_jobs
    with threadpool_limits(limits=limit):
        pipeline.fit(features, target)
    if spec.task == "multiclass":
        classes = [str(c) for c in pipeline[-1].classes_]
    return TrainedModel(pipeline, spec, classes, _baseline(spec.task, target, classes))


def _baseline(task: str, target: Any, classes: Sequence[str]) -> list[float]:
    """The trivial model of the training targets: each class's share, or the mean (regression)."""
    values = np.asarray(target)
    if task == "regression":
        return [float(np.mean(values.astype(np.float64)))]
    if task == "binary":  # the target is 1 for the positive class, classes[1]
        positive = float(np.mean(values == 1))
        return [1.0 - positive, positive]
    return [float(np.mean(values == c)) for c in classes]


def early_stopping_params(estimator: Any, params: Mapping[str, Any], enabled: bool) -> dict[str, Any]:
    """The estimator's parameters with early stopping switched on or off, where it has it.

    scikit-learn's estimators with an ``early_stopping`` parameter (HistGradientBoosting*,
    MLP*, SGD*) set aside ``validation_fraction`` of the rows they are fitted on - a split of
    the training window, as the gate's holdout never reaches ``fit`` - and stop once
    ``n_iter_no_change`` rounds bring no improvement there; GradientBoosting* does the same
    when ``n_iter_no_change`` is set. HistGradientBoosting's own default ("auto") depends on
    the row count, so "off" is written out. A parameter given in ``params`` wins. When early
    stopping is on, an unset ``random_state`` is fixed at 0: the split, and so the model, is
    the same on every run.

    Args:
        estimator: an unfitted estimator (from :func:`make_estimator`).
        params: its parameters from the settings.
        enabled: ``[training] early_stopping``.

    Returns:
        The parameters to train with (``params`` unchanged for an estimator without it).
    """
    names = set(estimator.get_params(deep=False))
    result = dict(params)
    if "early_stopping" in names:
        result.setdefault("early_stopping", enabled)
    elif {"n_iter_no_change", "validation_fraction"} <= names and enabled:
        result.setdefault("n_iter_no_change", 10)
    stops = result.get("early_stopping", result.get("n_iter_no_change")) not in (None, False)
    if stops and "random_state" in names:
        result.setdefault("random_state", 0)
    return result


def fitted_rounds(model: TrainedModel) -> int | None:
    """The boosting rounds (or epochs) the fitted estimator used, or None if it has no such count.

    With early stopping this is where it stopped, at most the configured maximum.
    """
    estimator = model.pipeline[-1]
    for name in ("n_estimators_", "n_iter_"):  # GradientBoosting*; HistGradientBoosting*, MLP*, SGD*
        value = getattr(estimator, name, None)
        if isinstance(value, int | np.integer):
            return int(value)
    return None
