"""Vertex AI custom job entry: the project's training script on GCS inputs and outputs.

Shipped at the root of the Python package the custom job installs (providers/gcp/package.py)
and run as ``python -m vertex_train`` in Vertex AI's prebuilt scikit-learn training container::

    python -m vertex_train --train gs://B/K.parquet --validation gs://B/K.parquet
        [--hyperparameters '{"max_iter": 200}'] [--n-jobs N]

It downloads the two Parquet objects, runs core/ml/train.py's ``main`` with the dataset spec
shipped in the package, and uploads the model folder to ``AIP_MODEL_DIR`` (a ``gs://`` folder
that Vertex AI derives from the job's ``baseOutputDirectory``). Exit code: train.py's (1: the
input was refused, the reason on stderr).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from importlib import resources
from pathlib import Path


def _split(uri: str) -> tuple[str, str]:
    if not uri.startswith("gs://") or "/" not in uri[5:]:
        raise ValueError(f"{uri!r} is not a gs://bucket/object URI")
    bucket, name = uri[5:].split("/", 1)
    return bucket, name


def main(argv: list[str] | None = None) -> int:
    """Download the inputs, train, upload the model folder; return train.py's exit code."""
    import os

    from google.cloud import storage

    from core.ml.train import main as train

    parser = argparse.ArgumentParser(description="Vertex AI training entry of the MLOps project")
    parser.add_argument("--train", required=True)
    parser.add_argument("--validation", required=True)
    parser.add_argument("--hyperparameters", default="{}")
    parser.add_argument("--n-jobs", dest="n_jobs", default="1")
    args = parser.parse_args(argv)
    model_uri = os.environ.get("AIP_MODEL_DIR", "")
    if not model_uri.startswith("gs://"):
        print(f"[vertex_train] error: AIP_MODEL_DIR {model_uri!r} is not a gs:// folder", file=sys.stderr)
        return 2
    client = storage.Client()
    with tempfile.TemporaryDirectory(prefix="vertex-train-") as tmp:
        work = Path(tmp)
        local = {}
        for name, uri in (("train", args.train), ("validation", args.validation)):
            bucket, blob = _split(uri)
            local[name] = work / f"{name}.parquet"
            client.bucket(bucket).blob(blob).download_to_filename(str(local[name]))
        spec_file = work / "dataset_spec.json"
        spec_file.write_bytes(resources.files("mlops_spec").joinpath("dataset_spec.json").read_bytes())
        model_dir = work / "model"
        code = train([
            "--train", str(local["train"]), "--validation", str(local["validation"]),
            "--model-dir", str(model_dir), "--dataset-spec", str(spec_file),
            "--hyperparameters", args.hyperparameters, "--n-jobs", args.n_jobs,
        ])  # fmt: skip
        if code != 0:
            return code
        bucket, prefix = _split(model_uri.rstrip("/") + "/")
        for path in sorted(model_dir.iterdir()):
            client.bucket(bucket).blob(f"{prefix}{path.name}").upload_from_filename(str(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
