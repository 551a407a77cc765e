import numpy as np
import pandas as pd
import pytest

from core.ml.dataset import parse_spec
from core.ml.features import build_features as build_with_spec
from core.ml.features import columnar, record_features, request_records
from demo import spec as schema
from demo.sample_data import generate_week
from demo.spec import DEMO_SPEC

DERIVED = (
    "charges_per_tenure_month",
    "tickets_per_product",
    "is_month_to_month",
    "engagement_minutes",
    "monthly_to_average_charges",
)
NUMERIC_MODEL_FEATURES = (*schema.NUMERIC_FEATURES, *DERIVED)
CATEGORICAL_MODEL_FEATURES = schema.CATEGORICAL_FEATURES
MODEL_FEATURES = (*NUMERIC_MODEL_FEATURES, *CATEGORICAL_MODEL_FEATURES)


def build_features(df):
    """The demo spec's features (its feature function adds the derived columns)."""
    return build_with_spec(df, DEMO_SPEC)


ROW = {
    "customer_id": "C-1",
    "age": 41,
    "tenure_months": 0,
    "monthly_charges": 79.5,
    "total_charges": 80.0,
    "num_products": 2,
    "num_support_tickets": 3,
    "late_payments_12m": 1,
    "sessions_last_30d": 12,
    "avg_session_minutes": 9.5,
    "days_since_last_login": 4,
    "data_usage_gb": 22.1,
    "discount_pct": 0,
    "satisfaction_score": 2,
    "contract_type": "month-to-month",
    "payment_method": "electronic-check",
    "internet_service": "fiber",
    "plan_tier": "standard",
    "region": "north",
    "has_partner": "no",
    "has_dependents": "no",
    "senior_citizen": "no",
}


def test_one_row_from_a_dict():
    out = build_features(pd.DataFrame([ROW]))
    assert list(out.columns) == list(MODEL_FEATURES)
    assert len(out) == 1
    row = out.iloc[0]
    assert row["charges_per_tenure_month"] == pytest.approx(80.0)  # tenure 0 -> divided by 1
    assert row["tickets_per_product"] == pytest.approx(1.5)
    assert row["is_month_to_month"] == 1.0
    assert row["engagement_minutes"] == pytest.approx(114.0)
    for column in NUMERIC_MODEL_FEATURES:
        assert out[column].dtype == np.float64, column
    for column in CATEGORICAL_MODEL_FEATURES:
        assert pd.api.types.is_string_dtype(out[column]), column


def test_missing_values_stay_missing():
    row = dict(ROW, age=None, region=None, contract_type=None)
    out = build_features(pd.DataFrame([row]))
    assert np.isnan(out.loc[0, "age"])
    assert pd.isna(out.loc[0, "region"])
    assert np.isnan(out.loc[0, "is_month_to_month"])


def test_column_order_is_fixed_and_extra_columns_ignored():
    df = generate_week("2026-W10", 300, seed=3)
    shuffled = df[list(reversed(df.columns))].assign(something_else=1)
    a, b = build_features(df), build_features(shuffled)
    assert list(a.columns) == list(b.columns) == [*NUMERIC_MODEL_FEATURES, *CATEGORICAL_MODEL_FEATURES]
    pd.testing.assert_frame_equal(a, b)
    assert set(schema.RAW_FEATURES) <= set(a.columns)
    assert a.index.equals(df.index)


def test_missing_columns_are_named():
    df = pd.DataFrame([ROW]).drop(columns=["age", "region"])
    with pytest.raises(ValueError, match="age.*region"):
        build_features(df)


def test_non_numeric_value_is_a_clear_error():
    with pytest.raises(ValueError, match="tenure_months"):
        build_features(pd.DataFrame([dict(ROW, tenure_months="ten")]))


def test_chunks_equal_whole():
    df = generate_week("2026-W10", 1000, seed=3)
    whole = build_features(df)
    parts = pd.concat([build_features(df.iloc[i : i + 300]) for i in range(0, 1000, 300)])
    pd.testing.assert_frame_equal(whole, parts)


