"""Training entry point: fit the model of the dataset spec, evaluate it, write the model directory.

Runs the same way locally and in a cloud scikit-learn container (SageMaker script mode)::

    python core/ml/train.py --train TRAIN.parquet --validation VALIDATION.parquet
        --model-dir DIR --dataset-spec SPEC.json [--hyperparameters '{"estimator": ..., "max_iter": 200}']
        [--n-jobs N]

When a flag is absent the SageMaker environment variables are used instead: ``SM_CHANNEL_TRAIN`` and
``SM_CHANNEL_VALIDATION`` (directories holding Parquet files), ``SM_MODEL_DIR`` and ``SM_HPS`` (JSON).
SageMaker also passes each hyperparameter as ``--name value``; those flags are accepted too. The
hyperparameters are the estimator's import path (``estimator``) and its parameters.

In a container the code bundle's root is on the path, with the ``core`` package in it; the
dataset spec is the bundle's ``dataset_spec.json`` unless ``--dataset-spec`` names another.

Outputs in the model directory: ``model.joblib`` (a ``modeling.TrainedModel``: the fitted
pipeline, the spec, the classes and the baseline the gate compares with), ``metrics.json``
(with ``n_rounds``, the rounds the estimator used, when it counts them), ``feature_names.json`` and
``dataset_spec.json``.
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
import pandas as pd

from core.ml.dataset import DatasetSpec, DatasetSpecError, spec_from_json
from core.ml.modeling import (
    LabelError,
    ModelConfigError,
    TrainedModel,
    default_estimator,
    fit,
    fitted_rounds,
)

BUNDLED_SPEC = Path(__file__).resolve().parents[2] / "dataset_spec.json"


def _log(message: str) -> None:
    # flush: progress must show up live in container logs and Airflow task logs.
    print(f"[train] {message}", flush=True)


def _decode(value: Any) -> Any:
    """A hyperparameter as the estimator takes it: SageMaker hands them over as strings."""
    if not isinstance(value, str):
        return value
    if value in ("True", "False", "None"):  # a Python literal: the container writes flags with str()
        return {"True": True, "False": False, "None": None}[value]
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value  # a plain string parameter, e.g. loss="squared_error"


def resolve_hyperparameters(spec: DatasetSpec, *sources: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """Merge hyperparameter dicts (later sources win) into the estimator path and its parameters.

    Args:
        spec: the dataset spec (its task picks the default estimator).
        *sources: dicts of hyperparameters; ``None`` entries and ``None`` values are skipped.
            The key ``estimator`` is the import path; every other key is a parameter.

    Returns:
        ``(estimator path, parameters)`` with string values decoded (``"200"`` -> 200).
    """
    merged: dict[str, Any] = {}
    for source in sources:
        for key, value in (source or {}).items():
            if value is not None:
                merged[key] = _decode(value)
    estimator = str(merged.pop("estimator", "") or default_estimator(spec.task))
    return estimator, merged


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


def _parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, dict[str, Any]]:
    parser = argparse.ArgumentParser(description="Train the model of the dataset spec.")
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN"), help="Parquet file or dir")
    parser.add_argument(
        "--validation", default=os.environ.get("SM_CHANNEL_VALIDATION"), help="Parquet file or dir"
    )
    parser.add_argument(
        "--model-dir", "--model_dir", dest="model_dir", default=os.environ.get("SM_MODEL_DIR")
    )
    parser.add_argument("--dataset-spec", "--dataset_spec", dest="dataset_spec", default=None)
    parser.add_argument("--hyperparameters", default=None, help="JSON object of hyperparameters")
    parser.add_argument("--n-jobs", "--n_jobs", dest="n_jobs", type=int, default=1, help="<= 0: all cores")
    args, extra = parser.parse_known_args(argv)
    # SageMaker script mode passes each hyperparameter as its own flag: --name value
    flags: dict[str, Any] = {}
    it = iter(extra)
    for token in it:
        if not token.startswith("--"):
            parser.error(f"unexpected argument {token!r}")
        name, _, value = token[2:].partition("=")
        flags[name.replace("-", "_")] = value if value else next(it, "")
    required = (
        ("--train", args.train, "SM_CHANNEL_TRAIN"),
        ("--validation", args.validation, "SM_CHANNEL_VALIDATION"),
        ("--model-dir", args.model_dir, "SM_MODEL_DIR"),
    )
    for flag, value, env in required:
        if not value:
            parser.error(f"{flag} is required (or set the environment variable {env})")
    return args, flags


def _read_spec(path: str | None) -> DatasetSpec:
    file = Path(path) if path else BUNDLED_SPEC
    if not file.is_file():
        raise FileNotFoundError(f"--dataset-spec: {file} does not exist")
    try:
        return spec_from_json(file.read_text(encoding="utf-8"))
    except (DatasetSpecError, json.JSONDecodeError) as error:
        raise ValueError(f"the dataset spec {file} is invalid: {error}") from None


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
    args, flags = _parse_args(argv)
    try:
        spec = _read_spec(args.dataset_spec)
        estimator, params = resolve_hyperparameters(
            spec,
            _json_object(os.environ.get("SM_HPS"), "SM_HPS"),
            _json_object(args.hyperparameters, "--hyperparameters"),
            flags,
        )
        train_df = _read_parquet(args.train, "--train")
        validation_df = _read_parquet(args.validation, "--validation")
    except (ValueError, FileNotFoundError) as error:
        print(f"[train] error: {error}", file=sys.stderr, flush=True)
        return 1
    _log(f"dataset {spec.name!r}: {spec.task} label {spec.label!r}, {len(spec.features)} features")
    _log(f"loaded {len(train_df)} training rows from {args.train}")
    if spec.label in train_df.columns and train_df[spec.label].isna().any():
        _log(f"train: dropped {int(train_df[spec.label].isna().sum())} row(s) with a null label")
    _log(f"loaded {len(validation_df)} validation rows from {args.validation}")
    _log(f"estimator {estimator} with {json.dumps(params, sort_keys=True)}, n_jobs={args.n_jobs}")

    _log("training started")
    started = time.perf_counter()
    try:
        model = fit(train_df, spec, estimator, params, args.n_jobs)
        train_seconds = time.perf_counter() - started
        _log(f"training finished in {train_seconds:.2f} s")
        validation = model.metrics(validation_df)
    except (ValueError, LabelError, ModelConfigError) as error:
        print(f"[train] error: {error}", file=sys.stderr, flush=True)
        return 1
    metrics = {f"validation_{name}": value for name, value in validation.items() if name != "n"}
    metrics.update(
        n_train=int(model_rows(train_df, model)),
        n_validation=validation["n"],
        train_seconds=round(train_seconds, 3),
    )
    rounds = fitted_rounds(model)
    if rounds is not None:  # with early stopping: where it stopped
        metrics["n_rounds"] = rounds
    _log("metrics: " + json.dumps(metrics, sort_keys=True))

    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(model_dir / "model.joblib", lambda handle: joblib.dump(model, handle))
    _write_json(model_dir / "metrics.json", metrics)
    preprocess = model.pipeline[0]
    _write_json(
        model_dir / "feature_names.json",
        {
            "columns": [str(c) for c in preprocess.feature_names_in_],
            "transformed": [str(name) for name in preprocess.get_feature_names_out()],
            "classes": model.classes,
        },
    )
    _write_json(model_dir / "dataset_spec.json", json.loads(spec.to_json()))
    _log(f"wrote model.joblib, metrics.json, feature_names.json and dataset_spec.json to {model_dir}")
    return 0


def model_rows(frame: pd.DataFrame, model: TrainedModel) -> int:
    """The rows of ``frame`` with a label (the ones a model is fitted on)."""
    return int(frame[model.spec.label].notna().sum())


if __name__ == "__main__":
    sys.exit(main())
