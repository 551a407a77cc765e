"""Typed Params shown in the trigger form of every DAG (they also validate dag_run.conf)."""

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


def week_param() -> Param:
    """The ISO week a run processes (empty: the week before the run's logical date)."""
    return Param(
        None,
        type=["null", "string"],
        pattern=r"^\d{4}-W\d{2}$",
        title="Week",
        description="ISO week to process, e.g. 2026-W05. "
        "Empty: the last complete week before the run's date.",
    )


def provider_param() -> Param:
    """The provider override for one run."""
    return Param(
        None,
        type=["null", "string"],
        enum=[None, *PROVIDERS],
        title="Provider",
        description="Where storage, compute and the warehouse live for this run. Empty: astro.toml's.",
    )


def common_params(**extra: Param) -> dict[str, Param]:
    """The Params every stage DAG has, plus the stage's own."""
    return {"week": week_param(), "provider": provider_param(), **extra}


def source_param() -> Param:
    """Where ingest reads a week from."""
    return Param(
        None,
        type=["null", "string"],
        maxLength=1024,
        title="Source",
        description="'sample' or a CSV/Parquet path template with {week}, e.g. data/churn_{week}.csv. "
        "Empty: astro.toml's [data] source.",
    )


def gate_margin_param() -> Param:
    """The gate margin override."""
    return Param(
        None,
        type=["null", "number"],
        minimum=0,
        maximum=0.5,
        title="Gate margin",
        description="The challenger must beat the champion's metric by more than this. Empty: astro.toml's.",
    )


def window_weeks_param() -> Param:
    """The training window override."""
    return Param(
        None,
        type=["null", "integer"],
        minimum=1,
        maximum=104,
        title="Training window (weeks)",
        description="How many validated weeks to train on. Empty: astro.toml's.",
    )


def drift_params() -> dict[str, Param]:
    """The drift threshold overrides."""
    return {
        "feature_psi_threshold": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            maximum=10,
            title="Feature PSI threshold",
            description="A feature drifted when its PSI exceeds this. Empty: astro.toml's.",
        ),
        "drifted_share_threshold": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            maximum=1,
            title="Drifted share threshold",
            description="The week drifted when this share of features drifted. Empty: astro.toml's.",
        ),
    }


def reason_param() -> Param:
    """Why the run happens (set to 'drift' by the monitor's trigger)."""
    return Param(
        None,
        type=["null", "string"],
        enum=[None, "manual", "drift"],
        title="Reason",
        description="Why this run happens; 'drift' is set by monitor_drift when it triggers a retrain.",
    )


def job_name_param() -> Param:
    """The challenger's training job (evaluate_model, register_model)."""
    return Param(
        None,
        type=["null", "string"],
        pattern=r"^[a-z0-9-]{1,63}$",
        title="Training job",
        description="The challenger's training job name. Empty: the week's latest training run.",
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


def version_param() -> Param:
    """The model version to restore (rollback_model)."""
    return Param(
        None,
        type=["null", "string"],
        pattern=r"^[0-9]{1,9}$",
        title="Version",
        description="Model version to restore. Empty: the previous production version.",
    )
