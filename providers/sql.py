"""What every SQL warehouse shares: checked schemas, DB-API values from pandas cells, row chunks.

Also the DB-API mechanics of the ``format``-paramstyle (``%s``) drivers that the Redshift and
Synapse warehouses use: a transaction, the catalogue's columns, a WHERE of equalities, a result
as a frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from providers.base import LOGICAL_TYPES, check_identifier


def check_schema(schema: Mapping[str, str]) -> None:
    """Check a table schema: column names are identifiers, types are LOGICAL_TYPES.

    Raises:
        ValueError: a column name or a type is not allowed; the message names it.
    """
    for column, logical in schema.items():
        check_identifier(column)
        if logical not in LOGICAL_TYPES:
            raise ValueError(f"column {column!r}: type {logical!r} is not one of {LOGICAL_TYPES}")


def db_value(value: Any) -> Any:
    """A DB-API parameter from a pandas/numpy cell (NaN/NaT/NA -> NULL)."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, float | np.floating) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def frames(rows: pd.DataFrame | Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """The chunks of a frame-or-chunks argument (``Warehouse.replace_rows``)."""
    yield from [rows] if isinstance(rows, pd.DataFrame) else rows


@contextmanager
def transaction(connect: Callable[[], Any], *, autocommit_off: bool = False) -> Iterator[Any]:
    """A cursor of a new connection in one transaction: committed at the end, rolled back on any error.

    The cursor and the connection are closed afterwards, whatever happened.

    Args:
        connect: returns a new DB-API connection.
        autocommit_off: set ``autocommit = False`` on the connection first, for drivers that
            take it as an attribute (psycopg, redshift_connector); pymssql's ``autocommit`` is a
            method, and it opens a transaction implicitly.
    """
    conn = connect()
    try:
        if autocommit_off:
            conn.autocommit = False
        cursor = conn.cursor()
        try:
            yield cursor
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            cursor.close()
    finally:
        conn.close()


def table_columns(cursor: Any, schema: str, table: str) -> list[str]:
    """The table's column names in order, from INFORMATION_SCHEMA (empty: there is no such table).

    One text for every engine: SQL Server spells the view in capitals, and PostgreSQL and
    Redshift fold unquoted names to lower case.
    """
    cursor.execute(
        "SELECT column_name FROM INFORMATION_SCHEMA.COLUMNS WHERE table_schema = %s AND table_name = %s "
        "ORDER BY ordinal_position",
        (schema, table),
    )
    return [row[0] for row in cursor.fetchall()]


def where_equal(where: Mapping[str, Any], value: Callable[[Any], Any] = db_value) -> tuple[str, list[Any]]:
    """A WHERE of equalities on ``%s`` parameters, and the parameters converted by ``value``.

    Values never go into the SQL text; an empty ``where`` gives no clause.
    """
    if not where:
        return "", []
    parts = [f"{check_identifier(column)} = %s" for column in where]
    return " WHERE " + " AND ".join(parts), [value(v) for v in where.values()]


def result_frame(cursor: Any) -> pd.DataFrame:
    """The rows of the cursor's last query, as a frame with its column names."""
    header = [d[0] for d in cursor.description]
    return pd.DataFrame.from_records(cursor.fetchall(), columns=header)
