"""Typed Params shown in the trigger form of every DAG (they also validate dag_run.conf).

Every Param is optional: empty means "take the value from astro.toml" (or, for the week, the
last complete week before the run's date). The JSON schema rejects bad values at trigger time,
before any task runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param

PROVIDERS = ["local", "aws", "gcp", "azure"]

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "mlops",
    "retries": 2,
    "retry_delay": timedelta(seconds=20),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=5),
    "execution_timeout": timedelta(minutes=30),
}


def _optional(kind: str, title: str, description: str, **schema: Any) -> Param:
    """A Param that may be left empty (None), of JSON type ``kind`` with extra ``schema`` rules."""
    return Param(None, type=["null", kind], title=title, description=description, **schema)


def week_param() -> Param:
    """The ISO week a run processes."""
    return _optional(
        "string",
        "Week",
        "ISO week to process, e.g. 2026-W05. Empty: the last complete week before the run's date.",
        pattern=r"^\d{4}-W\d{2}$",
    )


def provider_param() -> Param:
    """The provider override for one run."""
    return _optional(
        "string",
        "Provider",
        "Where storage, compute and the warehouse live for this run. Empty: astro.toml's.",
        enum=[None, *PROVIDERS],
    )


def common_params(**extra: Param) -> dict[str, Param]:
    """The Params every DAG has, plus its own."""
    return {"week": week_param(), "provider": provider_param(), **extra}


def source_param() -> Param:
    """Where ingest reads a week from."""
    return _optional(
        "string",
        "Source",
        "'sample' or a CSV/Parquet path template with {week}, e.g. data/churn_{week}.csv. "
        "Empty: astro.toml's [data] source.",
        maxLength=1024,
    )


def gate_margin_param() -> Param:
    """The gate margin override."""
    return _optional(
        "number",
        "Gate margin",
        "The challenger must beat the champion's metric by more than this. Empty: astro.toml's.",
        minimum=0,
        maximum=0.5,
    )


def window_weeks_param() -> Param:
    """The training window override."""
    return _optional(
        "integer",
        "Training window (weeks)",
        "How many validated weeks to train on. Empty: astro.toml's.",
        minimum=1,
        maximum=104,
    )


def drift_params() -> dict[str, Param]:
    """The drift threshold overrides."""
    return {
        "feature_psi_threshold": _optional(
            "number",
            "Feature PSI threshold",
            "A feature drifted when its PSI exceeds this. Empty: astro.toml's.",
            exclusiveMinimum=0,
            maximum=10,
        ),
        "drifted_share_threshold": _optional(
            "number",
            "Drifted share threshold",
            "The week drifted when this share of features drifted. Empty: astro.toml's.",
            exclusiveMinimum=0,
            maximum=1,
        ),
    }


def reason_param() -> Param:
    """Why the run happens (set to 'drift' by the monitor's trigger)."""
    return _optional(
        "string",
        "Reason",
        "Why this run happens; 'drift' is set by monitor_drift when it triggers a retrain.",
        enum=[None, "manual", "drift"],
    )


def job_name_param() -> Param:
    """The challenger's training job (evaluate_model, register_model)."""
    return _optional(
        "string",
        "Training job",
        "The challenger's training job name. Empty: the week's latest training run.",
        pattern=r"^[a-z0-9-]{1,63}$",
    )


def version_param() -> Param:
    """The model version to restore (rollback_model)."""
    return _optional(
        "string",
        "Version",
        "Model version to restore. Empty: the previous production version.",
        pattern=r"^[0-9]{1,9}$",
    )


def stage_dag_args(*tags: str, **params: Param) -> dict[str, Any]:
    """The ``@dag`` arguments of a stage DAG: triggered by hand, the common Params plus ``params``."""
    return {
        "schedule": None,
        "start_date": datetime(2026, 1, 1),
        "catchup": False,
        "default_args": DEFAULT_ARGS,
        "params": common_params(**params),
        "tags": ["mlops", *tags],
    }
