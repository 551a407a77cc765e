"""Run the retraining pipeline for consecutive weeks on the local provider, then summarise.

This is the main job of the README (``make demo``). It starts the local online endpoint, runs
``retrain_pipeline`` in-process (``dag.test()``) once per week, injects covariate drift from
a later week so the monitor triggers a retrain, runs that triggered retrain, and prints what
the loop did. Airflow's own logs go to ``<AIRFLOW_HOME>/demo.log``.

    python scripts/run_weeks.py --first-week 2026-W36 --weeks 6 --drift-from-week 5

Run outside make, it sets what the Makefile exports first (unless the environment sets it):
Airflow's home is the project's ``.airflow/`` (a SQLite database waiting 60 s for a lock), the
DAGs and plugins are the project's, the project is importable; a database not migrated yet is
migrated (``airflow db migrate``) with the training pool created, as ``make setup`` does.

In Airflow's grid each week is a run of its own, its logical date the Monday after the week (as
the schedule's run would have) and its start date the time it really ran; the drift retrain
runs as the ``drift_retrain__<week>`` run monitor_drift triggered.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "dags")]
#: what every weekly run records as its reason: it stands for the Monday run of the schedule
WEEKLY_REASON = "scheduled"


def project_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The settings the Makefile exports, for a run outside make; the environment's own win.

    The DAGs, plugins and examples follow the project (the Makefile sets them whatever the
    environment says); Airflow's home, its database and the rest are defaults.

    Args:
        environ: the environment to complete (default: this process's).

    Returns:
        The variables to set (those ``environ`` lacks, and the project's folders).
    """
    environ = dict(os.environ if environ is None else environ)
    home = environ.get("AIRFLOW_HOME") or str(ROOT / ".airflow")
    defaults = {
        "AIRFLOW_HOME": home,
        # SQLite's default 5 s lock wait is too short when Airflow's parts and the CLI all write
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db?timeout=60",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "MLFLOW_ENABLE_TELEMETRY": "false",
    }
    wanted = {key: value for key, value in defaults.items() if not environ.get(key)}
    wanted.update(
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
    )
    # the training subprocess imports the project (the virtualenv's .pth does too, when made by make)
    paths = [path for path in environ.get("PYTHONPATH", "").split(os.pathsep) if path]
    if str(ROOT) not in paths:
        wanted["PYTHONPATH"] = os.pathsep.join([str(ROOT), *paths])
    return {key: value for key, value in wanted.items() if environ.get(key) != value}


def ensure_airflow_db() -> None:
    """Migrate Airflow's SQLite database when it has no tables yet (a fresh home), as make setup does.

    Raises:
        SystemExit: the migration failed; the message quotes its log and says what to do.
    """
    import sqlite3
    import subprocess

    url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    if not url.startswith("sqlite:///"):
        return  # another database: the user's own, migrated by them
    path = Path(url.removeprefix("sqlite:///").split("?", 1)[0])
    if path.is_file():
        with contextlib.closing(sqlite3.connect(path, timeout=60)) as db:
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'task_instance'").fetchone():
                return
    path.parent.mkdir(parents=True, exist_ok=True)
    log = path.parent / "db-migrate.log"
    print(f"Airflow's database {path} has no tables yet: migrating it (airflow db migrate, log {log})")
    with open(log, "wb") as output:
        done = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], stdout=output, stderr=subprocess.STDOUT
        )
    if done.returncode:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise SystemExit(
            f"airflow db migrate failed ({log}):\n{tail}\nRun `make setup` in {ROOT}, or set AIRFLOW_HOME "
            "to an Airflow home whose database is migrated"
        )
    from airflow.models.pool import Pool

    from core.routing import task_routing

    routing = task_routing()
    Pool.create_or_update_pool(routing.training_pool, routing.training_pool_slots, "training jobs", False)


