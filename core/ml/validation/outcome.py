"""What validating one week found: failures, the rows to quarantine, and a JSON summary."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np
import pandas as pd

# The level of a check: a batch-level failure rejects the week, a row-level one its rows.
BATCH = "batch"
ROW = "row"


class BatchFailure(TypedDict):
    """A failed batch-level check: it rejects the week.

    Attributes:
        expectation: the GE expectation's name, or this project's own check's name.
        column: the column checked (None: the table as a whole).
        detail: what was found, in words.
    """

    expectation: str
    column: str | None
    detail: str


class RowFailure(TypedDict):
    """A failed row-level check: its rows are quarantined.

    Attributes:
        expectation: the GE expectation's name.
        column: the column checked.
        n_rows: the rows that failed it.
        sample_ids: the first 20 failing ids (row numbers without an id column), as text.
        detail: what was found, in words.
    """

    expectation: str
    column: str | None
    n_rows: int
    sample_ids: list[str]
    detail: str


@dataclass
class ValidationOutcome:
    """What validating one week found.

    Attributes:
        passed: True if the batch is accepted (its good rows go on).
        batch_failures: failed batch-level checks.
        row_failures: failed row-level checks.
        bad_row_ids: ids of the rows failing any row-level check.
        bad_positions: positions of the failing rows, when the spec has no id column.
        id_column: the spec's id column (None: rows are known by position).
        n_rows: rows in the batch.
        n_bad_rows: rows failing any row-level check (rows without an id included).
        n_expectations: checks evaluated: the GE expectations plus the pandas label-leak and
            bad-row-fraction checks.
        week: the ISO week validated.
        max_bad_row_fraction: the limit the batch was held to.
    """

    passed: bool
    batch_failures: list[BatchFailure] = field(default_factory=list)
    row_failures: list[RowFailure] = field(default_factory=list)
    bad_row_ids: set[Any] = field(default_factory=set)
    bad_positions: set[int] = field(default_factory=set)
    id_column: str | None = None
    n_rows: int = 0
    n_bad_rows: int = 0
    n_expectations: int = 0
    week: str = ""
    max_bad_row_fraction: float | None = None

    def _bad_mask(self, df: pd.DataFrame) -> pd.Series:
        if not self.passed:
            return pd.Series(True, index=df.index)
        if self.id_column is None:  # rows are known by their position in the week's file
            bad = np.zeros(len(df), dtype=bool)
            bad[sorted(self.bad_positions)] = True
            return pd.Series(bad, index=df.index)
        if self.id_column not in df.columns:
            return pd.Series(True, index=df.index)
        ids = df[self.id_column]
        return ids.isin(self.bad_row_ids) | ids.isna()

    def good_rows(self, df: pd.DataFrame) -> pd.DataFrame:
        """Return the rows of ``df`` that go on: none if the batch was rejected."""
        return df[~self._bad_mask(df)]

    def bad_rows(self, df: pd.DataFrame) -> pd.DataFrame:
        """Return the rows of ``df`` to quarantine: all of them if the batch was rejected."""
        return df[self._bad_mask(df)]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable summary (at most 100 of the bad row ids, sorted)."""
        return {
            "week": self.week,
            "passed": self.passed,
            "n_rows": self.n_rows,
            "n_bad_rows": self.n_bad_rows,
            "n_expectations": self.n_expectations,
            "max_bad_row_fraction": self.max_bad_row_fraction,
            "batch_failures": [_jsonable(failure) for failure in self.batch_failures],
            "row_failures": [_jsonable(failure) for failure in self.row_failures],
            "bad_row_ids_sample": sorted(str(i) for i in self.bad_row_ids)[:100],
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(item) for item in value]
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return value if not isinstance(value, float) or math.isfinite(value) else str(value)
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return str(value)