PLAIN = parse_spec(
    {
        "label": "y",
        "task": "binary",
        "positive_class": "yes",
        "features": {
            "x": {"kind": "numeric", "min": 0, "max": 10},
            "flag": {"kind": "boolean", "nullable": True},
            "colour": {"kind": "categorical", "values": ["red", "blue"]},
        },
    }
)


def test_boolean_features_read_words_and_numbers():
    frame = pd.DataFrame(
        {"x": [1, 2, 3, 4], "flag": ["true", "No", "1", None], "colour": ["red", "blue", "red", None]}
    )
    out = build_with_spec(frame, PLAIN)
    assert list(out.columns) == ["x", "flag", "colour"]
    np.testing.assert_array_equal(out["flag"].to_numpy()[:3], [1.0, 0.0, 1.0])
    assert np.isnan(out["flag"].iloc[3]) and pd.isna(out["colour"].iloc[3])


def test_record_features_equal_the_frame_path_without_a_feature_function():
    frame = pd.DataFrame({"x": [1.5, None], "flag": [True, False], "colour": ["red", "blue"]})
    records = request_records(frame, PLAIN)
    assert records == [
        {"x": 1.5, "flag": True, "colour": "red"},
        {"x": None, "flag": False, "colour": "blue"},
    ]
    arrays = record_features(records, PLAIN)
    assert arrays is not None
    whole = build_with_spec(frame, PLAIN)
    np.testing.assert_array_equal(arrays["x"], whole["x"].to_numpy())
    np.testing.assert_array_equal(arrays["flag"], whole["flag"].to_numpy())
    assert list(arrays["colour"]) == list(whole["colour"])
    frame_function = parse_spec({**DEMO_SPEC.to_dict(), "feature_function": f"{__name__}:_frame_function"})
    demo_records = request_records(generate_week("2026-W10", 3, seed=3), DEMO_SPEC)
    assert record_features(demo_records, frame_function) is None  # it needs a frame


def test_a_columnar_feature_function_gives_the_endpoint_what_it_gives_training():
    # the demo's function takes typed arrays: the record path runs it without pandas, and must
    # give the frame path's columns exactly (missing values and a zero divisor included)
    frame = generate_week("2026-W10", 200, seed=5)
    frame.loc[frame.index[:4], "contract_type"] = None
    frame.loc[frame.index[4:8], "tenure_months"] = np.nan
    frame.loc[frame.index[8:12], "num_products"] = 0
    whole = build_features(frame)
    arrays = record_features(request_records(frame, DEMO_SPEC), DEMO_SPEC)
    assert arrays is not None and list(arrays) == list(whole.columns) == list(MODEL_FEATURES)
    for column in NUMERIC_MODEL_FEATURES:
        np.testing.assert_array_equal(arrays[column], whole[column].to_numpy(), err_msg=column)
    for column in CATEGORICAL_MODEL_FEATURES:
        assert [None if pd.isna(v) else v for v in whole[column]] == list(arrays[column]), column
    assert np.isnan(arrays["is_month_to_month"][:4]).all()


def test_a_columnar_feature_function_of_the_wrong_length_is_named():
    spec = parse_spec({**DEMO_SPEC.to_dict(), "feature_function": f"{__name__}:_short_columns"})
    records = request_records(generate_week("2026-W10", 3, seed=3), spec)
    with pytest.raises(ValueError, match=r"_short_columns must return one value per input row \(3\)"):
        build_with_spec(generate_week("2026-W10", 3, seed=3), spec)
    with pytest.raises(ValueError, match="_short_columns must return one value per input row"):
        record_features(records, spec)


def test_a_feature_function_that_returns_the_wrong_shape_is_named():
    spec = parse_spec({**DEMO_SPEC.to_dict(), "feature_function": f"{__name__}:_bad_function"})
    with pytest.raises(ValueError, match="_bad_function must return a DataFrame"):
        build_with_spec(generate_week("2026-W10", 20, seed=3), spec)


def _bad_function(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.head(1)


def _frame_function(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"double_age": frame["age"] * 2}, index=frame.index)


@columnar
def _short_columns(columns):
    return {"first_age": columns["age"][:1]}
