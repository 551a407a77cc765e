"""The warehouse on the local provider: one DuckDB file.

DuckDB lets one process hold the file at a time, so each call opens the file, does its work
in one transaction and closes it; a call that finds the file locked by another task waits and
tries again.

A partition replaced from a stream of chunks (batch scoring: millions of rows) is first written
to a Parquet file beside the database, then deleted and inserted in one transaction from that
file. Inserting the chunks in the open transaction kept every uncommitted row in memory
(~7 MiB per 100,000 predictions, whatever DuckDB's ``memory_limit``: 5M rows took the scoring
task past 1 GiB); one INSERT from a file is written to disk as it goes, within the limit.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from providers.base import LOGICAL_TYPES, check_identifier
from providers.local.atomic import temp_beside
from providers.queries import parse_query

_DUCKDB_TYPES = {
    "string": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
}
_LOCK_WAIT_SECONDS = 120.0
# DuckDB's memory for the INSERT of a staged partition (it writes to the file past this)
_STAGED_INSERT_MEMORY = "256MB"


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
        """Delete the matching rows and insert the new ones in one transaction.

        A frame is inserted as it is; a stream of chunks is staged in a Parquet file first (see
        the module docstring), so its memory does not grow with the number of rows.
        """
        check_identifier(table)
        if isinstance(rows, pd.DataFrame):
            return self._replace(table, where, rows if not rows.empty else None, len(rows))
        staging = Path(temp_beside(self.path.with_name(f"{self.path.name}.staging.parquet")))
        try:
            inserted = _stage(rows, staging)
            return self._replace(table, where, staging if inserted else None, inserted)
        finally:
            staging.unlink(missing_ok=True)

    def _replace(
        self, table: str, where: Mapping[str, Any], source: pd.DataFrame | Path | None, n: int
    ) -> int:
        """DELETE the partition, INSERT ``source`` (a frame or a staged Parquet file), COMMIT."""
        clause, params = _where(where)
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"DELETE FROM {table}{clause}", params)
                _after_delete(con, table, where)
                if isinstance(source, pd.DataFrame):
                    names = ", ".join(check_identifier(c) for c in source.columns)
                    con.register("incoming_chunk", source)
                    con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM incoming_chunk")
                    con.unregister("incoming_chunk")
                elif source is not None:
                    con.execute(f"SET memory_limit = '{_STAGED_INSERT_MEMORY}'")
                    import pyarrow.parquet as pq

                    columns = pq.read_schema(source).names
                    names = ", ".join(check_identifier(c) for c in columns)
                    literal = "'" + str(source).replace("'", "''") + "'"
                    con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM read_parquet({literal})")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return n

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

    def query(self, sql: str, params: Mapping[str, Any]) -> pd.DataFrame:
        """Run one SELECT with ``:name`` placeholders bound by DuckDB (as ``$name``).

        The session's time zone is UTC, so a TIMESTAMP column compares with the timestamp
        parameters as UTC and TIMESTAMPTZ results come back in UTC, whatever the machine's zone.
        """
        bound = parse_query(sql, params)
        with self.connect() as con:
            con.execute("SET TimeZone = 'UTC'")
            return con.execute(bound.render(lambda name: f"${name}"), bound.params).df()


def _after_delete(con: Any, table: str, where: Mapping[str, Any]) -> None:
    """Nothing: the seam of a test fault point inside the partition's open transaction.

    tests/faults/sitecustomize.py replaces it (``partition-after-delete``) to stop the process
    after the old rows were deleted and before anything is inserted or committed.
    """


def _stage(chunks: Iterable[pd.DataFrame], path: Path) -> int:
    """Write the chunks to one Parquet file (the first chunk's columns and types); count the rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, schema, count = None, None, 0
    try:
        for chunk in chunks:
            if chunk.empty:
                continue
            if schema is not None and list(chunk.columns) != schema.names:
                raise ValueError(
                    f"a chunk has the columns {list(chunk.columns)}, the first one had {schema.names}: "
                    "every chunk of a partition must have the same columns"
                )
            table = pa.Table.from_pandas(chunk, schema=schema, preserve_index=False)
            if writer is None:
                schema = table.schema
                writer = pq.ParquetWriter(path, schema)
            writer.write_table(table)
            count += len(chunk)
    finally:
        if writer is not None:
            writer.close()
    return count


def _where(where: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """Build a parameterised WHERE clause of equalities (values never go into the SQL text)."""
    if not where:
        return "", []
    parts = [f"{check_identifier(column)} = ?" for column in where]
    return " WHERE " + " AND ".join(parts), list(where.values())
