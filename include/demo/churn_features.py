"""The churn demo's feature function: derived columns the dataset spec names.

``[dataset] feature_function = "include.demo.churn_features:add_churn_features"`` makes the loop
call it on raw rows in training, batch scoring and the endpoint alike (one function, no
training/serving skew). A feature function takes the raw rows as a DataFrame and returns a
DataFrame with the columns to add (or the input with them added); it must not change its input.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def add_churn_features(raw: pd.DataFrame) -> pd.DataFrame:
    """Return the demo's five derived numeric columns for ``raw`` (on its index).

    Args:
        raw: rows with the demo's columns (tenure_months, num_products, total_charges, ...).

    Returns:
        ``charges_per_tenure_month``, ``tickets_per_product``, ``is_month_to_month``,
        ``engagement_minutes`` and ``monthly_to_average_charges`` (float64; missing stays NaN).
    """

    def number(column: str) -> np.ndarray:
        return pd.to_numeric(raw[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)

    tenure, products = number("tenure_months"), number("num_products")
    # max(x, 1) keeps new customers (tenure 0) and bad rows (0 products) from dividing by zero;
    # np.maximum (unlike np.fmax) keeps a missing value missing instead of turning it into 1.
    per_month = number("total_charges") / np.maximum(tenure, 1.0)
    contract = raw["contract_type"]
    month_to_month = np.asarray(contract == "month-to-month", dtype=np.float64)
    month_to_month[np.asarray(contract.isna(), dtype=bool)] = np.nan
    return pd.DataFrame(
        {
            "charges_per_tenure_month": per_month,
            "tickets_per_product": number("num_support_tickets") / np.maximum(products, 1.0),
            "is_month_to_month": month_to_month,
            "engagement_minutes": number("sessions_last_30d") * number("avg_session_minutes"),
            # current bill vs the historical average: a recent price rise is a classic churn trigger
            "monthly_to_average_charges": number("monthly_charges") / np.maximum(per_month, 1.0),
        },
        index=raw.index,
    )
