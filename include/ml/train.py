"""Training entry point: fit the churn model, evaluate it and write the model directory.

Runs the same way locally and in a cloud scikit-learn container (SageMaker script mode)::

    python include/ml/train.py --train TRAIN.parquet --validation VALIDATION.parquet
        --model-dir DIR [--hyperparameters '{"learning_rate": 0.1}'] [--n-jobs N]

When a flag is absent the SageMaker environment variables are used instead: ``SM_CHANNEL_TRAIN`` and
``SM_CHANNEL_VALIDATION`` (directories holding Parquet files), ``SM_MODEL_DIR`` and ``SM_HPS`` (JSON).
SageMaker also passes each hyperparameter as ``--name value``; those flags are accepted too.

Inside a container only this file, ``features.py`` and ``schema.py`` are present (no ``include``
package), hence the import fallbacks below. Keep this file free of other project imports.

Outputs in the model directory: ``model.joblib`` (the fitted sklearn Pipeline; it expects the frame
made by ``build_features``), ``metrics.json`` and ``feature_names.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from threadpoolctl import threadpool_limits

try:
    from include.ml.features import CATEGORICAL_MODEL_FEATURES, NUMERIC_MODEL_FEATURES, build_features
    from include.ml.schema import LABEL_COLUMN
except ImportError:  # run as a script: this file's directory is on sys.path, the package is not
    from features import (  # type: ignore[no-redef]
        CATEGORICAL_MODEL_FEATURES,
        NUMERIC_MODEL_FEATURES,
        build_features,
    )
    from schema import LABEL_COLUMN  # type: ignore[no-redef]

DEFAULT_HYPERPARAMETERS: dict[str, Any] = {"learning_rate": 0.1, "max_iter": 200, "max_leaf_nodes": 31}
# Each known hyperparameter and the type it is coerced to: SageMaker hands hyperparameters over as
# strings, so "0.05" must become 0.05.
_HYPERPARAMETER_TYPES: dict[str, type] = {"learning_rate": float, "max_iter": int, "max_leaf_nodes": int}


def _log(message: str) -> None:
    # flush: progress must show up live in container logs and Airflow task logs.
    print(f"[train] {message}", flush=True)


def resolve_hyperparameters(*sources: dict[str, Any] | None) -> dict[str, Any]:
    """Merge hyperparameter dicts over the defaults (later sources win) and coerce their types.

    Args:
        *sources: dicts of hyperparameters; ``None`` entries and ``None`` values are skipped.

    Returns:
        ``learning_rate`` (float), ``max_iter`` (int) and ``max_leaf_nodes`` (int).

    Raises:
        ValueError: an unknown key or a value of the wrong type or range.
    """
    merged = dict(DEFAULT_HYPERPARAMETERS)
    for source in sources:
        for key, value in (source or {}).items():
            if value is None:
                continue
            if key not in _HYPERPARAMETER_TYPES:
                known = ", ".join(sorted(_HYPERPARAMETER_TYPES))
                raise ValueError(f"unknown hyperparameter {key!r}: known ones are {known}")
            kind = _HYPERPARAMETER_TYPES[key]
            try:
                # json.loads first so strings like "200" and "0.1" and real numbers all work;
                # int(float(..)) would silently truncate 0.5 iterations, so check integrality.
                number = float(json.loads(value) if isinstance(value, str) else value)
            except (TypeError, ValueError, json.JSONDecodeError):
                raise ValueError(f"hyperparameter {key}={value!r} is not a number") from None
            if kind is int and not number.is_integer():
                raise ValueError(f"hyperparameter {key}={value!r} must be a whole number")
            merged[key] = kind(number)
    if not merged["learning_rate"] > 0:
        raise ValueError(f"learning_rate must be > 0, got {merged['learning_rate']}")
    if merged["max_iter"] < 1:
        raise ValueError(f"max_iter must be >= 1, got {merged['max_iter']}")
    if merged["max_leaf_nodes"] < 2:
        raise ValueError(f"max_leaf_nodes must be >= 2, got {merged['max_leaf_nodes']}")
    return merged


def make_pipeline(hyperparameters: dict[str, Any]) -> Pipeline:
    """Return the unfitted model pipeline: one-hot categoricals, passthrough numerics, HGB classifier.

    Args:
        hyperparameters: ``learning_rate``, ``max_iter``, ``max_leaf_nodes`` (missing ones default).

    Returns:
        The sklearn Pipeline; it takes the frame made by ``build_features``.
    """
    hp = resolve_hyperparameters(hyperparameters)
    preprocess = ColumnTransformer(
        [
            # handle_unknown="ignore": a category never seen in training scores as all-zero instead of
            # failing a 5-million-row batch; dense output because HGB does not take sparse input.
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64),
                list(CATEGORICAL_MODEL_FEATURES),
            ),
            ("numeric", "passthrough", list(NUMERIC_MODEL_FEATURES)),
        ],
        remainder="drop",
    )
    classifier = HistGradientBoostingClassifier(
        learning_rate=hp["learning_rate"],
        max_iter=hp["max_iter"],
        max_leaf_nodes=hp["max_leaf_nodes"],
        # no early stopping: it would hold out a random validation split and make the number of trees
        # depend on it; a fixed max_iter keeps training reproducible.
        early_stopping=False,
        random_state=0,
    )
    return Pipeline([("preprocess", preprocess), ("classifier", classifier)])


def _labelled(df: pd.DataFrame, name: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Drop rows without a label (outcome not known yet) and return (rows, 0/1 labels)."""
    if LABEL_COLUMN not in df.columns:
        raise ValueError(f"{name} data has no label column {LABEL_COLUMN!r}")
    labels = pd.to_numeric(df[LABEL_COLUMN], errors="coerce")
    known = labels.notna().to_numpy()
    dropped = int((~known).sum())
    if dropped:
        _log(f"{name}: dropped {dropped} row(s) with a null label")
    y = labels[known].to_numpy(dtype=np.float64)
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"{name} label {LABEL_COLUMN!r} must be 0 or 1")
    return df.loc[known], y.astype(np.int64)


