"""validate_data: run the expectation suite on a week; quarantine what fails, with a report."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import pandas as pd

from core.errors import DataValidationError, ParamError
from lifecycle.context import StageContext
from lifecycle.keys import quarantine_prefix, validated_key, validation_report_key

if TYPE_CHECKING:  # the validation modules are imported when the stage runs
    from core.ml.validation.outcome import BatchFailure

log = logging.getLogger(__name__)
COLUMNS = "expect_table_columns_to_match_set"


@dataclass(frozen=True)
class ValidatedWeek:
    """A week's rows that passed validation, and its report (validate_data's XCom)."""

    validated_key: str
    n_rows: int
    n_bad_rows: int
    report_key: str


@dataclass(frozen=True)
class DataVersion:
    """A week's current data version, as ``data_versions`` records it."""

    week: str
    data_version: str
    sha256: str
    source: str
    raw_key: str
    n_bytes: int
    ingested_by: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DataVersion:
        """The version of a ``data_versions`` row."""
        return cls(
            week=str(row["week"]),
            data_version=str(row["data_version"]),
            sha256=str(row["sha256"]),
            source=str(row["source"]),
            raw_key=str(row["raw_key"]),
            n_bytes=int(row["n_bytes"]),
            ingested_by=str(row["ingested_by"]),
        )


def validate_week_data(ctx: StageContext) -> ValidatedWeek:
    """Validate the week's current data version.

    Rows failing a row-level expectation are quarantined and the rest are kept; a batch-level
    failure (or too many bad rows) quarantines the whole batch and raises. Either way the raw
    data stays where ingest put it, and a Markdown report says what failed.

    Returns:
        ``validated_key``, ``n_rows``, ``n_bad_rows`` and ``report_key``.

    Raises:
        DataValidationError: the batch was rejected; the message names the failed expectations.
    """
    from core.ml.validation.reading import BatchUnreadable, add_row_keys, parse_raw
    from core.ml.validation.report import UNREADABLE, render_unreadable_report, render_validation_report
    from core.ml.validation.week import validate_week
    from demo.sample_data import write_parquet_bytes

    storage, warehouse = ctx.provider.storage, ctx.warehouse
    spec = ctx.settings.dataset
    version = current_data_version(ctx)
    raw_key, data_version = version.raw_key, version.data_version
    quarantine = quarantine_prefix(ctx.week, data_version)
    report_key = validation_report_key(ctx.week, data_version)
    raw = storage.get_bytes(raw_key)
    source = f"{version.source}, stored as {storage.uri(raw_key)}"
    extension = raw_key.rsplit(".", 1)[-1]
    row = {"week": ctx.week, "data_version": data_version, "report_key": report_key, "validated_key": ""}
    try:
        frame = parse_raw(raw, f"data.{extension}", spec)
    except BatchUnreadable as exc:
        report = render_unreadable_report(ctx.week, exc.reason, source)
        failures: list[BatchFailure] = [{"expectation": UNREADABLE, "column": "", "detail": exc.reason}]
        _reject(ctx, raw, extension, quarantine, report, {**row, "n_rows": 0, "n_bad_rows": 0}, failures)

    log.info("Week %s: validating %d rows of data version %s", ctx.week, len(frame), data_version)
    outcome = validate_week(
        frame,
        ctx.week,
        max_bad_row_fraction=ctx.settings.validation.max_bad_row_fraction,
        min_rows=ctx.settings.validation.min_rows,
        spec=spec,
    )
    report = render_validation_report(ctx.week, outcome, source)
    counts = {"n_rows": outcome.n_rows, "n_bad_rows": outcome.n_bad_rows}
    if not outcome.passed:
        failures = outcome.batch_failures or [
            {"expectation": f["expectation"], "column": f["column"], "detail": f"{f['n_rows']} rows"}
            for f in outcome.row_failures
        ]
        _reject(ctx, raw, extension, quarantine, report, {**row, **counts}, failures)

    if outcome.n_bad_rows:
        storage.put_bytes(f"{quarantine}/rows.parquet", write_parquet_bytes(outcome.bad_rows(frame)))
        storage.put_bytes(f"{quarantine}/report.md", report.encode())
        log.warning(
            "Week %s: %d of %d rows quarantined at %s (see %s)",
            ctx.week, outcome.n_bad_rows, outcome.n_rows, quarantine, report_key,
        )  # fmt: skip
    good = outcome.good_rows(frame)
    if spec.id_column is None:  # keys from each row's content and position in this data version
        good = outcome.good_rows(add_row_keys(frame, data_version))
    storage.put_bytes(validated_key(ctx.week), write_parquet_bytes(good))
    storage.put_bytes(report_key, report.encode())
    failed = sorted({f["expectation"] for f in outcome.row_failures})
    result_row = {
        **row,
        **counts,
        "passed": True,
        "n_batch_failures": 0,
        "failed_expectations": json.dumps(failed),
        "validated_key": validated_key(ctx.week),
        "quarantine_key": quarantine if outcome.n_bad_rows else "",
    }
    warehouse.replace_rows("validation_results", {"week": ctx.week}, pd.DataFrame([result_row]))
    log.info("Week %s: %d rows validated, %d quarantined", ctx.week, len(good), outcome.n_bad_rows)
    return ValidatedWeek(
        validated_key=validated_key(ctx.week),
        n_rows=int(outcome.n_rows),
        n_bad_rows=int(outcome.n_bad_rows),
        report_key=report_key,
    )


