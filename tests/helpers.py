"""Helpers shared by the tests: settings files, free ports, the endpoint server."""

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

ROOT = Path(__file__).resolve().parent.parent


def write_config(folder: Path, **sections: dict) -> Path:
    """Write an astro.toml for a test: the project's own, with sections' keys replaced.

    The local provider's root goes to ``folder/mlops`` and the endpoint to a free port.
    """
    import tomllib

    raw = tomllib.loads((ROOT / "astro.toml").read_text())
    raw.setdefault("local", {})["root"] = str(folder / "mlops")
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "astro.toml"
    path.write_text(_to_toml(raw))
    return path


def _to_toml(data: dict, prefix: str = "") -> str:
    """A minimal TOML writer for the settings' shapes (tables of scalars, nested tables)."""
    scalars, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            scalars.append(f"{key} = {_toml_value(value)}")
    text = ""
    if scalars:
        text += (f"[{prefix}]\n" if prefix else "") + "\n".join(scalars) + "\n\n"
    for key, value in tables:
        text += _to_toml(value, f"{prefix}.{key}" if prefix else key)
    return text


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EndpointServer:
    """The local endpoint server in a child process on 127.0.0.1, stopped by ``stop()``."""

    def __init__(self, deployments: Path, port: int) -> None:
        import subprocess
        import sys

        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "include.serving.app",
                "--deployments",
                str(deployments),
                "--port",
                str(port),
            ],
            cwd=ROOT,
        )

    def wait_ready(self, timeout: float = 60) -> EndpointServer:
        """Wait until /health answers."""
        import time

        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"endpoint server exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise TimeoutError(f"endpoint server not ready at {self.url}")

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL after a grace period."""
        import subprocess

        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def scheduled_logical_date(week: str):
    """The logical date of the scheduled run that processes ``week`` (the Monday after, 06:00 UTC)."""
    from datetime import UTC, datetime, timedelta

    from include.weeks import week_start

    return datetime.combine(week_start(week) + timedelta(days=7), datetime.min.time(), UTC).replace(hour=6)


def run_dag(dag_id: str, week: str | None = None, conf: dict | None = None):
    """Run a DAG of dags/ in-process with ``dag.test()`` for a week; return the DagRun."""
    import importlib

    module = importlib.import_module(dag_id)
    dag = getattr(module, dag_id)()
    logical_date = scheduled_logical_date(week) if week else None
    kwargs = {"run_conf": conf} if conf else {}
    if logical_date is not None:
        kwargs["logical_date"] = logical_date
    return dag.test(**kwargs)


def task_states(dag_run) -> dict[str, str]:
    """``{task_id: state}`` of a DagRun's task instances."""
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}


def run_state(dag_run) -> str:
    """A DagRun's state as a plain string."""
    return str(getattr(dag_run.state, "value", dag_run.state))


def mlflow_db_template(tmp_path_factory) -> Path:
    """A migrated, empty MLflow SQLite database, made once per session (migrating takes seconds)."""
    template = tmp_path_factory.getbasetemp() / "mlflow-db-template" / "mlflow.db"
    if not template.exists():
        folder = template.parent / "build"
        import shutil

        from providers.local.registry import MlflowModelRegistry
        from providers.local.storage import LocalObjectStore

        client = MlflowModelRegistry(folder, LocalObjectStore(folder / "storage")).client
        client.search_experiments()  # creates the tables
        client.search_registered_models()
        shutil.copyfile(folder / "mlflow.db", template)
    return template


def seed_mlflow_db(folder: Path, tmp_path_factory) -> Path:
    """Create ``folder`` holding a copy of the migrated, empty MLflow database; return the folder."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mlflow_db_template(tmp_path_factory), folder / "mlflow.db")
    return folder


STAGES_BEFORE_TRAINING = ("ingest.ingest_week", "validate.validate_week_data")
STAGES_AFTER_TRAINING = (
    "train.train_challenger",
    "evaluate.evaluate_challenger",
    "register.register_challenger",
    "score.score_week",
    "monitor.monitor_week",
)


def run_stages(config: Path, week: str, stages: tuple[str, ...], actor: str = "seed", reason: str = "manual"):
    """Run stage functions of include.stages for a week in this process (no Airflow, no endpoint)."""
    import importlib

    from include.config import load_settings
    from include.stages.context import StageContext

    ctx = StageContext(settings=load_settings(config), week=week, actor=actor, reason=reason)
    results = {}
    for target in stages:
        module, function = target.rsplit(".", 1)
        results[target] = getattr(importlib.import_module(f"include.stages.{module}"), function)(ctx)
    return ctx, results


def seed_loop(config: Path, weeks: list[str], actor: str = "seed"):
    """Run the whole loop but deployment for each week in order (deployment needs an endpoint)."""
    ctx = None
    for week in weeks:
        ctx, _ = run_stages(
            config, week, STAGES_BEFORE_TRAINING + STAGES_AFTER_TRAINING, actor=f"{actor}-{week}"
        )
    return ctx


# --------------------------------------------------------------------------------------------
# Airflow's components in child processes (the scheduler and browser tests)

AIRFLOW = Path(sys.executable).parent / "airflow"


def _fail(message: str) -> None:
    import pytest

    pytest.fail(message)


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
                _fail(f"airflow {name} exited with {process.returncode}\n{self.diagnostics()}")

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
        _fail(f"the api-server did not answer {url} in {timeout:.0f} s\n{self.diagnostics()}")

    def wait_dag_parsed(self, dag_id: str, timeout: float = 300) -> None:
        """Wait until the dag-processor has stored the DAG in the metadata database."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.query("SELECT dag_id FROM serialized_dag WHERE dag_id = ?", dag_id):
                return
            time.sleep(2)
        errors = self.query("SELECT filename, stacktrace FROM import_error")
        _fail(f"{dag_id} was not parsed in {timeout:.0f} s; import errors: {errors}\n{self.diagnostics()}")

    def query(self, sql: str, *params: object) -> list[dict]:
        """Read the metadata database (read-only, so the test never holds a write lock)."""
        with closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)) as con:
            con.row_factory = sqlite3.Row
            return [dict(row) for row in con.execute(sql, params)]

    def runs(self, dag_id: str) -> list[dict]:
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
        for name in self.processes:
            parts.append(f"----- {name}.log (tail) -----\n{_tail(self.home / f'{name}.log', 60)}")
        try:
            failed = self.query(
                "SELECT dag_id, run_id, task_id, state, try_number FROM task_instance "
                "WHERE state IN ('failed', 'upstream_failed', 'up_for_retry')",
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


def utc_from_db(value: str | None) -> datetime | None:
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
