"""A short, readable summary of what the loop did, from the warehouse and the registry."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from lifecycle.context import StageContext
from lifecycle.history import PRODUCTION
from lifecycle.keys import drift_report_key
from lifecycle.operations import ops_text


def loop_summary(ctx: StageContext, weeks: list[str] | None = None) -> str:
    """Return a plain-text summary: weeks, data versions, models, gate decisions, drift.

    Args:
        ctx: any context of the project (its week is not used).
        weeks: the weeks to show (default: every week with a data version).
    """
    warehouse, registry, storage = ctx.warehouse, ctx.provider.registry, ctx.provider.storage
    versions = _by_week(warehouse.read_rows("data_versions"))
    validation = _by_week(warehouse.read_rows("validation_results"))
    evaluations = warehouse.read_rows("evaluations")
    drift = _by_week(warehouse.read_rows("drift_summary"))
    predictions = warehouse.read_rows("predictions", columns=["week", "model_version"])
    weeks = weeks or sorted(versions)
    metric = ctx.settings.gate_metric
    lines = [
        f"{'week':<9} {'data version':<17} {'rows ok/bad':<12} {'scored':>7}  {'drift':<36} gate decisions"
    ]
    for week in weeks:
        v, val, d = versions.get(week, {}), validation.get(week, {}), drift.get(week, {})
        ok = f"{val.get('n_rows', 0) - val.get('n_bad_rows', 0)}/{val.get('n_bad_rows', 0)}" if val else "-"
        if val and not val.get("passed"):
            ok = "REJECTED"
        scored = int((predictions["week"] == week).sum()) if len(predictions) else 0
        drift_text = _drift_text(d)
        gates = evaluations[evaluations["week"] == week] if len(evaluations) else evaluations
        decisions = "; ".join(gates["decision"]) if len(gates) else "-"
        lines.append(
            f"{week:<9} {v.get('data_version', '-'):<17} {ok:<12} {scored:>7}  {drift_text:<36} {decisions}"
        )

    lines.append("")
    production = registry.get_alias(ctx.model_name, PRODUCTION)
    lines.append(
        f"Model versions of {ctx.model_name!r} (production: v{production.version if production else 'none'}):"
    )
    for version in registry.list_versions(ctx.model_name):
        marker = "*" if production and version.version == production.version else " "
        weeks_trained = json.loads(version.tags.get("train_weeks", "[]"))
        score = version.metrics.get(f"validation_{metric}")
        lines.append(
            f" {marker} v{version.version:<3} week {version.tags.get('week', '?')}  "
            f"trained on {','.join(weeks_trained)}  validation {metric} {_fmt(score)}  "
            f"({version.tags.get('reason', '?')})"
        )
    lines.append("")
    lines.append("Production alias history:")
    for change in registry.alias_history(ctx.model_name, PRODUCTION):
        lines.append(
            f"  v{change.previous_version or '-'} -> v{change.version}  by {change.actor}: {change.reason}"
        )
    lines.append("")
    reports = [storage.uri(drift_report_key(w)) for w in weeks if storage.exists(drift_report_key(w))]
    if reports:
        lines.append(f"Drift reports: {reports[-1]} (and one per week beside it)")
    lines.append(
        f"Predictions: table 'predictions' in the {ctx.provider.name} warehouse ({len(predictions)} rows)"
    )
    return "\n".join(lines)


def _by_week(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    return {row["week"]: row for row in frame.to_dict(orient="records")} if len(frame) else {}


def _drift_text(row: dict[str, Any]) -> str:
    if not row:
        return "-"
    unjudged = _not_judged(row)
    if not row.get("drift_detected"):
        if not json.loads(row.get("reference_weeks") or "[]"):
            return "none (no reference yet)"
        return f"none (not judged: {'+'.join(unjudged)})" if unjudged else "none"
    kinds = [k for k, key in (("data", "data_drifted"), ("prediction", "prediction_drifted"),
                              ("concept", "concept_drifted")) if row.get(key)]  # fmt: skip
    text = f"DRIFT ({'+'.join(kinds)}, {row.get('n_drifted', 0)} features)"
    return f"{text}, cooldown" if _retrain(row) is False else text


def _not_judged(row: dict[str, Any]) -> list[str]:
    """The causes the monitor did not judge (the week was too small), from its decision text."""
    decision = row.get("decision")
    if not isinstance(decision, str):
        return []
    return [part.split(":", 1)[0] for part in decision.split("; ") if ": not judged" in part]


def _retrain(row: dict[str, Any]) -> bool | None:
    """Whether the monitor's rule retrained the week (None for rows written before it was stored)."""
    value = row.get("retrain")
    return None if value is None or pd.isna(value) else bool(value)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.3f}"


def run_summary(ctx: StageContext) -> str:
    """Return a short Markdown summary of what this run changed for its week.

    Shown as the run's note in the Airflow UI (under 1,000 characters): data version and
    validation, the challenger and the gate, production before and after, scoring, drift.
    """
    warehouse, registry = ctx.warehouse, ctx.provider.registry
    week = {"week": ctx.week}
    version = _first(warehouse.read_rows("data_versions", week))
    validation = _first(warehouse.read_rows("validation_results", week))
    training = warehouse.read_rows("training_runs", week)
    evaluations = warehouse.read_rows("evaluations", week)
    drift = _first(warehouse.read_rows("drift_summary", week))
    ops = _first(warehouse.read_rows("ops_summary", week))
    scored = warehouse.read_rows("predictions", week, columns=["model_version"])

    lines = [f"**{ctx.week}**: {ctx.reason} run"]
    if version:
        rows = "-"
        if validation:
            bad = validation["n_bad_rows"]
            rows = f"{validation['n_rows'] - bad} rows valid, {bad} quarantined"
        lines.append(f"- Data: version `{version['data_version']}` ({rows})")
    if len(training):
        job = training.iloc[-1]["job_name"]
        registered = [v for v in registry.list_versions(ctx.model_name) if v.registry_key == job]
        gate = evaluations[evaluations["job_name"] == job]
        name = f"v{registered[0].version}" if registered else f"`{job}`"
        metric = ctx.settings.gate_metric
        score = registered[0].metrics.get(f"validation_{metric}") if registered else None
        lines.append(f"- Challenger: {name}, validation {metric} {_fmt(score)}")
        if len(gate):
            lines.append(f"- Gate: {gate.iloc[-1]['decision']}")
    moves = [c for c in registry.alias_history(ctx.model_name, PRODUCTION) if c.actor == ctx.actor]
    production = registry.get_alias(ctx.model_name, PRODUCTION)
    if moves:
        lines.append(f"- Production: v{moves[0].previous_version or '-'} -> **v{moves[-1].version}**")
    else:
        lines.append(f"- Production: unchanged (v{production.version if production else 'none'})")
    if len(scored):
        lines.append(f"- Scored: {len(scored)} rows with v{scored['model_version'].iloc[0]}")
    if drift:
        text = _drift_text(drift)
        retrain = _retrain(drift)
        if (drift.get("drift_detected") if retrain is None else retrain) and ctx.reason != "drift":
            text += ": retrain triggered"
        lines.append(f"- Drift: {text} ([report](/mlops/drift/report/{ctx.week}))")
    if ops:
        lines.append(f"- Serving: {ops_text(ops)}")
    return "\n".join(lines)


def _first(frame: pd.DataFrame) -> dict[str, Any]:
    return frame.iloc[0].to_dict() if len(frame) else {}