def current_data_version(ctx: StageContext) -> DataVersion:
    """Return the week's ``data_versions`` row.

    Raises:
        ParamError: the week was never ingested.
    """
    rows = ctx.warehouse.read_rows("data_versions", {"week": ctx.week})
    if rows.empty:
        raise ParamError(f"week {ctx.week} has no data version: run ingest_data for {ctx.week} first")
    return DataVersion.from_row(rows.iloc[0].to_dict())


def _reject(
    ctx: StageContext,
    raw: bytes,
    extension: str,
    quarantine: str,
    report: str,
    row: dict[str, object],
    failures: list[BatchFailure],
) -> NoReturn:
    """Quarantine the whole batch, record the failure and stop the loop."""
    storage, warehouse = ctx.provider.storage, ctx.warehouse
    storage.put_bytes(f"{quarantine}/data.{extension}", raw)
    storage.put_bytes(f"{quarantine}/report.md", report.encode())
    storage.put_bytes(str(row["report_key"]), report.encode())
    storage.delete(validated_key(ctx.week))  # an older, valid version must not be trained on
    names = sorted({f["expectation"] for f in failures})
    record = {
        **row,
        "passed": False,
        "n_batch_failures": len(failures),
        "failed_expectations": json.dumps(names),
        "quarantine_key": quarantine,
    }
    warehouse.replace_rows("validation_results", {"week": ctx.week}, pd.DataFrame([record]))
    details = "; ".join(
        f"{f['expectation']}({f['column']}): {f['detail']}".replace("()", "") for f in failures
    )
    raise DataValidationError(
        f"week {ctx.week} (data version {row['data_version']}) was rejected and quarantined whole at "
        f"{storage.uri(quarantine)}. Failed: {details[:2000]}. "
        f"Report: {storage.uri(str(row['report_key']))}. "
        f"{_advice(ctx, names)}."
    )


def _advice(ctx: StageContext, failed: list[str]) -> str:
    """What to fix: the data, or the dataset spec when the columns themselves differ from it.

    A batch whose only failure is its column set passed every other check: the data may well be
    right and the spec's expected columns wrong, so that is said first, with where the spec is.
    Only validate_data needs to run again then: it reads the stored data with the new spec.
    """
    from core.config import dataset_spec_location

    again = f"re-run ingest_data and validate_data for {ctx.week}"
    if COLUMNS not in failed:
        return f"Fix the source data, then {again}"
    where = dataset_spec_location(ctx.settings)
    spec_fix = (
        f"fix the expected columns in the dataset spec ({where}: label, id_column, event_time_column, "
        f"the features and ignore), then re-run validate_data for {ctx.week}"
    )
    if failed == [COLUMNS]:
        return (
            f"Every other check passed; only the columns differ from the dataset spec. If the data is "
            f"right, {spec_fix}; if not, fix the source data, then {again}"
        )
    return f"Fix the source data, then {again}; or, if its columns are right, {spec_fix}"
