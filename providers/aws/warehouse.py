"""The warehouse on AWS: Redshift, through a DB-API hook (SQL) or the Redshift Data API.

``[aws] warehouse`` picks the path:

- ``redshift_sql``: RedshiftSQLHook (redshift_connector) on ``[aws] warehouse_conn_id``;
- ``postgres``: PostgresHook on the same connection id - for a PostgreSQL-compatible endpoint
  (the tests' stand-in for Redshift; Redshift itself speaks the PostgreSQL protocol too);
- ``redshift_data_api``: RedshiftDataHook (serverless workgroup or provisioned cluster, no
  network path to the cluster needed); credentials of ``[aws] conn_id``.

A partition replacement is DELETE of the partition + INSERT of the rows in one transaction
(Data API: one BatchExecuteStatement, which runs as one transaction), so a re-run never
duplicates rows and a reader sees the old partition or the new one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import Any

import pandas as pd

from core.errors import MLOpsError
from providers.aws.config import AwsSettings
from providers.base import check_identifier
from providers.queries import parse_query
from providers.sql import check_schema as _check_schema
from providers.sql import db_value as _python
from providers.sql import frames as _chunks
from providers.sql import result_frame, table_columns, transaction, where_equal

SQL_TYPES = {
    "string": "VARCHAR(65535)",
    "int": "BIGINT",
    "float": "DOUBLE PRECISION",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
}
INSERT_BATCH_ROWS = 500  # rows per multi-row INSERT (Redshift executes one statement per call)


class WarehouseStatementError(MLOpsError):
    """A Data API statement failed or did not finish in time (retryable)."""


def build_warehouse(aws: AwsSettings) -> Any:
    """The warehouse of ``[aws] warehouse``."""
    if aws.warehouse == "redshift_data_api":
        return RedshiftDataApiWarehouse(aws)
    return SqlWarehouse(aws.warehouse_conn_id, aws.warehouse, aws.warehouse_schema)


class SqlWarehouse:
    """Tables in Redshift (or a PostgreSQL-compatible database) through a DB-API hook."""

    def __init__(self, conn_id: str, kind: str = "redshift_sql", schema: str = "public") -> None:
        self.conn_id = conn_id
        self.kind = kind
        self.schema = check_identifier(schema)

    def hook(self) -> Any:
        """The DB-API hook of the connection."""
        if self.kind == "postgres":
            from airflow.providers.postgres.hooks.postgres import PostgresHook

            return PostgresHook(postgres_conn_id=self.conn_id)
        from airflow.providers.amazon.aws.hooks.redshift_sql import RedshiftSQLHook

        return RedshiftSQLHook(redshift_conn_id=self.conn_id)

    def transaction(self) -> AbstractContextManager[Any]:
        """A cursor in one transaction: committed at the end, rolled back on any error."""
        return transaction(lambda: self.hook().get_conn(), autocommit_off=True)

    def _name(self, table: str) -> str:
        return f"{self.schema}.{check_identifier(table)}"

    def ensure_table(self, table: str, schema: Mapping[str, str]) -> None:
        """Create the table, or add the columns it lacks."""
        check_identifier(table)
        _check_schema(schema)
        columns = ", ".join(f"{c} {SQL_TYPES[t]}" for c, t in schema.items())
        with self.transaction() as cursor:
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {self._name(table)} ({columns})")
            existing = set(table_columns(cursor, self.schema, table))
            for column, logical in schema.items():
                if column not in existing:
                    cursor.execute(
                        f"ALTER TABLE {self._name(table)} ADD COLUMN {column} {SQL_TYPES[logical]}"
                    )

    def replace_rows(
        self, table: str, where: Mapping[str, Any], rows: pd.DataFrame | Iterable[pd.DataFrame]
    ) -> int:
        """DELETE the partition and INSERT the rows in one transaction; return rows inserted."""
        clause, params = where_equal(where)
        inserted = 0
        with self.transaction() as cursor:
            cursor.execute(f"DELETE FROM {self._name(table)}{clause}", params)
            for chunk in _chunks(rows):
                if chunk.empty:
                    continue
                names = [check_identifier(c) for c in chunk.columns]
                records = [[_python(v) for v in row] for row in chunk.itertuples(index=False, name=None)]
                for start in range(0, len(records), INSERT_BATCH_ROWS):
                    batch = records[start : start + INSERT_BATCH_ROWS]
                    row_sql = "(" + ", ".join(["%s"] * len(names)) + ")"
                    cursor.execute(
                        f"INSERT INTO {self._name(table)} ({', '.join(names)}) VALUES "
                        + ", ".join([row_sql] * len(batch)),
                        [value for record in batch for value in record],
                    )
                inserted += len(chunk)
        return inserted

    def read_rows(
        self, table: str, where: Mapping[str, Any] | None = None, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Return the matching rows (an empty frame if the table does not exist)."""
        check_identifier(table)
        names = ", ".join(check_identifier(c) for c in columns) if columns else "*"
        clause, params = where_equal(where or {})
        with self.transaction() as cursor:
            if not table_columns(cursor, self.schema, table):
                return pd.DataFrame(columns=list(columns or []))
            cursor.execute(f"SELECT {names} FROM {self._name(table)}{clause}", params)
            return result_frame(cursor)

    def delete_rows(self, table: str, where: Mapping[str, Any]) -> int:
        """Delete the matching rows; return how many."""
        clause, params = where_equal(where)
        with self.transaction() as cursor:
            cursor.execute(f"DELETE FROM {self._name(table)}{clause}", params)
            return int(cursor.rowcount)

    def query(self, sql: str, params: Mapping[str, Any]) -> pd.DataFrame:
        """Run one SELECT with ``:name`` placeholders, bound by the driver.

        psycopg (``postgres``) takes ``%(name)s`` and reads every other ``%`` as a format
        character, so literal ones are doubled first. redshift_connector (``redshift_sql``)
        refuses ``%(name)s`` in its default ``format`` style and leaves quoted ``%`` alone, so
        its cursor is switched to its ``named`` style and gets the ``:name`` placeholders as
        they are. The session runs in UTC, so the timestamp parameters compare as UTC.
        """
        bound = parse_query(sql, params)
        values = {name: _python(value) for name, value in bound.params.items()}
        if self.kind == "postgres":
            text = bound.render(lambda name: f"%({name})s", lambda part: part.replace("%", "%%"))
        else:
            text = bound.render(lambda name: f":{name}")
        with self.transaction() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
            if self.kind != "postgres":
                cursor.paramstyle = "named"
            cursor.execute(text, values)
            return result_frame(cursor)


