"""The churn demo's feature function: derived columns the dataset spec names.

``[dataset] feature_function = "demo.churn_features:add_churn_features"`` makes the loop
call it on raw rows in training, batch scoring and the endpoint alike (one function, no
training/serving skew). It is :func:`~core.ml.features.columnar`: it takes the spec's
features as typed numpy arrays (numbers as float64 with NaN for missing, categories as text
with None for missing) and returns the columns to add, so the endpoint scores a request
without building a pandas frame. It must not change its input.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from core.ml.features import columnar


@columnar
def add_churn_features(raw: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return the demo's five derived numeric columns for ``raw``.

    Args:
        raw: the demo's features as arrays of equal length (tenure_months, num_products,
            total_charges, contract_type, ...).

    Returns:
        ``charges_per_tenure_month``, ``tickets_per_product``, ``is_month_to_month``,
        ``engagement_minutes`` and ``monthly_to_average_charges`` (float64; missing stays NaN).
    """
    tenure, products = raw["tenure_months"], raw["num_products"]
    # max(x, 1) keeps new customers (tenure 0) and bad rows (0 products) from dividing by zero;
    # np.maximum (unlike np.fmax) keeps a missing value missing instead of turning it into 1.
    per_month = raw["total_charges"] / np.maximum(tenure, 1.0)
    contract = raw["contract_type"]
    month_to_month = np.asarray(contract == "month-to-month", dtype=np.float64)
    month_to_month[pd.isna(contract)] = np.nan
    return {
        "charges_per_tenure_month": per_month,
        "tickets_per_product": raw["num_support_tickets"] / np.maximum(products, 1.0),
        "is_month_to_month": month_to_month,
        "engagement_minutes": raw["sessions_last_30d"] * raw["avg_session_minutes"],
        # current bill vs the historical average: a recent price rise is a classic churn trigger
        "monthly_to_average_charges": raw["monthly_charges"] / np.maximum(per_month, 1.0),
    }
