"""Validating one week: the Great Expectations suite, the leak checks and the bad-row limit."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pandas as pd

from core.ml.dataset import DatasetSpec
from core.ml.validation.expectations import build_expectations, collect_result
from core.ml.validation.leaks import label_leaks
from core.ml.validation.outcome import ValidationOutcome
from core.ml.validation.reading import normalise

if TYPE_CHECKING:  # Great Expectations takes seconds to import: only for the type here
    from great_expectations.core.expectation_validation_result import ExpectationValidationResult

# Checked in plain pandas, reported like a GE expectation.
FRACTION_CHECK = "max_bad_row_fraction"


def validate_week(
    df: pd.DataFrame, week: str, max_bad_row_fraction: float, min_rows: int, *, spec: DatasetSpec
) -> ValidationOutcome:
    """Validate one week's raw frame with Great Expectations.

    Structural failures (missing columns, wrong dtypes) do not stop the run: the expectations
    that cannot run on such a frame are left out and the rest still run.

    Args:
        df: the week's raw rows (as ``parse_raw`` returns them, or any frame).
        week: the ISO week the rows belong to, e.g. ``2026-W05``.
        max_bad_row_fraction: the largest fraction of rows that may fail row-level checks
            before the whole batch is rejected.
        min_rows: the fewest rows a batch may have.
        spec: the dataset spec the expectations are derived from.

    Returns:
        The outcome: whether the batch is accepted, what failed and which rows to quarantine.
    """
    # GE logs ~200 "Skipping registering function ... because it is a closure" lines at INFO when
    # it is imported: they buried the real outcome in the task log
    logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    frame = normalise(df, spec)
    frame = frame.reset_index(drop=True)
    id_column = spec.id_column
    has_id = id_column is not None and id_column in frame.columns
    expectations = build_expectations(frame, week, min_rows, spec)

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch_definition = (
        context.data_sources.add_pandas("raw")
        .add_dataframe_asset(f"week_{week}")
        .add_batch_definition_whole_dataframe("whole_week")
    )
    # One suite built whole: suite.add_expectation re-serialises the suite each time (quadratic).
    suite = context.suites.add(gx.ExpectationSuite(name=f"raw_{week}", expectations=expectations))
    if len(suite.expectations) != len(expectations):  # GE logs and drops an invalid one
        raise RuntimeError("Great Expectations rejected an expectation of the validation suite")
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"validate_{week}", data=batch_definition, suite=suite)
    )
    result_format: dict[str, Any] = {"result_format": "COMPLETE"}
    if has_id:
        result_format["unexpected_index_column_names"] = [id_column]
    result = definition.run(batch_parameters={"dataframe": frame}, result_format=result_format)

    outcome = ValidationOutcome(
        passed=True,
        n_rows=len(frame),
        n_expectations=len(expectations) + 2,
        week=week,
        max_bad_row_fraction=max_bad_row_fraction,
        id_column=id_column,
    )
    for item in sorted(result.results, key=_order):
        collect_result(item, frame, id_column if has_id else None, outcome, spec)

    outcome.batch_failures.extend(label_leaks(frame, spec))
    if has_id:
        ids = frame[id_column]
        outcome.n_bad_rows = int((ids.isin(outcome.bad_row_ids) | ids.isna()).sum())
    else:
        outcome.n_bad_rows = len(outcome.bad_positions)
    if outcome.n_rows and outcome.n_bad_rows / outcome.n_rows > max_bad_row_fraction:
        outcome.batch_failures.append(
            {
                "expectation": FRACTION_CHECK,
                "column": None,
                "detail": (
                    f"{outcome.n_bad_rows} of {outcome.n_rows} rows "
                    f"({outcome.n_bad_rows / outcome.n_rows:.1%}) fail row-level checks, more "
                    f"than the {max_bad_row_fraction:.1%} allowed"
                ),
            }
        )
    outcome.passed = not outcome.batch_failures
    return outcome


def _order(item: ExpectationValidationResult) -> int:
    """Where an expectation's result goes in the outcome: the order the suite was built in."""
    config = item.expectation_config
    return int(config.meta.get("order", 0)) if config is not None else 0
