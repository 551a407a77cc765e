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

import glob
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import ROOT, EndpointServer, free_port, scheduled_logical_date, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

DAG_ID = "retrain_pipeline"
WEEKS = ["2026-W05", "2026-W06", "2026-W07", "2026-W08"]  # processed by the runs of 2 Feb .. 23 Feb
ROWS = 1500
RUNS_TIMEOUT = 20 * 60  # seconds for the four runs
AIRFLOW = Path(sys.executable).parent / "airflow"
SERVICES = ("api-server", "dag-processor", "scheduler")
TERMINAL = ("success", "failed")


class Airflow:
    """Airflow's components in child processes, with their own AIRFLOW_HOME and logs."""

    def __init__(self, home: Path, env: dict[str, str], api_port: int) -> None:
        self.home, self.env, self.api_port = home, env, api_port
        self.db = home / "airflow.db"
        self.processes: dict[str, subprocess.Popen] = {}

    def cli(self, *args: str, timeout: float = 300) -> str:
        """Run an ``airflow`` command to completion; return its stdout."""
        result = subprocess.run(
            [str(AIRFLOW), *args], env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise AssertionError(
                f"airflow {' '.join(args)} exited with {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def start(self, name: str, *args: str) -> None:
        """Start ``airflow <name> <args>`` in its own process group, logging to <home>/<name>.log."""
        with open(self.home / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(
                [str(AIRFLOW), name, *args],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def check_alive(self) -> None:
        """Fail if a component has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                pytest.fail(f"airflow {name} exited with {process.returncode}\n{self.diagnostics()}")

    def wait_api_ready(self, timeout: float = 180) -> None:
        """Wait until the api-server answers its health endpoint."""
        import httpx

        url = f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(1)
        pytest.fail(f"the api-server did not answer {url} in {timeout:.0f} s\n{self.diagnostics()}")

    def wait_dag_parsed(self, timeout: float = 300) -> None:
        """Wait until the dag-processor has stored the DAG in the metadata database."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.query("SELECT dag_id FROM serialized_dag WHERE dag_id = ?", DAG_ID):
                return
            time.sleep(2)
        errors = self.query("SELECT filename, stacktrace FROM import_error")
        pytest.fail(
            f"{DAG_ID} was not parsed in {timeout:.0f} s; import errors: {errors}\n{self.diagnostics()}"
        )

    def query(self, sql: str, *params: object) -> list[dict]:
        """Read the metadata database (read-only, so the test never holds a write lock)."""
        with closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)) as con:
            con.row_factory = sqlite3.Row
            return [dict(row) for row in con.execute(sql, params)]

    def runs(self) -> list[dict]:
        """The DAG's runs, oldest logical date first."""
        return self.query(
            "SELECT run_id, run_type, state, logical_date, start_date, end_date, backfill_id "
            "FROM dag_run WHERE dag_id = ? ORDER BY logical_date",
            DAG_ID,
        )

    def stop(self, grace: float = 10) -> None:
        """SIGTERM every component's process group (and leftover children), SIGKILL after ``grace`` s."""
        import psutil

        doomed: list[psutil.Process] = []
        for process in self.processes.values():
            try:
                doomed += [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        for process in self.processes.values():
            _signal_group(process.pid, signal.SIGTERM)
        for p in doomed:  # task processes run in process groups of their own
            try:
                p.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(doomed, timeout=grace)
        for process in self.processes.values():
            _signal_group(process.pid, signal.SIGKILL)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        for process in self.processes.values():
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def diagnostics(self) -> str:
        """The tails of the components' logs and the logs of the failed task instances."""
        parts = []
        for name in SERVICES:
            parts.append(f"----- {name}.log (tail) -----\n{_tail(self.home / f'{name}.log', 60)}")
        try:
            failed = self.query(
                "SELECT run_id, task_id, state, try_number FROM task_instance WHERE dag_id = ? "
                "AND state IN ('failed', 'upstream_failed', 'up_for_retry')",
                DAG_ID,
            )
        except sqlite3.Error as exc:
            failed, parts = [], [*parts, f"(cannot read task instances: {exc})"]
        for ti in failed:
            pattern = os.path.join(
                glob.escape(str(self.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={ti['run_id']}")),
                f"task_id={glob.escape(ti['task_id'])}",
                "**",
                "*.log",
            )
            for path in sorted(glob.glob(pattern, recursive=True)):
                parts.append(f"----- {ti['state']}: {path} (tail) -----\n{_task_log_tail(Path(path), 60)}")
        return "\n".join(parts)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(path: Path, lines: int) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _task_log_tail(path: Path, lines: int) -> str:
    """The end of a task log (JSON lines) as text, with the exceptions' types, messages and frames."""
    out = []
    for line in path.read_text(errors="replace").splitlines()[-lines:]:
        try:
            record = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        out.append(f"{record.get('timestamp', '')} {record.get('level', '')} {record.get('event', '')}")
        for error in record.get("error_detail") or []:
            frames = [
                f"{f.get('filename')}:{f.get('lineno')} {f.get('name')}" for f in error.get("frames", [])
            ]
            out.append(f"    {error.get('exc_type')}: {error.get('exc_value')}")
            out += [f"      at {frame}" for frame in frames[-8:]]
    return "\n".join(out)


def _utc(value: str | None) -> datetime | None:
    """A datetime read from the SQLite metadata database (stored as naive UTC text)."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _airflow_env(home: Path, api_port: int, config: Path) -> dict[str, str]:
    """The child processes' environment: this checkout's DAGs, a fresh home, 127.0.0.1 only."""
    env = {k: v for k, v in os.environ.items() if k not in ("AIRFLOW_CONFIG", "MLOPS_PROVIDER")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            # SQLite waits 5 s for a lock by default: too short with three components writing
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout=60",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # the workers reach the Task Execution API on the test's api-server
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            # no run for the latest Monday beside the backfill (see the module docstring)
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
            "MLOPS_CONFIG": str(config),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "GX_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "MLFLOW_ENABLE_TELEMETRY": "false",
        }
    )
    return env


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
    airflow = Airflow(home, _airflow_env(home, api_port, config), api_port)
    logical_dates = [scheduled_logical_date(week) for week in WEEKS]
    timings: dict[str, float] = {}
    started = time.monotonic()
    server = None
    try:
        airflow.cli("db", "migrate", timeout=600)
        timings["db migrate"] = time.monotonic() - started
        server = EndpointServer(folder / "mlops" / "endpoint" / "deployments", endpoint_port).wait_ready()
        airflow.start("api-server", "--host", "127.0.0.1", "--port", str(api_port))
        airflow.start("dag-processor")
        # The log server of LocalExecutor binds every interface; the api-server reads the task
        # logs from <AIRFLOW_HOME>/logs on this machine anyway.
        airflow.start("scheduler", "--skip-serve-logs")
        airflow.wait_api_ready()
        airflow.wait_dag_parsed()
        timings["components up, DAG parsed"] = time.monotonic() - started

        airflow.cli("dags", "unpause", DAG_ID)
        airflow.cli(
            "backfill", "create",
            "--dag-id", DAG_ID,
            # both ends inclusive, compared with the 06:00 UTC run times
            "--from-date", logical_dates[0].isoformat(),
            "--to-date", logical_dates[-1].isoformat(),
            "--max-active-runs", "1",
        )  # fmt: skip
        backfill_started = time.monotonic()

        deadline = backfill_started + RUNS_TIMEOUT
        while True:
            airflow.check_alive()
            runs = airflow.runs()
            backfill_runs = [r for r in runs if r["run_type"] == "backfill"]
            done = (
                len(backfill_runs) >= len(WEEKS)
                and all(r["state"] in TERMINAL for r in runs)  # drift retrains, if any, too
                and all(b["completed_at"] for b in airflow.query("SELECT completed_at FROM backfill"))
            )
            if done:
                break
            if time.monotonic() > deadline:
                states = [(r["run_id"], r["state"]) for r in runs]
                backfills = airflow.query("SELECT id, completed_at FROM backfill")
                pytest.fail(
                    f"the backfill did not finish in {RUNS_TIMEOUT} s: runs {states}, backfills {backfills}\n"
                    f"{airflow.diagnostics()}"
                )
            time.sleep(5)
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
    assert [_utc(r["logical_date"]) for r in runs] == backfill["logical_dates"], runs
    states = {r["run_id"]: r["state"] for r in runs}
    assert set(states.values()) == {"success"}, f"{states}\n{airflow.diagnostics()}"
    assert len({r["backfill_id"] for r in runs}) == 1
    # the scheduler marked the backfill itself complete
    [row] = airflow.query("SELECT completed_at, max_active_runs FROM backfill")
    assert row["completed_at"] and row["max_active_runs"] == 1
    # max_active_runs=1: each run started after the one before it ended
    for before, after in zip(runs, runs[1:], strict=False):
        assert _utc(after["start_date"]) >= _utc(before["end_date"]), (before, after)
    durations = {
        r["run_id"]: f"{(_utc(r['end_date']) - _utc(r['start_date'])).total_seconds():.0f} s" for r in runs
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
