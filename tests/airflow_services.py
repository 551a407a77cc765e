"""Airflow's own components (api-server, dag-processor, scheduler) run by the tests, on 127.0.0.1.

``Airflow`` starts each component in a process group of its own with an AIRFLOW_HOME of the
test's own and a metadata database of its own in a PostgreSQL cluster (LocalExecutor), reads the
metadata database, and stops everything by pid (SIGTERM, then SIGKILL after a grace period) even
when a test fails. A component that exits fails the test with the last lines of its log: nothing
is restarted behind the test's back. ``backfill_session`` is the session-scoped backfill that the
e2e and reliability modules share, so the scheduler and the four backfill runs are paid for once.

PostgreSQL, as a production Airflow uses, not SQLite: on SQLite, ``backfill create`` was refused
with "database is locked" while the scheduler wrote (leaving a half-made backfill behind), and the
scheduler died of a StaleDataError under concurrent writers; the harness had to stop the scheduler
around ``backfill create`` and retry commands. Here the scheduler runs through every backfill
create, as the README tells users to do.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from emulators import PostgresCluster
from helpers import ROOT, EndpointServer, airflow_base_env, free_port, scheduled_logical_date, write_config

DAG_ID = "retrain_pipeline"
BACKFILL_WEEKS = ["2026-W05", "2026-W06", "2026-W07", "2026-W08"]  # the runs of 2 Feb .. 23 Feb
ROWS = 1500
RUNS_TIMEOUT = 20 * 60  # seconds for the four runs
AIRFLOW = Path(sys.executable).parent / "airflow"
SERVICES = ("api-server", "dag-processor", "scheduler")
TERMINAL = ("success", "failed")


class Airflow:
    """Airflow's components in child processes, with their own AIRFLOW_HOME, logs and database."""

    def __init__(self, home: Path, env: dict[str, str], api_port: int, database: str) -> None:
        """``database``: the libpq URL of the (empty or migrated) PostgreSQL metadata database."""
        self.home, self.api_port, self.database = home, api_port, database
        self.env = {**env, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlalchemy_url(database)}
        self.processes: dict[str, subprocess.Popen] = {}

    def cli(self, *args: str, timeout: float = 300) -> str:
        """Run an ``airflow`` command to completion; return its stdout (fail with its output)."""
        result = subprocess.run(
            [str(AIRFLOW), *args], env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise AssertionError(
                f"airflow {' '.join(args)} exited with {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def migrate(self) -> None:
        """Migrate the metadata database; create the training pool of the settings' [airflow]."""
        from core.routing import task_routing

        self.cli("db", "migrate", timeout=600)
        routing = task_routing(self.env.get("MLOPS_CONFIG"))
        self.cli("pools", "set", routing.training_pool, str(routing.training_pool_slots), "training jobs")

    def start(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> None:
        """Start ``airflow <name> <args>`` in its own process group, logging to <home>/<name>.log."""
        with open(self.home / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(
                [str(AIRFLOW), name, *args],
                env={**self.env, **(extra_env or {})},
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def start_components(self, scheduler_env: dict[str, str] | None = None) -> None:
        """Start api-server, dag-processor and scheduler; wait for the API and the pipeline DAG."""
        self.start("api-server", "--host", "127.0.0.1", "--port", str(self.api_port))
        self.start("dag-processor")
        # The log server of LocalExecutor binds every interface; the api-server reads the task
        # logs from <AIRFLOW_HOME>/logs on this machine anyway.
        self.start("scheduler", "--skip-serve-logs", extra_env=scheduler_env)
        self.wait_api_ready()
        self.wait_dag_parsed()

    def check_alive(self) -> None:
        """Fail the test if a component has exited, with the last lines of its log.

        A crashed scheduler is a failure of the run under test, never restarted silently.
        """
        for name, process in list(self.processes.items()):
            if process.poll() is None:
                continue
            pytest.fail(
                f"airflow {name} exited with {process.returncode}; the last lines of {name}.log:\n"
                f"{_tail(self.home / f'{name}.log', 40)}\n{self.diagnostics()}"
            )

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

    def wait_dag_parsed(self, dag_id: str = DAG_ID, timeout: float = 300) -> None:
        """Wait until the dag-processor has stored the DAG in the metadata database."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.query("SELECT dag_id FROM serialized_dag WHERE dag_id = %s", dag_id):
                return
            time.sleep(2)
        errors = self.query("SELECT filename, stacktrace FROM import_error")
        pytest.fail(
            f"{dag_id} was not parsed in {timeout:.0f} s; import errors: {errors}\n{self.diagnostics()}"
        )

    def wait_for(self, done: Callable[[], bool], timeout: float, what: str, poll: float = 3) -> None:
        """Poll ``done()`` until it is true; fail with the components' diagnostics after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not done():
            self.check_alive()
            if time.monotonic() > deadline:
                pytest.fail(f"{what} did not happen in {timeout:.0f} s\n{self.diagnostics()}")
            time.sleep(poll)

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        """The state of one DAG run (None until it exists)."""
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", dag_id, run_id)
        return rows[0]["state"] if rows else None

    def task_tries(self, dag_id: str, run_id: str) -> dict[str, tuple[str, int]]:
        """Each task of a run: its state and try number."""
        rows = self.query(
            "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = %s AND run_id = %s",
            dag_id,
            run_id,
        )
        return {r["task_id"]: (r["state"], r["try_number"]) for r in rows}

    def query(self, sql: str, *params: object) -> list[dict]:
        """Read the metadata database (``%s`` placeholders); rows as dicts."""
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(self.database, autocommit=True, row_factory=dict_row) as con:
            return con.execute(sql, params or None).fetchall()

    def runs(self, dag_id: str = DAG_ID) -> list[dict]:
        """The DAG's runs, oldest logical date first."""
        return self.query(
            "SELECT run_id, run_type, state, logical_date, start_date, end_date, backfill_id "
            "FROM dag_run WHERE dag_id = %s ORDER BY logical_date",
            dag_id,
        )

    def stop(self, grace: float = 10) -> None:
        """SIGTERM every component's process group (and leftover children), SIGKILL after ``grace`` s."""
        from scripts.cluster import stop_groups

        stop_groups([process.pid for process in self.processes.values()], grace)
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
                "SELECT dag_id, run_id, task_id, state, try_number FROM task_instance "
                "WHERE state IN ('failed', 'upstream_failed', 'up_for_retry')"
            )
        except Exception as exc:  # the database itself may be what failed
            failed, parts = [], [*parts, f"(cannot read task instances: {exc})"]
        for ti in failed:
            pattern = os.path.join(
                glob.escape(str(self.home / "logs" / f"dag_id={ti['dag_id']}" / f"run_id={ti['run_id']}")),
                f"task_id={glob.escape(ti['task_id'])}",
                "**",
                "*.log",
            )
            for path in sorted(glob.glob(pattern, recursive=True)):
                parts.append(f"----- {ti['state']}: {path} (tail) -----\n{task_log_tail(Path(path), 60)}")
        return "\n".join(parts)


def _tail(path: Path, lines: int) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def task_log_tail(path: Path, lines: int) -> str:
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


def utc(value: datetime | None) -> datetime | None:
    """A timestamp read from the metadata database, in UTC."""
    return None if value is None else value.astimezone(UTC)


def sqlalchemy_url(database: str) -> str:
    """Airflow's SQLAlchemy URL (the psycopg2 driver of the lock) of a libpq database URL."""
    return database.replace("postgresql://", "postgresql+psycopg2://", 1)


def airflow_env(home: Path, api_port: int, config: Path) -> dict[str, str]:
    """The child processes' environment: this checkout's DAGs, a fresh home, 127.0.0.1 only."""
    env = {k: v for k, v in os.environ.items() if k not in ("AIRFLOW_CONFIG", "MLOPS_PROVIDER")}
    env.update(airflow_base_env(home))
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # the workers reach the Task Execution API on the test's api-server
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            # Unpausing a catchup=False DAG would start a run for the latest Monday beside the
            # backfill (backfill runs do not count against max_active_runs), writing to the same
            # registry. Backfill runs are started by the scheduler regardless of this setting.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
            "MLOPS_CONFIG": str(config),
        }
    )
    return env


FAULTS = ROOT / "tests" / "faults"  # its sitecustomize.py arms the task processes' fault points
SECRET = "s3cr3t-4c0nn3ct10n-9f2d7a1e"  # the password of the components' aws_default connection


def backfill(
    airflow: Airflow,
    logical_dates: list[datetime],
    *options: str,
    timeout: float = RUNS_TIMEOUT,
    poll: float = 5,
) -> None:
    """Create a backfill of the pipeline over ``logical_dates`` and wait until every run is done."""
    before = len(airflow.query("SELECT id FROM backfill"))
    # created while the scheduler runs, as the README tells users to do
    airflow.cli(
        "backfill", "create",
        "--dag-id", DAG_ID,
        # both ends inclusive, compared with the 06:00 UTC run times
        "--from-date", logical_dates[0].isoformat(),
        "--to-date", logical_dates[-1].isoformat(),
        "--max-active-runs", "1",
        *options,
    )  # fmt: skip

    def done() -> bool:
        backfills = airflow.query("SELECT completed_at FROM backfill")
        return (
            len(backfills) > before
            and all(b["completed_at"] for b in backfills)
            and all(r["state"] in TERMINAL for r in airflow.runs())  # drift retrains, if any, too
        )

    airflow.wait_for(done, timeout, f"the backfill {' '.join(options)}", poll=poll)


def backfill_session(tmp_path_factory: pytest.TempPathFactory, cluster: PostgresCluster) -> Iterator[dict]:
    """Backfill four weeks through scheduler, dag-processor and api-server; yield while they run.

    The metadata database is a database of its own in ``cluster``.

    Every component has an ``aws_default`` connection whose password is ``SECRET`` (the
    reliability tests scan what the runs wrote for it), and the scheduler (whose forks run the
    tasks) loads the fault points of ``tests/faults`` (none is armed until a test arms one).
    """
    folder = tmp_path_factory.mktemp("backfill")
    home = folder / "airflow"
    home.mkdir()
    faults = folder / "faults"
    faults.mkdir()
    endpoint_port, api_port = free_port(), free_port()
    config = write_config(
        folder,
        local={"endpoint_port": endpoint_port},
        data={"rows_per_week": ROWS},
        model={"params": {"max_iter": 40}},
    )
    env = airflow_env(home, api_port, config)
    env["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
        {
            "conn_type": "aws",
            "login": "AKIAEXAMPLE",
            "password": SECRET,
            "extra": {"region_name": "eu-west-1"},
        }
    )
    airflow = Airflow(home, env, api_port, cluster.create_database("airflow_backfill"))
    logical_dates = [scheduled_logical_date(week) for week in BACKFILL_WEEKS]
    timings: dict[str, float] = {}
    started = time.monotonic()
    server = None
    try:
        airflow.migrate()
        timings["db migrate"] = time.monotonic() - started
        server = EndpointServer(folder / "mlops" / "endpoint" / "deployments", endpoint_port).wait_ready()
        fault_env = {
            "MLOPS_TEST_FAULTS": str(faults),
            "PYTHONPATH": os.pathsep.join([str(FAULTS), env["PYTHONPATH"]]),
        }
        airflow.start_components(scheduler_env=fault_env)
        scheduler_pid = airflow.processes["scheduler"].pid
        timings["components up, DAG parsed"] = time.monotonic() - started

        airflow.cli("dags", "unpause", DAG_ID)
        backfill_started = time.monotonic()
        backfill(airflow, logical_dates)
        timings["backfill"] = time.monotonic() - backfill_started

        from core.config import load_settings
        from lifecycle.context import StageContext

        ctx = StageContext(settings=load_settings(config), week=BACKFILL_WEEKS[-1], actor="test")
        runs = airflow.runs()
        yield {
            "airflow": airflow,
            "runs": runs,
            "backfill_runs": [r for r in runs if r["run_type"] == "backfill"],
            "logical_dates": logical_dates,
            "ctx": ctx,
            "config": config,
            "root": folder / "mlops",
            "faults": faults,
            "timings": timings,
            "scheduler_pid": scheduler_pid,  # the scheduler that ran through the backfill's creation
        }
    finally:
        airflow.stop()
        if server is not None:
            server.stop()
        durations = {k: f"{v:.0f} s" for k, v in timings.items()}
        print(f"\nscheduler session timings: {durations}, total {time.monotonic() - started:.0f} s")
