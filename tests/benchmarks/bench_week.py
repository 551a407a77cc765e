"""4. One full week of the retraining pipeline on the local provider, and Airflow's overhead.

Each repetition starts from a fresh local provider whose first week (``PREP_WEEK``) has already
run (called directly, untimed), so the measured week is a full one: it trains on two weeks,
evaluates against a champion and checks drift against a reference week. The same week is then
run two ways on two such fresh states, in the same process (imports are warm for both):

- ``retrain_pipeline`` with ``dag.test()``: wall time, and each task's duration from its task
  instance;
- the same stage functions of ``lifecycle`` called directly in order, no Airflow.

The overhead figure is the pipeline's wall time over the direct calls' (target <= 2.0).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import Figure, median, ratio, write_local_config

PREP_WEEK = "2030-W10"
WEEK = "2030-W11"
OVERHEAD_TARGET = 2.0


def stages() -> list[tuple[str, Callable[..., Any]]]:
    """The pipeline's stage functions in order (task id, function)."""
    from lifecycle.deploy import deploy_production
    from lifecycle.evaluate import evaluate_challenger
    from lifecycle.ingest import ingest_week
    from lifecycle.monitor import monitor_week
    from lifecycle.register import register_challenger
    from lifecycle.score import score_week
    from lifecycle.train import train_challenger
    from lifecycle.validate import validate_week_data

    return [
        ("ingest_data", ingest_week),
        ("validate_data", validate_week_data),
        ("train_model", train_challenger),
        ("evaluate_model", evaluate_challenger),
        ("register_model", register_challenger),
        ("deploy_model", deploy_production),
        ("batch_score", score_week),
        ("monitor_drift", monitor_week),
    ]


def run_direct(config: Path, week: str) -> dict[str, float]:
    """Call every stage function for ``week``; return each one's seconds."""
    from core.config import load_settings
    from lifecycle.context import build_context

    ctx = build_context(week=week, logical_date=None, actor="benchmark", reason="manual",
                        settings=load_settings(config))  # fmt: skip
    times, job_name = {}, None
    for task_id, function in stages():
        started = time.perf_counter()
        kwargs = {"job_name": job_name} if task_id in ("evaluate_model", "register_model") else {}
        result = function(ctx, **kwargs)
        if task_id == "train_model":
            job_name = result.job_name
        times[task_id] = time.perf_counter() - started
    return times


def run_pipeline(week: str) -> tuple[float, dict[str, float]]:
    """``retrain_pipeline`` for ``week`` with dag.test(); wall seconds and each task's seconds."""
    from helpers import run_dag, run_state, scheduled_logical_date, task_states

    _clear_run(scheduled_logical_date(week))
    started = time.perf_counter()
    dag_run = run_dag("retrain_pipeline", week)
    seconds = time.perf_counter() - started
    if run_state(dag_run) != "success":
        raise RuntimeError(f"retrain_pipeline for {week} ended {run_state(dag_run)}: {task_states(dag_run)}")
    tasks = {
        ti.task_id: (ti.end_date - ti.start_date).total_seconds()
        for ti in dag_run.get_task_instances()
        if ti.start_date and ti.end_date
    }
    return seconds, tasks


def _clear_run(logical_date: Any) -> None:
    """Delete an earlier benchmark run of the same logical date (each repetition reuses it)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagRun).filter(
            DagRun.dag_id == "retrain_pipeline", DagRun.logical_date == logical_date
        ).delete()


class FreshState:
    """A fresh local provider with its endpoint server, and the first week already run."""

    def __init__(self, folder: Path, rows: int, max_iter: int, prep: bool = True) -> None:
        from helpers import EndpointServer, free_port

        port = free_port()
        self.config = write_local_config(
            folder,
            local={"endpoint_port": port},
            data={"rows_per_week": rows},
            model={"params": {"max_iter": max_iter}},
        )
        self.server = EndpointServer(folder / "mlops" / "endpoint" / "deployments", port).wait_ready(
            timeout=300
        )
        self._previous = os.environ.get("MLOPS_CONFIG")
        os.environ["MLOPS_CONFIG"] = str(self.config)
        if prep:
            run_direct(self.config, PREP_WEEK)

    def close(self) -> None:
        """Stop the server; restore MLOPS_CONFIG."""
        self.server.stop()
        if self._previous is None:
            os.environ.pop("MLOPS_CONFIG", None)
        else:
            os.environ["MLOPS_CONFIG"] = self._previous


def run(rows: int = 100_000, repeat: int = 3, max_iter: int = 200, prep: bool = True) -> list[Figure]:
    """Run the week both ways ``repeat`` times, each on a fresh state (``prep``: its first week run)."""
    walls, directs, task_runs, stage_runs = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-week-") as tmp:
        for i in range(repeat):
            for mode in ("airflow", "direct"):
                state = FreshState(Path(tmp) / f"{mode}-{i}", rows, max_iter, prep)
                try:
                    if mode == "airflow":
                        wall, tasks = run_pipeline(WEEK)
                        walls.append(wall)
                        task_runs.append(tasks)
                    else:
                        started = time.perf_counter()
                        stage_runs.append(run_direct(state.config, WEEK))
                        directs.append(time.perf_counter() - started)
                finally:
                    state.close()
    wall, direct = median(walls), median(directs)
    breakdown = {
        task_id: {
            "dag_test_s": median([t.get(task_id, 0.0) for t in task_runs]),
            "direct_s": median([s[task_id] for s in stage_runs]),
        }
        for task_id, _ in stages()
    }
    return [
        Figure(
            "weekly_loop",
            f"one week, {rows:,} rows: retrain_pipeline with dag.test()",
            wall,
            "s",
            "the same stage functions called directly",
            direct,
            ratio(wall, direct),
            f"ratio <= {OVERHEAD_TARGET:g}",
            ratio(wall, direct) <= OVERHEAD_TARGET,
            {
                "per_stage": breakdown,
                "dag_test_runs": walls,
                "direct_runs": directs,
                "repeat": repeat,
                "max_iter": max_iter,
            },
        ),  # fmt: skip
    ]
