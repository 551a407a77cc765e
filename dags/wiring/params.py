"""Typed Params shown in the trigger form of every DAG (they also validate dag_run.conf).

Every Param is optional: empty means "take the value from astro.toml" (or, for the week, the
last complete week before the run's date); each description names the astro.toml key and its
shipped default. astro.toml itself is read when a task runs, never while this file is parsed,
but for its [airflow] section (the tasks' queues and pool: core/routing.py).
The JSON schema rejects bad values at trigger time, before any task runs, and the form shows
why next to the field.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param

from apps.ui.param_errors import JOB_NAME_PATTERN, VERSION_PATTERN, WEEK_PATTERN
from core.catalogue import CATALOGUE
from core.routing import task_routing

PROVIDERS = [entry.name for entry in CATALOGUE]
# labels of the provider drop-down (values_display); "null" labels the empty choice
PROVIDER_LABELS = {
    "null": "(astro.toml: [project] provider)",
    **{entry.name: entry.label for entry in CATALOGUE},
}

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "mlops",
    "retries": 2,
    "retry_delay": timedelta(seconds=20),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=5),
    "execution_timeout": timedelta(minutes=30),
    # astro.toml's [airflow] default_queue (train_model has its own queue and pool: stages.py)
    "queue": task_routing().default_queue,
}


def _optional(kind: str, title: str, description: str, **schema: Any) -> Param:
    """A Param that may be left empty (None), of JSON type ``kind`` with extra ``schema`` rules."""
    return Param(None, type=["null", kind], title=title, description=description, **schema)


def week_param() -> Param:
    """The ISO week a run processes."""
    return _optional(
        "string",
        "Week",
        "ISO week to process, as YYYY-Www (e.g. 2026-W05: year, 'W', two-digit week). "
        "Empty: the last complete week before the run's logical date.",
        pattern=WEEK_PATTERN,
    )


def provider_param() -> Param:
    """The provider override for one run."""
    return _optional(
        "string",
        "Provider",
        "Where storage, compute, the registry and the warehouse live for this run. "
        "Empty: astro.toml's [project] provider (local as shipped).",
        enum=[None, *PROVIDERS],
        values_display=PROVIDER_LABELS,
    )


def common_params(**extra: Param) -> dict[str, Param]:
    """The Params every DAG has, plus its own."""
    return {"week": week_param(), "provider": provider_param(), **extra}


def source_param() -> Param:
    """Where ingest reads a week from."""
    return _optional(
        "string",
        "Source",
        "'sample'; a CSV/Parquet file template with {week}, e.g. data/sales_{week}.csv (a local path, "
        "file:// or a URI under the provider's storage); one CSV/Parquet file of many weeks, split by "
        "[dataset] event_time_column; or 'query:SELECT ...' on the warehouse with :week, :week_start "
        "and :week_end. Empty: astro.toml's [data] source (sample as shipped).",
        maxLength=1024,
    )


def gate_margin_param() -> Param:
    """The gate margin override."""
    return _optional(
        "number",
        "Gate margin",
        "The challenger must beat the champion's [gate] metric by more than this (0 to 0.5). "
        "Empty: astro.toml's [gate] margin (0.0 as shipped).",
        minimum=0,
        maximum=0.5,
    )


def window_weeks_param() -> Param:
    """The training window override."""
    return _optional(
        "integer",
        "Training window (weeks)",
        "How many validated weeks, ending at the run's week, to train on (1 to 104; fewer after "
        "a drift). Empty: astro.toml's [training] window_weeks (4 as shipped).",
        minimum=1,
        maximum=104,
    )


def drift_params() -> dict[str, Param]:
    """The drift threshold overrides."""
    return {
        "feature_psi_threshold": _optional(
            "number",
            "Feature PSI threshold",
            "A feature drifted when its PSI exceeds this (above 0, at most 10). "
            "Empty: astro.toml's [drift] feature_psi_threshold (0.2 as shipped).",
            exclusiveMinimum=0,
            maximum=10,
        ),
        "drifted_share_threshold": _optional(
            "number",
            "Drifted share threshold",
            "The week drifted when more than this share of its features drifted (above 0, at most "
            "1). Empty: astro.toml's [drift] drifted_share_threshold (0.15 as shipped).",
            exclusiveMinimum=0,
            maximum=1,
        ),
    }


def reason_param() -> Param:
    """Why the run happens (set to 'drift' by the monitor's trigger, 'scheduled' by the demo's weeks)."""
    return _optional(
        "string",
        "Reason",
        "Why this run happens, recorded in the lineage and the alias history; 'drift' (set by "
        "monitor_drift when it triggers a retrain) trains only on data from the drift on; "
        "'scheduled' records a run made outside the scheduler (dag.test(), `airflow dags test`, "
        "the demo's weeks) as the week's scheduled run. Empty: from the run's type.",
        enum=[None, "scheduled", "manual", "drift"],
        values_display={
            "null": "(from the run type: scheduled, backfill or manual)",
            "scheduled": "scheduled: the week's run, as the schedule's",
            "manual": "manual",
            "drift": "drift: retrain after drift",
        },
    )


def job_name_param() -> Param:
    """The challenger's training job (evaluate_model, register_model)."""
    return _optional(
        "string",
        "Training job",
        "The challenger's training job name (lowercase letters, digits and '-', as train_model "
        "logged it). Empty: the week's latest training run.",
        pattern=JOB_NAME_PATTERN,
    )


def rescore_param() -> Param:
    """A deliberate re-score of a past week with today's production model (batch_score)."""
    return Param(
        False,
        type="boolean",
        title="Re-score with today's production",
        description="Off: a past week keeps the model of its time (the version it was first scored "
        "with, or the production version as of the week). On: replace the week's predictions with "
        "today's production model's, e.g. after a fix you want applied to history.",
    )


def version_param() -> Param:
    """The model version to restore (rollback_model)."""
    return _optional(
        "string",
        "Version",
        "Model version number to point production at (e.g. 3; see the Models page). "
        "Empty: the version production pointed at before its last move.",
        pattern=VERSION_PATTERN,
    )


def stage_dag_args(*tags: str, **params: Param) -> dict[str, Any]:
    """The ``@dag`` arguments of a stage DAG: the common Params plus ``params``.

    The DAG file passes ``schedule`` itself (stage DAGs are triggered by hand: ``None``), so that
    it is written where Airflow's readers and linters look for it.
    """
    return {
        "start_date": datetime(2026, 1, 1),
        "catchup": False,
        "default_args": DEFAULT_ARGS,
        "params": common_params(**params),
        "tags": ["mlops", *tags],
    }
