"""``scripts/run_weeks.py --config FILE`` run as the docs show it, outside make, in a clean shell.

A new user's shell has no AIRFLOW_HOME, no PYTHONPATH and none of the Makefile's exports (Airflow
would then use ``~/airflow``, whose database nobody migrated: ``no such table: task_instance``).
The script is run from a project of its own (a copy of the script beside links to this
checkout's packages), so the Airflow home it defaults to, ``<project>/.airflow``, is new: the
script migrates it. Two weeks with drift from the second, so the run also shows what Airflow's
grid shows: every task instance with its state, each run's start date the time it ran, the
weeks' runs recorded as 'scheduled', one ``drift_retrain__<week>`` run (its tasks run, reason
'drift'), and the closing line linking the drift week's report.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import ROOT, free_port, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]
WEEKS = ["2026-W10", "2026-W11"]


def test_run_weeks_with_a_config_runs_as_written_in_a_clean_shell(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "run_weeks.py", project / "scripts")
    for name in ("core", "demo", "providers", "lifecycle", "apps", "dags", "plugins", "astro.toml"):
        (project / name).symlink_to(ROOT / name)
    home = tmp_path / "home"
    home.mkdir()
    config = write_config(
        tmp_path / "data",
        local={"endpoint_port": free_port()},
        data={
            "rows_per_week": 1000,
            "covariate_drift_from_week": WEEKS[1],
            "concept_drift_from_week": WEEKS[1],
        },
        model={"params": {"max_iter": 60}},
    )
    began = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    command = [sys.executable, "scripts/run_weeks.py", "--config", str(config), "--weeks", "2"]
    try:
        done = subprocess.run(
            [*command, "--first-week", WEEKS[0]],
            cwd=project,
            env={"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"},  # a new user's shell
            capture_output=True,
            text=True,
            timeout=1000,
        )
    finally:
        subprocess.run(
            [sys.executable, "-m", "providers.local.server_process", "stop", "--config", str(config)],
            cwd=ROOT,
            capture_output=True,
            timeout=60,
        )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert not (home / "airflow").exists()  # Airflow's default home was never used
    db = project / ".airflow" / "airflow.db"
    assert f"Airflow's database {db} has no tables yet: migrating it" in output
    for week in WEEKS:
        assert f"{week}: pipeline run success" in output, output[-3000:]
    assert f"monitor_drift triggered drift_retrain__{WEEKS[1]}: running it" in output
    assert f"{WEEKS[1]} (drift retrain): pipeline run success" in output
    assert f"Drift report of {WEEKS[1]}, the drift that triggered the retrain: " in output
    assert "(scheduled)" in output and "(drift)" in output and "(manual)" not in output

    with closing(sqlite3.connect(db)) as connection:
        runs = connection.execute(
            "SELECT run_id, logical_date, start_date, json_extract(conf, '$.reason') FROM dag_run "
            "WHERE dag_id = 'retrain_pipeline' ORDER BY run_after"
        ).fetchall()
        states = dict(
            connection.execute(
                "SELECT run_id, group_concat(coalesce(state, 'none')) FROM task_instance "
                "WHERE dag_id = 'retrain_pipeline' GROUP BY run_id"
            ).fetchall()
        )
    assert [reason for *_, reason in runs] == ["scheduled", "scheduled", "drift"], runs
    assert runs[-1][0] == f"drift_retrain__{WEEKS[1]}"  # the triggered run itself ran: no empty run beside it
    for run_id, logical_date, start_date, _ in runs:
        assert "none" not in states[run_id].split(","), (run_id, states[run_id])  # no "No Status"
        assert logical_date is not None
        assert start_date >= began, (run_id, logical_date, start_date)  # when it ran, not its logical date
