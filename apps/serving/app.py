"""The online endpoint: a FastAPI app that serves the deployed version of each model.

Its request schema comes from the dataset spec of the settings (``--config`` or astro.toml): one
typed, bounded field per feature, so the OpenAPI schema shows the spec's features. It reads what
to serve from a deployments folder (one ``<model>.json`` per model, written
atomically by a deploy). Each request checks the file's modification time and loads the new
version when it changed, so a deploy takes effect without a restart. Every artifact's sha256 is
checked against the deployment record before it is unpickled.

It measures itself (core/serving_metrics.py): Prometheus metrics at ``/metrics``, one log
line per prediction request (model, status, time; never the payload), and an hourly record in
the metrics folder (``--metrics``, default ``<deployments>/../metrics``) that the week's serving
report reads.

Run it with ``python -m apps.serving.app --deployments DIR --port 8765`` (``make serve``). A
deployed model trained under a dataset spec that differs from the app's in what the model reads
is refused (409) with the differences named.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, create_model

from apps.serving.batching import MicroBatcher
from core.errors import ArtifactIntegrityError
from core.ml.dataset import DatasetSpec, incompatibilities
from core.ml.scoring.artifacts import load_model
from core.serving_metrics import ServingMetrics

log = logging.getLogger("apps.serving")
MAX_ROWS_PER_REQUEST = 1000
# 1000 rows of JSON take ~350 KB; a larger body is refused before it is read into memory
MAX_BODY_BYTES = 1024 * 1024


class BodySizeLimit:
    """ASGI middleware: answer 413 to a request body larger than ``limit`` bytes.

    A declared Content-Length is checked before anything is read; a chunked body is read up to
    the limit and refused as soon as it passes it, so no body is held in memory past the limit.
    """

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Pass the request on, or answer 413 once its body passes the limit."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(send)
            return
        # read the body here (FastAPI turns an error raised while it reads into a 400)
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break
        replay = iter(messages)

        async def replayed_receive() -> dict:
            return next(replay, None) or await receive()

        await self.app(scope, replayed_receive, send)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps(
            {
                "detail": f"request body larger than {self.limit} bytes: send at most "
                f"{MAX_ROWS_PER_REQUEST} rows per request"
            }
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def row_model(spec: DatasetSpec) -> type[BaseModel]:
    """Build the request row schema from the dataset spec (typed, bounded, closed).

    Numbers are strict (``"42"`` is a type error) and within the spec's range; categories are
    one of the allowed values (any text when the spec lists none); booleans are true/false;
    a nullable feature may be null. The id column, if the spec has one, is optional.
    """
    fields: dict[str, Any] = {}
    if spec.id_column:
        fields[spec.id_column] = (str | None, Field(default=None, max_length=64))
    for feature in spec.features:
        kind: Any
        if feature.kind == "numeric":
            kind = float
            options: dict[str, Any] = {"allow_inf_nan": False, "strict": True}
            if feature.min is not None:
                options["ge"] = feature.min
            if feature.max is not None:
                options["le"] = feature.max
        elif feature.kind == "boolean":
            kind, options = bool, {"strict": True}
        else:
            kind = Literal[feature.values] if feature.values else str  # type: ignore[valid-type]
            options = {} if feature.values else {"max_length": 256}
        if feature.nullable:
            fields[feature.name] = (kind | None, Field(default=None, **options))
        else:
            fields[feature.name] = (kind, Field(..., **options))
    name = "".join(part.capitalize() for part in spec.name.split("_")) + "Row"
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


def request_model(spec: DatasetSpec) -> type[BaseModel]:
    """A batch of rows to score."""
    row = row_model(spec)
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        rows=(list[row], Field(min_length=1, max_length=MAX_ROWS_PER_REQUEST)),  # type: ignore[valid-type]
    )


class PredictResponse(BaseModel):
    """One prediction per row, in the order of the rows, and the version that computed them.

    binary: the positive class's probability; multiclass: the predicted class (``classes`` lists
    them, ``probabilities`` gives each row's per class); regression: the predicted value.
    """

    model_name: str
    model_version: str
    predictions: list[float] | list[str]
    classes: list[str] | None = None
    probabilities: list[list[float]] | None = None


class _Served:
    """A loaded model and the deployment record it came from."""

    def __init__(self, record: dict[str, Any], model: Any, mtime_ns: int) -> None:
        self.record = record
        self.model = model
        self.mtime_ns = mtime_ns


class ModelCache:
    """Loads each model's deployed version, and reloads it when its deployment file changes."""

    def __init__(self, deployments: Path) -> None:
        self.deployments = Path(deployments)
        self._served: dict[str, _Served] = {}
        self._lock = threading.Lock()

    def get(self, model_name: str) -> _Served:
        """Return the served model, loading a newer deployment first if there is one."""
        path = self.deployments / f"{model_name}.json"
        try:
            mtime_ns = path.stat().st_mtime_ns
        except FileNotFoundError:
            raise HTTPException(404, f"no deployment of model {model_name!r}") from None
        served = self._served.get(model_name)
        if served is not None and served.mtime_ns == mtime_ns:
            return served
        with self._lock:
            served = self._served.get(model_name)
            if served is None or served.mtime_ns != mtime_ns:
                record = json.loads(path.read_text())
                try:
                    model = load_model(Path(record["artifact_path"]), record["sha256"])
                except ArtifactIntegrityError as exc:
                    # A 503, not a 500: the deployment is bad, not the request. The model loaded
                    # before (if any) stays in the cache; a redeploy is picked up as usual.
                    log.error("deployment of %s v%s refused: %s", model_name, record.get("version"), exc)
                    raise HTTPException(
                        503,
                        f"the deployed artifact of model {model_name!r} version "
                        f"{record.get('version')!r} failed its integrity check (sha256 mismatch); "
                        "it was not loaded: redeploy the version",
                    ) from None
                served = _Served(record, model, mtime_ns)
                self._served[model_name] = served
                log.info("serving %s version %s", model_name, record["version"])
        return served


