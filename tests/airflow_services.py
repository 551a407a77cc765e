"""Airflow's own components (api-server, dag-processor, scheduler) run by the tests, on 127.0.0.1.

``Airflow`` starts each component in a process group of its own with an AIRFLOW_HOME of the
test's own (a fresh SQLite metadata database, LocalExecutor), reads the metadata database
read-only, and stops everything by pid (SIGTERM, then SIGKILL after a grace period) even when a
test fails. ``backfill_session`` is the session-scoped backfill that the e2e and reliability
modules share, so the scheduler and the four backfill runs are paid for once.
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
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import ROOT, EndpointServer, airflow_base_env, free_port, scheduled_logical_date, write_config

DAG_ID = "retrain_pipeline"
BACKFILL_WEEKS = ["2026-W05", "2026-W06", "2026-W07", "2026-W08"]  # the runs of 2 Feb .. 23 Feb
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
        self.commands: dict[str, tuple[tuple[str, ...], dict[str, str] | None]] = {}
        self.restarts: list[str] = []  # scheduler crashes survived, with their last error line

    def cli(self, *args: str, timeout: float = 300, before_retry: Callable[[], None] | None = None) -> str:
        """Run an ``airflow`` command to completion; return its stdout.

        A command that SQLite refuses with "database is locked" is run again (up to 3 times): a
        transaction that starts reading and then writes gets SQLITE_BUSY at once, without the
        lock wait, when another component writes at the same moment; the refused transaction
        was rolled back. ``before_retry`` undoes what such a command committed before it was
        refused. (A production Airflow uses PostgreSQL or MySQL.)
        """
        for attempt in range(3):
            if attempt and before_retry:
                before_retry()
            result = subprocess.run(
                [str(AIRFLOW), *args], env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
            )
            if result.returncode == 0 or "database is locked" not in result.stderr + result.stdout:
                break
            time.sleep(2)
        if result.returncode != 0:
            raise AssertionError(
                f"airflow {' '.join(args)} exited with {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def start(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> None:
        """Start ``airflow <name> <args>`` in its own process group, logging to <home>/<name>.log."""
        self.commands[name] = (args, extra_env)
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

    def stop_component(self, name: str, grace: float = 20) -> None:
        """Stop one component's process group (SIGTERM, SIGKILL after ``grace`` s)."""
        process = self.processes.pop(name)
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

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
        """Fail if a component has exited; restart a crashed scheduler (twice at most).

        The scheduler is restarted as its supervisor (systemd, Kubernetes) would: on SQLite under
        load, Airflow 3.3's scheduler can die of a lost optimistic-lock race on a dag_run row
        (StaleDataError, seen once on this machine with three other Airflow test runs
        beside it). The restarts are reported in the session's printed timings.
        """
        for name, process in list(self.processes.items()):
            if process.poll() is None:
                continue
            if name == "scheduler" and len(self.restarts) < 2:
                lines = _tail(self.home / "scheduler.log", 1)
                self.restarts.append(f"exit {process.returncode}: {lines[-300:]}")
                args, extra_env = self.commands[name]
                self.start(name, *args, extra_env=extra_env)
                continue
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

    def wait_dag_parsed(self, dag_id: str = DAG_ID, timeout: float = 300) -> None:
        """Wait until the dag-processor has stored the DAG in the metadata database."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.query("SELECT dag_id FROM serialized_dag WHERE dag_id = ?", dag_id):
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
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id, run_id)
        return rows[0]["state"] if rows else None

    def task_tries(self, dag_id: str, run_id: str) -> dict[str, tuple[str, int]]:
        """Each task of a run: its state and try number."""
        rows = self.query(
            "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = ? AND run_id = ?",
            dag_id,
            run_id,
        )
        return {r["task_id"]: (r["state"], r["try_number"]) for r in rows}

    def query(self, sql: str, *params: object) -> list[dict]:
        """Read the metadata database (read-only, so the test never holds a write lock)."""
        with closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)) as con:
            con.row_factory = sqlite3.Row
            return [dict(row) for row in con.execute(sql, params)]

    def remove_partial_backfills(self, known: set[int]) -> None:
        """Delete the backfill rows not in ``known`` that own no run: a refused ``backfill create``.

        ``backfill create`` commits the backfill row first and all its runs in one later
        transaction; when SQLite refuses that one, the row stays behind with ``completed_at``
        empty and every later ``backfill create`` of the DAG is refused as "already running".
        Airflow cleans this up itself only for PostgreSQL's and MySQL's lock errors.
        """
        with closing(sqlite3.connect(self.db, timeout=30)) as con:
            rows = con.execute(
                "SELECT id FROM backfill WHERE completed_at IS NULL "
                "AND id NOT IN (SELECT backfill_id FROM dag_run WHERE backfill_id IS NOT NULL)"
            ).fetchall()
            orphans = [row[0] for row in rows if row[0] not in known]
            for backfill_id in orphans:
                con.execute("DELETE FROM backfill_dag_run WHERE backfill_id = ?", (backfill_id,))
                con.execute("DELETE FROM backfill WHERE id = ?", (backfill_id,))
            con.commit()

    def runs(self, dag_id: str = DAG_ID) -> list[dict]:
        """The DAG's runs, oldest logical date first."""
        return self.query(
            "SELECT run_id, run_type, state, logical_date, start_date, end_date, backfill_id "
            "FROM dag_run WHERE dag_id = ? ORDER BY logical_date",
            dag_id,
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
                "SELECT dag_id, run_id, task_id, state, try_number FROM task_instance "
                "WHERE state IN ('failed', 'upstream_failed', 'up_for_retry')"
            )
        except sqlite3.Error as exc:
            failed, parts = [], [*parts, f"(cannot read task instances: {exc})"]
        for ti in failed:
            pattern = os.path.join(
                glob.escape(str(self.home / "logs" / f"dag_id={ti['dag_id']}" / f"run_id={ti['run_id']}")),
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


def utc(value: str | None) -> datetime | None:
    """A datetime read from the SQLite metadata database (stored as naive UTC text)."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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
    known = {row["id"] for row in airflow.query("SELECT id FROM backfill")}
    before = len(known)
    # `backfill create` writes the backfill row and then its runs in separate transactions;
    # SQLite can refuse one of the later ones ("database is locked", at once) while the
    # scheduler writes, leaving a half-made backfill that cannot be created again. With the
    # scheduler stopped for the moment of the command, it is the only writer of those rows; the
    # dag-processor can still hold the write lock at that moment, so a refused command's
    # half-made backfill is removed before the command is run again.
    restart = "scheduler" in airflow.processes
    if restart:
        args, extra_env = airflow.commands["scheduler"]
        airflow.stop_component("scheduler")
    try:
        airflow.cli(
            "backfill", "create",
            "--dag-id", DAG_ID,
            # both ends inclusive, compared with the 06:00 UTC run times
            "--from-date", logical_dates[0].isoformat(),
            "--to-date", logical_dates[-1].isoformat(),
            "--max-active-runs", "1",
            *options,
            before_retry=lambda: airflow.remove_partial_backfills(known),
        )  # fmt: skip
    finally:
        if restart:
            airflow.start("scheduler", *args, extra_env=extra_env)

    def done() -> bool:
        backfills = airflow.query("SELECT completed_at FROM backfill")
        return (
            len(backfills) > before
            and all(b["completed_at"] for b in backfills)
            and all(r["state"] in TERMINAL for r in airflow.runs())  # drift retrains, if any, too
        )

    airflow.wait_for(done, timeout, f"the backfill {' '.join(options)}", poll=poll)


def backfill_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Backfill four weeks through scheduler, dag-processor and api-server; yield while they run.

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
    airflow = Airflow(home, env, api_port)
    logical_dates = [scheduled_logical_date(week) for week in BACKFILL_WEEKS]
    timings: dict[str, float] = {}
    started = time.monotonic()
    server = None
    try:
        airflow.cli("db", "migrate", timeout=600)
        timings["db migrate"] = time.monotonic() - started
        server = EndpointServer(folder / "mlops" / "endpoint" / "deployments", endpoint_port).wait_ready()
        fault_env = {
            "MLOPS_TEST_FAULTS": str(faults),
            "PYTHONPATH": os.pathsep.join([str(FAULTS), env["PYTHONPATH"]]),
        }
        airflow.start_components(scheduler_env=fault_env)
        timings["components up, DAG parsed"] = time.monotonic() - started

        airflow.cli("dags", "unpause", DAG_ID)
        backfill_started = time.monotonic()
        backfill(airflow, logical_dates)
        timings["backfill"] = time.monotonic() - backfill_started

        from include.config import load_settings
        from include.stages.context import StageContext

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
        }
    finally:
        airflow.stop()
        if server is not None:
            server.stop()
        durations = {k: f"{v:.0f} s" for k, v in timings.items()}
        print(f"\nscheduler session timings: {durations}, total {time.monotonic() - started:.0f} s")
        if airflow.restarts:
            print(f"scheduler restarted after a crash: {airflow.restarts}")
