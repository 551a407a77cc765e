"""Run the retraining pipeline for consecutive weeks on the local provider, then summarise.

This is the README's main job (``make demo``). It starts the local online endpoint, runs
``retrain_pipeline`` in-process (``dag.test()``) once per week, injects covariate drift from
a later week so the monitor triggers a retrain, runs that triggered retrain, and prints what
the loop did. Airflow's own logs go to ``<AIRFLOW_HOME>/demo.log``.

    python scripts/run_weeks.py --first-week 2026-W36 --weeks 6 --drift-from-week 5
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
    log_file = _LOG_FILE
    log_file.unlink(missing_ok=True)

    if args.config:
        print(f"Config {config}: {args.weeks} weeks from {weeks[0]}. Airflow logs: {log_file}")
    else:
        print(f"Config {config}: {args.weeks} weeks from {weeks[0]}, {args.rows} rows each, "
              f"{args.drift_kind} drift from {drift_week or 'never'}. Airflow logs: {log_file}")  # fmt: skip
    endpoint, started_here = _start_endpoint(config)
    started = time.monotonic()
    failures = 0
    try:
        from retrain_pipeline import retrain_pipeline

        for week in weeks:
            # A scheduled run on the Monday after the week processes that week.
            logical = datetime.combine(week_start(week) + timedelta(days=7), datetime.min.time(), UTC)
            failures += _run(retrain_pipeline, week, logical.replace(hour=6), {})
            for run_id, conf in _queued_drift_retrains():
                print(f"  monitor_drift triggered {run_id}: running it")
                failures += _run(
                    retrain_pipeline, conf["week"], None, conf, label=f"{conf['week']} (drift retrain)"
                )
                _mark_done(run_id)
    finally:
        if started_here:
            endpoint.stop()

    from core.config import load_settings
    from lifecycle.context import StageContext
    from lifecycle.summary import loop_summary

    ctx = StageContext(settings=load_settings(config), week=weeks[-1], actor="demo")
    print()
    print(loop_summary(ctx, weeks))
    print(f"\n{len(weeks)} weeks in {time.monotonic() - started:.0f} s; {failures} failed run(s).")
    if not args.config:
        port = os.environ.get("AIRFLOW__API__PORT", "8080")  # the Makefile's, or the user's
        print("See its models and drift in the Airflow UI: `make airflow-demo` (Airflow with the demo's "
              f"settings), then Plugins -> Models / Drift on http://127.0.0.1:{port}")  # fmt: skip
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


def _run(dag_factory, week: str, logical_date: datetime | None, conf: dict, label: str | None = None) -> int:
    """Run the pipeline for one week in-process; print one line; return 1 if it failed."""
    dag = dag_factory()  # a fresh DAG object: dag.test(run_conf=...) leaves the conf in the DAG's params
    started = time.monotonic()
    with _output_to(_LOG_FILE):
        run = dag.test(logical_date=logical_date, run_conf=conf or None)
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


def _queued_drift_retrains() -> list[tuple[str, dict]]:
    """The retrain runs that monitor_drift queued (nothing runs them without a scheduler)."""
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
        return [(run.run_id, dict(run.conf or {})) for run in runs]


def _mark_done(run_id: str) -> None:
    """Mark a queued trigger as handled: the demo ran its work as a run of its own."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.run_id == run_id).one()
        run.state = DagRunState.SUCCESS


_LOG_FILE = Path(os.environ.get("AIRFLOW_HOME", ROOT / ".airflow")) / "demo.log"


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
