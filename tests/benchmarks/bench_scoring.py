"""2. Batch scoring: the local provider's batch_score against the plain pandas script.

Both score the same Parquet file (sample rows written the way validate_data writes them: one row
group per million rows) with the same model into a DuckDB file, each in a fresh child process
with one OpenMP thread. The provider path is the real stage (``lifecycle/score.py``: the
registry's production version, ``ChunkedBatchScorer`` streaming 100k-row chunks, the
``predictions`` partition replaced in one transaction); the plain script reads the whole file,
builds features, calls ``predict_proba`` and writes one table. Time and peak memory of each.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from benchmarks.common import (
    MIB,
    Figure,
    median,
    ratio,
    register_production_model,
    run_child,
    write_local_config,
)

WEEK = "2030-W10"
CHUNK = 500_000
MEMORY_TARGET_BYTES = 1024 * MIB
ENV = {"OMP_NUM_THREADS": "1"}


def write_rows(path: Path, rows: int) -> Path:
    """Write ``rows`` sample rows (unique customer ids) to Parquet, generated in chunks."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from demo.sample_data import generate_week

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    writer = None
    try:
        for i, start in enumerate(range(0, rows, CHUNK)):
            frame = generate_week(WEEK, min(CHUNK, rows - start), seed=100 + i)
            frame["customer_id"] = [f"c{n:09d}" for n in range(start, start + len(frame))]
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="snappy")
            writer.write_table(table, row_group_size=1_000_000)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)
    return path


def run(
    sizes: tuple[int, ...] = (1_000_000, 2_000_000, 5_000_000),
    repeat: int = 3,
    data_dir: Path | None = None,
    train_rows: int = 20_000,
    plain_max_rows: int | None = None,
) -> list[Figure]:
    """Score each size ``repeat`` times both ways; one time and one memory figure per size.

    Sizes above ``plain_max_rows`` run the provider only (no baseline): the plain script needs
    memory and minutes in proportion to the file.
    """
    figures = []
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        folder = Path(tmp)
        config = write_local_config(folder / "provider")
        version = register_production_model(config, train_rows)
        from core.config import load_settings
        from lifecycle.context import StageContext
        from lifecycle.keys import validated_key

        provider = StageContext(settings=load_settings(config), week=WEEK, actor="benchmark").provider
        model_path = provider.registry.fetch_artifact(version, folder / "model")
        for rows in sizes:
            data = write_rows((data_dir or folder / "data") / f"rows-{rows}.parquet", rows)
            provider.storage.put_file(validated_key(WEEK), data)
            ours, plain = [], []
            for _ in range(repeat):
                ours.append(run_child("score-provider", str(config), WEEK, env=ENV))
                if plain_max_rows is not None and rows > plain_max_rows:
                    continue
                out = folder / "plain.duckdb"
                out.unlink(missing_ok=True)
                plain.append(run_child("score-plain", str(data), str(model_path), str(out), env=ENV))
            for run_ in ours:
                if run_.output["n_rows"] != rows:
                    raise RuntimeError(f"the provider scored {run_.output['n_rows']} rows, not {rows}")
            ours_s, ours_m = median([r.seconds for r in ours]), max(r.peak_rss_bytes for r in ours)
            plain_s = median([r.seconds for r in plain]) if plain else None
            plain_m = max(r.peak_rss_bytes for r in plain) if plain else None
            label = f"{rows / 1e6:g}M rows"
            figures.append(
                Figure(
                    "batch_scoring",
                    f"time, {label}",
                    ours_s,
                    "s",
                    "plain pandas script",
                    plain_s,
                    ratio(ours_s, plain_s),
                    "ratio <= 1.0",
                    None if plain_s is None else ours_s <= plain_s,
                    {
                        "rows": rows,
                        "repeat": repeat,
                        "rows_per_second": rows / ours_s,
                        "plain_rows_per_second": rows / plain_s if plain_s else None,
                        "work_seconds": median([r.output["work_seconds"] for r in ours]),
                        "plain_work_seconds": (
                            median([r.output["work_seconds"] for r in plain]) if plain else None
                        ),
                    },
                )  # fmt: skip
            )
            figures.append(
                Figure(
                    "batch_scoring",
                    f"peak memory, {label}",
                    ours_m / MIB,
                    "MiB",
                    "plain pandas script",
                    plain_m / MIB if plain_m else None,
                    ratio(ours_m, plain_m),
                    "value < 1024 MiB",
                    ours_m < MEMORY_TARGET_BYTES,
                    {"rows": rows},
                )  # fmt: skip
            )
            # each size's figures as soon as they exist: the largest size takes many minutes
            print(json.dumps([f.as_dict() for f in figures[-2:]], default=str), flush=True)
    return figures
