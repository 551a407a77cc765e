"""A synthetic but realistic customer-churn week, with switchable covariate and concept drift.

The generator feeds the demo loop and the tests, so it has three hard requirements:

* determinism: the same ``(week, rows, seed, knobs)`` always gives the identical frame (and, through
  :func:`write_parquet_bytes`, identical bytes), so reruns of a DAG are idempotent;
* a learnable signal: the label comes from a logistic model of the features, strong enough that a
  gradient-boosting model reaches a ROC AUC of roughly 0.8-0.9;
* drift on demand: ``covariate_drift_from_week`` shifts a handful of feature distributions and
  ``concept_drift_from_week`` changes how the label depends on the features, each only for weeks at
  or after the given week, so the monitoring stage has something real to detect.

Every random draw is made unconditionally and in a fixed order; the drift knobs only transform values
afterwards. That way switching a knob on changes exactly what it should and nothing else: weeks before
the start week are byte-identical to a run without the knob, and the untouched columns of a drifted
week are identical to the clean ones.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, time

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.weeks import parse_week, week_start
from demo import spec as schema

_SECONDS_PER_WEEK = 7 * 24 * 3600

# Marginal mixes of the categoricals that depend on nothing else.
_REGION_P = (0.22, 0.24, 0.20, 0.20, 0.14)
_INTERNET_P = (0.35, 0.45, 0.20)  # dsl, fiber, none
_PLAN_P = (0.42, 0.38, 0.20)  # basic, standard, premium
_PAYMENT_P = (0.32, 0.24, 0.30, 0.14)  # credit-card, bank-transfer, electronic-check, mailed-check

# Covariate drift: how strongly each shifted feature moves. Chosen so the PSI against a clean week is
# far above the usual 0.2 alarm level (see the tests) while staying inside schema.NUMERIC_RANGES.
_DRIFT_MONTHLY_CHARGES = 1.35  # a price increase
_DRIFT_SESSIONS = 0.60  # engagement falls by 40%
_DRIFT_MONTH_TO_MONTH_LOGIT = 2.0  # new sign-ups prefer month-to-month contracts
_DRIFT_LOGIN_FACTOR, _DRIFT_LOGIN_OFFSET = 1.8, 3.0  # customers log in less often
_DRIFT_DATA_USAGE = 2.2  # heavier data usage (e.g. a new streaming bundle)

# Centring constants of the label model: roughly the clean population means, so flipping the sign of a
# driver (concept drift) changes who churns but barely changes how many churn.
_LOG_TENURE_MEAN = 3.2
_TICKETS_MEAN = 0.95
_M2M_SHARE = 0.48
_TWO_YEAR_SHARE = 0.24
_M2M_MANY_TICKETS_SHARE = 0.12
_INTERCEPT = -1.45


def _pick(
    u: npt.NDArray[np.float64], probabilities: npt.NDArray[np.float64], values: tuple[str, ...]
) -> npt.NDArray[np.object_]:
    """Map uniforms to category values by inverse CDF (row-wise probabilities allowed).

    A hand-written inverse CDF instead of ``rng.choice`` lets the drift knob change the probabilities
    while reusing the very same uniform draw, so nothing else in the frame moves.
    """
    probs = np.broadcast_to(np.asarray(probabilities, dtype=np.float64), (len(u), len(values)))
    cumulative = np.cumsum(probs, axis=1)
    cumulative /= cumulative[:, -1:]
    # numpy types a reduction along an axis as Any: it is an integer array here
    index: npt.NDArray[np.int_] = (u[:, None] > cumulative[:, :-1]).sum(axis=1)
    return np.asarray(values, dtype=object)[index]


def _poisson_inverse_cdf(
    u: npt.NDArray[np.float64], rate: npt.NDArray[np.float64], k_max: int = 200
) -> npt.NDArray[np.int64]:
    """Smallest k with PoissonCDF(k; rate) >= u, vectorised (scipy's ppf is ~100x slower here)."""
    pmf = np.exp(-np.asarray(rate, dtype=np.float64)) * np.ones_like(u)
    cdf = pmf.copy()
    k = np.zeros(len(u), dtype=np.int64)
    for i in range(1, k_max + 1):
        above = u > cdf
        if not above.any():
            break
        k += above
        pmf = pmf * rate / i
        cdf += pmf
    return k


def _softmax(logits: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # numpy types a reduction along an axis as Any: these are float arrays of one column
    peak: npt.NDArray[np.float64] = logits.max(axis=1, keepdims=True)
    shifted = np.exp(logits - peak)
    total: npt.NDArray[np.float64] = shifted.sum(axis=1, keepdims=True)
    return shifted / total


def _active(week: str, from_week: str) -> bool:
    """True if a drift knob starting at ``from_week`` applies to ``week`` ("" means off)."""
    if not from_week:
        return False
    return week_start(week) >= week_start(from_week)


def _clip_int(values: npt.NDArray[np.float64] | npt.NDArray[np.int64], column: str) -> npt.NDArray[np.int64]:
    low, high = schema.NUMERIC_RANGES[column]
    return np.clip(np.rint(values), low, high).astype(np.int64)


def _clip_float(values: npt.NDArray[np.float64], column: str, decimals: int) -> npt.NDArray[np.float64]:
    low, high = schema.NUMERIC_RANGES[column]
    return np.round(np.clip(values, low, high), decimals).astype(np.float64)


def generate_week(
    week: str,
    rows: int,
    seed: int,
    covariate_drift_from_week: str = "",
    concept_drift_from_week: str = "",
) -> pd.DataFrame:
    """Generate one ISO week of synthetic customer-churn rows.

    Args:
        week: ISO week such as ``2026-W05``; every ``event_time`` falls inside it (UTC).
        rows: number of rows (customers) to generate.
        seed: base seed; combined with the week's year and number so every week gets fresh draws
            from the same distribution.
        covariate_drift_from_week: ISO week from which on (inclusive) ``monthly_charges``,
            ``sessions_last_30d``, ``contract_type``, ``days_since_last_login`` and ``data_usage_gb``
            are shifted; ``""`` disables it. The label keeps the same dependence on the features.
        concept_drift_from_week: ISO week from which on (inclusive) the label's dependence on tenure,
            contract type and support tickets is reversed; the feature distributions do not change.
            ``""`` disables it.

    Returns:
        A frame with exactly the columns of ``schema.RAW_COLUMNS``, in that order: ``customer_id``
        (str, unique within the week), ``event_time`` (datetime64 UTC), integer-valued features as
        int64, the other numeric features as float64, categoricals as str, ``churned`` as int64 0/1.

    Raises:
        ParamError: a week is not a valid ISO week.
        ValueError: ``rows`` is negative.
    """
    week = parse_week(week)
    if covariate_drift_from_week:
        covariate_drift_from_week = parse_week(covariate_drift_from_week)
    if concept_drift_from_week:
        concept_drift_from_week = parse_week(concept_drift_from_week)
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    monday = week_start(week)
    year, number, _ = monday.isocalendar()
    rng = np.random.default_rng([seed, year, number])
    covariate = _active(week, covariate_drift_from_week)
    concept = _active(week, concept_drift_from_week)
    n = rows

    # --- all random draws, unconditionally and always in this order (see the module docstring) ---
    u_time = rng.integers(0, _SECONDS_PER_WEEK, n)
    z_age = rng.normal(0.0, 1.0, n)
    u_partner, u_dependents, u_region = rng.random(n), rng.random(n), rng.random(n)
    g_tenure = rng.gamma(1.3, 1.0, n)
    u_contract, u_internet, u_plan, u_payment = rng.random(n), rng.random(n), rng.random(n), rng.random(n)
    p_products = rng.poisson(0.9, n)
    z_charges = rng.normal(0.0, 1.0, n)
    g_discount = rng.gamma(1.2, 3.0, n)
    u_total = rng.uniform(0.95, 1.05, n)
    p_tickets_u = rng.random(n)
    p_late_u = rng.random(n)
    z_satisfaction = rng.normal(0.0, 0.8, n)
    g_sessions = rng.gamma(2.0, 1.0, n)
    g_minutes = rng.gamma(2.5, 5.0, n)
    e_login = rng.exponential(1.0, n)
    g_usage = rng.gamma(2.0, 15.0, n)
    u_label = rng.random(n)

    # --- features ---
    age = _clip_int(44 + 14 * z_age, "age")
    senior = age >= 65
    partner = u_partner < np.where((age >= 28) & (age <= 70), 0.62, 0.30)
    dependents = u_dependents < np.where(partner, 0.45, 0.10)
    region = _pick(u_region, np.array(_REGION_P), schema.CATEGORIES["region"])

    # Older customers have been around longer; exponential-ish tenure with a long tail.
    tenure = _clip_int(g_tenure * (16 + 0.45 * (age - 18)), "tenure_months")

    # Longer tenure -> longer contracts. The drift knob only moves the month-to-month logit.
    contract_logits = np.column_stack([1.5 - 0.035 * tenure, np.zeros(n), -1.4 + 0.025 * tenure]).astype(
        np.float64
    )
    if covariate:
        contract_logits[:, 0] += _DRIFT_MONTH_TO_MONTH_LOGIT
    contract = _pick(u_contract, _softmax(contract_logits), schema.CATEGORIES["contract_type"])

    internet = _pick(u_internet, np.array(_INTERNET_P), schema.CATEGORIES["internet_service"])
    plan = _pick(u_plan, np.array(_PLAN_P), schema.CATEGORIES["plan_tier"])
    payment = _pick(u_payment, np.array(_PAYMENT_P), schema.CATEGORIES["payment_method"])
    fiber = internet == "fiber"
    e_check = payment == "electronic-check"

    num_products = _clip_int(1 + p_products, "num_products")
    internet_cost = np.select([internet == "dsl", fiber], [15.0, 35.0], 0.0)
    plan_cost = np.select([plan == "standard", plan == "premium"], [12.0, 28.0], 0.0)
    clean_monthly = np.maximum(18 + 12 * num_products + internet_cost + plan_cost + 6 * z_charges, 5.0)
    # A price increase hits the current bill only; total_charges is history and stays clean.
    monthly_charges = _clip_float(
        clean_monthly * (_DRIFT_MONTHLY_CHARGES if covariate else 1.0), "monthly_charges", 2
    )
    discount = _clip_float(g_discount + 0.05 * tenure, "discount_pct", 1)
    total_charges = _clip_float(
        clean_monthly * tenure * (1 - discount / 100) * u_total + clean_monthly * u_total,
        "total_charges",
        2,
    )

    # Poisson counts through the inverse CDF of the same uniform, so rates can depend on other columns.
    ticket_rate = 0.55 + 0.5 * fiber + 0.2 * (num_products - 1)
    tickets = _clip_int(_poisson_inverse_cdf(p_tickets_u, ticket_rate), "num_support_tickets")
    late_rate = 0.35 + 0.6 * e_check
    late = _clip_int(_poisson_inverse_cdf(p_late_u, late_rate), "late_payments_12m")
    satisfaction = _clip_int(3.9 - 0.45 * tickets - 0.15 * late + z_satisfaction, "satisfaction_score")

    clean_sessions = g_sessions * 10 * (1.35 - age / 150)
    sessions = _clip_int(clean_sessions * (_DRIFT_SESSIONS if covariate else 1.0), "sessions_last_30d")
    avg_minutes = _clip_float(g_minutes + 4 * fiber, "avg_session_minutes", 1)
    # Rare users go longer between logins; computed from the clean sessions so the login gap only
    # drifts when the knob moves it explicitly.
    clean_login = e_login * (2 + 60 / (1 + clean_sessions))
    login_days = clean_login * _DRIFT_LOGIN_FACTOR + _DRIFT_LOGIN_OFFSET if covariate else clean_login
    days_since_login = _clip_int(login_days, "days_since_last_login")
    usage_factor = np.select([internet == "dsl", fiber], [0.7, 1.5], 0.05)
    data_usage = _clip_float(
        g_usage * usage_factor * (_DRIFT_DATA_USAGE if covariate else 1.0), "data_usage_gb", 2
    )

    # --- label: logistic model of the (possibly drifted) features ---
    m2m = (contract == "month-to-month").astype(np.float64)
    two_year = (contract == "two-year").astype(np.float64)
    # The main drivers, centred so that reversing them (concept drift) keeps the churn rate similar.
    main = (
        1.0 * (m2m - _M2M_SHARE)
        - 0.9 * (two_year - _TWO_YEAR_SHARE)
        - 0.85 * (np.log1p(tenure) - _LOG_TENURE_MEAN)
        + 0.5 * (tickets - _TICKETS_MEAN)
        + 0.6 * (m2m * (tickets >= 2) - _M2M_MANY_TICKETS_SHARE)
    )
    if concept:
        main = -main
    logit = (
        _INTERCEPT
        + main
        + 0.35 * (late - 0.6)
        - 0.4 * (satisfaction - 3.3)
        + 0.45 * (np.log1p(days_since_login) - 2.0)
        - 0.015 * (sessions - 18)
        + 0.008 * (monthly_charges - 75)
        + 0.35 * e_check
        + 0.25 * fiber
        + 0.3 * senior
        - 0.2 * (num_products - 1.9)
        - 0.03 * (discount - 6)
    )
    churned = (u_label < 1 / (1 + np.exp(-logit))).astype(np.int64)

    # Events sorted by time, ids numbered in that order: stable for a given (week, rows, seed).
    order = np.argsort(u_time, kind="stable")
    start = pd.Timestamp(datetime.combine(monday, time(0), tzinfo=UTC))
    event_time = start + pd.to_timedelta(np.sort(u_time, kind="stable"), unit="s")

    yes_no = np.array(["no", "yes"], dtype=object)
    columns: dict[str, object] = {
        schema.ID_COLUMN: [f"C{week}-{i:07d}" for i in range(n)],
        schema.TIME_COLUMN: event_time,
        "age": age[order],
        "tenure_months": tenure[order],
        "monthly_charges": monthly_charges[order],
        "total_charges": total_charges[order],
        "num_products": num_products[order],
        "num_support_tickets": tickets[order],
        "late_payments_12m": late[order],
        "sessions_last_30d": sessions[order],
        "avg_session_minutes": avg_minutes[order],
        "days_since_last_login": days_since_login[order],
        "data_usage_gb": data_usage[order],
        "discount_pct": discount[order],
        "satisfaction_score": satisfaction[order],
        "contract_type": contract[order],
        "payment_method": payment[order],
        "internet_service": internet[order],
        "plan_tier": plan[order],
        "region": region[order],
        "has_partner": yes_no[partner.astype(np.int64)][order],
        "has_dependents": yes_no[dependents.astype(np.int64)][order],
        "senior_citizen": yes_no[senior.astype(np.int64)][order],
        schema.LABEL_COLUMN: churned[order],
    }
    frame = pd.DataFrame(columns)
    for column in (schema.ID_COLUMN, *schema.CATEGORICAL_FEATURES):
        frame[column] = frame[column].astype("str")
    frame[schema.TIME_COLUMN] = frame[schema.TIME_COLUMN].astype("datetime64[us, UTC]")
    return frame[list(schema.RAW_COLUMNS)]


def write_parquet_bytes(df: pd.DataFrame) -> bytes:
    """Serialise a frame to Parquet bytes, deterministically.

    The same frame always gives identical bytes (no index, fixed compression, fixed format version,
    one row group per 1M rows), which keeps artifact hashes stable across reruns.

    Args:
        df: the frame to write; its index is dropped.

    Returns:
        The Parquet file content.
    """
    table = pa.Table.from_pandas(df, preserve_index=False)
    buffer = io.BytesIO()
    pq.write_table(
        table,
        buffer,
        compression="snappy",
        version="2.6",
        row_group_size=1_000_000,
        write_statistics=True,
    )
    return buffer.getvalue()
