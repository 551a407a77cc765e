"""Re-running a stage for the same week changes nothing, also after a later week has run.

Weeks 2026-W01..W03 run once through every stage (the stage functions are called directly,
as the DAG tasks call them). Then every stage of W02 is re-run three times in a row; after each
re-run a snapshot of everything the loop writes must equal the snapshot taken before:

- every object under the local root's ``storage/`` folder, by sha256;
- every warehouse table, as its canonically sorted rows;
- the registry: every model version (version, registry key, sha256, metrics, tags) and the
  full production alias history (a re-run must not append an entry at all);
- the endpoint's deployment record (the whole file).

Then W04 (covariate drift) runs once, and every stage of W02, W03 and W04 is re-run three
times, compared with the snapshot taken after W04.

A re-run is made with a new actor each time, as Airflow gives every run (and every clear and
re-run of a task) a new run id: lineage must keep the actor of the run that produced the data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import EndpointServer, free_port, seed_mlflow_db, write_config
from snapshots import diff, snapshot

pytestmark = [pytest.mark.timeout(600)]
FIRST_WEEKS = ["2026-W01", "2026-W02", "2026-W03"]
DRIFT_WEEK = "2026-W04"
RERUNS = 3
STAGES = (
    "ingest_week",
    "validate_week_data",
    "train_challenger",
    "evaluate_challenger",
    "register_challenger",
    "deploy_production",
    "score_week",
    "monitor_week",
)


class Loop:
    """The local provider of one test module, with the stages run on it so far."""

    def __init__(self, settings: Any, root: Path) -> None:
        self.settings = settings
        self.root = root
        self.job_names: dict[str, str] = {}  # week -> the training job its train stage ran
        self.counter = 0
        self.reruns: dict[str, int] = {}
        self.differences: list[str] = []
        self.seen: set[str] = set()
        self.failed_reruns = 0
        self.seconds: dict[str, float] = {}
        self.reader: Any = None

    def snapshot(self) -> dict[str, Any]:
        """The snapshot of everything written so far (one reading provider for all of them)."""
        if self.reader is None:
            self.reader = self.context(FIRST_WEEKS[0], "rerun-test-snapshot")
        return snapshot(self.reader, self.root)

    def context(self, week: str, actor: str) -> Any:
        from lifecycle.context import build_context

        return build_context(week=week, logical_date=None, actor=actor, settings=self.settings)

    def run_stage(self, stage: str, week: str, actor: str) -> Any:
        """Run one stage for a week, as its DAG task would (evaluate/register get the job)."""
        ctx = self.context(week, actor)
        function = _stage_function(stage)
        if stage in ("evaluate_challenger", "register_challenger"):
            return function(ctx, self.job_names[week])
        result = function(ctx)
        if stage == "train_challenger":
            self.job_names[week] = str(result.job_name)
        return result

    def run_week(self, week: str) -> None:
        for stage in STAGES:
            self.run_stage(stage, week, actor="rerun-test")

    def rerun(self, weeks: list[str], baseline: dict[str, Any], label: str) -> None:
        """Re-run every stage of every week RERUNS times, comparing with ``baseline`` each time."""
        self.seen = set()
        for week in weeks:
            for stage in STAGES:
                for attempt in range(1, RERUNS + 1):
                    self.counter += 1
                    started = time.monotonic()
                    self.run_stage(stage, week, actor=f"rerun-test-{self.counter}")
                    self.seconds[stage] = self.seconds.get(stage, 0.0) + time.monotonic() - started
                    self.reruns[stage] = self.reruns.get(stage, 0) + 1
                    started = time.monotonic()
                    found = diff(baseline, self.snapshot())
                    self.seconds["snapshot"] = self.seconds.get("snapshot", 0.0) + time.monotonic() - started
                    # every re-run is compared with the baseline; a difference is listed once, at
                    # the re-run that made it (later re-runs only carry it along)
                    self.differences.extend(
                        f"[{label}] {stage}({week}) re-run {attempt}: {d}"
                        for d in found
                        if d not in self.seen
                    )
                    self.seen = set(found)
                    self.failed_reruns += bool(found)


def _stage_function(stage: str) -> Callable[..., Any]:
    import importlib

    modules = {
        "ingest_week": "ingest",
        "validate_week_data": "validate",
        "train_challenger": "train",
        "evaluate_challenger": "evaluate",
        "register_challenger": "register",
        "deploy_production": "deploy",
        "score_week": "score",
        "monitor_week": "monitor",
    }
    return getattr(importlib.import_module(f"lifecycle.{modules[stage]}"), stage)


# -- the tests ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory):
    """W01..W03 run once through every stage on a fresh local provider, an endpoint serving."""
    from core.config import load_settings

    folder = tmp_path_factory.mktemp("reruns")
    port = free_port()
    config = write_config(
        folder,
        local={"endpoint_port": port},
        data={"rows_per_week": 800, "covariate_drift_from_week": DRIFT_WEEK},
        model={"params": {"max_iter": 20}},
    )
    root = folder / "mlops"
    seed_mlflow_db(root / "mlflow", tmp_path_factory)
    server = EndpointServer(root / "endpoint" / "deployments", port)
    try:
        server.wait_ready()
        state = Loop(load_settings(config), root)
        started = time.monotonic()
        for week in FIRST_WEEKS:
            state.run_week(week)
        print(f"\nfirst run of {', '.join(FIRST_WEEKS)}: {time.monotonic() - started:.1f}s")
        yield state
    finally:
        server.stop()


def test_rerunning_every_stage_of_a_week_changes_nothing(loop: Loop) -> None:
    baseline = loop.snapshot()
    assert baseline["production"] is not None and baseline["deployment"] is not None
    assert len(baseline["versions"]) == len(FIRST_WEEKS)  # one challenger a week
    started = time.monotonic()
    before = len(loop.differences)
    loop.rerun(["2026-W02"], baseline, "in a row")
    _report("W02 re-run in a row", loop, before, started)
    assert loop.differences[before:] == []


def test_rerunning_earlier_weeks_after_a_later_week_changes_nothing(loop: Loop) -> None:
    loop.run_week(DRIFT_WEEK)
    baseline = loop.snapshot()
    summary = {row[0]: row for row in baseline["tables"]["drift_summary"]["rows"]}
    columns = baseline["tables"]["drift_summary"]["columns"]
    assert summary[DRIFT_WEEK][columns.index("drift_detected")] is True  # the drift week is seen
    started = time.monotonic()
    before = len(loop.differences)
    loop.rerun(["2026-W02", "2026-W03", DRIFT_WEEK], baseline, f"after {DRIFT_WEEK}")
    _report(f"W02, W03, W04 re-run after {DRIFT_WEEK}", loop, before, started)
    assert loop.differences[before:] == []


def _report(title: str, loop: Loop, before: int, started: float) -> None:
    found = loop.differences[before:]
    print(f"\n== {title}: {time.monotonic() - started:.1f}s")
    print("re-runs so far per stage: " + ", ".join(f"{s}={n}" for s, n in loop.reruns.items()))
    print(
        "seconds per stage (re-runs) and snapshots: "
        + ", ".join(f"{s}={t:.1f}" for s, t in loop.seconds.items())
    )
    print(
        f"re-runs that left a difference: {loop.failed_reruns}; distinct differences: {len(found)}"
        + "".join(f"\n  - {d}" for d in found[:60])
    )
