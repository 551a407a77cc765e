"""The columns of the churn problem: what a week's raw data holds and what each column may be.

The sample generator writes exactly these columns; a user's own CSV/Parquet must have them too
(validation checks it). The label ``churned`` may be empty for rows whose outcome is not known yet.
"""

from __future__ import annotations

ID_COLUMN = "customer_id"
TIME_COLUMN = "event_time"
LABEL_COLUMN = "churned"

# numeric feature -> (lowest valid value, highest valid value)
NUMERIC_RANGES: dict[str, tuple[float, float]] = {
    "age": (18, 100),
    "tenure_months": (0, 240),
    "monthly_charges": (0, 1_000),
    "total_charges": (0, 250_000),
    "num_products": (1, 10),
    "num_support_tickets": (0, 100),
    "late_payments_12m": (0, 12),
    "sessions_last_30d": (0, 1_000),
    "avg_session_minutes": (0, 1_440),
    "days_since_last_login": (0, 3_650),
    "data_usage_gb": (0, 10_000),
    "discount_pct": (0, 100),
    "satisfaction_score": (1, 5),
}

# categorical feature -> allowed values
CATEGORIES: dict[str, tuple[str, ...]] = {
    "contract_type": ("month-to-month", "one-year", "two-year"),
    "payment_method": ("credit-card", "bank-transfer", "electronic-check", "mailed-check"),
    "internet_service": ("dsl", "fiber", "none"),
    "plan_tier": ("basic", "standard", "premium"),
    "region": ("north", "south", "east", "west", "central"),
    "has_partner": ("yes", "no"),
    "has_dependents": ("yes", "no"),
    "senior_citizen": ("yes", "no"),
}

NUMERIC_FEATURES: tuple[str, ...] = tuple(NUMERIC_RANGES)
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(CATEGORIES)
RAW_FEATURES: tuple[str, ...] = NUMERIC_FEATURES + CATEGORICAL_FEATURES
RAW_COLUMNS: tuple[str, ...] = (ID_COLUMN, TIME_COLUMN, *RAW_FEATURES, LABEL_COLUMN)
PREDICTION_COLUMN = "churn_probability"
