"""The warehouse on the local provider: one DuckDB file.

DuckDB lets one process hold the file at a time, so each call opens the file, does its work
in one transaction and closes it; a call that finds the file locked by another task waits and
tries again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from providers.base import LOGICAL_TYPES, check_identifier

_DUCKDB_TYPES = {
    "string": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
}
_LOCK_WAIT_SECONDS = 120.0


class DuckDBWarehouse:
    """Tables in a DuckDB file; every write is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """Open the DuckDB file, waiting while another process holds its lock."""
        import duckdb

        deadline = time.monotonic() + _LOCK_WAIT_SECONDS
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path))
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        try:
            yield con
        finally:
            con.close()

    def ensure_table(self, table: str, schema: Mapping[str, str]) -> None:
        """Create the table, or add the columns it lacks."""
        check_identifier(table)
        for column, logical in schema.items():
            check_identifier(column)
            if logical not in LOGICAL_TYPES:
                raise ValueError(f"column {column!r}: type {logical!r} is not one of {LOGICAL_TYPES}")
        columns = ", ".join(f"{c} {_DUCKDB_TYPES[t]}" for c, t in schema.items())
        with self.connect() as con:
            con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")
            existing = {row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()}
            for column, logical in schema.items():
                if column not in existing:
                    con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {_DUCKDB_TYPES[logical]}")

    def replace_rows(
        self, table: str, where: Mapping[str, Any], rows: pd.DataFrame | Iterable[pd.DataFrame]
    ) -> int:
        """Delete the matching rows and insert the new ones in one transaction."""
        check_identifier(table)
        clause, params = _where(where)
        chunks = [rows] if isinstance(rows, pd.DataFrame) else rows
        inserted = 0
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"DELETE FROM {table}{clause}", params)
                for chunk in chunks:
                    if chunk.empty:
                        continue
                    names = ", ".join(check_identifier(c) for c in chunk.columns)
                    con.register("incoming_chunk", chunk)
                    con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM incoming_chunk")
                    con.unregister("incoming_chunk")
                    inserted += len(chunk)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return inserted

    def read_rows(
        self, table: str, where: Mapping[str, Any] | None = None, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Return the matching rows as a frame."""
        check_identifier(table)
        names = ", ".join(check_identifier(c) for c in columns) if columns else "*"
        clause, params = _where(where or {})
        with self.connect() as con:
            exists = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
            ).fetchone()[0]
            if not exists:
                return pd.DataFrame(columns=list(columns or []))
            return con.execute(f"SELECT {names} FROM {table}{clause}", params).df()

    def delete_rows(self, table: str, where: Mapping[str, Any]) -> int:
        """Delete the matching rows."""
        check_identifier(table)
        clause, params = _where(where)
        with self.connect() as con:
            count = con.execute(f"SELECT count(*) FROM {table}{clause}", params).fetchone()[0]
            con.execute(f"DELETE FROM {table}{clause}", params)
        return int(count)


def _where(where: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """Build a parameterised WHERE clause of equalities (values never go into the SQL text)."""
    if not where:
        return "", []
    parts = [f"{check_identifier(column)} = ?" for column in where]
    return " WHERE " + " AND ".join(parts), list(where.values())
