"""5. Backfill through the real scheduler: N weeks against N times one week.

Both sides start the same way (``tests/airflow_services.py``, as the backfill test does): a fresh
Airflow home, PostgreSQL metadata database and local provider, api-server, dag-processor and
scheduler (LocalExecutor) on 127.0.0.1, the endpoint server, then ``airflow backfill create
--max-active-runs 1``. The time is from ``backfill create`` until the backfill is complete. The
baseline is a one-week backfill of the first week, started the same way; the figure is
N-week time / (N x one-week time).

The runs cannot go in parallel: ``retrain_pipeline`` has ``max_active_runs=1`` because each
week trains on the weeks before it and is compared with the model they promoted.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.common import Figure, median, ratio, write_local_config

FIRST_WEEK = "2026-W10"  # past Mondays after the DAG's start_date: a backfill refuses future dates
TIMEOUT_PER_WEEK = 600


def backfill_weeks(folder: Path, weeks: list[str], rows: int, max_iter: int) -> dict:
    """Backfill ``weeks`` through a freshly started scheduler; return wall time and run durations."""
    from airflow_services import Airflow, airflow_env, backfill, utc
    from emulators import PostgresCluster
    from helpers import EndpointServer, free_port, scheduled_logical_date

    home = folder / "airflow"
    home.mkdir(parents=True)
    endpoint_port, api_port = free_port(), free_port()
    config = write_local_config(
        folder,
        local={"endpoint_port": endpoint_port},
        data={"rows_per_week": rows},
        model={"params": {"max_iter": max_iter}},
    )
    # not under the benchmark's temporary folder alone: the cluster runs as the postgres user
    cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="bench-pg-")), max_connections=300)
    airflow = Airflow(home, airflow_env(home, api_port, config), api_port, cluster.create_database("airflow"))
    server = None
    try:
        airflow.migrate()
        server = EndpointServer(folder / "mlops" / "endpoint" / "deployments", endpoint_port)
        server.wait_ready(timeout=300)
        airflow.start_components()
        dates = [scheduled_logical_date(week) for week in weeks]
        started = time.monotonic()
        airflow.cli("dags", "unpause", "retrain_pipeline")
        backfill(airflow, dates, timeout=TIMEOUT_PER_WEEK * len(weeks), poll=1)
        runs = [r for r in airflow.runs() if r["run_type"] == "backfill"]
        seconds = time.monotonic() - started
        states = {r["run_id"]: r["state"] for r in runs}
        if set(states.values()) != {"success"}:
            raise RuntimeError(f"backfill runs did not all succeed: {states}\n{airflow.diagnostics()}")
        durations = [(utc(r["end_date"]) - utc(r["start_date"])).total_seconds() for r in runs]
        gaps = [
            (utc(after["start_date"]) - utc(before["end_date"])).total_seconds()
            for before, after in zip(runs, runs[1:], strict=False)
        ]
        return {"seconds": seconds, "run_seconds": durations, "gaps_seconds": gaps}
    finally:
        airflow.stop()
        if server is not None:
            server.stop()
        cluster.stop()


def run(n_weeks: int = 12, rows: int = 5_000, max_iter: int = 200) -> list[Figure]:
    """Backfill one week, then ``n_weeks`` weeks, each on a fresh Airflow and provider."""
    from core.weeks import shift_week

    weeks = [shift_week(FIRST_WEEK, i) for i in range(n_weeks)]
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        one = backfill_weeks(Path(tmp) / "one", weeks[:1], rows, max_iter)
        many = backfill_weeks(Path(tmp) / "many", weeks, rows, max_iter)
    expected = n_weeks * one["seconds"]
    return [
        Figure(
            "backfill",
            f"{n_weeks} weeks backfilled ({rows:,} rows/week)",
            many["seconds"],
            "s",
            f"{n_weeks} x a one-week backfill",
            expected,
            ratio(many["seconds"], expected),
            "",
            None,
            {
                "one_week": one,
                "weeks": many,
                "median_run_seconds": median(many["run_seconds"]),
                "median_gap_seconds": median(many["gaps_seconds"]) if many["gaps_seconds"] else None,
            },
        ),  # fmt: skip
    ]
