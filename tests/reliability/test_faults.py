"""Faults survived: a task fails part-way, is retried, and ends as if nothing had failed.

Each test injects one fault into a stage (called directly, as its DAG task calls it), checks
that the failure surfaces as an exception (what an Airflow task retry sees), calls the stage
again (the retry) and compares the end state with a run that had no fault. No temporary file
(``.<name>.*.tmp`` in storage, ``*.tmp`` in the endpoint folder) may stay behind.

- storage raises on a write during validate_data;
- ingest_data is SIGKILLed while renaming a data version into place;
- the training subprocess is SIGKILLed mid-job;
- batch scoring fails after its first chunk, the warehouse connection drops mid-transaction,
  the scoring process is SIGKILLed while it stages the partition, and SIGKILLed inside its
  DuckDB transaction right after the DELETE of the old partition (a fault point);
- the endpoint is down when deploy smoke-tests a new version;
- two promotions race on the production alias.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT, EndpointServer, free_port, seed_mlflow_db, write_config

from demo.spec import DEMO_SPEC

pytestmark = [pytest.mark.timeout(300)]
SETTINGS = {"data": {"rows_per_week": 400}, "model": {"params": {"max_iter": 20}}}
TABLE: list[tuple[str, str, str, str]] = []  # fault, where injected, what the retry produced, lost


class Root:
    """One local provider root and its settings."""

    def __init__(self, folder: Path, tmp_path_factory: pytest.TempPathFactory, port: int) -> None:
        from core.config import load_settings

        self.config = write_config(folder, local={"endpoint_port": port}, **SETTINGS)
        self.root = folder / "mlops"
        seed_mlflow_db(self.root / "mlflow", tmp_path_factory)
        self.settings = load_settings(self.config)
        self.port = port
        self.server: EndpointServer | None = None
        self.killed_training: dict[str, Any] = {}

    def ctx(self, week: str, actor: str = "fault-test") -> Any:
        from lifecycle.context import build_context

        return build_context(week=week, logical_date=None, actor=actor, settings=self.settings)

    def start_server(self) -> None:
        self.server = EndpointServer(self.root / "endpoint" / "deployments", self.port).wait_ready()

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def _stages() -> dict[str, Any]:
    from lifecycle.deploy import deploy_production
    from lifecycle.evaluate import evaluate_challenger
    from lifecycle.ingest import ingest_week
    from lifecycle.register import register_challenger
    from lifecycle.score import score_week
    from lifecycle.train import train_challenger
    from lifecycle.validate import validate_week_data

    return {
        "ingest": ingest_week,
        "validate": validate_week_data,
        "train": train_challenger,
        "evaluate": evaluate_challenger,
        "register": register_challenger,
        "deploy": deploy_production,
        "score": score_week,
    }


@pytest.fixture(scope="module")
def main(tmp_path_factory: pytest.TempPathFactory):
    """W01 through every stage (production v1 served by a running endpoint); W02 ingested."""
    state = Root(tmp_path_factory.mktemp("faults-main"), tmp_path_factory, free_port())
    stages = _stages()
    # the server starts while W01 runs up to registration (it only reads on requests)
    server = EndpointServer(state.root / "endpoint" / "deployments", state.port)
    try:
        ctx = state.ctx("2026-W01")
        stages["ingest"](ctx)
        stages["validate"](ctx)
        state.killed_training = _train_killing_the_job(state, ctx)  # the fault, then the retry:
        job = stages["train"](ctx).job_name
        stages["evaluate"](ctx, job)
        stages["register"](ctx, job)
        state.server = server.wait_ready()
        stages["deploy"](ctx)
        stages["score"](ctx)
        stages["ingest"](state.ctx("2026-W02"))
        yield state
    finally:
        server.stop()
        state.stop_server()
        _print_table()


def _train_killing_the_job(state: Root, ctx: Any) -> dict[str, Any]:
    """Run train_challenger, SIGKILL its training subprocess once started; what it left behind."""
    import psutil

    from lifecycle.train import train_challenger

    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = train_challenger(ctx)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    while "killed" not in outcome and thread.is_alive() and time.monotonic() < deadline:
        for child in psutil.Process().children(recursive=True):
            try:
                if any(part.endswith("core/ml/train.py") for part in child.cmdline()):
                    child.send_signal(signal.SIGKILL)
                    outcome["killed"] = child.pid
                    break
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.02)
    thread.join(timeout=120)
    outcome["training_keys"] = storage_files(state.root, "training/")
    outcome["training_runs"] = table_rows(state, "training_runs") if "result" in outcome else []
    return outcome


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory):
    """A fresh root with no faults: W02 ingested and validated."""
    state = Root(tmp_path_factory.mktemp("faults-reference"), tmp_path_factory, free_port())
    stages = _stages()
    stages["ingest"](state.ctx("2026-W02"))
    stages["validate"](state.ctx("2026-W02"))
    return state


# -- what is compared -----------------------------------------------------------------------


def _canonical(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def storage_files(root: Path, prefix: str = "") -> dict[str, str]:
    """``{key: sha256}`` of every file under storage/ (temporary files included).

    A report names the object it describes by its URI: the root's own path is blanked out.
    """
    base = root / "storage"
    own = base.resolve().as_uri().encode()
    return {
        p.relative_to(base).as_posix(): hashlib.sha256(p.read_bytes().replace(own, b"<root>")).hexdigest()
        for p in sorted(base.rglob("*"))
        if p.is_file() and p.relative_to(base).as_posix().startswith(prefix)
    }


def table_rows(state: Root, table: str, where: dict[str, Any] | None = None) -> list[tuple]:
    frame = state.ctx("2026-W01").provider.warehouse.read_rows(table, where)
    rows = [tuple(_canonical(v) for v in row) for row in frame.itertuples(index=False, name=None)]
    return sorted(rows, key=repr)


def leftovers(root: Path) -> list[str]:
    """Temporary files anywhere under the root: storage's ``.<name>.*.tmp``, any ``*.tmp``."""
    found = [p for p in root.rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    return sorted(p.relative_to(root).as_posix() for p in found)


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            out = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"child exited with {process.returncode} before the fault point:\n{out}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("child never reached the fault point")
        time.sleep(0.05)


def _child(state: Root, body: str, ready: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A Python child that builds the context from the config and runs ``body`` (``env`` added)."""
    script = (
        "import os, sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from core.config import load_settings\n"
        "from lifecycle.context import build_context\n"
        f"READY = {str(ready)!r}\n"
        "def ready():\n"
        "    open(READY, 'w').close()\n"
        "    time.sleep(120)\n"
        f"settings = load_settings({str(state.config)!r})\n" + body
    )
    return subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _kill(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


def _print_table() -> None:
    if not TABLE:
        return
    header = ("fault", "where injected", "what the retry produced", "what was lost")
    widths = [max(len(r[i]) for r in [header, *TABLE]) for i in range(4)]
    print()
    for row in [header, tuple("-" * w for w in widths), *TABLE]:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


# -- the faults -----------------------------------------------------------------------------


class FailingStorage:
    """The real store, whose ``fail_on``-th put_bytes raises (before writing anything)."""

    def __init__(self, real: Any, fail_on: int) -> None:
        self.real, self.fail_on, self.calls = real, fail_on, 0

    def put_bytes(self, key: str, data: bytes) -> str:
        self.calls += 1
        if self.calls == self.fail_on:
            raise OSError(f"injected: storage write of {key} failed")
        return self.real.put_bytes(key, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_storage_raising_on_a_write_is_retried_to_the_clean_state(main: Root, reference: Root) -> None:
    validate = _stages()["validate"]
    ctx = main.ctx("2026-W02")
    provider = ctx.provider
    object.__setattr__(
        ctx, "provider", dataclasses.replace(provider, storage=FailingStorage(provider.storage, 2))
    )
    with pytest.raises(OSError, match="injected"):
        validate(ctx)
    assert not table_rows(main, "validation_results", {"week": "2026-W02"})  # nothing recorded
    assert leftovers(main.root) == []

    validate(main.ctx("2026-W02"))  # the retry, with the real store
    week = ("validated/week=2026-W02", "reports/validation/week=2026-W02", "quarantine/week=2026-W02")
    after = {k: v for p in week for k, v in storage_files(main.root, p).items()}
    expected = {k: v for p in week for k, v in storage_files(reference.root, p).items()}
    assert after == expected
    assert table_rows(main, "validation_results", {"week": "2026-W02"}) == table_rows(
        reference, "validation_results", {"week": "2026-W02"}
    )
    assert leftovers(main.root) == []
    TABLE.append(
        (
            "storage raises on a write",
            "validate_data: 2nd put_bytes",
            f"{len(after)} objects + validation_results row = clean run",
            "nothing",
        )
    )


def test_ingest_killed_while_writing_a_data_version(
    main: Root, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from lifecycle.ingest import ingest_week

    week = "2026-W03"
    ready = tmp_path / "ready"
    body = (
        "import providers.local.atomic as atomic\n"
        "atomic.os.replace = lambda *a, **k: ready()\n"
        "from lifecycle.ingest import ingest_week\n"
        f"ctx = build_context(week={week!r}, logical_date=None, actor='fault-test', settings=settings)\n"
        "ingest_week(ctx)\n"
    )
    process = _child(main, body, ready)
    _wait_for(ready, process)
    _kill(process)

    assert [
        k for k in storage_files(main.root, f"raw/week={week}") if not k.rsplit("/", 1)[-1].startswith(".")
    ] == []
    orphans = leftovers(main.root)
    assert len(orphans) == 1 and orphans[0].startswith(f"storage/raw/week={week}/"), orphans
    assert not table_rows(main, "data_versions", {"week": week})
    # the orphan's name carries the pid of the killed writer: the retry sees it is gone
    assert f".{process.pid}." in orphans[0], orphans

    result = ingest_week(main.ctx(week))  # the retry
    clean_root = tmp_path / "clean"
    clean = Root(clean_root, tmp_path_factory, free_port())
    expected = ingest_week(clean.ctx(week))
    assert result == expected
    assert storage_files(main.root, f"raw/week={week}") == storage_files(clean.root, f"raw/week={week}")
    assert table_rows(main, "data_versions", {"week": week}) == table_rows(
        clean, "data_versions", {"week": week}
    )
    assert leftovers(main.root) == []
    TABLE.append(
        (
            "task SIGKILLed writing a data version",
            "ingest_data: during os.replace of the raw object",
            f"data version {result.data_version}, same bytes and data_versions row",
            "nothing (the dead writer's temp file removed by the retry's write)",
        )
    )


def test_training_process_killed_mid_job(main: Root, tmp_path: Path) -> None:
    from providers.base import TrainingJobSpec
    from providers.jobs import run_training
    from providers.local.storage import LocalObjectStore
    from providers.local.training import SubprocessTrainingJobs, TrainingFailedError

    killed = main.killed_training
    assert "killed" in killed, "the training subprocess was never seen"
    assert isinstance(killed.get("error"), TrainingFailedError), killed
    assert not [k for k in killed["training_keys"] if k.endswith("/_SUCCESS")]  # no marker
    assert killed["training_runs"] == []
    jobs = {k.split("/")[1] for k in killed["training_keys"]}
    assert len(jobs) == 1
    job_name = jobs.pop()

    # the retry (run by the fixture) trained the same job to the end
    run = main.ctx("2026-W01").provider.warehouse.read_rows("training_runs")
    assert list(run["job_name"]) == [job_name]
    output = main.root / "storage" / "training" / job_name / "output"
    assert (output / "_SUCCESS").is_file()

    # a clean run of the same job (same inputs and hyperparameters) in a fresh root
    clean = LocalObjectStore(tmp_path / "clean-storage")
    prefix = f"training/{job_name}"
    for name in ("train", "validation"):
        clean.put_bytes(
            f"{prefix}/input/{name}.parquet", (output.parent / "input" / f"{name}.parquet").read_bytes()
        )
    spec = TrainingJobSpec(
        job_name=job_name,
        train_data_key=f"{prefix}/input/train.parquet",
        validation_data_key=f"{prefix}/input/validation.parquet",
        output_prefix=f"{prefix}/output",
        hyperparameters=json.loads(run["hyperparameters"].iloc[0]),
        hardware=json.loads(run["hardware"].iloc[0]),
        dataset_spec=DEMO_SPEC.to_json(),
    )
    expected = run_training(SubprocessTrainingJobs(clean), spec)
    assert not expected.reused

    def model_metrics(metrics: dict[str, Any]) -> dict[str, Any]:  # wall-clock time aside
        return {k: v for k, v in metrics.items() if not k.endswith("_seconds")}

    retried = json.loads((output / "metrics.json").read_text())
    assert model_metrics(retried) == model_metrics(expected.metrics)
    assert json.loads(run["metrics"].iloc[0]) == {
        k: float(v) for k, v in retried.items() if isinstance(v, int | float)
    }
    assert leftovers(main.root) == []
    TABLE.append(
        (
            "training process SIGKILLed",
            "train_model: core/ml/train.py child",
            f"job {job_name} run again to _SUCCESS; metrics = clean run in a fresh root",
            "nothing (no marker, no training_runs row)",
        )
    )


def _fail_after_first_chunk(monkeypatch: pytest.MonkeyPatch, action: Any) -> None:
    """Make the batch scorer run ``action(first_chunk)`` after yielding its first chunk."""
    from providers.local.batch import ChunkedBatchScorer

    original = ChunkedBatchScorer.results

    def results(self: Any, version: Any, handle: Any) -> Any:
        for chunk in original(self, version, handle):
            yield chunk.iloc[: len(chunk) // 2]
            action()
            yield chunk.iloc[len(chunk) // 2 :]

    monkeypatch.setattr(ChunkedBatchScorer, "results", results)


def test_batch_scoring_interrupted_keeps_the_old_partition(
    main: Root, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lifecycle.score import score_week
    from providers.local.warehouse import DuckDBWarehouse

    week = {"week": "2026-W01"}
    before = table_rows(main, "predictions", week)
    n = len(before)
    assert n > 0 and len({row[1] for row in before}) == n

    # 1. the chunk iterator raises after the first chunk was inserted
    def boom() -> None:
        raise RuntimeError("injected: scoring failed mid-partition")

    with monkeypatch.context() as patch:
        _fail_after_first_chunk(patch, boom)
        with pytest.raises(RuntimeError, match="injected"):
            score_week(main.ctx("2026-W01"))
    assert table_rows(main, "predictions", week) == before

    # 2. the warehouse connection drops in the middle of the transaction: after the DELETE of
    # the old partition, as the INSERT of the new one starts
    original_connect = DuckDBWarehouse.connect

    class DroppingConnection:
        def __init__(self, con: Any) -> None:
            self.con = con

        def execute(self, sql: str, *args: Any) -> Any:
            if sql.startswith("INSERT INTO predictions"):
                self.con.close()
            return self.con.execute(sql, *args)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.con, name)

    def connect(self: Any) -> Any:
        manager = original_connect(self)

        class Dropping:
            def __enter__(self) -> Any:
                return DroppingConnection(manager.__enter__())

            def __exit__(self, *exc: Any) -> Any:
                return manager.__exit__(*exc)

        return Dropping()

    with monkeypatch.context() as patch:
        patch.setattr(DuckDBWarehouse, "connect", connect)
        with pytest.raises(Exception) as raised:
            score_week(main.ctx("2026-W01"))
    assert "closed" in str(raised.value).lower(), raised.value
    assert table_rows(main, "predictions", week) == before

    # the retry: exactly one row per customer, the same as before
    assert score_week(main.ctx("2026-W01")).n_rows == n
    assert table_rows(main, "predictions", week) == before
    assert leftovers(main.root) == []
    TABLE.append(
        (
            "partition write fails / connection drops",
            "score: scorer raises after 1st chunk; con.close() after the DELETE",
            f"{n} rows, one per customer, = old rows",
            "nothing (transaction rolled back)",
        )
    )


def test_scoring_process_killed_while_staging_a_partition(main: Root, tmp_path: Path) -> None:
    from lifecycle.score import score_week

    week = {"week": "2026-W01"}
    before = table_rows(main, "predictions", week)
    ready = tmp_path / "ready"
    # the child writes the partition as score_week does (replace_rows with a chunk generator);
    # it leaves the model out, whose loading (MLflow) would only make the child slow to start
    body = (
        "import pandas as pd\n"
        "warehouse = build_context(week='2026-W01', logical_date=None, actor='x', settings=settings)"
        ".provider.warehouse\n"
        "old = warehouse.read_rows('predictions', {'week': '2026-W01'})\n"
        "def chunks():\n"
        "    yield old.iloc[: len(old) // 2].assign(churn_probability=0.5, model_version='killed')\n"
        "    ready()\n"
        "    yield old.iloc[len(old) // 2 :]\n"
        "warehouse.replace_rows('predictions', {'week': '2026-W01'}, chunks())\n"
    )
    process = _child(main, body, ready)
    _wait_for(ready, process)
    time.sleep(0.2)  # the first half is being staged for the partition's transaction
    _kill(process)

    assert table_rows(main, "predictions", week) == before  # the file opens; the old rows
    assert score_week(main.ctx("2026-W01")).n_rows == len(before)
    assert table_rows(main, "predictions", week) == before
    assert leftovers(main.root) == []
    TABLE.append(
        (
            "task SIGKILLed staging a partition",
            "score: half the partition staged, not committed",
            f"DuckDB opens; old {len(before)} rows; retry {len(before)} rows",
            "nothing",
        )
    )


def test_scoring_process_killed_mid_transaction(main: Root, tmp_path: Path) -> None:
    """SIGKILLed inside DuckDB's open transaction, after the DELETE of the old partition.

    The child arms the ``partition-after-delete`` fault point of tests/faults/sitecustomize.py
    (loaded through PYTHONPATH, as in the scheduler's task processes), which stops it right
    after ``DELETE FROM predictions WHERE week = ?`` inside the partition's transaction.
    """
    from lifecycle.score import score_week

    week = {"week": "2026-W01"}
    before = table_rows(main, "predictions", week)
    assert before
    faults = tmp_path / "faults"
    faults.mkdir()
    (faults / "arm-partition-after-delete").write_text("2026-W01")
    body = (
        "import pandas as pd\n"
        "warehouse = build_context(week='2026-W01', logical_date=None, actor='x', settings=settings)"
        ".provider.warehouse\n"
        "old = warehouse.read_rows('predictions', {'week': '2026-W01'})\n"
        "new = old.assign(churn_probability=0.5, model_version='killed')\n"
        "warehouse.replace_rows('predictions', {'week': '2026-W01'}, iter([new]))\n"
        "print('the transaction committed: the fault point never fired')\n"
    )
    env = {
        "MLOPS_TEST_FAULTS": str(faults),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "faults"), str(ROOT)]),
    }
    process = _child(main, body, tmp_path / "unused", env=env)
    _wait_for(faults / "fired-partition-after-delete", process)
    assert (faults / "fired-partition-after-delete").read_text() == str(process.pid)
    # inside the open transaction the partition was empty: the DELETE had run
    assert (faults / "seen-partition-after-delete").read_text() == "0"
    _kill(process)

    # DuckDB rolled the open transaction back: the old rows, none of the killed writer's
    assert table_rows(main, "predictions", week) == before
    # the retry writes exactly one row per customer, the same as before
    assert score_week(main.ctx("2026-W01")).n_rows == len(before)
    after = table_rows(main, "predictions", week)
    assert after == before
    assert len({row[1] for row in after}) == len(after)
    assert leftovers(main.root) == []
    TABLE.append(
        (
            "task SIGKILLed in the partition's transaction",
            "score: after the DELETE, before the INSERT and COMMIT",
            f"DuckDB opens; old {len(before)} rows; retry {len(before)} rows, one per customer",
            "nothing (the open transaction rolled back)",
        )
    )


def test_endpoint_down_during_deploy_rolls_back(main: Root) -> None:
    import httpx

    from lifecycle.deploy import SmokeTestFailedError, deploy_production

    ctx = main.ctx("2026-W02")
    registry = ctx.provider.registry
    v1 = registry.get_alias(ctx.model_name, "production").version
    served = main.ctx("2026-W01").provider.endpoint.current(ctx.model_name)
    assert served is not None and served.version == v1
    # a new version promoted: W01's model registered again under another key (no training)
    runs = ctx.provider.warehouse.read_rows("training_runs", {"week": "2026-W01"}, columns=["model_key"])
    model_key = str(runs["model_key"].iloc[0])
    v2 = registry.register(
        ctx.model_name, model_key, registry_key="fault-test-v2", metrics={}, params={}, tags={}
    ).version
    assert registry.set_alias(
        ctx.model_name, "production", v2, reason="fault test", actor="fault-test", expected_current=v1
    )
    history = len(registry.alias_history(ctx.model_name, "production"))

    # the endpoint is down: the task's calls get "connection refused", as from a stopped server
    down = main.ctx("2026-W02")
    down.provider.endpoint.url = f"http://127.0.0.1:{free_port()}"
    down.provider.endpoint.server = None  # and stays down: no server started for the call
    with pytest.raises(SmokeTestFailedError):
        deploy_production(down)
    assert registry.get_alias(ctx.model_name, "production").version == v1
    changes = registry.alias_history(ctx.model_name, "production")
    assert len(changes) == history + 1
    assert (changes[-1].version, changes[-1].previous_version) == (v1, v2)
    assert "smoke test" in changes[-1].reason
    assert ctx.provider.endpoint.current(ctx.model_name).version == v1
    assert main.server is not None
    answer = httpx.post(
        f"{main.server.url}/models/{ctx.model_name}/predict", json={"rows": _smoke_rows(main)}, timeout=30
    ).json()
    assert str(answer["model_version"]) == v1  # the running server still serves v1

    # the retry: production is v1 and served, so nothing changes
    assert deploy_production(main.ctx("2026-W02")).changed is False
    assert len(registry.alias_history(ctx.model_name, "production")) == history + 1
    deployments = main.root / "endpoint" / "deployments"
    assert sorted(p.name for p in deployments.iterdir()) == [f"{ctx.model_name}.json"]
    assert leftovers(main.root) == []
    TABLE.append(
        (
            "endpoint down during deploy",
            "deploy_model: endpoint unreachable at smoke test",
            f"SmokeTestFailedError; production v{v2}->v{v1} (history entry); server serves v{v1}",
            "nothing (v1 kept serving)",
        )
    )


def _smoke_rows(state: Root) -> list[dict[str, Any]]:
    from lifecycle.deploy import _smoke_rows

    return _smoke_rows(state.ctx("2026-W01"))


def test_concurrent_promotions_keep_one_linear_history(main: Root) -> None:
    ctx = main.ctx("2026-W01")
    registry = ctx.provider.registry
    current = registry.get_alias(ctx.model_name, "production").version
    runs = ctx.provider.warehouse.read_rows("training_runs", {"week": "2026-W01"}, columns=["model_key"])
    # two versions of its own to race for (the module's earlier tests may have made none: alone
    # this test must work too)
    targets = [
        registry.register(
            ctx.model_name,
            str(runs["model_key"].iloc[0]),
            registry_key=f"fault-test-racer-{i}",
            metrics={},
            params={},
            tags={},
        ).version
        for i in (1, 2)
    ]
    assert current not in targets and len(set(targets)) == 2
    history = registry.alias_history(ctx.model_name, "production")
    results: dict[str, Any] = {}
    barrier = threading.Barrier(2)

    def promote(target: str) -> None:
        own = main.ctx("2026-W01", actor=f"racer-{target}").provider.registry  # its own connections
        barrier.wait()
        results[target] = own.set_alias(
            ctx.model_name,
            "production",
            target,
            reason="race",
            actor=f"racer-{target}",
            expected_current=current,
        )

    threads = [threading.Thread(target=promote, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    winners = [t for t in targets if results.get(t) is not None]
    assert len(results) == 2 and len(winners) == 1, results
    after = registry.alias_history(ctx.model_name, "production")
    assert after[: len(history)] == history and len(after) == len(history) + 1
    assert (after[-1].version, after[-1].previous_version) == (winners[0], current)
    assert registry.get_alias(ctx.model_name, "production").version == winners[0]
    TABLE.append(
        (
            "two promotions race",
            "set_alias(expected_current) from 2 threads",
            f"one history entry v{current}->v{winners[0]}; loser got None",
            "no lost update",
        )
    )
