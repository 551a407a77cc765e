"""Airflow's components (api-server, dag-processor, scheduler) in child processes, for tests.

Used by the real-scheduler backfill test and the backfill benchmark: a fresh AIRFLOW_HOME with
its own SQLite database and LocalExecutor, everything on 127.0.0.1, stopped by process group
(SIGTERM, then SIGKILL after a grace period) even when the caller fails.
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
from helpers import ROOT

DAG_ID = "retrain_pipeline"
AIRFLOW = Path(sys.executable).parent / "airflow"
SERVICES = ("api-server", "dag-processor", "scheduler")
TERMINAL = ("success", "failed")


class Airflow:
    """Airflow's components in child processes, with their own AIRFLOW_HOME and logs."""

    def __init__(self, home: Path, env: dict[str, str], api_port: int, dag_id: str = DAG_ID) -> None:
        self.home, self.env, self.api_port, self.dag_id = home, env, api_port, dag_id
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

    def start_components(self) -> None:
        """Start api-server, dag-processor and scheduler; wait until the API answers and the DAG is parsed."""
        self.start("api-server", "--host", "127.0.0.1", "--port", str(self.api_port))
        self.start("dag-processor")
        # The log server of LocalExecutor binds every interface; the api-server reads the task
        # logs from <AIRFLOW_HOME>/logs on this machine anyway.
        self.start("scheduler", "--skip-serve-logs")
        self.wait_api_ready()
        self.wait_dag_parsed()

    def backfill(
        self, first: datetime, last: datetime, n_runs: int, timeout: float, poll: float = 5
    ) -> tuple[list[dict], list[dict]]:
        """Unpause the DAG, ``airflow backfill create`` from ``first`` to ``last``; wait for the runs.

        Returns:
            (every run of the DAG, the backfill's runs), once the backfill is complete and every
            run (drift retrains too) has ended.
        """
        self.cli("dags", "unpause", self.dag_id)
        self.cli(
            "backfill", "create",
            "--dag-id", self.dag_id,
            # both ends inclusive, compared with the 06:00 UTC run times
            "--from-date", first.isoformat(),
            "--to-date", last.isoformat(),
            "--max-active-runs", "1",
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            runs = self.runs()
            backfill_runs = [r for r in runs if r["run_type"] == "backfill"]
            done = (
                len(backfill_runs) >= n_runs
                and all(r["state"] in TERMINAL for r in runs)  # drift retrains, if any, too
                and all(b["completed_at"] for b in self.query("SELECT completed_at FROM backfill"))
            )
            if done:
                return runs, backfill_runs
            if time.monotonic() > deadline:
                states = [(r["run_id"], r["state"]) for r in runs]
                backfills = self.query("SELECT id, completed_at FROM backfill")
                pytest.fail(
                    f"the backfill did not finish in {timeout:.0f} s: runs {states}, backfills {backfills}\n"
                    f"{self.diagnostics()}"
                )
            time.sleep(poll)

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
            if self.query("SELECT dag_id FROM serialized_dag WHERE dag_id = ?", self.dag_id):
                return
            time.sleep(2)
        errors = self.query("SELECT filename, stacktrace FROM import_error")
        pytest.fail(
            f"{self.dag_id} was not parsed in {timeout:.0f} s; import errors: {errors}\n{self.diagnostics()}"
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
            self.dag_id,
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
                self.dag_id,
            )
        except sqlite3.Error as exc:
            failed, parts = [], [*parts, f"(cannot read task instances: {exc})"]
        for ti in failed:
            pattern = os.path.join(
                glob.escape(str(self.home / "logs" / f"dag_id={self.dag_id}" / f"run_id={ti['run_id']}")),
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
