"""What the benchmarks share: timing, child processes with their peak memory, results, a model.

Every figure is a ratio against a baseline measured in the same run on the same data: the
machines these run on are shared and noisy, so absolute times move between runs while ratios
measured side by side move much less. Each time is the median of several repetitions.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from providers.jobs import deploy

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).resolve().parent / "children.py"
MIB = 1024 * 1024


@dataclass
class Figure:
    """One measured figure and the baseline it is compared with.

    ``ratio`` is ``value / baseline`` (or as stated in ``meaning``); ``target`` is the limit the
    issue sets on the ratio or value, ``passed`` whether it was met (None: no target).
    """

    benchmark: str
    name: str
    value: float
    unit: str
    baseline_name: str = ""
    baseline: float | None = None
    ratio: float | None = None
    target: str = ""
    passed: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return asdict(self)


def ratio(value: float, baseline: float | None) -> float | None:
    """``value / baseline``, or None when the baseline is missing or zero."""
    return None if not baseline else value / baseline


def median(values: list[float]) -> float:
    """The median of the repetitions."""
    return float(statistics.median(values))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Call ``fn``; return (seconds, its result)."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


@dataclass
class ChildRun:
    """A finished child process: wall seconds, peak resident memory and its JSON answer."""

    seconds: float
    peak_rss_bytes: int
    output: dict[str, Any]


def run_child(command: str, *args: str, env: dict[str, str] | None = None, timeout: float = 3600) -> ChildRun:
    """Run ``children.py <command> <args>`` in a fresh interpreter; measure it.

    The wall time includes the interpreter's start-up and imports, as a task's would. The peak
    memory is the child's own high-water mark (VmHWM, reported in the JSON object it prints
    last): ``RUSAGE_CHILDREN`` keeps only the largest child ever waited for, and a child's
    ``ru_maxrss`` starts from the forked copy of this process.

    Raises:
        RuntimeError: the child failed or timed out (its stderr is in the message).
    """
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), str(ROOT / "tests"), full_env.get("PYTHONPATH")])
    )
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(CHILD), command, *args],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise RuntimeError(f"child {command} did not finish in {timeout:.0f} s") from None
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(
            f"child {command} {' '.join(args)} exited with {process.returncode}:\n{stderr[-3000:]}"
        )
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError(f"child {command} printed nothing:\n{stderr[-3000:]}")
    output = json.loads(lines[-1])
    return ChildRun(seconds=seconds, peak_rss_bytes=int(output.get("peak_rss_bytes", 0)), output=output)


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far (Linux reports ``ru_maxrss`` in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def write_local_config(folder: Path, **sections: dict) -> Path:
    """An astro.toml for the local provider under ``folder`` (see tests/helpers.write_config)."""
    from helpers import write_config

    return write_config(folder, **sections)


def register_production_model(config: Path, train_rows: int = 20_000, max_iter: int = 200) -> Any:
    """Train a model on sample data, register it and point ``production`` at it; deploy it.

    The model is the project's own pipeline (``core/ml/train.fit_model``) with the settings'
    hyperparameters, so scoring and serving benchmarks run the real model's cost.

    Returns:
        The production ``ModelVersion``.
    """
    import tempfile

    import joblib
    from helpers import fit_model

    from core.config import load_settings
    from demo.sample_data import generate_week
    from lifecycle.context import StageContext

    ctx = StageContext(settings=load_settings(config), week="2030-W01", actor="benchmark")
    provider = ctx.provider
    model = fit_model(generate_week("2030-W01", train_rows, seed=7), {"max_iter": max_iter}, n_jobs=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.joblib"
        joblib.dump(model, path)
        provider.storage.put_file("benchmark/model.joblib", path)
    version = provider.registry.register(
        ctx.model_name,
        "benchmark/model.joblib",
        registry_key=f"benchmark-{train_rows}-{max_iter}",
        metrics={},
        params={"max_iter": max_iter},
        tags={"week": "2030-W01"},
    )
    provider.registry.set_alias(ctx.model_name, "production", version.version, "benchmark", "benchmark")
    deploy(provider.endpoint, version)
    return version


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write the results file (its folder is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
