"""monitor_drift: data, prediction and concept drift of a week; an HTML report; the verdict.

The same run records how the endpoint served the week (lifecycle/operations.py).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lifecycle.context import StageContext
from lifecycle.datasets import holdout_mask, read_validated, reference_weeks
from lifecycle.history import served_week
from lifecycle.keys import drift_report_key
from lifecycle.operations import ServingWatch, watch_serving

log = logging.getLogger(__name__)
REFERENCE_SAMPLE_ROWS = 100_000
RELATIVE_DROP = ("rmse", "mae")  # metrics in the label's units: the concept drop is relative


@dataclass(frozen=True)
class DriftVerdict(ServingWatch):
    """The monitor's verdict on a week, beside how the endpoint served it.

    Its fields (the serving ones first) are monitor_drift's XCom keys.
    """

    week: str = ""
    drift_detected: bool = False
    should_trigger_retrain: bool = False  # never for a run that is itself a drift retrain
    report_key: str = ""
    report_uri: str = ""
    drifted_features: list[str] = field(default_factory=list)
    prediction_psi: float | None = None
    metric: str = ""
    live_metric: float | None = None
    concept_model_version: str = ""


def monitor_week(ctx: StageContext) -> DriftVerdict:
    """Compare the week with the weeks before it and record the verdict.

    - data drift: per-feature PSI against the reference weeks (the training window before
      this week, starting at the last detected drift);
    - prediction drift: PSI of this week's scores against the same model's scores on the
      reference weeks;
    - concept drift: once labels are in, the gate metric on the week's held-out rows of the
      model that was serving when the week's rows arrived (the production version before any
      retrain of the week, see ``served_week``; not a model trained on the week itself) against
      the same metric of that model at validation (worse by more than ``[drift]
      concept_metric_drop``; for rmse and mae, by more than that fraction of it). Not measured
      when no model served the week (its first week, a backfilled week older than every
      production version).

    Returns:
        The verdict: ``drift_detected``, ``should_trigger_retrain`` (never for a run that is
        itself a drift retrain), ``report_key`` and the figures.
    """
    from core.ml.dataset import HIGHER_IS_BETTER
    from core.ml.drift import dataset_drift, feature_drift
    from core.ml.report import render_drift_report

    drift, spec, metric = ctx.settings.drift, ctx.settings.dataset, ctx.settings.gate_metric
    warehouse, storage = ctx.warehouse, ctx.provider.storage
    reference = reference_weeks(ctx)
    current = read_validated(ctx, ctx.week)
    predictions = warehouse.read_rows("predictions", {"week": ctx.week})
    models = _loader(ctx)  # each version fetched and unpickled once per run

    summary: dict[str, Any] = {
        "week": ctx.week,
        "reference_weeks": json.dumps(reference),
        "model_version": str(predictions["model_version"].iloc[0]) if len(predictions) else "",
        "n_features": 0,
        "n_drifted": 0,
        "share_drifted": 0.0,
        "data_drifted": False,
        "prediction_psi": None,
        "prediction_drifted": False,
        "metric": metric,
        "live_metric": None,
        "reference_metric": None,
        "concept_drifted": False,
        "concept_model_version": "",
    }
    features = pd.DataFrame(columns=["feature", "kind", "psi", "statistic", "p_value", "drifted"])
    distributions: list[Any] = []
    if reference:
        ref_frame = pd.concat([read_validated(ctx, w) for w in reference], ignore_index=True)
        log.info(
            "Week %s: comparing %d rows and %d scores with %d rows of the reference weeks %s",
            ctx.week, len(current), len(predictions), len(ref_frame), ", ".join(reference),
        )  # fmt: skip
        features = feature_drift(
            ref_frame,
            current,
            [f.name for f in spec.features_of_kind("numeric")],
            [f.name for f in spec.features_of_kind("categorical", "boolean")],
            drift.feature_psi_threshold,
        )
        verdict = dataset_drift(features, drift.drifted_share_threshold)
        distributions = _drifted_distributions(features, ref_frame, current)
        summary.update(
            n_features=verdict["n_features"],
            n_drifted=verdict["n_drifted"],
            share_drifted=float(verdict["share_drifted"]),
            data_drifted=bool(verdict["drifted"]),
        )
        if len(predictions) and summary["model_version"]:
            ref_scores = _reference_scores(ctx, models(summary["model_version"]), ref_frame)
            psi = _prediction_psi(ref_scores, predictions[spec.score_column], spec.task)
            summary.update(
                prediction_psi=float(psi), prediction_drifted=bool(psi > drift.prediction_psi_threshold)
            )
    else:
        log.info("Week %s has no reference weeks yet: data and prediction drift are not computed", ctx.week)

    served = served_week(ctx)
    summary["concept_model_version"] = served.version if served is not None else ""
    if served is None:
        log.info("Week %s: no model served it before its own retrain: no concept drift measured", ctx.week)
    live = _live_metric(ctx, current, models, served.version, metric) if served is not None else None
    if live is not None and served is not None:
        at_validation = served.metrics.get(f"validation_{metric}")
        summary.update(live_metric=live, reference_metric=at_validation)
        if at_validation is not None:
            worse_by = at_validation - live if HIGHER_IS_BETTER[metric] else live - at_validation
            # rmse and mae are in the label's units (an absolute 0.05 flagged every week of a label
            # in the hundreds): for them the drop is a fraction of the metric at validation
            allowed = drift.concept_metric_drop * (abs(at_validation) if metric in RELATIVE_DROP else 1.0)
            summary["concept_drifted"] = bool(worse_by > allowed)
    summary["drift_detected"] = bool(
        summary["data_drifted"] or summary["prediction_drifted"] or summary["concept_drifted"]
    )
    report_key = drift_report_key(ctx.week)
    summary["report_key"] = report_key
    html = render_drift_report(
        ctx.week,
        reference,
        features,
        {**summary, "drifted": summary["data_drifted"]},
        psi_threshold=drift.feature_psi_threshold,
        share_threshold=drift.drifted_share_threshold,
        distributions=distributions,
    )
    storage.put_bytes(report_key, html.encode())
    rows = features.assign(week=ctx.week)[
        ["week", "feature", "kind", "psi", "statistic", "p_value", "drifted"]
    ]
    warehouse.replace_rows("drift_metrics", {"week": ctx.week}, rows)
    warehouse.replace_rows("drift_summary", {"week": ctx.week}, pd.DataFrame([summary]))
    trigger = summary["drift_detected"] and ctx.reason != "drift"
    log.info(
        "Week %s: drift %s (data %s: %d/%d features; prediction PSI %s; live %s of v%s %s vs %s); report %s",
        ctx.week, "DETECTED" if summary["drift_detected"] else "not detected", summary["data_drifted"],
        summary["n_drifted"], summary["n_features"], _fmt(summary["prediction_psi"]), metric,
        summary["concept_model_version"] or "-", _fmt(summary["live_metric"]),
        _fmt(summary["reference_metric"]), storage.uri(report_key),
    )  # fmt: skip
    serving = watch_serving(ctx)  # operations beside drift: never part of the retrain decision
    return DriftVerdict(
        **asdict(serving),
        week=ctx.week,
        drift_detected=bool(summary["drift_detected"]),
        should_trigger_retrain=bool(trigger),
        report_key=report_key,
        report_uri=storage.uri(report_key),
        drifted_features=sorted(features.loc[features["drifted"].astype(bool), "feature"])
        if len(features)
        else [],
        prediction_psi=summary["prediction_psi"],
        metric=metric,
        live_metric=summary["live_metric"],
        concept_model_version=summary["concept_model_version"],
    )


def _drifted_distributions(
    features: pd.DataFrame, reference: pd.DataFrame, current: pd.DataFrame
) -> list[Any]:
    """What PSI compared for each drifted feature (bins or categories), for the report's plots."""
    from core.ml.drift import distribution

    drifted = features[features["drifted"].astype(bool)]
    found = (
        distribution(row.feature, row.kind, reference[row.feature], current[row.feature])
        for row in drifted.itertuples(index=False)
    )
    return [d for d in found if d is not None]


