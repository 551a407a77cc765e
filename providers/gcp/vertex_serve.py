"""Vertex AI serving entry: the project's model behind Vertex AI's custom-container contract.

Shipped at the root of the project's package (providers/gcp/package.py) and run as
``python -m vertex_serve`` by a serving image built from that package
(providers/gcp/serving.Dockerfile). Vertex AI starts it with:

- ``AIP_STORAGE_URI``: a ``gs://`` copy of the model version's ``artifactUri`` (model.joblib);
- ``AIP_HTTP_PORT``, ``AIP_HEALTH_ROUTE``, ``AIP_PREDICT_ROUTE``: where to answer;
- the model's container ``env``: ``MODEL_SHA256`` (checked before the artifact is unpickled).

``POST <predict route>`` takes ``{"instances": [{column: value, ...}, ...]}`` (raw rows, as the
dataset spec names them) and answers ``{"predictions": [{"answer": ..., <prediction columns>}]}``,
one per instance in order: ``answer`` is what the online endpoint returns (the positive class's
probability, the class, or the value), the columns are what batch scoring stores. Endpoints and
batch prediction jobs both send instances here.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_INSTANCES = 10_000


def load_model(storage_uri: str, sha256: str) -> Any:
    """Download ``model.joblib`` from ``storage_uri`` and unpickle it if its sha256 matches.

    Raises:
        ValueError: no expected sha256, or the bytes do not match it (nothing unpickled).
    """
    import joblib
    from google.cloud import storage

    from core.ml.modeling import TrainedModel

    if not storage_uri.startswith("gs://"):
        raise ValueError(f"AIP_STORAGE_URI {storage_uri!r} is not a gs:// folder")
    bucket, folder = storage_uri[5:].rstrip("/").split("/", 1)
    data = storage.Client().bucket(bucket).blob(f"{folder}/model.joblib").download_as_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if not sha256 or actual != sha256.strip().lower():
        raise ValueError(
            f"refusing to load {storage_uri}/model.joblib: sha256 {actual} != MODEL_SHA256 {sha256!r}"
        )
    with tempfile.NamedTemporaryFile(suffix=".joblib") as handle:
        handle.write(data)
        handle.flush()
        model = joblib.load(handle.name)
    if not isinstance(model, TrainedModel):
        raise ValueError(f"{storage_uri}/model.joblib holds a {type(model).__name__}, not a TrainedModel")
    return model


def predict(model: Any, instances: list[Any]) -> list[dict[str, Any]]:
    """One prediction object per instance, in order.

    Raises:
        ValueError: the instances are not 1 to MAX_INSTANCES objects with the spec's features.
    """
    import pandas as pd

    if not isinstance(instances, list) or not instances or len(instances) > MAX_INSTANCES:
        raise ValueError(f"instances must be a list of 1 to {MAX_INSTANCES} objects")
    if not all(isinstance(row, dict) for row in instances):
        raise ValueError("every instance must be an object of column -> value")
    frame = pd.DataFrame.from_records(instances)
    missing = [c for c in model.spec.feature_names if c not in frame.columns]
    if missing:
        raise ValueError(f"instances lack column(s): {', '.join(missing)}")
    raw = model.predict_raw_rows(frame)
    columns = {name: list(values) for name, values in model.prediction_columns(raw).items()}
    return [
        {"answer": _plain(answer), **{name: _plain(values[i]) for name, values in columns.items()}}
        for i, answer in enumerate(model.answer(raw))
    ]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def serve(model: Any, host: str, port: int, health: str, predict_route: str) -> None:
    """Answer health checks and predictions until killed."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # the container's log stays quiet per request
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send(200, {"status": "ok"}) if self.path == health else self._send(
                404, {"error": "not found"}
            )

        def do_POST(self) -> None:
            if self.path != predict_route:
                self._send(404, {"error": "not found"})
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self._send(200, {"predictions": predict(model, body.get("instances"))})
            except (ValueError, AttributeError, KeyError) as exc:
                self._send(400, {"error": str(exc)})

    ThreadingHTTPServer((host, port), Handler).serve_forever()


def main() -> int:
    """Load the model named by the environment and serve it."""
    model = load_model(os.environ.get("AIP_STORAGE_URI", ""), os.environ.get("MODEL_SHA256", ""))
    print(f"[vertex_serve] serving {model.spec.name} from {Path(__file__).name}", file=sys.stderr, flush=True)
    serve(
        model,
        os.environ.get("MLOPS_SERVE_HOST", "0.0.0.0"),  # Vertex AI reaches the container from outside it
        int(os.environ.get("AIP_HTTP_PORT", "8080")),
        os.environ.get("AIP_HEALTH_ROUTE", "/health"),
        os.environ.get("AIP_PREDICT_ROUTE", "/predict"),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
