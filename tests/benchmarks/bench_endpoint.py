"""6. The local online endpoint: latency and throughput of single-row requests from another process.

A model trained by the project's pipeline is registered, deployed (the deployment record the
local provider writes) and served by ``include/serving/app.py`` in a child process on 127.0.0.1.
A second child process runs 50 concurrent clients (httpx, asyncio) for a fixed duration, twice:

- bounded load: the clients together offer a fixed rate (``rate`` requests/s, each client on
  its own schedule); p50/p99 latency at that rate is the figure with the 25 ms target;
- closed loop: each client sends as soon as its previous answer arrives, which measures the
  server's saturated throughput (and the latency of a 50-deep queue).

The baseline is the model called in-process on the same single rows (``predict_proba`` on a
one-row frame, one thread) for the same duration; the figure is endpoint RPS / in-process RPS.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
from benchmarks.common import Figure, ratio, register_production_model, run_child, write_local_config

P99_TARGET_MS = 25.0


def in_process_rps(model, seconds: float) -> float:
    """Single-row predictions per second with the model in this process (one thread)."""
    from threadpoolctl import threadpool_limits

    from include.ml.sample_data import generate_week
    from include.ml.scoring import predict_proba

    rows = generate_week("2030-W02", 1000, seed=3).drop(columns=["event_time", "churned"])
    records = json.loads(rows.to_json(orient="records"))
    import pandas as pd

    done = 0
    with threadpool_limits(1):
        end = time.perf_counter() + seconds
        started = time.perf_counter()
        while time.perf_counter() < end:
            predict_proba(model, pd.DataFrame([records[done % len(records)]]))
            done += 1
    return done / (time.perf_counter() - started)


def _latency_ms(latencies: list[float]) -> dict[str, float]:
    values = np.asarray(latencies) * 1000
    return {
        "p50": float(np.percentile(values, 50)),
        "p90": float(np.percentile(values, 90)),
        "p99": float(np.percentile(values, 99)),
        "max": float(values.max()),
    }


def run(
    seconds: float = 20, clients: int = 50, rate: float = 100, repeat: int = 3, train_rows: int = 20_000
) -> list[Figure]:
    """Serve a deployed model; load it at ``rate`` and in a closed loop; compare with in-process."""
    from helpers import EndpointServer, free_port

    from include.ml.scoring import load_model

    with tempfile.TemporaryDirectory(prefix="bench-endpoint-") as tmp:
        folder = Path(tmp)
        port = free_port()
        config = write_local_config(folder, local={"endpoint_port": port})
        version = register_production_model(config, train_rows)
        deployments = folder / "mlops" / "endpoint" / "deployments"
        record = json.loads((deployments / f"{version.model_name}.json").read_text())
        model = load_model(record["artifact_path"], record["sha256"])
        url = f"http://127.0.0.1:{port}/models/{version.model_name}/predict"
        server = EndpointServer(deployments, port)
        bounded, closed, local = [], [], []
        try:
            server.wait_ready(timeout=300)
            for _ in range(repeat):
                bounded.append(run_child("load", url, str(clients), str(seconds), str(rate)).output)
                closed.append(run_child("load", url, str(clients), str(seconds), "0").output)
                local.append(in_process_rps(model, seconds))
        finally:
            server.stop()
    for result in bounded + closed:
        # A rare ReadError is a keep-alive connection the server closed as the client reused it;
        # more than 1% of requests failing means the endpoint is broken, not the measurement.
        if not result["latencies"] or result["n_errors"] > 0.01 * len(result["latencies"]):
            raise RuntimeError(f"the endpoint answered errors: {result['n_errors']}: {result['errors']}")
    errors = sum(r["n_errors"] for r in bounded + closed)
    # the run with the median p99 / median throughput
    bounded_stats = sorted((_latency_ms(r["latencies"]) for r in bounded), key=lambda s: s["p99"])
    b = bounded_stats[len(bounded_stats) // 2]
    closed_rps = sorted(len(r["latencies"]) / r["elapsed"] for r in closed)
    rps = closed_rps[len(closed_rps) // 2]
    closed_stats = sorted((_latency_ms(r["latencies"]) for r in closed), key=lambda s: s["p99"])
    c = closed_stats[len(closed_stats) // 2]
    local_rps = sorted(local)[len(local) // 2]
    achieved = [len(r["latencies"]) / r["elapsed"] for r in bounded]
    return [
        Figure(
            "endpoint",
            f"p99 latency, {clients} clients offering {rate:g} req/s",
            b["p99"],
            "ms",
            "in-process predict time of one row",
            1000 / local_rps,
            ratio(b["p99"], 1000 / local_rps),
            f"value <= {P99_TARGET_MS:g} ms",
            b["p99"] <= P99_TARGET_MS,
            {
                "latency_ms": b,
                "achieved_rps": achieved,
                "seconds": seconds,
                "repeat": repeat,
                "transport_errors": errors,
            },
        ),  # fmt: skip
        Figure(
            "endpoint",
            f"throughput, {clients} clients, closed loop",
            rps,
            "req/s",
            "in-process single-row predictions/s",
            local_rps,
            ratio(rps, local_rps),
            "",
            None,
            {"latency_ms": c, "runs_rps": closed_rps, "in_process_runs": local},
        ),  # fmt: skip
    ]
