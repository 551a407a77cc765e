"""7. Training time at 100k and 1M rows, and how it grows.

The training script (``core/ml/train.py``) runs in a child process exactly as the local
provider's training job runs it (one OpenMP thread, the settings' hyperparameters: 200 boosting
rounds), on sample rows with a 20% validation split. The baseline is the smallest size: the
figure for each larger size is its time over the smallest size's, against the ratio of rows.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.common import MIB, Figure, median, ratio, run_child


def write_split(folder: Path, rows: int) -> tuple[Path, Path]:
    """Train (80%) and validation (20%) Parquet files of ``rows`` sample rows."""
    from demo.sample_data import generate_week, write_parquet_bytes

    train, validation = folder / f"train-{rows}.parquet", folder / f"validation-{rows}.parquet"
    frame = generate_week("2030-W20", rows, seed=5)
    cut = int(rows * 0.8)
    train.write_bytes(write_parquet_bytes(frame.iloc[:cut]))
    validation.write_bytes(write_parquet_bytes(frame.iloc[cut:]))
    return train, validation


def run(sizes: tuple[int, ...] = (100_000, 1_000_000), repeat: int = 3, max_iter: int = 200) -> list[Figure]:
    """Train ``repeat`` times per size."""
    results: dict[int, tuple[float, float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        folder = Path(tmp)
        for rows in sizes:
            train, validation = write_split(folder, rows)
            runs = [
                run_child(
                    "train", str(train), str(validation), str(folder / f"model-{rows}-{i}"), str(max_iter)
                )
                for i in range(repeat)
            ]
            results[rows] = (
                median([r.seconds for r in runs]),
                median([r.output["seconds"] for r in runs]),
                max(r.peak_rss_bytes for r in runs) / MIB,
            )
    smallest = sizes[0]
    base = results[smallest][0]
    figures = []
    for rows in sizes:
        seconds, fit_seconds, peak = results[rows]
        figures.append(
            Figure(
                "training",
                f"training time, {rows:,} rows",
                seconds,
                "s",
                f"training time, {smallest:,} rows",
                base,
                ratio(seconds, base),
                f"grows ~linearly (rows x{rows / smallest:g})",
                None,
                {
                    "rows": rows,
                    "rows_ratio": rows / smallest,
                    "script_seconds": fit_seconds,
                    "peak_rss_mib": peak,
                    "max_iter": max_iter,
                    "repeat": repeat,
                },
            )  # fmt: skip
        )
    return figures
