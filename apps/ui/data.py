"""What the Models and Drift pages show, read from a provider (any backend).

Everything comes through the provider contract: the registry (versions, the production alias
and its history), the warehouse tables the stages write (lifecycle/tables.py) and
storage (the drift reports). Nothing here writes.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from apps.ui.costs import training_cost
from lifecycle.history import PRODUCTION, ProductionMove
from lifecycle.keys import drift_report_key
from lifecycle.tables import TABLES
from providers.base import Deployment, Provider


def read_table(provider: Provider, table: str) -> pd.DataFrame:
    """Return a warehouse table, or an empty frame with its columns when it does not exist yet."""
    frame = provider.warehouse.read_rows(table)
    if frame.empty:
        return pd.DataFrame(columns=list(TABLES[table]))
    return frame


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with NaN/NaT turned into None (JSON- and template-friendly)."""
    out = []
    for row in frame.to_dict(orient="records"):
        out.append({k: (None if _missing(v) else v) for k, v in row.items()})
    return out


def _missing(value: Any) -> bool:
    try:
        return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT
    except TypeError:
        return False


def _json(text: Any, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


# What the history table calls each move (by its recorded code; the prose reason is shown beside)
MOVE_KINDS: dict[str, str] = {
    ProductionMove.PROMOTED: "gate passed",
    ProductionMove.DRIFT_PROMOTED: "drift retrain: gate passed",
    ProductionMove.MANUAL_ROLLBACK: "manual rollback",
    ProductionMove.DEPLOY_ROLLBACK: "failed deploy: automatic rollback",
}


def change_kind(code: str) -> str:
    """Name an alias move by its recorded code ("other": a move recorded without one)."""
    return MOVE_KINDS.get(code, "other")


def models_view(provider: Provider, model_name: str) -> dict[str, Any]:
    """Every registered version with its lineage, gate decisions, cost, and the alias history.

    Returns:
        ``versions`` (newest first), ``challengers`` (trained but not registered yet, newest
        week first), ``production`` (a version or None), ``deployment``,
        ``history`` (newest first) and ``evaluations`` (every gate decision, newest first).
    """
    registry = provider.registry
    versions = registry.list_versions(model_name)
    production = registry.get_alias(model_name, PRODUCTION)
    history = registry.alias_history(model_name, PRODUCTION)
    training = {r["job_name"]: r for r in records(read_table(provider, "training_runs"))}
    evaluations = records(read_table(provider, "evaluations"))
    by_job: dict[str, list[dict[str, Any]]] = {}
    for evaluation in evaluations:
        by_job.setdefault(evaluation["job_name"], []).append(evaluation)
    deployment: Deployment | dict[str, str] | None
    try:
        deployment = provider.endpoint.current(model_name)
    except Exception as exc:  # the page still shows the registry when the endpoint is unreachable
        deployment = {"error": f"{type(exc).__name__}: {exc}"}

    version_of_job = {v.registry_key: v.version for v in versions}
    rows = []
    for version in versions:
        tags = dict(version.tags)
        job = tags.get("training_job") or version.registry_key
        run = training.get(job, {})
        hardware = _json(tags.get("hardware_profile") or run.get("hardware"), {})
        metrics = dict(version.metrics)
        rows.append(
            {
                "version": version.version,
                "created_at": version.created_at,
                "week": tags.get("week") or run.get("week") or "",
                "reason": tags.get("reason") or run.get("reason") or "",
                "trained_by": tags.get("trained_by", ""),
                "training_job": job,
                "train_weeks": _json(tags.get("train_weeks") or run.get("train_weeks"), []),
                "data_versions": _json(tags.get("data_versions") or run.get("data_versions"), {}),
                "code_version": tags.get("code_version") or run.get("code_version") or "",
                "hardware": hardware,
                "cost": training_cost(hardware, metrics.get("train_seconds")),
                "metrics": metrics,
                "sha256": version.sha256,
                "is_production": production is not None and version.version == production.version,
                "gate": [_gate(e, version_of_job) for e in by_job.get(job, [])],
            }
        )
    registered = {v.registry_key for v in versions} | {r["training_job"] for r in rows}
    challengers = [
        {
            "week": run["week"],
            "training_job": job,
            "reason": run.get("reason") or "",
            "train_weeks": _json(run.get("train_weeks"), []),
            "metrics": _json(run.get("metrics"), {}),
            "hardware": _json(run.get("hardware"), {}),
            "gate": [_gate(e, version_of_job) for e in by_job.get(job, [])],
        }
        for job, run in training.items()
        if job not in registered
    ]
    for challenger in challengers:
        challenger["cost"] = training_cost(challenger["hardware"], challenger["metrics"].get("train_seconds"))
    return {
        "model_name": model_name,
        "versions": list(reversed(rows)),
        "challengers": sorted(challengers, key=lambda c: c["week"], reverse=True),
        "production": production.version if production else None,
        "deployment": deployment,
        "history": [
            {
                "version": c.version,
                "previous_version": c.previous_version,
                "reason": c.reason,
                "code": c.code,
                "kind": change_kind(c.code),
                "actor": c.actor,
                "changed_at": c.changed_at,
            }
            for c in reversed(history)
        ],
        "evaluations": [
            _gate(e, version_of_job) for e in sorted(evaluations, key=lambda e: e["week"], reverse=True)
        ],
    }


def _gate(evaluation: dict[str, Any], version_of_job: dict[str, str]) -> dict[str, Any]:
    from lifecycle.evaluate import promotes

    return {
        **evaluation,
        "challenger_version": version_of_job.get(evaluation["job_name"]),
        "passed": bool(evaluation.get("passed")),
        "promote": promotes(evaluation),
    }


def drift_view(provider: Provider) -> dict[str, Any]:
    """Per-feature drift by week, the weekly verdicts, retrains and where each report is.

    Returns:
        ``weeks`` (oldest first), ``features``, ``psi`` ({feature: {week: psi}}), ``drifted``
        ({feature: [weeks]}), ``summaries`` (one per week, with ``retrain_jobs`` and
        ``has_report``), ``kinds`` ({feature: numeric|categorical}) and ``ops`` ({week: the
        week's serving row of ``ops_summary``}).
    """
    metrics = read_table(provider, "drift_metrics")
    summary = records(read_table(provider, "drift_summary").sort_values("week"))
    training = read_table(provider, "training_runs")
    weeks = [s["week"] for s in summary]
    psi: dict[str, dict[str, float | None]] = {}
    drifted: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    for row in records(metrics):
        psi.setdefault(row["feature"], {})[row["week"]] = row["psi"]
        kinds[row["feature"]] = row.get("kind") or ""
        if row.get("drifted"):
            drifted.setdefault(row["feature"], []).append(row["week"])
    drift_jobs = training[training["reason"] == "drift"] if len(training) else training
    for item in summary:
        week = item["week"]
        item["reference_weeks"] = _json(item.get("reference_weeks"), [])
        item["retrain_jobs"] = sorted(drift_jobs.loc[drift_jobs["week"] == week, "job_name"])
        item["has_report"] = provider.storage.exists(item.get("report_key") or drift_report_key(week))
    return {
        "weeks": weeks,
        "features": sorted(psi),
        "psi": psi,
        "drifted": drifted,
        "kinds": kinds,
        "summaries": summary,
        "ops": {row["week"]: row for row in records(read_table(provider, "ops_summary"))},
    }
