"""A four-week backfill of retrain_pipeline through the real scheduler.

The session fixture ``scheduler_backfill`` (tests/airflow_services.py) gives Airflow a home of
its own (a fresh metadata database in the tests' PostgreSQL cluster, LocalExecutor), starts
``airflow api-server``, ``airflow dag-processor`` and ``airflow scheduler`` on 127.0.0.1, unpauses
the DAG and runs ``airflow backfill create`` for four consecutive Mondays while the scheduler
runs. Every backfill run must succeed, the warehouse must hold exactly one data version per
backfilled week, and each run's note must be its summary (set by the plugin's listener in the
scheduler). (The reliability module beside this one then repeats the backfill and kills task
processes on the same components.)

The scheduler does not create scheduled runs here (``[scheduler] use_job_schedule = False``):
unpausing a ``catchup=False`` DAG would otherwise start a run for the latest Monday, which runs
beside the backfill (backfill runs do not count against the DAG's ``max_active_runs``) and
writes to the same registry. Backfill runs are queued by ``backfill create`` and started by the
scheduler regardless of that setting.
"""

from __future__ import annotations

import pytest
from airflow_services import BACKFILL_WEEKS, ROWS, utc

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def backfill(scheduler_backfill):
    """The session's four-week backfill (tests/airflow_services.py), before anything else ran on it."""
    return scheduler_backfill


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


def test_the_backfill_was_created_while_the_scheduler_ran(backfill) -> None:
    scheduler = backfill["airflow"].processes["scheduler"]
    # the scheduler started before `backfill create` is the one that ran the backfill, alive
    assert scheduler.pid == backfill["scheduler_pid"]
    assert scheduler.poll() is None


def test_each_run_note_is_its_summary(backfill) -> None:
    """The plugin's listener (apps/ui/run_note.py) set each run's note when it succeeded."""
    airflow = backfill["airflow"]
    notes = {
        row["run_id"]: row["content"]
        for row in airflow.query(
            "SELECT dag_run.run_id, dag_run_note.content FROM dag_run LEFT JOIN dag_run_note "
            "ON dag_run_note.dag_run_id = dag_run.id WHERE dag_run.run_type = 'backfill'"
        )
    }
    summaries = {
        run_id: airflow.query(
            "SELECT value FROM xcom WHERE run_id = %s AND task_id = 'run_summary' AND key = 'return_value'",
            run_id,
        )
        for run_id in notes
    }
    assert len(notes) == len(BACKFILL_WEEKS)
    for week, run in zip(BACKFILL_WEEKS, backfill["backfill_runs"], strict=True):
        note = notes[run["run_id"]]
        assert note and note.startswith(f"**{week}**: backfill run"), (run["run_id"], note)
        [row] = summaries[run["run_id"]]
        assert row["value"] == note  # the summary XCom (JSON, decoded by psycopg), whole: it fits a note


def test_one_data_version_per_backfilled_week(backfill) -> None:
    ctx = backfill["ctx"]
    versions = ctx.provider.warehouse.read_rows("data_versions")
    assert sorted(versions["week"]) == BACKFILL_WEEKS  # exactly one per week, and no other week
    assert versions["data_version"].is_unique
    # each week was ingested by the backfill run of the Monday after it
    by_week = dict(zip(versions["week"], versions["ingested_by"], strict=True))
    assert by_week == {
        week: run["run_id"] for week, run in zip(BACKFILL_WEEKS, backfill["backfill_runs"], strict=True)
    }
    for key in versions["raw_key"]:
        assert ctx.provider.storage.exists(key)


def test_every_week_trained_and_scored_as_a_backfill(backfill) -> None:
    warehouse = backfill["ctx"].provider.warehouse
    training = warehouse.read_rows("training_runs")
    assert sorted(training.loc[training["reason"] == "backfill", "week"]) == BACKFILL_WEEKS
    for week in BACKFILL_WEEKS:
        predictions = warehouse.read_rows("predictions", {"week": week})
        assert len(predictions) == ROWS, week
        assert predictions["customer_id"].is_unique
        assert predictions["churn_probability"].between(0, 1).all()


def test_a_production_model_is_served(backfill) -> None:
    ctx = backfill["ctx"]
    registry = ctx.provider.registry
    assert len(registry.list_versions(ctx.model_name)) >= len(BACKFILL_WEEKS)  # one challenger a week
    production = registry.get_alias(ctx.model_name, "production")
    assert production is not None
    assert ctx.provider.endpoint.current(ctx.model_name).version == production.version
