"""The first day's small fixes, checked fast (issue 24): what a new user meets outside make.

- ``scripts/run_weeks.py`` run as written (no make, no AIRFLOW_HOME) takes the Makefile's
  settings: the project's Airflow home with SQLite's 60 s lock wait, its DAGs, its importable
  root; what the user set stays theirs. (tests/e2e/test_run_weeks_outside_make.py runs it.)
- The demo's closing line links the report of the week whose drift triggered the retrain.
- The demo's weekly runs record reason 'scheduled': the reason Param accepts it.
- ``make serve-stop`` stops the project's and the demo's background endpoints, each by its pid
  file, saying which; ``make serve`` serves the settings' folder on the settings' port.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helpers import ROOT, free_port, write_config

from scripts import run_weeks

# --------------------------------------------------------------------------------------------
# run_weeks.py outside make


def test_a_clean_environment_gets_the_makefiles_airflow_settings() -> None:
    env = run_weeks.project_environment({"PATH": "/usr/bin:/bin", "HOME": "/home/someone"})

    home = ROOT / ".airflow"
    assert env["AIRFLOW_HOME"] == str(home)  # not ~/airflow, whose database nobody migrated
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{home}/airflow.db?timeout=60"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(ROOT / "dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(ROOT / "plugins")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["PYTHONPATH"] == str(ROOT)
    assert "PATH" not in env and "HOME" not in env


def test_what_the_user_set_stays_and_the_database_follows_their_home(tmp_path: Path) -> None:
    env = run_weeks.project_environment(
        {"AIRFLOW_HOME": str(tmp_path), "PYTHONPATH": "/opt/lib", "DO_NOT_TRACK": "0"}
    )
    assert "AIRFLOW_HOME" not in env and "DO_NOT_TRACK" not in env
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path}/airflow.db?timeout=60"
    assert env["PYTHONPATH"] == f"{ROOT}{os.pathsep}/opt/lib"

    theirs = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://u@h/airflow", "PYTHONPATH": str(ROOT)}
    env = run_weeks.project_environment(theirs)
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in env and "PYTHONPATH" not in env


def test_a_migrated_database_is_not_migrated_again(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    import sqlite3

    db = tmp_path / "airflow.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE task_instance (id INTEGER)")
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{db}?timeout=60")
    monkeypatch.setattr(subprocess, "run", _refuse)
    run_weeks.ensure_airflow_db()  # no migration: subprocess.run would fail the test
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql://u@h/airflow")
    run_weeks.ensure_airflow_db()  # the user's own database: theirs to migrate


def test_a_failed_migration_says_what_to_do(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{tmp_path}/new/airflow.db")

    def fail(command, stdout, **_):  # noqa: ANN001, ANN202
        stdout.write(b"the migration's own error\n")
        return subprocess.CompletedProcess(command, 1)

    monkeypatch.setattr(subprocess, "run", fail)
    with pytest.raises(SystemExit) as info:
        run_weeks.ensure_airflow_db()
    message = str(info.value)
    assert "the migration's own error" in message
    assert "make setup" in message and "AIRFLOW_HOME" in message


def _refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
    raise AssertionError(f"unexpected subprocess: {args}")


def test_the_drift_retrain_runs_under_the_id_monitor_drift_gave_it() -> None:
    from airflow.models.dagrun import DagRun

    with run_weeks._run_id("drift_retrain__2026-W40"):
        assert DagRun.generate_run_id(run_type="manual", logical_date=None, run_after=None) == (
            "drift_retrain__2026-W40"
        )
    with run_weeks._run_id(None):
        assert DagRun.generate_run_id(run_type="manual", logical_date=None, run_after=_now()).startswith(
            "manual__"
        )


def _now():  # noqa: ANN202
    from datetime import UTC, datetime

    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------
# the closing line


class _Storage:
    def __init__(self, weeks: set[str]) -> None:
        self.weeks = weeks

    def exists(self, key: str) -> bool:
        return any(f"week={week}/" in key for week in self.weeks)

    def uri(self, key: str) -> str:
        return f"file:///reports/{key}"


class _Ctx:
    def __init__(self, weeks: set[str]) -> None:
        self.provider = type("P", (), {"storage": _Storage(weeks)})()


SUMMARY = (
    "table\n\n"
    "Drift reports: file:///reports/reports/drift/week=2026-W41/report.html (and one per week beside it)\n"
    "Predictions: 9 rows"
)


def test_the_closing_line_links_the_week_whose_drift_triggered_the_retrain() -> None:
    text = run_weeks._with_drift_report(SUMMARY, _Ctx({"2026-W40", "2026-W41"}), ["2026-W40"])
    lines = text.splitlines()
    assert lines[2] == (
        "Drift report of 2026-W40, the drift that triggered the retrain: "
        "file:///reports/reports/drift/week=2026-W40/report.html (and one per week beside it)"
    )
    assert "W41" not in text and lines[-1] == "Predictions: 9 rows"


def test_without_a_drift_retrain_the_summary_stays() -> None:
    assert run_weeks._with_drift_report(SUMMARY, _Ctx({"2026-W41"}), []) == SUMMARY
    assert run_weeks._with_drift_report(SUMMARY, _Ctx({"2026-W41"}), ["2026-W40"]) == SUMMARY  # no report


# --------------------------------------------------------------------------------------------
# the reason the demo's weekly runs record


def test_the_reason_param_takes_scheduled_and_the_weekly_runs_pass_it() -> None:
    from wiring.params import reason_param

    from lifecycle.context import REASONS

    param = reason_param()
    for value in (None, "scheduled", "manual", "drift"):
        assert param.resolve(value) == value
        assert value is None or value in REASONS
    with pytest.raises(Exception, match="bogus"):
        param.resolve("bogus")
    assert run_weeks.WEEKLY_REASON == "scheduled"


def test_a_run_without_a_reason_takes_it_from_its_run_type() -> None:
    from wiring.stages import _reason

    assert _reason("scheduled") == "scheduled"
    assert _reason("backfill") == "backfill"
    assert _reason("manual") == "manual"  # dag.test() and `airflow dags test` runs too: pass a reason


# --------------------------------------------------------------------------------------------
# make serve-stop / make serve


def test_serve_stop_stops_each_settings_server_by_its_pid_file(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from core.config import load_settings
    from providers.local.server_process import from_settings, main

    project = write_config(tmp_path / "project", local={"endpoint_port": free_port()})
    demo = write_config(tmp_path / "demo", local={"endpoint_port": free_port()})
    servers = [from_settings(load_settings(path)) for path in (project, demo)]
    try:
        pid = servers[1].start()  # only the demo's runs
        assert pid is not None
        capsys.readouterr()

        assert main(["stop", "--config", str(project), "--config", str(demo), "--config", str(demo)]) == 0

        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 2, lines  # a file named twice counts once
        assert lines[0].startswith(f"no endpoint server of {project} ")
        assert f"{servers[0].url}" in lines[0] and lines[0].endswith(" runs")
        assert lines[1].startswith(f"stopped the local endpoint server of {demo} ({servers[1].url}")
        assert lines[1].endswith(f"pid {pid}")
        assert servers[1].pid() is None and not servers[1].pid_file.exists()
    finally:
        for server in servers:
            server.stop(grace=5)


def test_make_serve_stop_names_the_demos_settings_when_the_demo_has_run(tmp_path: Path) -> None:
    demo = tmp_path / "astro.toml"
    demo.write_text("")

    def dry_run(settings: Path) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MLOPS_"))}
        done = subprocess.run(
            ["make", "--no-print-directory", "-n", "-o", "setup", "serve-stop", f"DEMO_SETTINGS={settings}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return done.stdout

    assert '--config "${MLOPS_CONFIG:-astro.toml}"' in dry_run(demo)
    assert f"--config {demo}" in dry_run(demo)
    assert "--config /nonexistent" not in dry_run(Path("/nonexistent/astro.toml"))


def test_serve_serves_the_settings_folder_on_the_settings_port(tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    from providers.local import server_process

    port = free_port()
    config = write_config(tmp_path, local={"endpoint_port": port})
    started = []

    def execv(path: str, argv: list[str]) -> None:
        started.append(argv)
        raise SystemExit(0)  # the real execv never returns

    monkeypatch.setattr(server_process.os, "execv", execv)
    with pytest.raises(SystemExit):
        server_process.main(["serve", "--config", str(config)])

    [argv] = started
    deployments = tmp_path / "mlops" / "endpoint" / "deployments"
    assert argv[argv.index("--port") + 1] == str(port)
    assert argv[argv.index("--deployments") + 1] == str(deployments) and deployments.is_dir()
    assert argv[argv.index("--config") + 1] == str(config)
    assert f"on http://127.0.0.1:{port}" in capsys.readouterr().out