def main(argv: list[str] | None = None) -> int:
    """Run the weeks and print the summary; return 0 when every run succeeded."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-week", default="2026-W36")
    parser.add_argument("--weeks", type=int, default=6)
    parser.add_argument(
        "--drift-from-week", type=int, default=5, help="1-based week to inject drift from; 0: none"
    )
    parser.add_argument(
        "--drift-kind",
        choices=["both", "covariate", "concept"],
        default="both",
        help="covariate: feature distributions shift; concept: the label's relation to them changes",
    )
    parser.add_argument("--rows", type=int, default=5000, help="rows per week")
    from demo import DEMO_ENDPOINT_PORT, DEMO_STATE

    parser.add_argument("--state", type=Path, default=DEMO_STATE, help="where the demo keeps its data")
    parser.add_argument(
        "--endpoint-port",
        type=int,
        default=DEMO_ENDPOINT_PORT,
        help=f"the port of the demo's local endpoint (default {DEMO_ENDPOINT_PORT})",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="run with this settings file as it is (your dataset, source and model) instead of the "
        "demo's; --rows, --drift-*, --state and --endpoint-port are then ignored",
    )
    args = parser.parse_args(argv)
    os.environ.update(project_environment())  # before Airflow is imported: it reads them then

    from core.weeks import parse_week, shift_week, week_start

    weeks = [shift_week(parse_week(args.first_week), i) for i in range(args.weeks)]
    drift_week = weeks[args.drift_from_week - 1] if args.drift_from_week and not args.config else ""
    if args.config:
        config = args.config.resolve()
    else:
        config = _write_config(
            args.state,
            args.rows,
            args.endpoint_port,
            covariate_week=drift_week if args.drift_kind in ("both", "covariate") else "",
            concept_week=drift_week if args.drift_kind in ("both", "concept") else "",
        )
    os.environ["MLOPS_CONFIG"] = str(config)
    os.environ["MLOPS_PROVIDER"] = "local"  # the demo runs on this machine whatever astro.toml selects
    log_file = _log_file()
    log_file.unlink(missing_ok=True)
    ensure_airflow_db()

    if args.config:
        print(f"Config {config}: {args.weeks} weeks from {weeks[0]}. Airflow logs: {log_file}")
    else:
        print(f"Config {config}: {args.weeks} weeks from {weeks[0]}, {args.rows} rows each, "
              f"{args.drift_kind} drift from {drift_week or 'never'}. Airflow logs: {log_file}")  # fmt: skip
    endpoint, started_here = _start_endpoint(config)
    started = time.monotonic()
    failures = 0
    drift_weeks = []  # the weeks whose drift triggered a retrain
    try:
        from retrain_pipeline import retrain_pipeline

        _forget_drift_retrains(weeks)
        for week in weeks:
            # A scheduled run on the Monday after the week processes that week.
            logical = datetime.combine(week_start(week) + timedelta(days=7), datetime.min.time(), UTC)
            failures += _run(retrain_pipeline, week, logical.replace(hour=6), {"reason": WEEKLY_REASON})
            for run_id, logical_date, conf in _queued_drift_retrains():
                print(f"  monitor_drift triggered {run_id}: running it")
                drift_weeks.append(conf["week"])
                label = f"{conf['week']} (drift retrain)"
                failures += _run(retrain_pipeline, conf["week"], logical_date, conf, label, run_id=run_id)
    finally:
        if started_here:
            endpoint.stop()

    from core.config import load_settings
    from lifecycle.context import StageContext
    from lifecycle.summary import loop_summary

    ctx = StageContext(settings=load_settings(config), week=weeks[-1], actor="demo")
    print()
    print(_with_drift_report(loop_summary(ctx, weeks), ctx, drift_weeks))
    print(f"\n{len(weeks)} weeks in {time.monotonic() - started:.0f} s; {failures} failed run(s).")
    if not args.config:
        port = os.environ.get("AIRFLOW__API__PORT", "8080")  # the Makefile's, or the user's
        print("See its models and drift in the Airflow UI: `make airflow-demo` (Airflow with the demo's "
              f"settings), then Plugins -> MLOps -> Models / Drift on http://127.0.0.1:{port}")  # fmt: skip
    print(
        "In Airflow's grid these runs show as manual: Airflow's dag.test(), which runs them here "
        f"without a scheduler, makes every run manual. Each week's run records reason '{WEEKLY_REASON}' "
        "(the run the schedule would make), the drift retrain 'drift': see the model versions above."
    )
    return 1 if failures else 0


def _write_config(state: Path, rows: int, endpoint_port: int, covariate_week: str, concept_week: str) -> Path:
    """Write the demo's settings: astro.toml with its own folder, port, row count and drift knobs."""
    state.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "astro.toml").read_text()
    lines = []
    section = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
        key = stripped.split("=", 1)[0].strip()
        if section == "[data]" and key == "rows_per_week":
            line = f"rows_per_week = {rows}"
        elif section == "[data]" and key == "covariate_drift_from_week":
            line = f'covariate_drift_from_week = "{covariate_week}"'
        elif section == "[data]" and key == "concept_drift_from_week":
            line = f'concept_drift_from_week = "{concept_week}"'
        elif section == "[local]" and key == "root":
            line = f'root = "{state / "mlops"}"'
        elif section == "[local]" and key == "endpoint_port":
            line = f"endpoint_port = {endpoint_port}"
        lines.append(line)
    config = state / "astro.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def _start_endpoint(config: Path):
    """Start the local endpoint server of the demo's settings (or reuse a running one).

    Returns:
        The server and whether this call started it (then the demo stops it at the end).
    """
    from core.config import load_settings
    from providers.local.server_process import EndpointStartError, from_settings

    server = from_settings(load_settings(config))
    running = server.pid()
    try:
        pid = server.start()
    except EndpointStartError as exc:
        raise SystemExit(str(exc)) from None
    print(f"Local endpoint up at {server.url} (log: {server.log_file})")
    return server, pid is not None and pid != running