def fit_model(
    train_df: pd.DataFrame, hyperparameters: dict[str, Any] | None = None, n_jobs: int = 1
) -> Pipeline:
    """Fit the churn pipeline on raw training rows.

    Args:
        train_df: raw rows (``schema.RAW_FEATURES`` plus the label); rows with a null label are dropped.
        hyperparameters: ``learning_rate``, ``max_iter``, ``max_leaf_nodes``; missing ones default.
        n_jobs: number of threads for the gradient boosting (OpenMP); ``<= 0`` means all cores.

    Returns:
        The fitted Pipeline. The same data, hyperparameters and ``n_jobs`` give the same predictions.

    Raises:
        ValueError: no labelled rows, a single class, bad labels or bad hyperparameters.
    """
    rows, y = _labelled(train_df, "train")
    if len(y) == 0:
        raise ValueError("train data has no rows with a label")
    if len(np.unique(y)) < 2:
        raise ValueError("train data holds a single class; need both churned=0 and churned=1 rows")
    pipeline = make_pipeline(hyperparameters or {})
    features = build_features(rows)
    limit = None if n_jobs is None or n_jobs <= 0 else n_jobs
    with threadpool_limits(limits=limit):
        pipeline.fit(features, y)
    return pipeline


def evaluate(pipeline: Pipeline, df: pd.DataFrame, name: str = "validation") -> dict[str, Any]:
    """Score labelled rows and return ROC AUC, average precision, log loss and the row count.

    Metrics that are undefined (no rows, or a single class) are ``None``.
    """
    rows, y = _labelled(df, name)
    result: dict[str, Any] = {"roc_auc": None, "average_precision": None, "log_loss": None, "n": len(y)}
    if len(y) == 0:
        return result
    proba = pipeline.predict_proba(build_features(rows))[:, 1]
    result["log_loss"] = float(log_loss(y, np.clip(proba, 1e-15, 1 - 1e-15), labels=[0, 1]))
    if len(np.unique(y)) == 2:
        result["roc_auc"] = float(roc_auc_score(y, proba))
        result["average_precision"] = float(average_precision_score(y, proba))
    return result


def _parquet_path(value: str, flag: str) -> list[Path]:
    """A Parquet file, or a directory (a SageMaker channel) of Parquet files, as a sorted file list."""
    path = Path(value)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
        if not files:
            raise FileNotFoundError(f"{flag}: directory {path} holds no .parquet file")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"{flag}: {path} does not exist")
    return [path]


