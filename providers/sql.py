"""What every SQL warehouse shares: checked schemas, DB-API values from pandas cells, row chunks."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
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