def _loader(ctx: StageContext) -> Any:
    """A function version -> model that fetches, checks and unpickles each version once.

    The model that scored the week (prediction drift) is usually the one that served it
    (concept drift): one run of the monitor loads it once.
    """
    import tempfile
    from pathlib import Path

    from core.ml.scoring.artifacts import load_model

    loaded: dict[str, Any] = {}

    def model(version: str) -> Any:
        if version not in loaded:
            model_version = ctx.provider.registry.get_version(ctx.model_name, version)
            with tempfile.TemporaryDirectory(prefix="monitor-") as tmp:
                artifact = ctx.provider.registry.fetch_artifact(model_version, Path(tmp))
                loaded[version] = load_model(artifact, model_version.sha256)
        return loaded[version]

    return model


def _reference_scores(ctx: StageContext, model: Any, reference: pd.DataFrame) -> pd.Series:
    """Score (a bounded sample of) the reference weeks with the model that scored this week.

    Prediction drift must compare one model's scores on two populations: comparing with the
    scores older models gave the reference weeks would flag every model change as drift.
    """
    sample = reference.sample(n=min(len(reference), REFERENCE_SAMPLE_ROWS), random_state=0)
    return model.predict_frame(sample)[ctx.settings.dataset.score_column]


def _prediction_psi(reference: pd.Series, current: pd.Series, task: str) -> float:
    """PSI of the score column: numeric (probability, value), or the predicted class's mix."""
    from core.ml.drift import categorical_psi, population_stability_index

    if task != "multiclass":
        return float(
            population_stability_index(
                reference.to_numpy(dtype=np.float64), current.to_numpy(dtype=np.float64)
            )
        )
    return float(categorical_psi(reference.astype(str), current.astype(str)))


def _live_metric(
    ctx: StageContext, current: pd.DataFrame, models: Any, version: str, metric: str
) -> float | None:
    """The gate metric of the serving model on the week's held-out, labelled rows (None until labels)."""
    spec = ctx.settings.dataset
    held_out = current[holdout_mask(current[spec.key_column], ctx.settings.training.holdout_fraction)]
    labelled = held_out[held_out[spec.label].notna()]
    if labelled.empty or (spec.is_classification and labelled[spec.label].nunique() < 2):
        return None
    value = models(version).metrics(labelled).get(metric)
    return None if value is None or np.isnan(value) else float(value)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
