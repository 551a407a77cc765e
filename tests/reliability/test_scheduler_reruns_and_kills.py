"""Re-runs and faults through the real scheduler: a repeated backfill, killed task processes, secrets.

These run on the session's Airflow components (tests/airflow_services.py) after the four-week
backfill of tests/e2e/test_backfill_scheduler.py:

1. The same backfill again with ``--reprocess-behavior completed``: every run is re-run, and the
   snapshot of everything the loop wrote (tests/snapshots.py) must not change.
2. An Airflow task process is SIGKILLed in the middle of writing a data version (ingest_data,
   the raw object's bytes written, not yet renamed into place) and in the middle of writing a
   batch-scoring partition (batch_score, half the rows scored and staged for the
   partition's transaction). The fault points are in tests/faults/sitecustomize.py. The supervisor reports
   the task failed, Airflow retries it, and the end state must be exactly the fault-free one,
   with no temporary file left anywhere.
3. Every component had an ``aws_default`` connection with a known password: it must appear in
   no task log, component log, report, artifact or warehouse file.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from airflow_services import ROWS, SECRET, TERMINAL, backfill
from helpers import write_config
from snapshots import diff, snapshot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

TABLE: list[tuple[str, str, str]] = []  # (what, how it ended, what was lost)
KILL_WEEK = "2026-W09"  # a week the backfill did not ingest
RESCORED_WEEK = "2026-W08"  # a week the backfill scored


def _leftovers(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.name.endswith(".tmp"))


def _kill_task_at(session: dict, point: str, dag_id: str, week: str) -> dict:
    """Trigger ``dag_id`` for ``week`` with ``point`` armed, SIGKILL the task there, await the run."""
    airflow, faults = session["airflow"], session["faults"]
    airflow.wait_dag_parsed(dag_id)
    (faults / f"arm-{point}").write_text(week)
    run_id = f"kill_{point}__{week}"
    airflow.cli("dags", "unpause", dag_id)
    airflow.cli("dags", "trigger", dag_id, "--run-id", run_id, "--conf", json.dumps({"week": week}))
    fired = faults / f"fired-{point}"
    airflow.wait_for(fired.exists, 300, f"a task of {run_id} reaching the fault point {point}", poll=0.5)
    pid = int(fired.read_text())
    time.sleep(0.5)  # it is asleep inside the write
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    airflow.wait_for(lambda: airflow.run_state(dag_id, run_id) in TERMINAL, 600, f"{run_id} finishing")
    tries = airflow.task_tries(dag_id, run_id)
    state = airflow.run_state(dag_id, run_id)
    assert state == "success", f"{run_id}: {state} {tries}\n{airflow.diagnostics()}"
    return {"run_id": run_id, "pid": pid, "tries": tries, "recovered_in": time.monotonic() - killed_at}


def test_a_repeated_backfill_with_reprocess_completed_changes_nothing(scheduler_backfill) -> None:
    session = scheduler_backfill
    airflow = session["airflow"]
    before = snapshot(session["ctx"], session["root"])
    first = {r["run_id"]: r for r in airflow.runs() if r["run_type"] == "backfill"}

    started = time.monotonic()
    backfill(airflow, session["logical_dates"], "--reprocess-behavior", "completed")
    seconds = time.monotonic() - started

    assert airflow.processes["scheduler"].pid == session["scheduler_pid"]  # it ran through the create
    again = {r["run_id"]: r for r in airflow.runs() if r["run_type"] == "backfill"}
    assert set(again) == set(first)  # the same runs, re-run (no second run for a week)
    assert {r["state"] for r in again.values()} == {"success"}, f"{again}\n{airflow.diagnostics()}"
    rerun = [i for i in again if again[i]["start_date"] != first[i]["start_date"]]
    assert sorted(rerun) == sorted(first), "every completed run must have been run again"
    assert len(airflow.query("SELECT id FROM backfill")) == 2
    found = diff(before, snapshot(session["ctx"], session["root"]))
    assert found == [], "\n".join(found)
    assert _leftovers(session["root"]) == []
    TABLE.append(
        (
            f"backfill of {len(first)} weeks repeated with --reprocess-behavior completed",
            f"the same {len(rerun)} runs re-ran ({seconds:.0f} s), all success; snapshot identical",
            "nothing",
        )
    )


def test_task_killed_while_writing_a_data_version(scheduler_backfill, tmp_path) -> None:
    session = scheduler_backfill
    ctx = session["ctx"]
    warehouse = ctx.provider.warehouse
    assert warehouse.read_rows("data_versions", {"week": KILL_WEEK}).empty

    killed = _kill_task_at(session, "ingest-write", "ingest_data", KILL_WEEK)

    state, try_number = killed["tries"]["ingest_data"]
    assert (state, try_number) == ("success", 2), killed  # the killed try, then the retry
    # the fault-free reference: the same week ingested once on a clean root
    from core.config import load_settings
    from lifecycle.context import StageContext
    from lifecycle.ingest import ingest_week

    clean_config = write_config(tmp_path, data={"rows_per_week": ROWS}, model={"params": {"max_iter": 40}})
    clean = StageContext(settings=load_settings(clean_config), week=KILL_WEEK, actor=killed["run_id"])
    expected = ingest_week(clean)
    rows = warehouse.read_rows("data_versions", {"week": KILL_WEEK})
    assert len(rows) == 1
    assert rows.iloc[0]["data_version"] == expected.data_version
    assert rows.iloc[0]["ingested_by"] == killed["run_id"]
    raw_keys = ctx.provider.storage.list_keys(f"raw/week={KILL_WEEK}/")
    assert raw_keys == clean.provider.storage.list_keys(f"raw/week={KILL_WEEK}/")
    for key in raw_keys:
        assert ctx.provider.storage.get_bytes(key) == clean.provider.storage.get_bytes(key), key
    assert _leftovers(session["root"]) == []  # the killed writer's temp file went with the retry
    TABLE.append(
        (
            f"ingest_data task process SIGKILLed renaming the raw object ({KILL_WEEK})",
            f"retried by Airflow (try 2) {killed['recovered_in']:.0f} s later; one data version, "
            "bytes equal to a clean ingest",
            "nothing (the dead writer's temp file removed by the retry)",
        )
    )


def test_task_killed_while_writing_a_scoring_partition(scheduler_backfill) -> None:
    session = scheduler_backfill
    before = snapshot(session["ctx"], session["root"])
    predictions = session["ctx"].provider.warehouse.read_rows("predictions", {"week": RESCORED_WEEK})
    assert len(predictions) == ROWS

    killed = _kill_task_at(session, "score-partition", "batch_score", RESCORED_WEEK)

    state, try_number = killed["tries"]["batch_score"]
    assert (state, try_number) == ("success", 2), killed
    found = diff(before, snapshot(session["ctx"], session["root"]))
    assert found == [], "\n".join(found)
    assert _leftovers(session["root"]) == []
    TABLE.append(
        (
            f"batch_score task process SIGKILLed mid-partition ({RESCORED_WEEK}, half the rows staged)",
            f"retried by Airflow (try 2) {killed['recovered_in']:.0f} s later; predictions "
            f"({len(predictions)} rows) and everything else identical",
            "nothing",
        )
    )


def test_zz_the_connection_secret_is_written_nowhere(scheduler_backfill) -> None:
    session = scheduler_backfill
    airflow = session["airflow"]
    # Airflow resolves the connection with the secret: the components really had it
    shown = airflow.cli("connections", "get", "aws_default", "-o", "json")
    assert SECRET in shown
    needles = [SECRET.encode(), SECRET.encode("utf-16-le")]
    scanned, leaks = 0, []
    task_logs = list((airflow.home / "logs").rglob("*.log"))
    assert len(task_logs) >= 40, "the runs' task logs are missing"
    folders = [airflow.home / "logs", session["root"]]
    component_logs = [airflow.home / f"{name}.log" for name in ("api-server", "dag-processor", "scheduler")]
    for path in [*component_logs, *(p for folder in folders for p in folder.rglob("*") if p.is_file())]:
        data = path.read_bytes()
        scanned += 1
        if any(needle in data for needle in needles):
            leaks.append(str(path))
    assert leaks == [], f"the connection's secret leaked into: {leaks}"
    TABLE.append(
        (
            f"aws_default password in every component's environment; {scanned} files scanned "
            f"({len(task_logs)} task logs, storage, reports, warehouse, registry)",
            "found in none",
            "nothing leaked",
        )
    )


def test_zzz_print_the_table() -> None:
    print("\n\nthrough the real scheduler: what was done, how it ended, what was lost")
    for what, how, lost in TABLE:
        print(f"- {what}\n    -> {how}\n    lost: {lost}")
