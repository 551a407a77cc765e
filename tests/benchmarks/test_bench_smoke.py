"""Each benchmark at a tiny size, so the benchmarks cannot rot: they run and give sane numbers.

These check that every benchmark still runs end to end and measures something plausible (positive,
finite times and memories; each ratio the value over its baseline; the baselines measured; the
drift decisions right). They do not check the targets: at these sizes start-up costs dominate,
and the machine is shared. ``make bench`` measures those.
The backfill benchmark is left out: it starts a scheduler twice (minutes), and the shared code it
drives is the one tests/e2e/test_backfill_scheduler.py runs.
"""

from __future__ import annotations

import math

import pytest
from benchmarks import bench_drift, bench_endpoint, bench_parse, bench_scoring, bench_training, bench_week
from benchmarks.run import table

pytestmark = pytest.mark.timeout(300)


MEASURED_UNITS = {"s", "ms", "MiB"}  # a time or a memory: zero means nothing was measured


def _sane(figures, benchmark: str, count: int) -> None:
    """Each figure measured something and says it consistently (the targets are not checked).

    Rates (req/s) are checked by their own tests: a highest rate within the target may be 0.
    """
    assert len(figures) == count, figures
    for figure in figures:
        assert figure.benchmark == benchmark
        assert math.isfinite(figure.value), figure
        if figure.unit in MEASURED_UNITS:
            assert figure.value > 0, figure
        elif figure.unit == "bool":
            assert figure.value in (0.0, 1.0), figure
        if figure.baseline is not None:
            assert math.isfinite(figure.baseline) and figure.baseline > 0, figure
            if figure.ratio is not None:
                assert figure.ratio == pytest.approx(figure.value / figure.baseline), figure
        if figure.passed is not None:  # a verdict only where a target says what was judged
            assert figure.passed in (True, False) and figure.target, figure
    assert benchmark in table(figures)


def test_parse() -> None:
    figures = bench_parse.run(repeat=1)
    _sane(figures, "dag_parse", 2)
    assert figures[0].details["dag_files"] >= 10  # every DAG file of dags/ parsed
    assert set(figures[1].details["per_file_seconds"]) >= {"retrain_pipeline.py", "train_model.py"}


def test_scoring(tmp_path) -> None:
    figures = bench_scoring.run((20_000,), repeat=1, data_dir=tmp_path, train_rows=2_000)
    _sane(figures, "batch_scoring", 2)
    time_figure, memory = figures
    assert time_figure.details["rows"] == 20_000
    assert 50 < memory.value < 4096 and 50 < memory.baseline < 4096  # MiB: a Python with pandas


def test_drift() -> None:
    figures = bench_drift.run(rows=5_000, repeat=1)
    _sane(figures, "drift", 2)
    decisions = figures[1].details["decisions"]
    assert decisions["clean"]["ours"] == []
    assert decisions["drifted"]["ours"] == figures[1].details["injected"] != []
    assert figures[0].details["speedup"] > 1


def test_weekly_loop(airflow_db) -> None:
    [figure] = bench_week.run(rows=300, repeat=1, max_iter=10, prep=False)
    _sane([figure], "weekly_loop", 1)
    per_stage = figure.details["per_stage"]
    assert set(per_stage) == {task_id for task_id, _ in bench_week.stages()}
    assert all(times["dag_test_s"] > 0 and times["direct_s"] > 0 for times in per_stage.values())


def test_endpoint() -> None:
    figures = bench_endpoint.run(seconds=1, clients=5, rates=(20, 40), repeat=1, train_rows=2_000)
    _sane(figures, "endpoint", 8)
    assert figures[0].details["latency_ms"]["p50"] > 0
    assert figures[2].value in (0, 20, 40)  # the highest rate within the target
    assert figures[3].value > 1  # requests per second
    in_process, server_cpu = figures[4], figures[5]
    assert in_process.unit == "ms" and in_process.passed is (in_process.value <= 1.1)
    assert server_cpu.details["runs_ms"] and server_cpu.value > 0  # CPU per request, measured
    assert bench_endpoint.SERVER_LOG.stat().st_size > 0  # the servers' lines went to their log


def test_training() -> None:
    figures = bench_training.run((2_000, 4_000), repeat=1, max_iter=10)
    _sane(figures, "training", 2)
    small, large = figures  # each size's time over the smallest size's
    assert large.baseline == small.value and large.ratio == pytest.approx(large.value / small.value)
    assert large.details["rows_ratio"] == 2 and small.details["rows"] == 2_000
    assert all(f.details["peak_rss_mib"] > 50 for f in figures)
