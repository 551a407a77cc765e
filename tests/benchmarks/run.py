"""Run the benchmarks; print a table of figures and write them as JSON (``make bench``).

Every figure is compared with a baseline measured in the same run on the same data (see
docs/benchmarks.md). Examples::

    python tests/benchmarks/run.py                      # everything at the issue's sizes
    python tests/benchmarks/run.py --quick              # small sizes, one repetition
    python tests/benchmarks/run.py --only drift endpoint --repeat 5
    python tests/benchmarks/run.py --only backfill --backfill-weeks 3
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for _path in (str(ROOT), str(ROOT / "tests"), str(ROOT / "dags")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

BENCHMARKS = ("parse", "scoring", "drift", "week", "backfill", "endpoint", "training")


def _airflow_env(home: Path) -> None:
    """Give the in-process dag.test() runs an Airflow home of the benchmarks' own (set before import)."""
    from helpers import airflow_base_env

    os.environ.update(airflow_base_env(home))
    os.environ.pop("MLOPS_CONFIG", None)
    os.environ.pop("MLOPS_PROVIDER", None)
    if not (home / ".migrated").exists():
        home.mkdir(parents=True, exist_ok=True)
        airflow = Path(sys.executable).parent / "airflow"
        subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, timeout=600)
        (home / ".migrated").write_text("ok")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these benchmarks")
    parser.add_argument("--skip", nargs="+", choices=BENCHMARKS, default=[], help="leave these out")
    parser.add_argument("--quick", action="store_true", help="small sizes and one repetition (minutes)")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions per figure (default 3)")
    parser.add_argument("--scoring-rows", type=int, nargs="+", default=[1_000_000, 2_000_000, 5_000_000])
    parser.add_argument(
        "--scoring-plain-max-rows", type=int, default=None, help="above it: the provider only, no baseline"
    )
    parser.add_argument("--drift-rows", type=int, default=1_000_000)
    parser.add_argument("--week-rows", type=int, default=100_000, help="rows per week of the weekly loop")
    parser.add_argument("--max-iter", type=int, default=200, help="boosting rounds of the weekly loop")
    parser.add_argument("--backfill-weeks", type=int, default=12)
    parser.add_argument("--backfill-rows", type=int, default=5_000, help="rows per backfilled week")
    parser.add_argument("--endpoint-seconds", type=float, default=20)
    parser.add_argument("--endpoint-clients", type=int, default=50)
    parser.add_argument(
        "--endpoint-rates", type=float, nargs="+", default=[100, 200, 400, 800],
        help="offered requests/s in total, one bounded-load run each",
    )  # fmt: skip
    parser.add_argument("--training-rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--json", type=Path, default=ROOT / ".bench" / "results.json")
    return parser


def _quick(args: argparse.Namespace) -> None:
    args.repeat = args.repeat or 1
    args.scoring_rows = [100_000, 200_000]
    args.drift_rows = 50_000
    args.week_rows, args.max_iter = 2_000, 30
    args.backfill_weeks, args.backfill_rows = 2, 1_000
    args.endpoint_seconds = 5
    args.training_rows = [10_000, 50_000]


def run_benchmark(name: str, args: argparse.Namespace) -> list:
    """Run one benchmark with the options' sizes; return its figures."""
    repeat = args.repeat or 3
    if name == "parse":
        from benchmarks import bench_parse

        return bench_parse.run(repeat=max(repeat, 3))
    if name == "scoring":
        from benchmarks import bench_scoring

        return bench_scoring.run(
            tuple(args.scoring_rows), repeat, data_dir=ROOT / ".bench" / "data",
            plain_max_rows=args.scoring_plain_max_rows,
        )  # fmt: skip
    if name == "drift":
        from benchmarks import bench_drift

        return bench_drift.run(args.drift_rows, repeat)
    if name == "week":
        from benchmarks import bench_week

        return bench_week.run(args.week_rows, repeat, args.max_iter)
    if name == "backfill":
        from benchmarks import bench_backfill

        return bench_backfill.run(args.backfill_weeks, args.backfill_rows)
    if name == "endpoint":
        from benchmarks import bench_endpoint

        return bench_endpoint.run(
            args.endpoint_seconds, args.endpoint_clients, tuple(args.endpoint_rates), repeat
        )
    from benchmarks import bench_training

    return bench_training.run(tuple(args.training_rows), repeat)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def table(figures: list) -> str:
    """The figures as a plain-text table."""
    header = ("benchmark", "figure", "value", "baseline", "ratio", "target", "met")
    rows = [header]
    for f in figures:
        met = {True: "yes", False: "NO", None: ""}[f.passed]
        baseline = f"{_fmt(f.baseline)} ({f.baseline_name})" if f.baseline is not None else "-"
        rows.append(
            (f.benchmark, f.name, f"{_fmt(f.value)} {f.unit}", baseline, _fmt(f.ratio), f.target, met)
        )
    widths = [min(max(len(str(r[i])) for r in rows), 70) for i in range(len(header))]
    lines = ["  ".join(str(c)[:70].ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(figures: list[dict]) -> str:
    """The figures (as dicts, e.g. from the JSON file) as a Markdown table for docs/benchmarks.md."""
    lines = [
        "| benchmark | figure | value | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        met = {True: "yes", False: "**no**", None: ""}[f["passed"]]
        baseline = f"{_fmt(f['baseline'])} ({f['baseline_name']})" if f["baseline"] is not None else "-"
        lines.append(
            f"| {f['benchmark']} | {f['name']} | {_fmt(f['value'])} {f['unit']} | {baseline} | "
            f"{_fmt(f['ratio'])} | {f['target']} | {met} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks; return 1 if one of them failed to run (not if a target is missed)."""
    args = _parser().parse_args(argv)
    if args.quick:
        _quick(args)
    chosen = [b for b in (args.only or BENCHMARKS) if b not in args.skip]
    _airflow_env(ROOT / ".bench" / "airflow")
    from benchmarks.common import write_json

    figures, errors, durations = [], {}, {}
    for name in chosen:
        print(f"[bench] {name} ...", flush=True)
        started = time.monotonic()
        try:
            new = run_benchmark(name, args)
        except Exception as exc:  # one broken benchmark must not lose the others' figures
            errors[name] = f"{type(exc).__name__}: {exc}"
            print(f"[bench] {name} FAILED: {errors[name][:2000]}", flush=True)
            new = []
        durations[name] = time.monotonic() - started
        figures += new
        print(table(new) if new else "", flush=True)
        write_json(args.json, _payload(args, chosen, figures, errors, durations))
        args.json.with_suffix(".md").write_text(markdown([f.as_dict() for f in figures]) + "\n")
    print("\n" + table(figures))
    print(f"\nJSON: {args.json}")
    return 1 if errors else 0


def _payload(args, chosen, figures, errors, durations) -> dict:
    import psutil

    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_end": os.getloadavg(),
        },
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "benchmarks": chosen,
        "seconds": durations,
        "errors": errors,
        "figures": [f.as_dict() for f in figures],
    }


if __name__ == "__main__":
    sys.exit(main())
