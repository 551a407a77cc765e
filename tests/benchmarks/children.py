"""The work the benchmarks run in child processes, one command each.

Each command prints one JSON object as the last line of its stdout, with ``peak_rss_bytes``
(its own peak resident memory) and the figures it measured itself. A fresh interpreter per
measurement keeps imports and caches of one measurement from helping the next.

    python tests/benchmarks/children.py parse DAG_FOLDER
    python tests/benchmarks/children.py score-plain INPUT.parquet MODEL.joblib OUT.duckdb
    python tests/benchmarks/children.py score-provider ASTRO.toml WEEK
    python tests/benchmarks/children.py load URL CLIENTS SECONDS RATE
    python tests/benchmarks/children.py train TRAIN.parquet VALIDATION.parquet MODEL_DIR MAX_ITER
"""

from __future__ import annotations

import dataclasses
import json
import resource
import sys
import time
from pathlib import Path


def _peak() -> int:
    """This process's peak resident memory in bytes: VmHWM of its own address space.

    Not ``ru_maxrss``: Linux carries it over ``execve`` from the forked copy of the parent, so a
    child of a large parent would report the parent's size.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def parse(folder: str) -> dict:
    """Parse a DAG folder with DagBag; Airflow's SDK is imported first, as in the dag-processor."""
    import airflow.sdk  # noqa: F401 - the dag-processor has it loaded before it parses a file
    from airflow.dag_processing.dagbag import DagBag

    sys.path.append(folder)  # as the dag-processor's BundleDagBag does with the bundle's path
    started = time.perf_counter()
    bag = DagBag(dag_folder=folder, safe_mode=True, load_op_links=False)
    seconds = time.perf_counter() - started
    files = {Path(stat.file).name: stat.duration.total_seconds() for stat in bag.dagbag_stats}
    dag_files = [Path(stat.file).name for stat in bag.dagbag_stats if stat.dag_num]
    return {
        "seconds": seconds,
        "files": files,
        "dag_files": dag_files,
        "dags": len(bag.dags),
        "import_errors": {Path(k).name: v[-500:] for k, v in bag.import_errors.items()},
    }


def score_plain(input_path: str, model_path: str, out_path: str) -> dict:
    """The script a user would write: read everything, features, predict_proba, write."""
    import duckdb
    import joblib
    import pandas as pd

    from core.ml.features import build_features

    model = joblib.load(model_path)
    frame = pd.read_parquet(input_path)
    proba = model.pipeline.predict_proba(build_features(frame, model.spec))[:, 1]
    out = pd.DataFrame({"customer_id": frame["customer_id"], "churn_probability": proba})
    con = duckdb.connect(out_path)
    con.execute("CREATE OR REPLACE TABLE predictions AS SELECT * FROM out")
    con.close()
    return {"n_rows": len(out)}


def score_provider(config: str, week: str) -> dict:
    """The batch_score stage on the local provider (ChunkedBatchScorer into DuckDB)."""
    from core.config import load_settings
    from lifecycle.context import StageContext
    from lifecycle.score import score_week

    ctx = StageContext(settings=load_settings(config), week=week, actor="benchmark")
    return dataclasses.asdict(score_week(ctx))


def load(url: str, clients: str, seconds: str, rate: str) -> dict:
    """Send single-row requests from ``clients`` concurrent clients for ``seconds``.

    ``rate`` > 0 bounds the offered load to that many requests per second in total (each
    client sends on its own fixed schedule); 0 lets every client send as soon as its previous
    answer arrives (a closed loop: the server's saturated throughput).

    Each client is one keep-alive HTTP/1.1 connection driven by a few lines of asyncio with the
    request bytes prepared beforehand: a general HTTP client (httpx) spent more CPU per request
    than the server and, sharing the 2 cores with it, set the figures itself. On a schedule, a
    latency is counted from the time the request was due, not from when it was sent, so a
    client that falls behind does not hide the server's delay (no coordinated omission).
    """
    import asyncio
    from urllib.parse import urlsplit

    from demo.sample_data import generate_week

    n_clients, duration, total_rate = int(clients), float(seconds), float(rate)
    parts = urlsplit(url)
    rows = generate_week("2030-W02", 1000, seed=3).drop(columns=["event_time", "churned"])
    requests = []
    for row in json.loads(rows.to_json(orient="records")):
        body = json.dumps({"rows": [row]}).encode()
        head = (
            f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
        writer.write(request)
        status_line = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        status = int(status_line.split()[1])
        if status == 200 and b"predictions" not in body:
            raise ValueError(f"unexpected answer: {body[:200]!r}")
        return status

    async def client(index: int, latencies: list, errors: list, end: float) -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        interval = n_clients / total_rate if total_rate > 0 else 0.0
        due = time.perf_counter() + (index * interval / n_clients if interval else 0.0)
        i = index
        try:
            while True:
                if interval:
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                else:
                    due = time.perf_counter()
                if time.perf_counter() >= end:
                    return
                try:
                    status = await exchange(reader, writer, requests[i % len(requests)])
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    errors.append(type(exc).__name__)
                    writer.close()
                    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
                else:
                    if status == 200:
                        latencies.append(time.perf_counter() - due)
                    else:
                        errors.append(status)
                due += interval
                i += n_clients
        finally:
            writer.close()

    async def main() -> tuple[list, list, float]:
        latencies: list[float] = []
        errors: list = []
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        await exchange(reader, writer, requests[0])  # warm: the server loads the model
        writer.close()
        started = time.perf_counter()
        end = started + duration
        await asyncio.gather(*(client(i, latencies, errors, end) for i in range(n_clients)))
        return latencies, errors, time.perf_counter() - started

    latencies, errors, elapsed = asyncio.run(main())
    return {
        "latencies": latencies,
        "errors": errors[:20],
        "n_errors": len(errors),
        "elapsed": elapsed,
        "cpu_seconds": time.process_time(),
    }


def train(train_path: str, validation_path: str, model_dir: str, max_iter: str) -> dict:
    """The training script (core/ml/train.py) as the local provider runs it, one thread."""
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from core.ml import train as train_script
    from demo.spec import DEMO_SPEC

    spec_file = Path(model_dir).with_name(Path(model_dir).name + "-spec.json")
    spec_file.parent.mkdir(parents=True, exist_ok=True)
    spec_file.write_text(DEMO_SPEC.to_json())
    argv = ["--train", train_path, "--validation", validation_path, "--model-dir", model_dir]
    argv += ["--dataset-spec", str(spec_file)]
    hyperparameters = {"max_iter": int(max_iter), "early_stopping": False}
    argv += ["--hyperparameters", json.dumps(hyperparameters), "--n-jobs", "1"]
    started = time.perf_counter()
    code = train_script.main(argv)
    if code:
        raise SystemExit(code)
    return {"seconds": time.perf_counter() - started}


COMMANDS = {
    "parse": parse,
    "score-plain": score_plain,
    "score-provider": score_provider,
    "load": load,
    "train": train,
}

if __name__ == "__main__":
    started = time.perf_counter()
    result = COMMANDS[sys.argv[1]](*sys.argv[2:])
    result["work_seconds"] = time.perf_counter() - started  # without the interpreter's start-up
    result["peak_rss_bytes"] = _peak()
    print(json.dumps(result, default=str))
