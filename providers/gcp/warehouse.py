"""The warehouse on GCP: tables in one BigQuery dataset, through the Airflow BigQueryHook's client.

A partition replacement stages the new rows with one load job (newline-delimited JSON, into a
table of their own that expires), then replaces the partition with one MERGE statement: rows
of the partition that the staged rows do not match are deleted and every staged row is
inserted, in one atomic DML statement. A reader sees the old partition or the new one, a
failed load or a source that breaks half-way changes nothing, and a re-run leaves the rows once.
Loading (not streaming) keeps the rows out of the streaming buffer, which DML cannot touch.

Values never go into SQL text: the partition's values and a source query's ``:name``
placeholders are BigQuery query parameters (``@name``).
"""

from __future__ import annotations

import json
import math
import tempfile
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Any

import pandas as pd

from providers.base import check_identifier
from providers.gcp.config import GcpSettings
from providers.queries import parse_query
from providers.sql import check_schema as _check_schema
from providers.sql import db_value as python_value
from providers.sql import frames as _chunks

SQL_TYPES = {"string": "STRING", "int": "INT64", "float": "FLOAT64", "bool": "BOOL", "timestamp": "TIMESTAMP"}
STAGING_HOURS = 6  # a staging table left by a killed task expires by itself


class BigQueryWarehouse:
    """Tables in ``<project>.<dataset>``; credentials from the Airflow Connection ``[gcp] conn_id``."""

    def __init__(self, gcp: GcpSettings, project: str) -> None:
        self.gcp = gcp
        self.project = project
        self.dataset = gcp.dataset

    @cached_property
    def client(self) -> Any:
        """The google-cloud-bigquery client of the BigQueryHook."""
        from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook

        hook = BigQueryHook(gcp_conn_id=self.gcp.conn_id, use_legacy_sql=False, location=self.gcp.location)
        return hook.get_client(project_id=self.project, location=self.gcp.location)

    def _name(self, table: str) -> str:
        return f"`{self.project}.{self.dataset}.{check_identifier(table)}`"

    def _table_id(self, table: str) -> str:
        return f"{self.project}.{self.dataset}.{check_identifier(table)}"

    def _run(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """Run one statement with its parameters; return the finished job."""
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(
            query_parameters=[query_parameter(name, value) for name, value in (params or {}).items()],
            default_dataset=f"{self.project}.{self.dataset}",
            use_legacy_sql=False,
        )
        job = self.client.query(sql, job_config=config, location=self.gcp.location)
        job.result()
        return job

    def _frame(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        # the REST path: the Storage Read API is not needed for a week's rows
        return self._run(sql, params).to_dataframe(create_bqstorage_client=False)

    def _columns(self, table: str) -> list[str] | None:
        """The table's columns, or None when it does not exist."""
        from google.api_core.exceptions import NotFound

        try:
            return [field.name for field in self.client.get_table(self._table_id(table)).schema]
        except NotFound:
            return None

    def ensure_table(self, table: str, schema: Mapping[str, str]) -> None:
        """Create the dataset and table if missing, or add the columns the table lacks."""
        from google.cloud import bigquery

        check_identifier(table)
        _check_schema(schema)
        existing = self._columns(table)
        if existing is None:
            dataset = bigquery.Dataset(f"{self.project}.{self.dataset}")
            dataset.location = self.gcp.location
            self.client.create_dataset(dataset, exists_ok=True)
            fields = [bigquery.SchemaField(c, SQL_TYPES[t]) for c, t in schema.items()]
            self.client.create_table(bigquery.Table(self._table_id(table), schema=fields), exists_ok=True)
            return
        missing = [c for c in schema if c not in existing]
        if missing:  # IF NOT EXISTS: a concurrent ensure_table adding the same column is fine
            additions = ", ".join(f"ADD COLUMN IF NOT EXISTS {c} {SQL_TYPES[schema[c]]}" for c in missing)
            self._run(f"ALTER TABLE {self._name(table)} {additions}")

    def replace_rows(
        self, table: str, where: Mapping[str, Any], rows: pd.DataFrame | Iterable[pd.DataFrame]
    ) -> int:
        """Stage the rows with one load job, then replace the partition with one MERGE."""
        from google.cloud import bigquery

        condition, params = _where(where, "T.")
        staging = f"_staging_{check_identifier(table)}_{uuid.uuid4().hex[:12]}"
        with tempfile.TemporaryFile() as buffer:
            count, columns = _write_ndjson(rows, buffer)
            if not count:  # nothing to insert: the partition is only emptied
                self._delete(table, where)
                return 0
            buffer.seek(0)
            target = self.client.get_table(self._table_id(table))
            types = {column.name: column.field_type for column in target.schema}
            unknown = [c for c in columns if c not in types]
            if unknown:
                raise ValueError(f"table {table!r} has no column(s) {unknown}: add them with ensure_table")
            config = bigquery.LoadJobConfig(
                source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
                schema=[bigquery.SchemaField(c, types[c]) for c in columns],
                write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            )
            staging_id = f"{self.project}.{self.dataset}.{staging}"
            try:
                job = self.client.load_table_from_file(
                    buffer, staging_id, job_config=config, location=self.gcp.location
                )
                job.result()
                self._expire(staging_id)
                names = ", ".join(columns)
                values = ", ".join(f"S.{c}" for c in columns)
                self._run(
                    f"MERGE {self._name(table)} T USING {self._name(staging)} S ON FALSE "
                    f"WHEN NOT MATCHED BY SOURCE{' AND ' + condition if condition else ''} THEN DELETE "
                    f"WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})",
                    params,
                )
            finally:
                self.client.delete_table(staging_id, not_found_ok=True)
        return count

    def _expire(self, table_id: str) -> None:
        """Let a staging table expire, in case this task is killed before it drops it."""
        table = self.client.get_table(table_id)
        table.expires = datetime.now(UTC) + timedelta(hours=STAGING_HOURS)
        self.client.update_table(table, ["expires"])

    def read_rows(
        self, table: str, where: Mapping[str, Any] | None = None, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Return the matching rows (an empty frame if the table does not exist)."""
        names = ", ".join(check_identifier(c) for c in columns) if columns else "*"
        if self._columns(table) is None:
            return pd.DataFrame(columns=list(columns or []))
        condition, params = _where(where or {})
        return self._frame(f"SELECT {names} FROM {self._name(table)}{_clause(condition)}", params)

    def delete_rows(self, table: str, where: Mapping[str, Any]) -> int:
        """Delete the matching rows; return how many."""
        return self._delete(table, where)

    def _delete(self, table: str, where: Mapping[str, Any]) -> int:
        condition, params = _where(where)
        job = self._run(f"DELETE FROM {self._name(table)} WHERE {condition or 'TRUE'}", params)
        return int(job.num_dml_affected_rows or 0)

    def query(self, sql: str, params: Mapping[str, Any]) -> pd.DataFrame:
        """Run one SELECT with ``:name`` placeholders, bound as BigQuery query parameters.

        Unqualified table names resolve in ``[gcp] dataset`` (the job's default dataset).
        """
        bound = parse_query(sql, params)
        return self._frame(bound.render(lambda name: f"@{name}"), bound.params)


def _where(where: Mapping[str, Any], qualifier: str = "") -> tuple[str, dict[str, Any]]:
    """Equalities on parameters ``@w0, @w1, ...`` (values never go into the SQL text)."""
    parts, params = [], {}
    for index, (column, value) in enumerate(where.items()):
        parts.append(f"{qualifier}{check_identifier(column)} = @w{index}")
        params[f"w{index}"] = value
    return " AND ".join(parts), params


def _clause(condition: str) -> str:
    return f" WHERE {condition}" if condition else ""


def _json_value(value: Any) -> Any:
    value = python_value(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value!r} cannot be stored: the warehouse takes finite numbers")
    return value


def _write_ndjson(rows: pd.DataFrame | Iterable[pd.DataFrame], buffer: Any) -> tuple[int, list[str]]:
    """Write every chunk's rows as newline-delimited JSON; return the count and the columns."""
    count, columns = 0, list[str]()
    for chunk in _chunks(rows):
        if chunk.empty:
            continue
        names = [check_identifier(c) for c in chunk.columns]
        if columns and names != columns:
            raise ValueError(f"every chunk must have the same columns: {names} != {columns}")
        columns = names
        for row in chunk.itertuples(index=False, name=None):
            record = {name: _json_value(value) for name, value in zip(names, row, strict=True)}
            buffer.write(json.dumps(record).encode() + b"\n")
        count += len(chunk)
    return count, columns


def query_parameter(name: str, value: Any) -> Any:
    """A BigQuery scalar query parameter of the value's type (timestamps in UTC)."""
    from google.cloud import bigquery

    value = python_value(value)
    if isinstance(value, bool):
        kind = "BOOL"
    elif isinstance(value, int):
        kind = "INT64"
    elif isinstance(value, float):
        kind = "FLOAT64"
    elif isinstance(value, datetime):
        kind, value = "TIMESTAMP", value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, date):
        kind = "DATE"
    else:
        kind, value = "STRING", None if value is None else str(value)
    return bigquery.ScalarQueryParameter(name, kind, value)