def create_app(
    deployments: Path,
    threads: int = 1,
    spec: DatasetSpec | None = None,
    metrics: Path | None = None,
    measure: bool = True,
    freeze_gc: bool = False,
) -> FastAPI:
    """Build the endpoint app for a deployments folder.

    Args:
        deployments: the folder of ``<model>.json`` deployment records.
        metrics: the folder of the hourly serving record; default: ``metrics`` beside
            ``deployments``.
        measure: False serves without any metrics, log line or record (the benchmark's
            baseline for their overhead).
        freeze_gc: move what is alive after each model load out of the garbage collector's
            sight (``gc.freeze``): for a server process, which keeps its models and libraries
            until it ends; not for a process that builds apps and drops them (the tests).
        threads: OpenMP threads per model call. One: the batches are small, and spinning
            OpenMP threads fight the server's own work for the cores.
        spec: the dataset spec of the requests; default: the settings' (astro.toml or
            ``$MLOPS_CONFIG``).
    """
    if spec is None:
        from core.config import load_settings

        spec = load_settings().dataset
    deployments = Path(deployments)
    measured = ServingMetrics(
        None if not measure else metrics if metrics is not None else deployments.parent / "metrics",
        known=lambda name: (deployments / f"{name}.json").is_file(),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # at start, load the deployed models in the scoring thread, in the background: /health
        # answers meanwhile, and a request that comes first waits for the same load (the cache
        # loads each version once); a load takes seconds, which the first request paid before
        app.state.warm_up = batcher.run_in_worker(load_deployed)
        yield
        measured.close()

    app = FastAPI(title="MLOps online endpoint", version="1.0", lifespan=lifespan)
    app.state.metrics = measured
    PredictRequest = request_model(spec)  # noqa: N806 - a class, named as one
    app.add_middleware(BodySizeLimit)
    if measure:  # outermost: a 413 of BodySizeLimit is counted too
        app.add_middleware(lambda inner: measured.middleware(inner))
    cache = ModelCache(deployments)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes each invalid input back, and NaN/inf cannot be written as
        # JSON: it failed with a 500. Leave the input out (it is the caller's own payload anyway).
        errors = [{k: v for k, v in error.items() if k != "input"} for error in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})

    served_folder = str(Path(deployments).resolve())

    @app.get("/health")
    def health() -> dict[str, str]:
        # the folder: a deploy tells its own server from another data folder's on the same port
        return {"status": "ok", "deployments": served_folder}

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        if not measure:
            raise HTTPException(404, "this endpoint runs without metrics (--no-metrics)")
        body, content_type = measured.exposition()
        return Response(body, media_type=content_type)

    @app.get("/models/{model_name}")
    def deployment(model_name: str) -> dict[str, Any]:
        record = cache.get(model_name).record
        return {k: record[k] for k in ("model_name", "version", "sha256", "deployed_at")}

    # the served models the scoring thread has made ready (see ready_to_serve)
    ready: weakref.WeakSet[_Served] = weakref.WeakSet()

    def ready_to_serve(served: _Served) -> None:
        """In the scoring thread, once per loaded model: thread limits, fast path, GC freeze."""
        if served in ready:
            return
        # Loading a model can load an OpenMP runtime (scikit-learn's, LightGBM's): a limit set
        # before reaches no runtime that was not loaded yet, and the model then ran on every
        # core, its idle OpenMP threads spinning on a core the server needs (found profiling
        # the endpoint at 800 req/s). So limit again once per loaded model.
        limit_threads()
        served.model.prepare()
        if freeze_gc:
            # What is alive now (the libraries, the model) lives as long as the server: out of
            # the collector's sight, a full collection no longer walks it. Without this, each
            # full collection took ~40-100 ms and came every ~2 s at 800 req/s (gc.callbacks).
            # Frozen objects are still freed by reference counting when a redeploy drops them;
            # only reference cycles among them stay.
            gc.freeze()
        ready.add(served)

    def score(model_name: str, rows: list[dict[str, Any]]) -> tuple[_Served, Any]:
        # in the batcher's worker thread: the version is read once per batch, so every row of
        # a batch is scored (and reported) by the same version, even across a deploy
        served = cache.get(model_name)
        ready_to_serve(served)
        if measure:
            measured.served(model_name, str(served.record.get("version")))
        differences = incompatibilities(served.model.spec, spec)
        if differences:
            raise HTTPException(
                409,
                f"model {model_name!r} version {served.record.get('version')!r} was trained under another "
                f"dataset spec than this endpoint's ({'; '.join(differences)}): retrain and deploy it",
            )
        started = time.perf_counter()
        raw = served.model.predict_records(rows)
        if measure:
            measured.batch(model_name, len(rows))  # a model call that answered: its rows
        log.debug("scored %d rows in %.1f ms", len(rows), (time.perf_counter() - started) * 1000)
        return served, raw

    def limit_threads() -> None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)  # OpenMP's limit is per thread: set in the scoring thread

    batcher = MicroBatcher(score, worker_init=limit_threads)
    app.state.batcher = batcher

    def load_deployed() -> None:
        """Load every deployed model before the first request asks (a load takes seconds)."""
        for record in sorted(deployments.glob("*.json")):
            try:
                ready_to_serve(cache.get(record.stem))
            except HTTPException as exc:  # a bad deployment: its requests will say so
                log.warning("%s not loaded at start: %s", record.stem, exc.detail)

    async def predict(model_name: str, request: Any) -> PredictResponse:
        rows = [row.model_dump() for row in request.rows]
        served, raw = await batcher.predict(model_name, rows)
        model = served.model
        multiclass = model.task == "multiclass"
        return PredictResponse(
            model_name=model_name,
            model_version=str(served.record["version"]),
            predictions=model.answer(raw),
            classes=model.classes if multiclass else None,
            probabilities=raw.round(6).tolist() if multiclass else None,
        )

    # the request model is built from the spec at run time: give FastAPI the class itself (this
    # module's annotations are strings, which FastAPI would resolve in the module's globals)
    predict.__annotations__ = {"model_name": str, "request": PredictRequest, "return": PredictResponse}
    app.post("/models/{model_name}/predict", response_model=PredictResponse)(predict)

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the endpoint on 127.0.0.1."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--threads", type=int, default=1, help="OpenMP threads per prediction")
    parser.add_argument("--config", type=Path, default=None, help="settings file (default: astro.toml)")
    parser.add_argument(
        "--metrics", type=Path, default=None, help="hourly serving record (default: <deployments>/../metrics)"
    )
    parser.add_argument("--no-metrics", action="store_true", help="serve unmeasured (a baseline)")
    args = parser.parse_args(argv)
    args.deployments.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from core import serving_metrics as metrics
    from core.config import load_settings

    settings = load_settings(args.config)
    metrics.log.setLevel(metrics.access_log_level(settings.provider_sections.get("local", {})))
    app = create_app(
        args.deployments, args.threads, settings.dataset, args.metrics, not args.no_metrics, freeze_gc=True
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
