"""A four-week backfill of retrain_pipeline through the real scheduler.

The test gives Airflow a home of its own (a fresh SQLite metadata database, LocalExecutor), starts
``airflow api-server``, ``airflow dag-processor`` and ``airflow scheduler`` on 127.0.0.1, unpauses
the DAG and runs ``airflow backfill create`` for four consecutive Mondays. Every backfill run must
succeed, and the warehouse must hold exactly one data version per backfilled week.

The scheduler does not create scheduled runs here (``[scheduler] use_job_schedule = False``):
unpausing a ``catchup=False`` DAG would otherwise start a run for the latest Monday, which runs
beside the backfill (backfill runs do not count against the DAG's ``max_active_runs``) and
writes to the same registry. Backfill runs are queued by ``backfill create`` and started by the
scheduler regardless of that setting.
"""

from __future__ import annotations

import time

import pytest
from airflow_services import Airflow, airflow_env, utc
from helpers import EndpointServer, free_port, scheduled_logical_date, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

WEEKS = ["2026-W05", "2026-W06", "2026-W07", "2026-W08"]  # processed by the runs of 2 Feb .. 23 Feb
ROWS = 1500
RUNS_TIMEOUT = 20 * 60  # seconds for the four runs


@pytest.fixture(scope="module")
def backfill(tmp_path_factory: pytest.TempPathFactory):
    """Backfill four weeks through scheduler, dag-processor and api-server; wait for the runs."""
    folder = tmp_path_factory.mktemp("backfill")
    home = folder / "airflow"
    home.mkdir()
    endpoint_port, api_port = free_port(), free_port()
    config = write_config(
        folder,
        local={"endpoint_port": endpoint_port},
        data={"rows_per_week": ROWS},
        training={"max_iter": 40},
    )
    airflow = Airflow(home, airflow_env(home, api_port, config), api_port)
    logical_dates = [scheduled_logical_date(week) for week in WEEKS]
    timings: dict[str, float] = {}
    started = time.monotonic()
    server = None
    try:
        airflow.cli("db", "migrate", timeout=600)
        timings["db migrate"] = time.monotonic() - started
        server = EndpointServer(folder / "mlops" / "endpoint" / "deployments", endpoint_port).wait_ready()
        airflow.start_components()
        timings["components up, DAG parsed"] = time.monotonic() - started

        backfill_started = time.monotonic()
        runs, backfill_runs = airflow.backfill(logical_dates[0], logical_dates[-1], len(WEEKS), RUNS_TIMEOUT)
        timings["backfill"] = time.monotonic() - backfill_started

        from include.config import load_settings
        from include.stages.context import StageContext

        ctx = StageContext(settings=load_settings(config), week=WEEKS[-1], actor="test")
        yield {
            "airflow": airflow,
            "runs": runs,
            "backfill_runs": backfill_runs,
            "logical_dates": logical_dates,
            "ctx": ctx,
            "timings": timings,
        }
    finally:
        airflow.stop()
        if server is not None:
            server.stop()
        durations = {k: f"{v:.0f} s" for k, v in timings.items()}
        print(f"\nbackfill e2e timings: {durations}, total {time.monotonic() - started:.0f} s")


def test_every_backfill_run_succeeds(backfill) -> None:
    runs = backfill["backfill_runs"]
    airflow = backfill["airflow"]
    assert [utc(r["logical_date"]) for r in runs] == backfill["logical_dates"], runs
    states = {r["run_id"]: r["state"] for r in runs}
    assert set(states.values()) == {"success"}, f"{states}\n{airflow.diagnostics()}"
    assert len({r["backfill_id"] for r in runs}) == 1
    # the scheduler marked the backfill itself complete
    [row] = airflow.query("SELECT completed_at, max_active_runs FROM backfill")
    assert row["completed_at"] and row["max_active_runs"] == 1
    # max_active_runs=1: each run started after the one before it ended
    for before, after in zip(runs, runs[1:], strict=False):
        assert utc(after["start_date"]) >= utc(before["end_date"]), (before, after)
    durations = {
        r["run_id"]: f"{(utc(r['end_date']) - utc(r['start_date'])).total_seconds():.0f} s" for r in runs
    }
    print(f"\nbackfill run durations: {durations}")


def test_one_data_version_per_backfilled_week(backfill) -> None:
    ctx = backfill["ctx"]
    versions = ctx.provider.warehouse.read_rows("data_versions")
    assert sorted(versions["week"]) == WEEKS  # exactly one per week, and no other week
    assert versions["data_version"].is_unique
    # each week was ingested by the backfill run of the Monday after it
    by_week = dict(zip(versions["week"], versions["ingested_by"], strict=True))
    assert by_week == {
        week: run["run_id"] for week, run in zip(WEEKS, backfill["backfill_runs"], strict=True)
    }
    for key in versions["raw_key"]:
        assert ctx.provider.storage.exists(key)


def test_every_week_trained_and_scored_as_a_backfill(backfill) -> None:
    warehouse = backfill["ctx"].provider.warehouse
    training = warehouse.read_rows("training_runs")
    assert sorted(training.loc[training["reason"] == "backfill", "week"]) == WEEKS
    for week in WEEKS:
        predictions = warehouse.read_rows("predictions", {"week": week})
        assert len(predictions) == ROWS, week
        assert predictions["customer_id"].is_unique
        assert predictions["churn_probability"].between(0, 1).all()


def test_a_production_model_is_served(backfill) -> None:
    ctx = backfill["ctx"]
    registry = ctx.provider.registry
    assert len(registry.list_versions(ctx.model_name)) >= len(WEEKS)  # one challenger a week
    production = registry.get_alias(ctx.model_name, "production")
    assert production is not None
    assert ctx.provider.endpoint.current(ctx.model_name).version == production.version
