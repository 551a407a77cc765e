from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from core.errors import ParamError
from demo import spec as schema
from demo.sample_data import generate_week, write_parquet_bytes

WEEK = "2026-W10"
COVARIATE_SHIFTED = {
    "monthly_charges",
    "sessions_last_30d",
    "contract_type",
    "days_since_last_login",
    "data_usage_gb",
}
INT_COLUMNS = {
    "age",
    "tenure_months",
    "num_products",
    "num_support_tickets",
    "late_payments_12m",
    "sessions_last_30d",
    "days_since_last_login",
    "satisfaction_score",
}


@pytest.fixture(scope="module")
def week_frame() -> pd.DataFrame:
    return generate_week(WEEK, 4000, seed=11)


def test_same_inputs_give_identical_frames_and_bytes(week_frame):
    again = generate_week(WEEK, 4000, seed=11)
    pd.testing.assert_frame_equal(week_frame, again)
    assert write_parquet_bytes(week_frame) == write_parquet_bytes(again)


def test_parquet_round_trip_keeps_columns_and_no_index(tmp_path, week_frame):
    path = tmp_path / "week.parquet"
    path.write_bytes(write_parquet_bytes(week_frame.iloc[10:20]))
    table = pq.read_table(path)
    assert table.column_names == list(schema.RAW_COLUMNS)
    back = table.to_pandas()
    assert list(back.index) == list(range(10))
    pd.testing.assert_frame_equal(back, week_frame.iloc[10:20].reset_index(drop=True))


def test_different_weeks_and_seeds_differ(week_frame):
    other_week = generate_week("2026-W11", 4000, seed=11)
    other_seed = generate_week(WEEK, 4000, seed=12)
    for other in (other_week, other_seed):
        assert not np.array_equal(week_frame["monthly_charges"], other["monthly_charges"])
        assert not np.array_equal(week_frame["churned"], other["churned"])
    # ... but from the same distribution
    assert abs(week_frame["monthly_charges"].mean() - other_week["monthly_charges"].mean()) < 2.0
    assert abs(week_frame["churned"].mean() - other_week["churned"].mean()) < 0.03


def test_schema_dtypes_and_ranges(week_frame):
    df = week_frame
    assert list(df.columns) == list(schema.RAW_COLUMNS)
    assert len(df) == 4000
    assert df[schema.ID_COLUMN].is_unique
    assert df[schema.ID_COLUMN].iloc[0] == f"C{WEEK}-0000000"
    assert isinstance(df[schema.TIME_COLUMN].dtype, pd.DatetimeTZDtype)
    assert str(df[schema.TIME_COLUMN].dt.tz) == "UTC"
    assert not df.isna().any().any()
    for column, (low, high) in schema.NUMERIC_RANGES.items():
        expected = np.int64 if column in INT_COLUMNS else np.float64
        assert df[column].dtype == expected, column
        assert df[column].between(low, high).all(), column
    for column, allowed in schema.CATEGORIES.items():
        assert pd.api.types.is_string_dtype(df[column]), column
        assert set(df[column].unique()) <= set(allowed), column
        if column not in {"senior_citizen"}:
            assert set(df[column].unique()) == set(allowed), column
    assert df[schema.LABEL_COLUMN].dtype == np.int64
    assert set(df[schema.LABEL_COLUMN].unique()) == {0, 1}
    assert 0.2 <= df[schema.LABEL_COLUMN].mean() <= 0.32


def test_event_time_inside_the_iso_week(week_frame):
    monday = datetime(2026, 3, 2, tzinfo=UTC)  # 2026-W10 starts on Monday 2 March
    times = week_frame[schema.TIME_COLUMN]
    assert times.min() >= pd.Timestamp(monday)
    assert times.max() < pd.Timestamp(monday + timedelta(days=7))
    assert times.is_monotonic_increasing
    # the whole week is used, not just one day
    assert times.dt.dayofweek.nunique() == 7


def test_year_boundary_week():
    df = generate_week("2026-W01", 200, seed=1)  # 2025-12-29 .. 2026-01-04
    assert df[schema.TIME_COLUMN].min() >= pd.Timestamp("2025-12-29", tz="UTC")
    assert df[schema.TIME_COLUMN].max() < pd.Timestamp("2026-01-05", tz="UTC")


def test_covariate_drift_changes_only_the_shifted_features(week_frame):
    drifted = generate_week(WEEK, 4000, seed=11, covariate_drift_from_week="2026-W09")
    for column in schema.RAW_FEATURES:
        if column in COVARIATE_SHIFTED:
            assert not drifted[column].equals(week_frame[column]), column
        else:
            pd.testing.assert_series_equal(drifted[column], week_frame[column], obj=column)
    assert drifted["monthly_charges"].mean() > 1.25 * week_frame["monthly_charges"].mean()
    assert drifted["sessions_last_30d"].mean() < 0.7 * week_frame["sessions_last_30d"].mean()
    m2m = (drifted["contract_type"] == "month-to-month").mean()
    assert m2m > (week_frame["contract_type"] == "month-to-month").mean() + 0.1
    assert drifted["days_since_last_login"].mean() > week_frame["days_since_last_login"].mean()
    assert drifted["data_usage_gb"].mean() > week_frame["data_usage_gb"].mean()
    # ids and times are untouched
    pd.testing.assert_series_equal(drifted[schema.ID_COLUMN], week_frame[schema.ID_COLUMN])
    pd.testing.assert_series_equal(drifted[schema.TIME_COLUMN], week_frame[schema.TIME_COLUMN])


def test_concept_drift_changes_only_the_label(week_frame):
    drifted = generate_week(WEEK, 4000, seed=11, concept_drift_from_week=WEEK)
    pd.testing.assert_frame_equal(
        drifted.drop(columns=schema.LABEL_COLUMN), week_frame.drop(columns=schema.LABEL_COLUMN)
    )
    assert (drifted[schema.LABEL_COLUMN] != week_frame[schema.LABEL_COLUMN]).mean() > 0.2
    # the relationship flips: long-tenure customers churn more than short-tenure ones now
    long = week_frame["tenure_months"] > 48
    assert week_frame.loc[long, "churned"].mean() < week_frame.loc[~long, "churned"].mean()
    assert drifted.loc[long, "churned"].mean() > drifted.loc[~long, "churned"].mean()


def test_knobs_do_not_touch_weeks_before_their_start(week_frame):
    both = generate_week(
        WEEK, 4000, seed=11, covariate_drift_from_week="2026-W11", concept_drift_from_week="2027-W01"
    )
    pd.testing.assert_frame_equal(both, week_frame)
    assert write_parquet_bytes(both) == write_parquet_bytes(week_frame)


def test_zero_rows_and_bad_inputs():
    empty = generate_week(WEEK, 0, seed=1)
    assert list(empty.columns) == list(schema.RAW_COLUMNS)
    assert len(empty) == 0
    with pytest.raises(ValueError):
        generate_week(WEEK, -1, seed=1)
    with pytest.raises(ParamError):
        generate_week("2026-10", 10, seed=1)