def _read_parquet(value: str, flag: str) -> pd.DataFrame:
    files = _parquet_path(value, flag)
    frames = [pd.read_parquet(file) for file in files]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _atomic_write_bytes(path: Path, write: Any) -> None:
    """Write through a temporary file in the same directory, then rename over the target.

    A reader (or a crashed run) never sees a half-written model or metrics file.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600 files; artifacts must be readable by the scoring/serving processes.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_json(path: Path, payload: Any) -> None:
    text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    _atomic_write_bytes(path, lambda handle: handle.write(text.encode("utf-8")))


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train the churn model.")
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN"), help="Parquet file or dir")
    parser.add_argument(
        "--validation", default=os.environ.get("SM_CHANNEL_VALIDATION"), help="Parquet file or dir"
    )
    parser.add_argument(
        "--model-dir", "--model_dir", dest="model_dir", default=os.environ.get("SM_MODEL_DIR")
    )
    parser.add_argument("--hyperparameters", default=None, help="JSON object of hyperparameters")
    parser.add_argument("--n-jobs", "--n_jobs", dest="n_jobs", type=int, default=1, help="<= 0: all cores")
    # SageMaker script mode passes each hyperparameter as its own flag.
    for name in _HYPERPARAMETER_TYPES:
        parser.add_argument(f"--{name}", f"--{name.replace('_', '-')}", dest=name, default=None)
    args = parser.parse_args(argv)
    required = (
        ("--train", args.train, "SM_CHANNEL_TRAIN"),
        ("--validation", args.validation, "SM_CHANNEL_VALIDATION"),
        ("--model-dir", args.model_dir, "SM_MODEL_DIR"),
    )
    for flag, value, env in required:
        if not value:
            parser.error(f"{flag} is required (or set the environment variable {env})")
    return args


def _json_object(text: str | None, source: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{source} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{source} must be a JSON object, got {type(value).__name__}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run training from command-line flags and/or SageMaker environment variables.

    Args:
        argv: the arguments without the program name; ``None`` means ``sys.argv[1:]``.

    Returns:
        The process exit code: 0 on success, 1 on bad input (the reason is printed to stderr).
    """
    args = _parse_args(argv)
    try:
        hyperparameters = resolve_hyperparameters(
            _json_object(os.environ.get("SM_HPS"), "SM_HPS"),
            _json_object(args.hyperparameters, "--hyperparameters"),
            {name: getattr(args, name) for name in _HYPERPARAMETER_TYPES},
        )
        train_df = _read_parquet(args.train, "--train")
        validation_df = _read_parquet(args.validation, "--validation")
    except (ValueError, FileNotFoundError) as error:
        print(f"[train] error: {error}", file=sys.stderr, flush=True)
        return 1
    _log(f"loaded {len(train_df)} training rows from {args.train}")
    _log(f"loaded {len(validation_df)} validation rows from {args.validation}")
    _log(f"hyperparameters: {json.dumps(hyperparameters, sort_keys=True)}, n_jobs={args.n_jobs}")

    _log("training started")
    started = time.perf_counter()
    try:
        pipeline = fit_model(train_df, hyperparameters, args.n_jobs)
    except ValueError as error:
        print(f"[train] error: {error}", file=sys.stderr, flush=True)
        return 1
    train_seconds = time.perf_counter() - started
    _log(f"training finished in {train_seconds:.2f} s")

    try:
        validation = evaluate(pipeline, validation_df)
    except ValueError as error:
        print(f"[train] error: {error}", file=sys.stderr, flush=True)
        return 1
    n_train = int(pd.to_numeric(train_df[LABEL_COLUMN], errors="coerce").notna().sum())
    metrics = {
        "validation_roc_auc": validation["roc_auc"],
        "validation_average_precision": validation["average_precision"],
        "validation_log_loss": validation["log_loss"],
        "n_train": n_train,
        "n_validation": validation["n"],
        "train_seconds": round(train_seconds, 3),
    }
    _log("metrics: " + json.dumps(metrics, sort_keys=True))

    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(model_dir / "model.joblib", lambda handle: joblib.dump(pipeline, handle))
    _write_json(model_dir / "metrics.json", metrics)
    _write_json(
        model_dir / "feature_names.json",
        {
            "numeric": list(NUMERIC_MODEL_FEATURES),
            "categorical": list(CATEGORICAL_MODEL_FEATURES),
            "transformed": [str(name) for name in pipeline[:-1].get_feature_names_out()],
        },
    )
    _log(f"wrote model.joblib, metrics.json and feature_names.json to {model_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
