"""Helpers shared by the tests: settings files, free ports, the endpoint server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the stand-ins and benchmarks import these helpers outside pytest
    import pytest

ROOT = Path(__file__).resolve().parent.parent


def airflow_base_env(home: Path) -> dict[str, str]:
    """The Airflow settings every Airflow the tests and benchmarks run shares.

    Its own home and SQLite metadata database (waiting 60 s for a lock: SQLite's default 5 s is
    too short with several components writing), this checkout's DAGs and plugins, no examples,
    no telemetry, and the checkout importable.
    """
    import os

    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout=60",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }


def write_config(folder: Path, **sections: dict) -> Path:
    """Write an astro.toml for a test: the project's own, with sections' keys replaced.

    The local provider's root goes to ``folder/mlops`` and the endpoint to a free port.
    """
    import tomllib

    raw = tomllib.loads((ROOT / "astro.toml").read_text())
    raw.setdefault("local", {})["root"] = str(folder / "mlops")
    for name, values in sections.items():
        if name == "dataset":  # a spec file or an inline spec: never a mix of the two
            raw["dataset"] = dict(values)
            continue
        section = raw.setdefault(name, {})
        if name == "model" and "estimator" in values:  # another estimator: its own parameters only
            section["params"] = {}
        for key, value in values.items():  # nested tables merge one level deep ([model.params])
            if isinstance(value, dict) and isinstance(section.get(key), dict) and key != "features":
                section[key] = {**section[key], **value}
            else:
                section[key] = value
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
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block; put the old values back afterwards."""
    import os

    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EndpointServer:
    """The local endpoint server in a child process on 127.0.0.1, stopped by ``stop()``."""

    def __init__(
        self,
        deployments: Path,
        port: int,
        config: Path | None = None,
        options: Sequence[str] = (),
        log: Path | None = None,
    ) -> None:
        """Start the server; ``config`` is the settings file whose dataset spec it serves;
        ``options`` more command-line options (``--no-metrics``); ``log`` a file for its output
        (default: this process's)."""
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        extra = [*(["--config", str(config)] if config is not None else []), *options]
        output = None if log is None else log.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "apps.serving.app",
                "--deployments",
                str(deployments),
                "--port",
                str(port),
                *extra,
            ],
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
        )
        if output is not None:
            output.close()  # the child has its own copy

    def wait_ready(self, timeout: float = 60) -> EndpointServer:
        """Wait until /health answers."""

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

    def cpu_seconds(self) -> float:
        """The server process's CPU time so far (user + system, every thread)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL after a grace period."""

        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def scheduled_logical_date(week: str):
    """The logical date of the scheduled run that processes ``week`` (the Monday after, 06:00 UTC)."""
    from datetime import timedelta

    from core.weeks import week_start

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
    """Run stage functions of lifecycle for a week in this process (no Airflow, no endpoint).

    Each result is kept as its task's XCom holds it: a typed result as a dict of its fields.
    """
    import dataclasses
    import importlib

    from core.config import load_settings
    from lifecycle.context import StageContext

    ctx = StageContext(settings=load_settings(config), week=week, actor=actor, reason=reason)
    results = {}
    for target in stages:
        module, function = target.rsplit(".", 1)
        result = getattr(importlib.import_module(f"lifecycle.{module}"), function)(ctx)
        results[target] = dataclasses.asdict(result) if dataclasses.is_dataclass(result) else result
    return ctx, results


def seed_loop(config: Path, weeks: list[str], actor: str = "seed"):
    """Run the whole loop but deployment for each week in order (deployment needs an endpoint)."""
    ctx = None
    for week in weeks:
        ctx, _ = run_stages(
            config, week, STAGES_BEFORE_TRAINING + STAGES_AFTER_TRAINING, actor=f"{actor}-{week}"
        )
    return ctx


DEMO_ESTIMATOR = "sklearn.ensemble.HistGradientBoostingClassifier"


def fit_model(frame, params: dict | None = None, n_jobs: int = 1):
    """Fit the demo's default model (HistGradientBoosting, no early stopping) on churn rows."""
    from core.ml.modeling import fit
    from demo.spec import DEMO_SPEC

    return fit(frame, DEMO_SPEC, DEMO_ESTIMATOR, {"early_stopping": False, **(params or {})}, n_jobs)


def write_deployment(root: Path, model, version: str, model_name: str = "churn") -> Path:
    """A deployments folder serving ``model`` as ``version``, as a local deploy writes it.

    Returns:
        The deployments folder (``<root>/deployments``), the artifact beside it.
    """
    import hashlib
    import json

    import joblib

    artifact = root / f"{model_name}-{version}.joblib"
    joblib.dump(model, artifact)
    sha256 = hashlib.sha256(artifact.read_bytes()).hexdigest()
    record = {"model_name": model_name, "version": version, "artifact_path": str(artifact),
              "sha256": sha256, "deployed_at": "2026-01-01"}  # fmt: skip
    (root / "deployments").mkdir(exist_ok=True)
    (root / "deployments" / f"{model_name}.json").write_text(json.dumps(record))
    return root / "deployments"


def predict_proba(model, frame):
    """The positive class's probability of each raw row (a binary TrainedModel)."""
    return model.predict_raw_rows(frame)[:, 1]


def clear_runs(*dag_ids: str) -> None:
    """Delete the DAG runs of ``dag_ids`` from the test metadata DB (a module's runs start afresh)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagRun).filter(DagRun.dag_id.in_(dag_ids)).delete()


def drift_retrain_runs(weeks: Sequence[str] | None = None) -> list[tuple[str, dict]]:
    """The ``drift_retrain__<week>`` runs monitor_drift triggered: (run id, conf), by run id.

    Args:
        weeks: only the runs of these weeks (None: every week's).
    """
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    prefix = "drift_retrain__"
    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == "retrain_pipeline").all()
        found = [(r.run_id, dict(r.conf or {})) for r in runs if r.run_id.startswith(prefix)]
    return sorted(run for run in found if weeks is None or run[0].removeprefix(prefix) in weeks)


def record_deferred_waits(patch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Spy on ``ProviderJobTrigger.run``: the job waits that went through the trigger, as they start.

    Each wait is recorded as ``(handle kind, job name)`` and then waits for real. ``patch``
    holds the spy: ``patch.undo()`` (a fixture's teardown) restores the trigger.

    Returns:
        The list the spy appends to.
    """
    from providers.jobs import ProviderJobTrigger

    deferred: list[tuple[str, str]] = []
    original_run = ProviderJobTrigger.run

    async def spy(self):  # noqa: ANN001, ANN202 - the trigger's own signature
        deferred.append((self.handle["kind"], self.handle["name"]))
        async for event in original_run(self):
            yield event

    patch.setattr(ProviderJobTrigger, "run", spy)
    return deferred
