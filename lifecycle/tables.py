"""The warehouse tables the stages write, with their logical column types.

Every table but ``predictions`` is the same for any dataset; the predictions table takes its
key and prediction columns from the dataset spec (:func:`predictions_schema`).
"""

from __future__ import annotations

from core.ml.dataset import DatasetSpec
from providers.base import Warehouse
from providers.migrations import migrate_tables

TABLES: dict[str, dict[str, str]] = {
    # one row per week: the week's current data version (raw objects are kept per version)
    "data_versions": {
        "week": "string",
        "data_version": "string",
        "sha256": "string",
        "source": "string",
        "raw_key": "string",
        "n_bytes": "int",
        "ingested_by": "string",
    },
    # one row per week: the validation of its current data version
    "validation_results": {
        "week": "string",
        "data_version": "string",
        "passed": "bool",
        "n_rows": "int",
        "n_bad_rows": "int",
        "n_batch_failures": "int",
        "failed_expectations": "string",
        "validated_key": "string",
        "report_key": "string",
        "quarantine_key": "string",
    },
    # one row per training job
    "training_runs": {
        "week": "string",
        "job_name": "string",
        "train_weeks": "string",
        "data_versions": "string",
        "code_version": "string",
        "hardware": "string",
        "hyperparameters": "string",
        "metrics": "string",
        "model_key": "string",
        "model_sha256": "string",
        "reason": "string",
        "dataset_spec": "string",
    },
    # one row per (week, challenger): the gate's decision
    "evaluations": {
        "week": "string",
        "job_name": "string",
        "metric": "string",
        "higher_is_better": "bool",
        "challenger_score": "float",
        "champion_version": "string",
        "champion_score": "float",
        "margin": "float",
        "passed": "bool",  # the gate's verdict against the champion of the week's time
        "promote": "bool",  # production moves (not when a newer production stays: a backfill)
        "decision": "string",
        "n_holdout": "int",
        # the challenger's trivial baseline on the same holdout (empty in rows from before it)
        "baseline_score": "float",
    },
    # one row per scored row per week: the key column and the prediction columns come from the
    # dataset spec (predictions_schema); these are the columns every spec has
    "predictions": {
        "week": "string",
        "model_version": "string",
    },
    # one row per (week, feature)
    "drift_metrics": {
        "week": "string",
        "feature": "string",
        "kind": "string",
        "psi": "float",
        "statistic": "float",
        "p_value": "float",
        "drifted": "bool",
        "psi_noise": "float",  # the PSI a clean sample of this size stays under ([drift] confidence)
    },
    # one row per week: the monitor's verdict
    "drift_summary": {
        "week": "string",
        "reference_weeks": "string",
        "model_version": "string",
        "n_features": "int",
        "n_drifted": "int",
        "share_drifted": "float",
        "data_drifted": "bool",
        "prediction_psi": "float",
        "prediction_drifted": "bool",
        "metric": "string",
        "live_metric": "float",
        "reference_metric": "float",
        "concept_drifted": "bool",
        "drift_detected": "bool",
        "concept_model_version": "string",  # the model concept drift was measured on
        "report_key": "string",
        # how sure each decision was (docs/drift.md): the sizes judged, the noise, the interval
        "n_rows": "int",
        "n_labelled": "int",
        "prediction_psi_noise": "float",
        "metric_drop": "float",
        "metric_drop_low": "float",
        "metric_drop_high": "float",
        "retrain": "bool",  # the monitor's rule calls for a retrain (whatever the run's reason)
        "retrain_causes": "string",  # JSON {cause: effect} that retrained: the cooldown reads it
        "decision": "string",  # why, per cause: judged or not, found or not, cooldown
    },
    # one row per week: how the endpoint served the production model (operations, not drift)
    "ops_summary": {
        "week": "string",
        "model_name": "string",
        "window_start": "timestamp",
        "window_end": "timestamp",
        "requests": "int",
        "errors_4xx": "int",
        "errors_5xx": "int",
        "error_rate_4xx": "float",
        "error_rate_5xx": "float",
        "latency_p50_ms": "float",
        "latency_p95_ms": "float",
        "latency_p99_ms": "float",
        "instance_hours": "float",
        "cost_usd": "float",
        "cost_basis": "string",
        "source": "string",
        "healthy": "bool",
        "breaches": "string",  # JSON list of what was out of bounds
    },
}


def predictions_schema(spec: DatasetSpec) -> dict[str, str]:
    """The predictions table for a dataset: week, the key column, the prediction columns, version."""
    return {
        "week": "string",
        spec.key_table_column: "string",
        **spec.prediction_columns(),
        "model_version": "string",
    }


def table_schema(name: str, spec: DatasetSpec) -> dict[str, str]:
    """A table's columns and logical types."""
    return predictions_schema(spec) if name == "predictions" else TABLES[name]


def ensure_tables(warehouse: Warehouse, *names: str, spec: DatasetSpec) -> None:
    """Migrate the named tables (all of them if none is named) to their schema, once.

    A table is created, or given the columns it lacks (e.g. a new dataset's prediction
    columns), only when the warehouse's record of its schema version differs; otherwise this is
    one read of that record (see :mod:`providers.migrations`).
    """
    migrate_tables(warehouse, {name: table_schema(name, spec) for name in names or tuple(TABLES)})
