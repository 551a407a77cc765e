"""The scoring script Azure ML runs: a managed online deployment's ``init``/``run``, and batch scoring.

It sits at the root of the code bundle (``providers/azure/bundle.py``), where the ``core``
package and the dataset spec's feature function are; the model artifact carries the spec it was
trained under, so the columns it reads and writes come from there. Nothing is unpickled before
its sha256 matches ``MODEL_SHA256``; ``MODEL_VERSION`` is answered with every prediction, so a
smoke test sees what serves.

- Online (Azure ML's inference server): ``init()`` loads ``model.joblib`` from
  ``AZUREML_MODEL_DIR``; ``run(body)`` takes ``{"rows": [...]}`` and returns
  ``{"model_version": "3", "predictions": [...]}``.
- Batch (a command job): ``python azureml_score.py --model FILE --input PARQUET --output DIR``
  writes ``DIR/predictions.csv`` with the spec's key column and prediction columns, in the
  input's row order.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

MAX_ROWS = 10_000  # per online request
_state: dict[str, Any] = {}


def load(path: Path) -> Any:
    """Load a TrainedModel after checking the file's sha256 against ``MODEL_SHA256``.

    Raises:
        ValueError: no expected sha256 is set, the file does not match it (nothing unpickled),
            or it holds something else than a TrainedModel.
    """
    import joblib

    from core.ml.modeling import TrainedModel

    expected = os.environ.get("MODEL_SHA256", "").strip().lower()
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if not expected or actual != expected:
        raise ValueError(f"refusing to load {path}: sha256 {actual} != MODEL_SHA256 {expected or '(unset)'}")
    model = joblib.load(path)
    if not isinstance(model, TrainedModel):
        raise ValueError(f"{path} holds a {type(model).__name__}, not a TrainedModel: retrain it")
    return model


def init() -> None:
    """Load the deployment's model (Azure ML mounts the registered model at ``AZUREML_MODEL_DIR``)."""
    found = sorted(Path(os.environ["AZUREML_MODEL_DIR"]).rglob("model.joblib"))
    if not found:
        raise FileNotFoundError(f"no model.joblib under AZUREML_MODEL_DIR={os.environ['AZUREML_MODEL_DIR']}")
    _state["model"] = load(found[0])


def run(raw_data: str) -> dict[str, Any]:
    """Score ``{"rows": [...]}``; return the model version and its answer, in row order.

    Raises:
        ValueError: a malformed body, or rows that lack a feature of the model's spec.
    """
    import pandas as pd

    payload = json.loads(raw_data)
    rows = payload.get("rows") if isinstance(payload, dict) else None
    if not isinstance(rows, list) or not rows or len(rows) > MAX_ROWS:
        raise ValueError(f'the body must be {{"rows": [...]}} with 1 to {MAX_ROWS} rows')
    model = _state["model"]
    frame = pd.DataFrame.from_records(rows)
    _check_features(model, frame)
    answer = model.answer(model.predict_raw_rows(frame))
    return {"model_version": os.environ.get("MODEL_VERSION", ""), "predictions": answer}


def score_file(model_path: Path, input_path: Path, output_dir: Path) -> Path:
    """Score a Parquet file; write ``predictions.csv`` (key column + prediction columns)."""
    import pandas as pd

    model = load(model_path)
    frame = pd.read_parquet(input_path)
    _check_features(model, frame)
    raw = model.predict_raw_rows(frame)
    key = model.spec.key_column
    out = pd.DataFrame({key: frame[key].astype(str).tolist(), **model.prediction_columns(raw)})
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / "predictions.csv"
    out.to_csv(target, index=False, float_format="%.17g")
    return target


def _check_features(model: Any, frame: Any) -> None:
    missing = [c for c in model.spec.feature_names if c not in frame.columns]
    if missing:
        raise ValueError(f"rows lack column(s): {', '.join(missing)}")


def main(argv: list[str] | None = None) -> int:
    """Batch scoring from the command line; 1 (with the reason on stderr) on bad input."""
    parser = argparse.ArgumentParser(description="Score a Parquet file with a registered model.")
    parser.add_argument("--model", required=True, help="the model.joblib file")
    parser.add_argument("--input", required=True, help="the Parquet file to score")
    parser.add_argument("--output", required=True, help="the folder of predictions.csv")
    args = parser.parse_args(argv)
    try:
        target = score_file(Path(args.model), Path(args.input), Path(args.output))
    except (ValueError, FileNotFoundError) as error:
        print(f"[score] error: {error}", file=sys.stderr, flush=True)
        return 1
    print(f"[score] wrote {target}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
