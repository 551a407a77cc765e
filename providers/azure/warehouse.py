"""The warehouse on Azure: a Synapse dedicated SQL pool, in T-SQL, through a DB-API connection.

The connection comes from the Airflow microsoft-mssql provider's ``MsSqlHook`` on
``[azure] warehouse_conn_id`` (pymssql over TDS to ``<workspace>.sql.azuresynapse.net``); a
test or another driver can pass its own ``connect`` instead (e.g. pyodbc's).

What the statements respect, and why:

- a dedicated SQL pool takes no multi-row ``INSERT ... VALUES (..), (..)``: rows go in as
  ``INSERT ... SELECT .. UNION ALL SELECT ..`` batches;
- a partition replacement is DELETE + the INSERTs in one explicit transaction (pymssql opens
  it implicitly; ``commit`` ends it), so a re-run never duplicates rows and a failure leaves
  the old partition;
- pymssql binds parameters on the client (``%s``/``%(name)s``, quoted by the driver): values
  never go into the SQL text by this code's own formatting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from core.errors import ParamError
from providers.base import check_identifier
from providers.queries import parse_query
from providers.sql import (
    check_schema,
    db_value,
    frames,
    result_frame,
    table_columns,
    transaction,
    where_equal,
)

SQL_TYPES = {
    "string": "NVARCHAR(4000)",
    "int": "BIGINT",
    "float": "FLOAT",  # T-SQL FLOAT is float(53): a double
    "bool": "BIT",
    "timestamp": "DATETIMEOFFSET",
}
INSERT_BATCH_ROWS = 200  # rows per INSERT ... SELECT ... UNION ALL statement
# pymssql substitutes these everywhere in the text, literals included, and has no escape for them
_DRIVER_MARKERS = re.compile(r"%(\([A-Za-z_]\w*\))?[sd]")


def value(cell: Any) -> Any:
    """A parameter for pymssql: NULL for missing cells; an aware timestamp as naive UTC.

    pymssql writes a datetime without its offset, and SQL Server reads an offset-less literal
    as UTC when it compares it with a DATETIMEOFFSET: so it is converted to UTC first.
    """
    cell = db_value(cell)
    if isinstance(cell, datetime) and cell.tzinfo is not None:
        return cell.astimezone(UTC).replace(tzinfo=None)
    return cell


class SynapseWarehouse:
    """Tables in a Synapse dedicated SQL pool (or SQL Server / Azure SQL) of one schema.

    Args:
        conn_id: the Airflow Connection (type ``mssql``) of the SQL pool.
        schema: the database schema of the tables (``dbo``).
        connect: returns a new DB-API connection; default: ``MsSqlHook(conn_id).get_conn()``.
    """

    def __init__(self, conn_id: str, schema: str = "dbo", connect: Callable[[], Any] | None = None) -> None:
        self.conn_id = conn_id
        self.schema = check_identifier(schema)
        self._connect = connect

    def connect(self) -> Any:
        """A new DB-API connection to the SQL pool."""
        if self._connect is not None:
            return self._connect()
        from airflow.providers.microsoft.mssql.hooks.mssql import MsSqlHook

        return MsSqlHook(mssql_conn_id=self.conn_id).get_conn()

    def transaction(self) -> AbstractContextManager[Any]:
        """A cursor in one transaction: committed at the end, rolled back on any error."""
        return transaction(self.connect)

    def _name(self, table: str) -> str:
        return f"{self.schema}.{check_identifier(table)}"

    def ensure_table(self, table: str, schema: Mapping[str, str]) -> None:
        """Create the table, or add the columns it lacks.

        ``IF OBJECT_ID(..) IS NULL CREATE TABLE`` would be one statement, but the catalogue is
        read first instead, so that every statement is plain DDL or a query.
        """
        check_identifier(table)
        check_schema(schema)
        with self.transaction() as cursor:
            existing = set(table_columns(cursor, self.schema, table))
            if not existing:
                columns = ", ".join(f"{c} {SQL_TYPES[t]}" for c, t in schema.items())
                cursor.execute(f"CREATE TABLE {self._name(table)} ({columns})")
                return
            for column, logical in schema.items():
                if column not in existing:
                    cursor.execute(f"ALTER TABLE {self._name(table)} ADD {column} {SQL_TYPES[logical]}")

    def insert_statements(self, table: str, chunk: pd.DataFrame) -> Iterator[tuple[str, list[Any]]]:
        """The INSERT ... SELECT ... UNION ALL statements (and their parameters) of one chunk."""
        names = [check_identifier(c) for c in chunk.columns]
        row_sql = "SELECT " + ", ".join(["%s"] * len(names))
        records = [[value(v) for v in row] for row in chunk.itertuples(index=False, name=None)]
        for start in range(0, len(records), INSERT_BATCH_ROWS):
            batch = records[start : start + INSERT_BATCH_ROWS]
            sql = f"INSERT INTO {self._name(table)} ({', '.join(names)}) " + " UNION ALL ".join(
                [row_sql] * len(batch)
            )
            yield sql, [v for record in batch for v in record]

    def replace_rows(
        self, table: str, where: Mapping[str, Any], rows: pd.DataFrame | Iterable[pd.DataFrame]
    ) -> int:
        """DELETE the partition and INSERT the rows in one transaction; return rows inserted."""
        clause, params = where_equal(where, value)
        inserted = 0
        with self.transaction() as cursor:
            cursor.execute(f"DELETE FROM {self._name(table)}{clause}", tuple(params))
            for chunk in frames(rows):
                if chunk.empty:
                    continue
                for sql, values in self.insert_statements(table, chunk):
                    cursor.execute(sql, tuple(values))
                inserted += len(chunk)
        return inserted

    def read_rows(
        self, table: str, where: Mapping[str, Any] | None = None, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Return the matching rows (an empty frame if the table does not exist)."""
        check_identifier(table)
        names = ", ".join(check_identifier(c) for c in columns) if columns else "*"
        clause, params = where_equal(where or {}, value)
        with self.transaction() as cursor:
            if not table_columns(cursor, self.schema, table):
                return pd.DataFrame(columns=list(columns or []))
            cursor.execute(f"SELECT {names} FROM {self._name(table)}{clause}", tuple(params) or None)
            return result_frame(cursor)

    def delete_rows(self, table: str, where: Mapping[str, Any]) -> int:
        """Delete the matching rows; return how many."""
        clause, params = where_equal(where, value)
        with self.transaction() as cursor:
            cursor.execute(f"DELETE FROM {self._name(table)}{clause}", tuple(params) or None)
            return int(cursor.rowcount)

    def query(self, sql: str, params: Mapping[str, Any]) -> pd.DataFrame:
        """Run one T-SQL SELECT with ``:name`` placeholders, bound by the driver (``%(name)s``).

        Raises:
            ParamError: see ``Warehouse.query``; also text that pymssql would take for a
                placeholder (``%s``, ``%(x)s``) anywhere else in the query.
        """
        bound = parse_query(sql, params)
        for kind, text in bound.parts:
            marker = _DRIVER_MARKERS.search(text) if kind != "param" else None
            if marker is not None:
                raise ParamError(
                    f"the query contains {marker.group(0)!r}, which the Synapse "
                    "driver (pymssql) would replace with a parameter: write it another way"
                )
        text = bound.render(lambda name: f"%({name})s")
        with self.transaction() as cursor:
            cursor.execute(text, {name: value(v) for name, v in bound.params.items()} or None)
            return result_frame(cursor)
