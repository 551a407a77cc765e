"""Fault points in the task processes of the tests' Airflow scheduler (never used outside tests).

Python imports ``sitecustomize`` at start-up from its path. The tests put this folder on the
scheduler's PYTHONPATH with ``MLOPS_TEST_FAULTS`` naming a folder; the scheduler's forks (the
executor's workers and, under them, the task processes) inherit the patches below. A fault point
does nothing until a test arms it by writing ``arm-<point>`` (containing the ISO week to hit)
into that folder. When a task reaches an armed point, it disarms it (so the retry runs clean),
writes its pid to ``fired-<point>`` and sleeps, for the test to SIGKILL it there.

Points:
    ingest-write: the rename that publishes a raw object of the week (its bytes are written to
        the temporary file, not yet in place; the data_versions row is not written yet).
    score-partition: the week's predictions partition, after the first chunk was staged for
        the partition's transaction (nothing committed).
    partition-after-delete: DuckDBWarehouse's transaction that replaces a partition of any
        table whose ``where`` has the armed week, right after its DELETE (the old rows deleted
        inside the open transaction, nothing inserted or committed). Before firing, it writes
        the partition's row count as the transaction sees it to ``seen-<point>``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

FOLDER = os.environ.get("MLOPS_TEST_FAULTS")


def _armed(point: str) -> str | None:
    arm = Path(FOLDER) / f"arm-{point}"
    return arm.read_text().strip() if arm.is_file() else None


def _fire(point: str) -> None:
    try:
        (Path(FOLDER) / f"arm-{point}").unlink()
    except FileNotFoundError:
        return  # another process fired it first
    (Path(FOLDER) / f"fired-{point}").write_text(str(os.getpid()))
    time.sleep(600)  # the test kills this process here


def _patch_rename() -> None:
    original = os.replace

    def replace(src, dst, *args, **kwargs):  # noqa: ANN001, ANN202 - os.replace's signature
        week = _armed("ingest-write")
        if week and f"raw/week={week}/" in str(dst):
            _fire("ingest-write")
        return original(src, dst, *args, **kwargs)

    os.replace = replace


def _patch_warehouse() -> None:
    from providers.local import warehouse

    original = warehouse.DuckDBWarehouse.replace_rows

    def replace_rows(self, table, where, rows):  # noqa: ANN001, ANN202 - the method's signature
        week = _armed("score-partition")
        if table == "predictions" and week and dict(where).get("week") == week:
            rows = _pause_after_first_chunk(rows)
        return original(self, table, where, rows)

    warehouse.DuckDBWarehouse.replace_rows = replace_rows

    def after_delete(con, table, where):  # noqa: ANN001, ANN202 - the seam's signature
        week = _armed("partition-after-delete")
        if week and dict(where).get("week") == week:
            clause, params = warehouse._where(where)
            seen = con.execute(f"SELECT count(*) FROM {table}{clause}", params).fetchone()[0]
            (Path(FOLDER) / "seen-partition-after-delete").write_text(str(seen))
            _fire("partition-after-delete")

    warehouse._after_delete = after_delete


def _pause_after_first_chunk(rows):  # noqa: ANN001, ANN202
    import pandas as pd

    chunks = [rows] if isinstance(rows, pd.DataFrame) else rows
    for index, chunk in enumerate(chunks):
        if index == 0:
            yield chunk.iloc[: max(1, len(chunk) // 2)]  # staged, not committed
            _fire("score-partition")
            yield chunk.iloc[max(1, len(chunk) // 2) :]
        else:
            yield chunk


if FOLDER:
    _patch_rename()
    _patch_warehouse()