# --------------------------------------------------------------------------------------------
# Redshift Data API


def sql_literal(value: Any) -> str:
    """A SQL literal for BatchExecuteStatement, which takes no parameters.

    Strings are quoted with quotes doubled and backslashes doubled (Redshift treats a backslash
    in a literal as an escape), so a value can never end the literal.
    """
    value = _python(value)
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} cannot be stored: the warehouse takes finite numbers")
        return repr(value)
    if isinstance(value, datetime | date):
        return "'" + value.isoformat() + "'"
    text = str(value).replace("\\", "\\\\").replace("'", "''")
    return f"'{text}'"


class RedshiftDataApiWarehouse:
    """Tables in Redshift through the Data API (RedshiftDataHook)."""

    def __init__(self, aws: AwsSettings, timeout_seconds: float = 3600) -> None:
        self.aws = aws
        self.schema = check_identifier(aws.warehouse_schema)
        self.timeout_seconds = timeout_seconds

    def hook(self) -> Any:
        """The RedshiftDataHook of ``[aws] conn_id``."""
        from airflow.providers.amazon.aws.hooks.redshift_data import RedshiftDataHook

        return RedshiftDataHook(aws_conn_id=self.aws.conn_id)

    def _target(self) -> dict[str, Any]:
        target: dict[str, Any] = {"Database": self.aws.redshift_database}
        if self.aws.redshift_workgroup_name:
            target["WorkgroupName"] = self.aws.redshift_workgroup_name
        else:
            target["ClusterIdentifier"] = self.aws.redshift_cluster_identifier
        if self.aws.redshift_secret_arn:
            target["SecretArn"] = self.aws.redshift_secret_arn
        elif self.aws.redshift_db_user:
            target["DbUser"] = self.aws.redshift_db_user
        return target

    def submit(self, statements: list[str], parameters: list[dict[str, str]] | None = None) -> str:
        """Send statements (several: one BatchExecuteStatement = one transaction); return its id.

        ``parameters`` (``{"name", "value"}`` items for the ``:name`` placeholders) go with a
        single statement only: BatchExecuteStatement takes none.
        """
        client = self.hook().conn
        if len(statements) == 1:
            extra = {"Parameters": parameters} if parameters else {}
            return client.execute_statement(Sql=statements[0], **extra, **self._target())["Id"]
        if parameters:
            raise ValueError("parameters go with one statement; BatchExecuteStatement takes none")
        return client.batch_execute_statement(Sqls=statements, **self._target())["Id"]

    def run(self, statements: list[str], parameters: list[dict[str, str]] | None = None) -> dict[str, Any]:
        """Send statements and wait until they finished; return the final DescribeStatement."""
        client = self.hook().conn
        statement_id = self.submit(statements, parameters)
        deadline = time.monotonic() + self.timeout_seconds
        delay = 0.2
        while True:
            described = client.describe_statement(Id=statement_id)
            status = described["Status"]
            if status == "FINISHED":
                return described
            if status in ("FAILED", "ABORTED"):
                raise WarehouseStatementError(
                    f"Redshift statement {statement_id} {status}: {described.get('Error')}"
                )
            if time.monotonic() > deadline:
                raise WarehouseStatementError(
                    f"Redshift statement {statement_id} still {status} after {self.timeout_seconds:.0f} s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _name(self, table: str) -> str:
        return f"{self.schema}.{check_identifier(table)}"

    def ensure_table_statements(self, table: str, schema: Mapping[str, str]) -> list[str]:
        """The CREATE TABLE IF NOT EXISTS statement (missing columns are added by ensure_table)."""
        _check_schema(schema)
        columns = ", ".join(f"{c} {SQL_TYPES[t]}" for c, t in schema.items())
        return [f"CREATE TABLE IF NOT EXISTS {self._name(table)} ({columns})"]

    def ensure_table(self, table: str, schema: Mapping[str, str]) -> None:
        """Create the table, or add the columns it lacks."""
        self.run(self.ensure_table_statements(table, schema))
        existing = set(self.read_rows_sql(
            f"SELECT column_name FROM information_schema.columns WHERE table_schema = "
            f"{sql_literal(self.schema)} AND table_name = {sql_literal(table)}"
        ).get("column_name", []))  # fmt: skip
        missing = [f"ALTER TABLE {self._name(table)} ADD COLUMN {c} {SQL_TYPES[t]}"
                   for c, t in schema.items() if c not in existing]  # fmt: skip
        for statement in missing:  # ALTER TABLE ADD COLUMN cannot run inside a transaction block
            self.run([statement])

    def replace_statements(
        self, table: str, where: Mapping[str, Any], rows: pd.DataFrame | Iterable[pd.DataFrame]
    ) -> tuple[list[str], int]:
        """The DELETE + INSERT statements of a partition replacement, and the row count."""
        clause = _literal_where(where)
        statements = [f"DELETE FROM {self._name(table)}{clause}"]
        count = 0
        for chunk in _chunks(rows):
            if chunk.empty:
                continue
            names = ", ".join(check_identifier(c) for c in chunk.columns)
            values = [
                "(" + ", ".join(sql_literal(v) for v in row) + ")"
                for row in chunk.itertuples(index=False, name=None)
            ]
            for start in range(0, len(values), INSERT_BATCH_ROWS):
                statements.append(
                    f"INSERT INTO {self._name(table)} ({names}) VALUES "
                    + ", ".join(values[start : start + INSERT_BATCH_ROWS])
                )
            count += len(chunk)
        return statements, count

    def replace_rows(
        self, table: str, where: Mapping[str, Any], rows: pd.DataFrame | Iterable[pd.DataFrame]
    ) -> int:
        """DELETE + INSERT in one BatchExecuteStatement (one transaction)."""
        statements, count = self.replace_statements(table, where, rows)
        self.run(statements)
        return count

    def read_rows_sql(self, sql: str, parameters: list[dict[str, str]] | None = None) -> pd.DataFrame:
        """Run a SELECT (with the Data API's ``parameters``, if any) and return its result as a frame."""
        client = self.hook().conn
        described = self.run([sql], parameters)
        if not described.get("HasResultSet"):
            return pd.DataFrame()
        records: list[list[Any]] = []
        header: list[str] = []
        token = None
        while True:
            page = client.get_statement_result(Id=described["Id"], **({"NextToken": token} if token else {}))
            header = header or [c["name"] for c in page["ColumnMetadata"]]
            for record in page["Records"]:
                records.append([None if f.get("isNull") else next(iter(f.values())) for f in record])
            token = page.get("NextToken")
            if not token:
                return pd.DataFrame.from_records(records, columns=header)

    def read_rows(
        self, table: str, where: Mapping[str, Any] | None = None, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Return the matching rows."""
        names = ", ".join(check_identifier(c) for c in columns) if columns else "*"
        exists = self.read_rows_sql(
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = "
            f"{sql_literal(self.schema)} AND table_name = {sql_literal(check_identifier(table))}"
        )
        if exists.empty or not int(exists.iloc[0, 0]):
            return pd.DataFrame(columns=list(columns or []))
        return self.read_rows_sql(f"SELECT {names} FROM {self._name(table)}{_literal_where(where or {})}")

    def delete_rows(self, table: str, where: Mapping[str, Any]) -> int:
        """Delete the matching rows; return how many (the statement's ResultRows)."""
        described = self.run([f"DELETE FROM {self._name(table)}{_literal_where(where)}"])
        return int(described.get("ResultRows") or 0)

    def query_request(self, sql: str, params: Mapping[str, Any]) -> tuple[str, list[dict[str, str]]]:
        """The statement and the ``Parameters`` of a query: the Data API binds ``:name`` itself."""
        bound = parse_query(sql, params)
        parameters = [{"name": name, "value": data_api_value(value)} for name, value in bound.params.items()]
        return bound.render(lambda name: f":{name}"), parameters

    def query(self, sql: str, params: Mapping[str, Any]) -> pd.DataFrame:
        """Run one SELECT with ``:name`` placeholders, bound by the Data API (``Parameters``)."""
        return self.read_rows_sql(*self.query_request(sql, params))


def data_api_value(value: Any) -> str:
    """A Data API parameter value: a string that Redshift casts to the column's type.

    Timestamps are ISO with their offset (``2026-01-26 00:00:00+00:00``).
    """
    value = _python(value)
    if value is None:
        raise ValueError("the Redshift Data API takes no NULL parameter: leave the placeholder out")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _literal_where(where: Mapping[str, Any]) -> str:
    if not where:
        return ""
    return " WHERE " + " AND ".join(f"{check_identifier(c)} = {sql_literal(v)}" for c, v in where.items())
