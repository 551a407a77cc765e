import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from providers.base import Warehouse
from providers.local.warehouse import DuckDBWarehouse

SCHEMA = {"week": "string", "customer_id": "string", "score": "float", "n": "int", "flag": "bool"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def wh(tmp_path) -> DuckDBWarehouse:
    warehouse = DuckDBWarehouse(tmp_path / "db" / "warehouse.duckdb")
    warehouse.ensure_table("predictions", SCHEMA)
    return warehouse


def _rows(week: str, n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "week": [week] * n,
            "customer_id": [f"C{i:05d}" for i in range(start, start + n)],
            "score": [i / 10 for i in range(start, start + n)],
            "n": list(range(start, start + n)),
            "flag": [i % 2 == 0 for i in range(start, start + n)],
        }
    )


def _columns(wh: DuckDBWarehouse, table: str) -> dict[str, str]:
    con = duckdb.connect(str(wh.path), read_only=True)
    try:
        return {name: kind for name, kind, *_ in con.execute(f"DESCRIBE {table}").fetchall()}
    finally:
        con.close()


def test_is_a_warehouse(wh):
    assert isinstance(wh, Warehouse)
    assert wh.path.is_file()


def test_ensure_table_creates_with_types(wh):
    assert _columns(wh, "predictions") == {
        "week": "VARCHAR",
        "customer_id": "VARCHAR",
        "score": "DOUBLE",
        "n": "BIGINT",
        "flag": "BOOLEAN",
    }


def test_ensure_table_adds_missing_columns_and_keeps_rows(wh):
    wh.replace_rows("predictions", {"week": "2026-W05"}, _rows("2026-W05", 3))
    wh.ensure_table("predictions", {**SCHEMA, "model_version": "string", "scored_at": "timestamp"})
    assert _columns(wh, "predictions")["model_version"] == "VARCHAR"
    assert _columns(wh, "predictions")["scored_at"] == "TIMESTAMP WITH TIME ZONE"
    wh.ensure_table("predictions", {"week": "string"})  # a subset: nothing removed, nothing fails
    assert len(_columns(wh, "predictions")) == 7
    rows = wh.read_rows("predictions")
    assert len(rows) == 3
    assert rows["model_version"].isna().all()


def test_ensure_table_refuses_bad_types_and_names(wh):
    with pytest.raises(ValueError, match="decimal"):
        wh.ensure_table("other", {"a": "decimal"})
    with pytest.raises(ValueError):
        wh.ensure_table("other; DROP TABLE predictions", {"a": "int"})
    with pytest.raises(ValueError):
        wh.ensure_table("other", {"a int, b": "int"})
    with pytest.raises(ValueError):
        wh.ensure_table("Other", {"a": "int"})
    assert len(wh.read_rows("predictions", columns=["week"]).columns) == 1
    assert wh.read_rows("other").empty  # never created


def test_replace_rows_replaces_only_the_partition(wh):
    assert wh.replace_rows("predictions", {"week": "2026-W05"}, _rows("2026-W05", 5)) == 5
    assert wh.replace_rows("predictions", {"week": "2026-W06"}, _rows("2026-W06", 4)) == 4
    assert wh.replace_rows("predictions", {"week": "2026-W05"}, _rows("2026-W05", 2, start=100)) == 2
    w05 = wh.read_rows("predictions", where={"week": "2026-W05"})
    assert sorted(w05["customer_id"]) == ["C00100", "C00101"]
    assert len(wh.read_rows("predictions", where={"week": "2026-W06"})) == 4
    assert len(wh.read_rows("predictions")) == 6


def test_replace_rows_twice_leaves_the_rows_once(wh):
    for _ in range(2):
        wh.replace_rows("predictions", {"week": "2026-W05"}, _rows("2026-W05", 10))
    rows = wh.read_rows("predictions")
    assert len(rows) == 10
    assert rows["customer_id"].is_unique


