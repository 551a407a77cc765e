"""The production-like profile (``make cluster-up``): CeleryExecutor, Redis, PostgreSQL, 2 workers.

The module starts the profile exactly as ``make cluster-up`` does (``scripts/cluster.py up``, in
a temporary folder, on free ports): PostgreSQL (metadata database), Redis (the Celery broker),
api-server, scheduler, dag-processor, triggerer, a worker serving the default queue and one
serving the training queue, and the training pool with one slot. Then it backfills
``retrain_pipeline`` over two weeks and triggers the stage DAG ``train_model`` for the first
week by hand beside it; the pool is closed (0 slots) until both training tasks are ready, then
given its one slot, so that both want it at the same moment. It asserts:

- every run succeeded (the two backfill runs and the manual one);
- tasks ran on both workers (each worker's log names the task instances it executed);
- every ``train_model`` ran on the training worker from the training queue and pool, and
  nothing else did;
- the pool held: no two training tasks ran at once, and one of them waited for the slot.

Everything the profile started is stopped by pid (``scripts/cluster.py down``) even when a test
fails.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from airflow_services import DAG_ID, TERMINAL, Airflow, utc
from helpers import EndpointServer, free_port, scheduled_logical_date, write_config

from core.routing import task_routing

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

WEEKS = ["2026-W05", "2026-W06"]
ROWS = 400
RUNS_TIMEOUT = 1200  # seconds for the backfill and the manual run (generous: CI machines are shared)
BY_HAND = "by_hand__train_model"
WORKERS = ("worker-default", "worker-training")  # the names scripts/cluster.py logs them under
# what each Celery worker logs for every task it executes (celery provider, execute_workload)
EXECUTED = re.compile(
    r"Executing workload in Celery: .*?ti=TaskInstanceDTO\(id=UUID\('(?P<id>[0-9a-f-]+)'\), "
    r"task_id='(?P<task_id>[^']+)', dag_id='(?P<dag_id>[^']+)'"
)


@pytest.fixture(scope="module")
def cluster():
    """The profile up (scripts/cluster.py) and the local endpoint; everything stopped after."""
    from scripts.cluster import cluster_env, down, up

    # not under pytest's temporary folder: that is private to root, and PostgreSQL runs as postgres
    folder = Path(tempfile.mkdtemp(prefix="mlops-cluster-"))
    folder.chmod(0o755)  # mkdtemp's 0700 would keep the postgres user out of its cluster's folder
    ports = {"api": free_port(), "postgres": free_port(), "redis": free_port()}
    endpoint_port = free_port()
    config = write_config(
        folder,
        local={"endpoint_port": endpoint_port},
        data={"rows_per_week": ROWS},
        model={"params": {"max_iter": 20}},
        # so few rows drift by chance; a drift retrain would only add a run (seen: W06)
        drift={"feature_psi_threshold": 10.0, "prediction_psi_threshold": 10.0, "concept_metric_drop": 1.0},
        airflow={"training_pool_slots": 1},
    )
    timings: dict[str, float] = {}
    started = time.monotonic()
    server = None
    # Once a backfill run exists the scheduler would also schedule a run for the latest Monday
    # beside it (docs/dags.md, "Backfills"); backfill runs are started regardless of this.
    saved = os.environ.get("AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE")
    os.environ["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] = "False"
    try:
        server = EndpointServer(folder / "mlops" / "endpoint" / "deployments", endpoint_port).wait_ready()
        try:
            pids = up(folder, ports, config)
        except SystemExit as exc:  # the profile's own message: which component, the end of its log
            pytest.fail(f"the cluster did not come up: {exc}")
        timings["cluster up"] = time.monotonic() - started
        env = {**os.environ, **cluster_env(folder, ports, config)}
        database = f"postgresql://postgres@127.0.0.1:{ports['postgres']}/airflow"
        airflow = Airflow(folder / "airflow", env, ports["api"], database)
        yield {"airflow": airflow, "folder": folder, "config": config, "pids": pids, "timings": timings}
    finally:
        _restore("AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE", saved)
        stopping = time.monotonic()
        down(folder)
        timings["cluster down"] = time.monotonic() - stopping
        if server is not None:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
        timings["total"] = time.monotonic() - started
        print(f"\ndistributed profile timings: { {k: f'{v:.0f} s' for k, v in timings.items()} }")


def _restore(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


@pytest.fixture(scope="module")
def runs(cluster) -> dict:
    """The backfill with a manual train_model run beside it, every run ended."""
    airflow, timings = cluster["airflow"], cluster["timings"]
    started = time.monotonic()
    airflow.wait_dag_parsed(DAG_ID)
    airflow.wait_dag_parsed("train_model")
    airflow.cli("dags", "unpause", DAG_ID)
    airflow.cli("dags", "unpause", "train_model")
    # The pool's slot stays closed until both training tasks are ready (the backfill's, once its
    # week is validated, and the one by hand), then one slot opens: both want it at once.
    pool = task_routing(cluster["config"]).training_pool
    airflow.cli("pools", "set", pool, "0", "training jobs (closed by the test)")
    dates = [scheduled_logical_date(week) for week in WEEKS]
    airflow.cli(
        "backfill", "create", "--dag-id", DAG_ID, "--from-date", dates[0].isoformat(),
        "--to-date", dates[-1].isoformat(), "--max-active-runs", "1",
    )  # fmt: skip
    airflow.cli("dags", "trigger", "train_model", "--run-id", BY_HAND, "--conf", f'{{"week": "{WEEKS[0]}"}}')

    def both_training_tasks_ready() -> bool:
        rows = airflow.query("SELECT state FROM task_instance WHERE task_id = 'train_model'")
        return [row["state"] for row in rows].count("scheduled") == 2  # the next week's: not yet

    airflow.wait_for(both_training_tasks_ready, RUNS_TIMEOUT, "both training tasks waiting", poll=1)
    airflow.cli("pools", "set", pool, "1", "training jobs")

    def all_done() -> bool:
        backfills = airflow.query("SELECT completed_at FROM backfill")
        every = airflow.query("SELECT state FROM dag_run")
        return bool(backfills) and backfills[0]["completed_at"] and all(r["state"] in TERMINAL for r in every)

    airflow.wait_for(all_done, RUNS_TIMEOUT, "the backfill and the manual train_model run")
    timings["backfill + manual run"] = time.monotonic() - started
    return {
        "airflow": airflow,
        "runs": airflow.query("SELECT dag_id, run_id, run_type, state FROM dag_run"),
        "tasks": airflow.query(
            "SELECT id::text AS id, dag_id, run_id, task_id, state, queue, pool, start_date, end_date, "
            "scheduled_dttm FROM task_instance"
        ),
        "executed": {name: _executed(cluster["folder"], name) for name in WORKERS},
    }


def _executed(folder: Path, worker: str) -> dict[str, str]:
    """``{task instance id: task_id}`` of what a worker's log says it executed."""
    text = (folder / "logs" / f"{worker}.log").read_text(errors="replace")
    return {m["id"]: m["task_id"] for m in EXECUTED.finditer(text)}