def _run(
    dag_factory,
    week: str,
    logical_date: datetime,
    conf: dict,
    label: str | None = None,
    run_id: str | None = None,
) -> int:
    """Run the pipeline for one week in-process; print one line; return 1 if it failed.

    Args:
        dag_factory: the DAG's function (a fresh DAG object each run: ``dag.test(run_conf=...)``
            leaves the conf in the DAG's params).
        week: the week, for the printed line.
        logical_date: the run's logical date. Never None: ``dag.test()`` without one clears
            every task instance of the DAG (its states read "No Status" in the grid).
        conf: the run's conf.
        label: the printed line's name (default: the week).
        run_id: the run's id (default: Airflow's ``manual__<time>``). A run of the same
            logical date is replaced, as ``dag.test()`` does.
    """
    dag = dag_factory()
    started, started_at = time.monotonic(), datetime.now(UTC)
    with _output_to(_log_file()), _run_id(run_id):
        run = dag.test(logical_date=logical_date, run_conf=conf or None)
    _record_start(run.run_id, started_at)
    state = str(getattr(run.state, "value", run.state))
    print(f"{label or week}: pipeline run {state} in {time.monotonic() - started:.1f} s")
    if state != "success":
        failed = [
            ti.task_id
            for ti in run.get_task_instances()
            if str(ti.state) in ("failed", "TaskInstanceState.FAILED")
        ]
        print(f"  failed tasks: {failed}; see the Airflow logs")
        return 1
    return 0


@contextlib.contextmanager
def _run_id(run_id: str | None):
    """Give the run ``dag.test()`` creates this id (it takes none: it names it ``manual__<time>``).

    ``dag.test()`` deletes a run of the DAG with the same logical date before it creates its
    own: the queued ``drift_retrain__<week>`` run goes, and the run that replaces it, with its
    id and conf, is the one that runs (one retrain run in the grid, with its tasks).
    """
    if run_id is None:
        yield
        return
    from unittest import mock

    from airflow.models.dagrun import DagRun

    with mock.patch.object(DagRun, "generate_run_id", lambda **_: run_id):
        yield


def _record_start(run_id: str, started_at: datetime) -> None:
    """Set the run's start date to when it ran.

    ``dag.test()`` records the logical date as the run's start date, so a past week's run would
    read as lasting months in the grid.
    """
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == "retrain_pipeline", DagRun.run_id == run_id).one()
        run.start_date = started_at


def _queued_drift_retrains() -> list[tuple[str, datetime, dict]]:
    """The retrain runs that monitor_drift queued (nothing runs them without a scheduler).

    Returns:
        Each run's id, logical date and conf.
    """
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        runs = (
            session.query(DagRun)
            .filter(DagRun.dag_id == "retrain_pipeline", DagRun.state == DagRunState.QUEUED)
            .filter(DagRun.run_id.like("drift_retrain__%"))
            .all()
        )
        return [(run.run_id, run.logical_date, dict(run.conf or {})) for run in runs]


def _forget_drift_retrains(weeks: list[str]) -> None:
    """Delete the ``drift_retrain__<week>`` runs an earlier demo left for these weeks.

    Each week's run replaces the earlier run of its logical date (``dag.test()`` does so); the
    retrain it triggers must be able to run again too: monitor_drift's trigger skips a week
    whose retrain run exists.
    """
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        for run in session.query(DagRun).filter(
            DagRun.dag_id == "retrain_pipeline",
            DagRun.run_id.in_([f"drift_retrain__{week}" for week in weeks]),
        ):
            session.delete(run)


def _with_drift_report(summary: str, ctx, drift_weeks: list[str]) -> str:  # noqa: ANN001 - StageContext
    """The summary, its drift report line pointing at the report of the drift that triggered a retrain.

    The summary links the last week's report; the week to look at is the one whose drift
    triggered the retrain (the last such week). Without a drift retrain the summary stays.
    """
    from lifecycle.keys import drift_report_key

    storage = ctx.provider.storage
    reported = [week for week in drift_weeks if storage.exists(drift_report_key(week))]
    if not reported:
        return summary
    week = reported[-1]
    line = (
        f"Drift report of {week}, the drift that triggered the retrain: "
        f"{storage.uri(drift_report_key(week))} (and one per week beside it)"
    )
    lines = summary.splitlines()
    kept = [line if text.startswith("Drift reports: ") else text for text in lines]
    return "\n".join(kept if kept != lines else [*lines, line])


def _log_file() -> Path:
    """Where Airflow's output goes (``<AIRFLOW_HOME>/demo.log``), once the environment is set."""
    return Path(os.environ.get("AIRFLOW_HOME") or ROOT / ".airflow") / "demo.log"


@contextlib.contextmanager
def _output_to(log_file: Path):
    """Send all that is written to stdout/stderr while a run goes on to a file.

    That is Airflow's structlog output, the tasks' logs and the training subprocess's; the
    terminal keeps the summary lines.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_file, "ab") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


if __name__ == "__main__":
    sys.exit(main())
