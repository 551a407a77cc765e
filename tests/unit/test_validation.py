"""Validation of a week's raw data with real Great Expectations (no mocks)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.ml.validation.outcome import ValidationOutcome
from core.ml.validation.reading import BatchUnreadable, parse_raw
from core.ml.validation.report import render_unreadable_report, render_validation_report
from core.ml.validation.week import validate_week
from core.weeks import week_start
from demo.spec import (
    CATEGORIES,
    DEMO_SPEC,
    ID_COLUMN,
    LABEL_COLUMN,
    NUMERIC_RANGES,
    RAW_COLUMNS,
    TIME_COLUMN,
)

WEEK = "2026-W05"
N = 500
FRACTION = 0.05
MIN_ROWS = 100


def clean_frame(week: str = WEEK, n: int = N, seed: int = 0) -> pd.DataFrame:
    """Build n valid rows with exactly RAW_COLUMNS, all dated inside the week."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(week_start(week), tz="UTC")
    data: dict[str, object] = {
        ID_COLUMN: pd.array([f"c{seed}-{i:06d}" for i in range(n)], dtype="str"),
        TIME_COLUMN: start + pd.to_timedelta(rng.integers(0, 7 * 24 * 3600, n), unit="s"),
    }
    for column, (low, high) in NUMERIC_RANGES.items():
        if isinstance(low, int) and isinstance(high, int) and high - low <= 1_000:
            data[column] = rng.integers(low, high + 1, n).astype("int64")
        else:
            data[column] = rng.uniform(low, high, n).round(2)
    for column, allowed in CATEGORIES.items():
        data[column] = pd.array(rng.choice(list(allowed), n), dtype="str")
    label = rng.integers(0, 2, n).astype("float64")
    label[rng.random(n) < 0.1] = np.nan  # outcome not known yet
    data[LABEL_COLUMN] = label
    return pd.DataFrame(data)[list(RAW_COLUMNS)]


def run(df: pd.DataFrame, fraction: float = FRACTION) -> ValidationOutcome:
    return validate_week(df, WEEK, max_bad_row_fraction=fraction, min_rows=MIN_ROWS, spec=DEMO_SPEC)


def batch_failure(outcome: ValidationOutcome, expectation: str, column: str | None = None) -> dict:
    for failure in outcome.batch_failures:
        if failure["expectation"] == expectation and (column is None or failure["column"] == column):
            return failure
    raise AssertionError(f"no batch failure {expectation} on {column}: {outcome.batch_failures}")


def row_failure(outcome: ValidationOutcome, expectation: str, column: str) -> dict:
    for failure in outcome.row_failures:
        if failure["expectation"] == expectation and failure["column"] == column:
            return failure
    raise AssertionError(f"no row failure {expectation} on {column}: {outcome.row_failures}")


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return clean_frame()


@pytest.fixture(scope="module")
def clean_outcome(clean: pd.DataFrame) -> ValidationOutcome:
    return run(clean)


# -- clean data --------------------------------------------------------------------------------


def test_clean_week_passes_with_no_bad_rows(clean: pd.DataFrame, clean_outcome: ValidationOutcome) -> None:
    outcome = clean_outcome
    assert outcome.passed, outcome.batch_failures
    assert outcome.batch_failures == [] and outcome.row_failures == []
    assert outcome.n_rows == N and outcome.n_bad_rows == 0 and outcome.bad_row_ids == set()
    assert outcome.n_expectations > 40
    assert len(outcome.good_rows(clean)) == N and outcome.bad_rows(clean).empty
    json.dumps(outcome.to_dict())
    report = render_validation_report(WEEK, outcome, "raw/2026-W05.csv")
    assert report.startswith(f"# Week {WEEK}: batch accepted, all rows passed")


def test_clean_csv_round_trip_passes(clean: pd.DataFrame) -> None:
    data = clean.to_csv(index=False).encode()
    parsed = parse_raw(data, "week.csv", DEMO_SPEC)
    assert str(parsed[TIME_COLUMN].dtype).startswith("datetime64") and parsed[TIME_COLUMN].dt.tz is not None
    assert run(parsed).passed