def test_replace_rows_with_several_where_columns(wh):
    wh.replace_rows("predictions", {"week": "2026-W05"}, _rows("2026-W05", 4))
    # replace only n = 1 of week 5
    replacement = _rows("2026-W05", 1, start=1).assign(score=99.0)
    assert wh.replace_rows("predictions", {"week": "2026-W05", "n": 1}, replacement) == 1
    rows = wh.read_rows("predictions", where={"week": "2026-W05"}).sort_values("n")
    assert rows["score"].tolist() == [0.0, 99.0, 0.2, 0.3]


def test_replace_rows_with_an_iterable_of_chunks(wh):
    def chunks():
        for i in range(3):
            yield _rows("2026-W05", 1000, start=i * 1000)
        yield _rows("2026-W05", 0)  # an empty chunk is skipped

    assert wh.replace_rows("predictions", {"week": "2026-W05"}, chunks()) == 3000
    rows = wh.read_rows("predictions", where={"week": "2026-W05"})
    assert len(rows) == 3000 and rows["customer_id"].is_unique
    # a list of frames works too
    assert wh.replace_rows("predictions", {"week": "2026-W05"}, [_rows("2026-W05", 2)]) == 2
    assert len(wh.read_rows("predictions")) == 2


def test_failing_chunk_generator_rolls_back(wh):
    wh.replace_rows("predictions", {"week": "2026-W05"}, _rows("2026-W05", 7))
    wh.replace_rows("predictions", {"week": "2026-W06"}, _rows("2026-W06", 3))

    def chunks():
        yield _rows("2026-W05", 500, start=1000)
        yield _rows("2026-W05", 500, start=1500)
        raise RuntimeError("source broke half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        wh.replace_rows("predictions", {"week": "2026-W05"}, chunks())
    w05 = wh.read_rows("predictions", where={"week": "2026-W05"})
    assert sorted(w05["customer_id"]) == [f"C{i:05d}" for i in range(7)]  # the old rows, none new
    assert len(wh.read_rows("predictions")) == 10
    # the warehouse still works afterwards
    assert wh.replace_rows("predictions", {"week": "2026-W05"}, _rows("2026-W05", 1)) == 1


def test_bad_chunk_rolls_back(wh):
    wh.replace_rows("predictions", {"week": "2026-W05"}, _rows("2026-W05", 5))
    mismatched = [_rows("2026-W05", 2), _rows("2026-W05", 2).assign(unknown_column=1)]
    with pytest.raises(ValueError, match="same columns"):
        wh.replace_rows("predictions", {"week": "2026-W05"}, mismatched)
    assert len(wh.read_rows("predictions")) == 5
    unknown = [_rows("2026-W05", 2).assign(unknown_column=1)] * 2
    with pytest.raises(duckdb.Error):
        wh.replace_rows("predictions", {"week": "2026-W05"}, unknown)
    assert len(wh.read_rows("predictions")) == 5
    assert not list(wh.path.parent.glob("*.tmp"))  # the staged chunks are removed
    with pytest.raises(ValueError):
        wh.replace_rows(
            "predictions", {"week": "2026-W05"}, _rows("2026-W05", 2).rename(columns={"n": "N x"})
        )
    assert len(wh.read_rows("predictions")) == 5


def test_read_rows_where_and_columns(wh):
    wh.replace_rows("predictions", {"week": "2026-W05"}, _rows("2026-W05", 6))
    rows = wh.read_rows("predictions", where={"week": "2026-W05", "flag": True}, columns=["customer_id", "n"])
    assert list(rows.columns) == ["customer_id", "n"]
    assert sorted(rows["n"].tolist()) == [0, 2, 4]
    assert wh.read_rows("predictions", where={"week": "2026-W99"}).empty
    full = wh.read_rows("predictions")
    assert set(full.columns) == set(SCHEMA)
    assert full["score"].dtype == "float64"


def test_missing_table_reads_empty(wh):
    assert wh.read_rows("nothing_here").empty
    empty = wh.read_rows("nothing_here", where={"week": "x"}, columns=["week", "n"])
    assert empty.empty and list(empty.columns) == ["week", "n"]


def test_delete_rows(wh):
    wh.replace_rows("predictions", {"week": "2026-W05"}, _rows("2026-W05", 4))
    wh.replace_rows("predictions", {"week": "2026-W06"}, _rows("2026-W06", 2))
    assert wh.delete_rows("predictions", {"week": "2026-W05"}) == 4
    assert wh.delete_rows("predictions", {"week": "2026-W05"}) == 0
    assert len(wh.read_rows("predictions")) == 2


INJECTION = "x'; DROP TABLE predictions; --"


def test_values_with_sql_are_stored_verbatim(wh):
    rows = _rows(INJECTION, 2).assign(customer_id=['a"b', "c\\'; SELECT 1; --"])
    assert wh.replace_rows("predictions", {"week": INJECTION}, rows) == 2
    wh.replace_rows("predictions", {"week": "2026-W05"}, _rows("2026-W05", 1))
    stored = wh.read_rows("predictions", where={"week": INJECTION})
    assert stored["week"].tolist() == [INJECTION, INJECTION]
    assert sorted(stored["customer_id"]) == ['a"b', "c\\'; SELECT 1; --"]
    assert wh.read_rows("predictions", where={"customer_id": "' OR '1'='1"}).empty
    assert wh.delete_rows("predictions", {"week": "' OR 1=1 --"}) == 0
    assert len(wh.read_rows("predictions")) == 3  # the table is intact


@pytest.mark.parametrize(
    "name",
    ["predictions; DROP TABLE predictions", "x' OR '1'='1", "week = week --", "a b", "", "1abc", "t\n"],
)
def test_identifiers_with_sql_are_refused(wh, name):
    wh.replace_rows("predictions", {"week": "2026-W05"}, _rows("2026-W05", 2))
    with pytest.raises(ValueError, match="not a valid table or column name"):
        wh.read_rows(name)
    with pytest.raises(ValueError):
        wh.read_rows("predictions", columns=[name])
    with pytest.raises(ValueError):
        wh.read_rows("predictions", where={name: 1})
    with pytest.raises(ValueError):
        wh.replace_rows(name, {"week": "2026-W05"}, _rows("2026-W05", 1))
    with pytest.raises(ValueError):
        wh.replace_rows("predictions", {name: "2026-W05"}, _rows("2026-W05", 1))
    with pytest.raises(ValueError):
        wh.delete_rows("predictions", {name: 1})
    with pytest.raises(ValueError):
        wh.ensure_table("predictions", {name: "string"})
    assert len(wh.read_rows("predictions")) == 2


_WRITER = textwrap.dedent(
    """
    import sys, time
    import pandas as pd
    from providers.local.warehouse import DuckDBWarehouse

    path, week, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])
    wh = DuckDBWarehouse(path)
    if hold:
        # hold the file (DuckDB's process lock) for a while, then write
        with wh.connect() as con:
            print("locked", flush=True)
            time.sleep(hold)
    for i in range(3):
        rows = pd.DataFrame({"week": [week] * 20, "customer_id": [f"{week}-{i}-{j}" for j in range(20)],
                             "score": [0.5] * 20, "n": [i] * 20, "flag": [True] * 20})
        assert wh.replace_rows("predictions", {"week": week}, rows) == 20
    print("done", flush=True)
    """
)


def _writer(path, week: str, hold: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), week, str(hold)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_writing_concurrently_both_succeed(wh):
    writers = [_writer(wh.path, week) for week in ("2026-W05", "2026-W06")]
    for process in writers:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        assert out.strip().endswith("done")
    rows = wh.read_rows("predictions")
    assert sorted(rows.groupby("week").size().to_dict().items()) == [("2026-W05", 20), ("2026-W06", 20)]
    assert (rows["n"] == 2).all()  # each week holds its last write only


def test_a_write_waits_for_the_lock_held_by_another_process(wh):
    holder = _writer(wh.path, "2026-W06", hold=1.0)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        # this process cannot open the file while the other one holds it: it waits, then writes
        assert wh.replace_rows("predictions", {"week": "2026-W05"}, _rows("2026-W05", 3)) == 3
        waited = time.monotonic() - started
        out, err = holder.communicate(timeout=120)
        assert holder.returncode == 0, err
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert waited > 0.3
    assert len(wh.read_rows("predictions", where={"week": "2026-W05"})) == 3
    assert len(wh.read_rows("predictions", where={"week": "2026-W06"})) == 20