def test_every_run_succeeded(runs) -> None:
    states = {(r["dag_id"], r["run_id"]): r["state"] for r in runs["runs"]}
    backfill_runs = [r for r in runs["runs"] if r["run_type"] == "backfill"]
    assert len(backfill_runs) == len(WEEKS), states
    assert ("train_model", BY_HAND) in states
    assert set(states.values()) == {"success"}, f"{states}\n{runs['airflow'].diagnostics()}"


def test_tasks_ran_on_both_workers(runs) -> None:
    executed = runs["executed"]
    tasks = {t["id"]: t for t in runs["tasks"]}
    assert executed["worker-default"] and executed["worker-training"], executed
    # each task instance ran on exactly one worker, and every one that ran is in a worker's log
    assert not set(executed["worker-default"]) & set(executed["worker-training"])
    ran = {t["id"] for t in runs["tasks"] if t["state"] == "success"}
    assert ran <= set(executed["worker-default"]) | set(executed["worker-training"])
    assert {tasks[i]["dag_id"] for i in executed["worker-default"]} == {DAG_ID}
    print(f"\nworker-default ran {sorted(set(executed['worker-default'].values()))}")
    print(f"worker-training ran {sorted(set(executed['worker-training'].values()))}")


def test_training_only_on_the_training_worker_queue_and_pool(runs) -> None:
    executed = runs["executed"]
    assert set(executed["worker-training"].values()) == {"train_model"}
    assert "train_model" not in executed["worker-default"].values()
    training = [t for t in runs["tasks"] if t["task_id"] == "train_model"]
    assert sorted(t["run_id"] for t in training) == sorted(r["run_id"] for r in runs["runs"])  # one a run
    assert {(t["queue"], t["pool"]) for t in training} == {("training", "training")}
    others = [t for t in runs["tasks"] if t["task_id"] != "train_model"]
    assert {(t["queue"], t["pool"]) for t in others} == {("default", "default_pool")}


def test_the_training_pool_held(runs) -> None:
    training = sorted(
        (t for t in runs["tasks"] if t["task_id"] == "train_model"), key=lambda t: utc(t["start_date"])
    )
    for before, after in zip(training, training[1:], strict=False):
        assert utc(after["start_date"]) >= utc(before["end_date"]), (before, after)  # one at a time
    # and the cap was needed: a training task was ready while another held the slot (the test
    # opened the slot with both waiting)
    waited = [
        (t["run_id"], o["run_id"])
        for t in training
        for o in training
        if t is not o and utc(t["scheduled_dttm"]) < utc(o["end_date"]) <= utc(t["start_date"])
    ]
    assert waited, [(t["run_id"], t["scheduled_dttm"], t["start_date"], t["end_date"]) for t in training]