def test_clean_parquet_round_trip_passes(clean: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    clean.to_parquet(buffer)
    parsed = parse_raw(buffer.getvalue(), "week.parquet", DEMO_SPEC)
    assert len(parsed) == N
    assert run(parsed).passed


# -- batch level ---------------------------------------------------------------------------------


def test_missing_column_rejects_batch(clean: pd.DataFrame) -> None:
    outcome = run(clean.drop(columns=["age", TIME_COLUMN]))
    assert not outcome.passed
    detail = batch_failure(outcome, "expect_table_columns_to_match_set")["detail"]
    assert "missing columns: age, event_time" in detail
    assert outcome.bad_rows(clean).shape[0] == N and outcome.good_rows(clean).empty


def test_missing_id_column_still_runs(clean: pd.DataFrame) -> None:
    df = clean.drop(columns=[ID_COLUMN])
    df.loc[3, "age"] = 500
    outcome = run(df)
    assert not outcome.passed
    detail = batch_failure(outcome, "expect_table_columns_to_match_set")["detail"]
    assert "missing columns: customer_id" in detail
    assert row_failure(outcome, "expect_column_values_to_be_between", "age")["sample_ids"] == ["row 3"]


def test_extra_column_rejects_batch(clean: pd.DataFrame) -> None:
    df = clean.assign(favourite_colour="blue")
    outcome = run(df)
    assert not outcome.passed
    detail = batch_failure(outcome, "expect_table_columns_to_match_set")["detail"]
    assert "extra columns: favourite_colour" in detail and "missing" not in detail


def test_wrong_dtype_rejects_batch_without_crashing(clean: pd.DataFrame) -> None:
    df = clean.copy()
    df["monthly_charges"] = df["monthly_charges"].astype(str)
    df.loc[0, "monthly_charges"] = "lots"
    outcome = run(df)
    assert not outcome.passed
    failure = batch_failure(outcome, "expect_column_values_to_be_in_type_list", "monthly_charges")
    assert "a numeric dtype (int or float) is expected" in failure["detail"]
    # the range check cannot run on text, so it is left out rather than crash
    assert not [f for f in outcome.row_failures if f["column"] == "monthly_charges"]


def test_wrong_dtype_from_csv(clean: pd.DataFrame) -> None:
    df = clean.copy().astype({"tenure_months": object})
    df.loc[5, "tenure_months"] = "twelve"
    parsed = parse_raw(df.to_csv(index=False).encode(), "w.csv", DEMO_SPEC)
    outcome = run(parsed)
    assert not outcome.passed
    batch_failure(outcome, "expect_column_values_to_be_in_type_list", "tenure_months")


def test_all_null_column_rejects_batch(clean: pd.DataFrame) -> None:
    df = clean.copy()
    df["region"] = pd.array([None] * N, dtype="str")
    df["discount_pct"] = np.nan
    outcome = run(df)
    assert not outcome.passed
    for column in ("region", "discount_pct"):
        failure = batch_failure(outcome, "expect_column_proportion_of_non_null_values_to_be_between", column)
        assert "entirely null" in failure["detail"]


def test_all_null_label_is_allowed(clean: pd.DataFrame) -> None:
    outcome = run(clean.assign(**{LABEL_COLUMN: np.nan}))
    assert outcome.passed, outcome.batch_failures


def test_duplicate_ids_reject_batch(clean: pd.DataFrame) -> None:
    df = clean.copy()
    df.loc[10, ID_COLUMN] = df.loc[11, ID_COLUMN]
    outcome = run(df)
    assert not outcome.passed
    failure = batch_failure(outcome, "expect_column_values_to_be_unique", ID_COLUMN)
    assert df.loc[11, ID_COLUMN] in failure["detail"]


def test_too_few_rows_rejects_batch(clean: pd.DataFrame) -> None:
    outcome = run(clean.head(50))
    assert not outcome.passed
    assert "50 rows" in batch_failure(outcome, "expect_table_row_count_to_be_between")["detail"]


@pytest.fixture(scope="module")
def leaky(clean: pd.DataFrame) -> pd.DataFrame:
    df = clean.copy()
    copy = df[LABEL_COLUMN].fillna(0).astype(int)
    copy.iloc[:2] = 1 - copy.iloc[:2]  # equal to the label in 99.6% of labelled rows
    df["late_payments_12m"] = copy
    df["has_partner"] = np.where(df[LABEL_COLUMN] == 1, "yes", "no")
    return df.assign(churn_flag=0)


@pytest.fixture(scope="module")
def leaky_outcome(leaky: pd.DataFrame) -> ValidationOutcome:
    return run(leaky)


def test_label_copy_is_a_leak(leaky_outcome: ValidationOutcome) -> None:
    assert not leaky_outcome.passed
    failure = batch_failure(leaky_outcome, "label_leak_check", "late_payments_12m")
    assert "churned" in failure["detail"]


def test_categorical_mirroring_the_label_is_a_leak(leaky_outcome: ValidationOutcome) -> None:
    batch_failure(leaky_outcome, "label_leak_check", "has_partner")


def test_column_named_like_the_label_is_a_leak(leaky_outcome: ValidationOutcome) -> None:
    assert "named like" in batch_failure(leaky_outcome, "label_leak_check", "churn_flag")["detail"]


def test_no_leak_reported_for_clean_features(leaky_outcome: ValidationOutcome) -> None:
    leaks = {f["column"] for f in leaky_outcome.batch_failures if f["expectation"] == "label_leak_check"}
    assert leaks == {"late_payments_12m", "has_partner", "churn_flag"}


# -- row level -----------------------------------------------------------------------------------

MONDAY = pd.Timestamp(week_start(WEEK), tz="UTC")


@pytest.fixture(scope="module")
def dirty(clean: pd.DataFrame) -> pd.DataFrame:
    """A week with a few bad rows of each kind, written to CSV and parsed back."""
    df = clean.copy().astype({TIME_COLUMN: object})
    df.loc[[1, 2], "monthly_charges"] = np.nan
    df.loc[3, "contract_type"] = None
    df.loc[4, "data_usage_gb"] = np.inf
    df.loc[5, "data_usage_gb"] = -np.inf
    df.loc[7, "age"] = 7
    df.loc[8, "satisfaction_score"] = 9
    df.loc[9, "plan_tier"] = "platinum"
    df.loc[12, LABEL_COLUMN] = 2
    df.loc[13, TIME_COLUMN] = MONDAY - pd.Timedelta(seconds=1)
    df.loc[14, TIME_COLUMN] = MONDAY + pd.Timedelta(days=7)  # next Monday 00:00: outside
    df.loc[15, TIME_COLUMN] = MONDAY  # the week's first instant: inside
    df.loc[16, TIME_COLUMN] = "not a date"
    return parse_raw(df.to_csv(index=False).encode(), "2026-W05.csv", DEMO_SPEC)


@pytest.fixture(scope="module")
def dirty_outcome(dirty: pd.DataFrame) -> ValidationOutcome:
    return run(dirty)


def ids(df: pd.DataFrame, rows: list[int]) -> list[str]:
    return list(df.loc[rows, ID_COLUMN])


def test_dirty_week_is_accepted_with_bad_rows_quarantined(
    dirty: pd.DataFrame, dirty_outcome: ValidationOutcome
) -> None:
    outcome = dirty_outcome
    assert outcome.passed, outcome.batch_failures
    bad = [1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 14, 16]
    assert outcome.bad_row_ids == set(ids(dirty, bad)) and outcome.n_bad_rows == len(bad)
    assert len(outcome.good_rows(dirty)) == N - len(bad)
    assert sorted(outcome.bad_rows(dirty).index) == bad


def test_nan_in_feature_quarantines_rows(dirty: pd.DataFrame, dirty_outcome: ValidationOutcome) -> None:
    failure = row_failure(dirty_outcome, "expect_column_values_to_not_be_null", "monthly_charges")
    assert failure["n_rows"] == 2 and failure["sample_ids"] == ids(dirty, [1, 2])
    failure = row_failure(dirty_outcome, "expect_column_values_to_not_be_null", "contract_type")
    assert failure["sample_ids"] == ids(dirty, [3])


def test_inf_quarantines_rows(dirty: pd.DataFrame, dirty_outcome: ValidationOutcome) -> None:
    failure = row_failure(dirty_outcome, "expect_column_values_to_be_between", "data_usage_gb")
    assert failure["n_rows"] == 2 and failure["sample_ids"] == ids(dirty, [4, 5])


def test_out_of_range_quarantines_rows(dirty: pd.DataFrame, dirty_outcome: ValidationOutcome) -> None:
    failure = row_failure(dirty_outcome, "expect_column_values_to_be_between", "age")
    assert failure["sample_ids"] == ids(dirty, [7]) and "[18, 100]" in failure["detail"]
    failure = row_failure(dirty_outcome, "expect_column_values_to_be_between", "satisfaction_score")
    assert failure["sample_ids"] == ids(dirty, [8])


def test_unseen_category_quarantines_rows(dirty: pd.DataFrame, dirty_outcome: ValidationOutcome) -> None:
    failure = row_failure(dirty_outcome, "expect_column_values_to_be_in_set", "plan_tier")
    assert failure["sample_ids"] == ids(dirty, [9]) and "platinum" in failure["detail"]


def test_bad_label_is_quarantined_but_null_label_is_fine(
    dirty: pd.DataFrame, dirty_outcome: ValidationOutcome
) -> None:
    assert dirty[LABEL_COLUMN].isna().sum() > 20  # null labels are no failure
    failure = row_failure(dirty_outcome, "expect_column_values_to_be_in_set", LABEL_COLUMN)
    assert failure["sample_ids"] == ids(dirty, [12])


def test_rows_outside_the_week_are_quarantined(dirty: pd.DataFrame, dirty_outcome: ValidationOutcome) -> None:
    failure = row_failure(dirty_outcome, "expect_column_values_to_be_between", TIME_COLUMN)
    assert failure["sample_ids"] == ids(dirty, [13, 14]) and WEEK in failure["detail"]


def test_unparseable_time_is_a_row_failure(dirty: pd.DataFrame, dirty_outcome: ValidationOutcome) -> None:
    failure = row_failure(dirty_outcome, "expect_column_values_to_not_be_null", TIME_COLUMN)
    assert failure["sample_ids"] == ids(dirty, [16]) and "not a date" in failure["detail"]


def test_too_many_bad_rows_reject_batch(clean: pd.DataFrame) -> None:
    df = clean.copy()
    df.loc[df.index[:40], "num_products"] = 0  # 8% > 5%
    outcome = run(df)
    assert not outcome.passed
    assert "40 of 500 rows" in batch_failure(outcome, "max_bad_row_fraction")["detail"]
    assert outcome.n_bad_rows == 40 and outcome.good_rows(df).empty
    assert len(outcome.bad_rows(df)) == N
    report = render_validation_report(WEEK, outcome, "raw.csv")
    assert report.startswith(f"# Week {WEEK}: batch REJECTED (quarantined whole)")
    assert "max_bad_row_fraction" in report


# -- reading -------------------------------------------------------------------------------------


def test_parse_empty_file() -> None:
    for name in ("w.csv", "w.parquet"):
        with pytest.raises(BatchUnreadable, match="empty"):
            parse_raw(b"", name, DEMO_SPEC)


def test_parse_header_only_csv() -> None:
    with pytest.raises(BatchUnreadable, match="header .* but no data rows"):
        parse_raw((",".join(RAW_COLUMNS) + "\n").encode(), "w.csv", DEMO_SPEC)


def test_parse_truncated_parquet(clean: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    clean.to_parquet(buffer)
    data = buffer.getvalue()
    with pytest.raises(BatchUnreadable, match="Parquet file is truncated or corrupt"):
        parse_raw(data[: len(data) // 2], "w.parquet", DEMO_SPEC)
    with pytest.raises(BatchUnreadable, match="truncated or corrupt"):
        parse_raw(b"definitely not parquet", "w.pq", DEMO_SPEC)


def test_parse_malformed_csv(clean: pd.DataFrame) -> None:
    good = clean.head(5).to_csv(index=False)
    lines = good.splitlines()
    ragged = "\n".join([*lines[:3], lines[3] + ",extra", *lines[4:]]) + "\n"
    width = len(RAW_COLUMNS)
    with pytest.raises(BatchUnreadable, match=f"line 4 has {width + 1} fields but the header has {width}"):
        parse_raw(ragged.encode(), "w.csv", DEMO_SPEC)
    short = "\n".join([*lines[:2], lines[2].rsplit(",", 1)[0], *lines[3:]]) + "\n"
    with pytest.raises(BatchUnreadable, match=f"line 3 has {len(RAW_COLUMNS) - 1} fields"):
        parse_raw(short.encode(), "w.csv", DEMO_SPEC)
    quoting = "\n".join([*lines[:2], '"' + lines[2], *lines[3:]]) + "\n"
    with pytest.raises(BatchUnreadable, match="malformed"):
        parse_raw(quoting.encode(), "w.csv", DEMO_SPEC)


def test_parse_non_utf8_csv(clean: pd.DataFrame) -> None:
    data = clean.head(5).to_csv(index=False).encode()
    data = data[:300] + b"\xff" + data[300:]
    with pytest.raises(BatchUnreadable, match=r"not valid UTF-8 \(invalid byte 0xff at position 300"):
        parse_raw(data, "w.csv", DEMO_SPEC)


def test_parse_unknown_suffix() -> None:
    with pytest.raises(BatchUnreadable, match="only CSV"):
        parse_raw(b"a,b\n1,2\n", "w.xlsx", DEMO_SPEC)


# -- reports -------------------------------------------------------------------------------------


def test_report_names_the_failed_expectations(dirty: pd.DataFrame, dirty_outcome: ValidationOutcome) -> None:
    report = render_validation_report(WEEK, dirty_outcome, "s3://bucket/raw/2026-W05.csv")
    assert report.startswith(f"# Week {WEEK}: batch accepted, 12 rows quarantined")
    for name in (
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_null",
    ):
        assert f"`{name}`" in report
    assert "| plan_tier | 1 | " + dirty.loc[9, ID_COLUMN] in report
    assert "ingest_data" in report and "validate_data" in report and WEEK in report
    summary = json.loads(json.dumps(dirty_outcome.to_dict()))
    assert summary["n_bad_rows"] == 12 and summary["passed"] is True


def test_report_of_a_rejected_batch(clean: pd.DataFrame) -> None:
    outcome = run(clean.drop(columns=["age"]).assign(extra=1))
    report = render_validation_report(WEEK, outcome, "raw.csv")
    assert report.startswith(f"# Week {WEEK}: batch REJECTED (quarantined whole)")
    assert "`expect_table_columns_to_match_set`" in report
    assert "missing columns: age; extra columns: extra" in report
    json.dumps(outcome.to_dict())


def test_unreadable_report() -> None:
    try:
        parse_raw(b"\xff\xfe", "w.csv", DEMO_SPEC)
    except BatchUnreadable as error:
        report = render_unreadable_report(WEEK, error.reason, "raw/w.csv")
    assert report.startswith(f"# Week {WEEK}: batch REJECTED")
    assert "not valid UTF-8" in report and "validate_data" in report


def test_great_expectations_import_noise_stays_out_of_the_log() -> None:
    """GE logs ~200 INFO lines on import ("... because it is a closure"); the task log shows none."""
    import subprocess
    import sys

    code = (
        "import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout)\n"
        "sys.path.insert(0, 'tests/unit'); sys.path.insert(0, 'tests')\n"
        "from test_validation import clean_frame, run\n"
        "print('passed', run(clean_frame(n=120)).passed)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).parents[2],
    )
    assert "passed True" in result.stdout, result.stderr[-2000:]
    assert "because it is a closure" not in result.stdout + result.stderr


def test_a_batch_rejected_only_for_its_columns_says_to_fix_the_expected_columns(tmp_path) -> None:
    """The data is fine and the spec expects a column it never had: the advice leads with the spec."""
    from helpers import ROOT, run_stages, write_config

    from core.errors import DataValidationError

    spec = tmp_path / "my_dataset.toml"
    demo = (ROOT / "demo/churn_dataset.toml").read_text()
    spec.write_text(
        demo.replace("[dataset.features]\n", '[dataset.features]\nloyalty_points = { kind = "numeric" }\n')
    )
    config = write_config(tmp_path / "settings", dataset={"spec": str(spec)}, data={"rows_per_week": 300})
    ctx, _ = run_stages(config, "2026-W05", ("ingest.ingest_week",))
    with pytest.raises(DataValidationError) as info:
        run_stages(config, "2026-W05", ("validate.validate_week_data",))
    message = str(info.value)
    assert "missing columns: loyalty_points" in message
    assert "Every other check passed; only the columns differ from the dataset spec" in message
    assert f"If the data is right, fix the expected columns in the dataset spec ({spec}:" in message
    assert "then re-run validate_data for 2026-W05" in message
    from lifecycle.keys import validation_report_key

    row = ctx.provider.warehouse.read_rows("validation_results", {"week": "2026-W05"}).iloc[0]
    assert row["report_key"] == validation_report_key("2026-W05", row["data_version"])
    report = ctx.provider.storage.get_bytes(row["report_key"]).decode()
    assert "If the data is right, fix the expected columns in the dataset spec instead" in report


def test_a_batch_with_bad_data_is_told_to_fix_the_data(tmp_path) -> None:
    from helpers import write_config

    from core.config import load_settings
    from lifecycle.context import StageContext
    from lifecycle.validate import _advice

    config = write_config(tmp_path)  # the demo's spec, named by [dataset] spec
    ctx = StageContext(settings=load_settings(config), week="2026-W05", actor="test")
    advice = _advice(ctx, ["expect_table_row_count_to_be_between"])
    assert advice.startswith("Fix the source data, then re-run ingest_data and validate_data")
    both = _advice(ctx, ["expect_table_columns_to_match_set", "expect_column_values_to_be_unique"])
    assert both.startswith("Fix the source data")
    assert "or, if its columns are right, fix the expected columns in the dataset spec" in both
    assert "demo/churn_dataset.toml" in both


def test_two_sources_of_a_week_keep_their_own_rejection_reports(tmp_path) -> None:
    from helpers import run_stages, write_config

    from core.errors import DataValidationError
    from demo.sample_data import generate_week
    from lifecycle.ingest import ingest_week
    from lifecycle.validate import validate_week_data

    config = write_config(tmp_path / "settings", data={"rows_per_week": 300})
    frame = generate_week("2026-W05", 300, seed=5)
    reports = {}
    for dropped in ("age", "tenure_months"):  # two sources, each missing another column
        path = tmp_path / f"without_{dropped}.csv"
        frame.drop(columns=[dropped]).to_csv(path, index=False)
        ctx, _ = run_stages(config, "2026-W05", ())
        ingest_week(ctx, source=str(path))
        with pytest.raises(DataValidationError):
            validate_week_data(ctx)
        row = ctx.provider.warehouse.read_rows("validation_results", {"week": "2026-W05"}).iloc[0]
        reports[dropped] = row["report_key"]
    assert reports["age"] != reports["tenure_months"]
    for dropped, key in reports.items():  # the first source's report was not overwritten
        assert f"missing columns: {dropped}" in ctx.provider.storage.get_bytes(key).decode()
