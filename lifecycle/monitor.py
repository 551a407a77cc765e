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

from core.ml.drift_rules import Finding
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
    decision: str = ""  # why each cause was or was not judged, found, and retrained


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

    Each is a finding only when its effect is beyond its noise too (a PSI over its sampling
    noise at the week's size; a metric drop whose bootstrap interval excludes 0), and only on
    a week big enough to judge (``[drift] min_rows``, ``min_labelled_rows``, ``min_class_rows``);
    a cause that retrained in the last ``cooldown_weeks`` retrains again only if its effect grew
    by ``cooldown_growth`` (docs/drift.md). ``drift_summary.decision`` says why, per cause.

    Returns:
        The verdict: ``drift_detected``, ``should_trigger_retrain`` (never for a run that is
        itself a drift retrain), ``report_key`` and the figures.
    """
    from core.ml.drift import dataset_drift, feature_drift
    from core.ml.drift_rules import judge_data, not_judged, too_small
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
        "n_rows": len(current),
        "n_features": 0,
        "n_drifted": 0,
        "share_drifted": 0.0,
        "data_drifted": False,
        "prediction_psi": None,
        "prediction_psi_noise": None,
        "prediction_drifted": False,
        "metric": metric,
        "live_metric": None,
        "reference_metric": None,
        "metric_drop": None,
        "metric_drop_low": None,
        "metric_drop_high": None,
        "n_labelled": 0,
        "concept_drifted": False,
        "concept_model_version": "",
    }
    findings: list[Finding] = []
    features = pd.DataFrame(
        columns=["feature", "kind", "psi", "psi_noise", "statistic", "p_value", "drifted"]
    )
    distributions: list[Any] = []
    ref_frame = (
        pd.concat([read_validated(ctx, w) for w in reference], ignore_index=True) if reference else None
    )
    small = (
        too_small(min(len(ref_frame), len(current)), drift.min_rows, "rows in the week or its reference")
        if ref_frame is not None
        else "no reference weeks yet"
    )
    if ref_frame is not None and small is None:
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
            confidence=drift.confidence,
        )
        verdict = dataset_drift(features, drift.drifted_share_threshold)
        distributions = _drifted_distributions(features, ref_frame, current)
        findings.append(
            judge_data(
                verdict["n_features"],
                verdict["n_drifted"],
                verdict["share_drifted"],
                drift.drifted_share_threshold,
            )
        )
        summary.update(
            n_features=verdict["n_features"],
            n_drifted=verdict["n_drifted"],
            share_drifted=float(verdict["share_drifted"]),
            data_drifted=findings[-1].found,
        )
        findings.append(_prediction_finding(ctx, models, summary, ref_frame, predictions))
    else:
        log.info("Week %s: data and prediction drift not judged: %s", ctx.week, small)
        findings += [not_judged("data", str(small)), not_judged("prediction", str(small))]

    served = served_week(ctx)
    summary["concept_model_version"] = served.version if served is not None else ""
    if served is None:
        log.info("Week %s: no model served it before its own retrain: no concept drift measured", ctx.week)
        findings.append(not_judged("concept", "no model served the week before its own retrain"))
    else:
        findings.append(_concept_finding(ctx, current, models, served, summary))
    summary["concept_drifted"] = findings[-1].found
    summary["drift_detected"] = any(f.found for f in findings)
    retrain_causes, notes = _retrain_causes(ctx, findings)
    summary["retrain"] = bool(retrain_causes)
    summary["retrain_causes"] = json.dumps(retrain_causes, sort_keys=True)
    summary["decision"] = "; ".join([f.reason for f in findings] + notes)
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
        ["week", "feature", "kind", "psi", "statistic", "p_value", "drifted", "psi_noise"]
    ]
    warehouse.replace_rows("drift_metrics", {"week": ctx.week}, rows)
    warehouse.replace_rows("drift_summary", {"week": ctx.week}, pd.DataFrame([summary]))
    # the decision is stored whatever the run's reason (a drift retrain's own monitor writes the
    # same row), but only a run that is not itself a drift retrain triggers one
    trigger = summary["retrain"] and ctx.reason != "drift"
    log.info(
        "Week %s: drift %s, retrain %s (%s); report %s",
        ctx.week, "DETECTED" if summary["drift_detected"] else "not detected",
        "due" if summary["retrain"] else "not due", summary["decision"], storage.uri(report_key),
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
        decision=summary["decision"],
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


def _prediction_psi(reference: pd.Series, current: pd.Series, task: str) -> tuple[float, int]:
    """PSI of the score column (numeric: probability, value; or the predicted class's mix), and its bins."""
    from core.ml.drift import psi_with_bins

    if task != "multiclass":
        return psi_with_bins(
            "numeric", reference.to_numpy(dtype=np.float64), current.to_numpy(dtype=np.float64)
        )
    return psi_with_bins("categorical", reference.astype(str), current.astype(str))


def _prediction_finding(
    ctx: StageContext,
    models: Any,
    summary: dict[str, Any],
    ref_frame: pd.DataFrame,
    predictions: pd.DataFrame,
) -> Finding:
    """Prediction drift: the week's scores against the same model's scores on the reference."""
    from core.ml.drift_rules import judge_prediction, not_judged
    from core.ml.uncertainty import psi_noise

    drift, spec = ctx.settings.drift, ctx.settings.dataset
    if not len(predictions) or not summary["model_version"]:
        return not_judged("prediction", "the week has no predictions")
    if len(predictions) < drift.min_rows:
        return not_judged("prediction", f"{len(predictions)} scores (need {drift.min_rows})")
    ref_scores = _reference_scores(ctx, models(summary["model_version"]), ref_frame)
    psi, n_bins = _prediction_psi(ref_scores, predictions[spec.score_column], spec.task)
    noise = psi_noise(len(ref_scores), len(predictions), n_bins, drift.confidence)
    finding = judge_prediction(psi, noise, drift.prediction_psi_threshold)
    summary.update(prediction_psi=float(psi), prediction_psi_noise=noise, prediction_drifted=finding.found)
    return finding


def _concept_finding(
    ctx: StageContext, current: pd.DataFrame, models: Any, served: Any, summary: dict[str, Any]
) -> Finding:
    """Concept drift: the serving model's live metric against its own at validation, with its interval.

    The live metric is measured on the week's held-out, labelled rows; its percentile bootstrap
    interval (fixed seed, ``[drift] bootstrap_resamples``) gives the drop's interval, the
    metric at validation taken as fixed.
    """
    from core.ml.dataset import HIGHER_IS_BETTER
    from core.ml.drift_rules import judge_concept, not_judged, too_small
    from core.ml.modeling import labels_of, task_metrics
    from core.ml.uncertainty import metric_interval

    drift, spec, metric = ctx.settings.drift, ctx.settings.dataset, ctx.settings.gate_metric
    held_out = current[holdout_mask(current[spec.key_column], ctx.settings.training.holdout_fraction)]
    labelled = held_out[held_out[spec.label].notna()]
    summary["n_labelled"] = len(labelled)
    counts = (
        {str(k): int(v) for k, v in labels_of(labelled, spec).value_counts().items()}
        if spec.is_classification
        else None
    )
    small = too_small(len(labelled), drift.min_labelled_rows, "labelled rows", counts, drift.min_class_rows)
    if small is not None:
        return not_judged("concept", small)
    model = models(served.version)
    raw = model.predict_raw_rows(labelled)
    labels = labels_of(labelled, spec)
    live = task_metrics(spec.task, labels, raw, model.classes).get(metric)
    at_validation = served.metrics.get(f"validation_{metric}")
    if live is None or np.isnan(live) or at_validation is None:
        return not_judged("concept", f"no {metric} of the week, or none at validation, to compare")
    summary.update(live_metric=float(live), reference_metric=at_validation)
    interval = metric_interval(
        spec.task, metric, labels, raw, model.classes, drift.confidence, drift.bootstrap_resamples
    )
    # rmse and mae are in the label's units (an absolute 0.05 flagged every week of a label
    # in the hundreds): for them the drop is a fraction of the metric at validation
    allowed = drift.concept_metric_drop * (abs(at_validation) if metric in RELATIVE_DROP else 1.0)
    finding = judge_concept(
        metric,
        float(at_validation),
        float(live),
        interval,
        higher_is_better=HIGHER_IS_BETTER[metric],
        allowed=allowed,
        confidence=drift.confidence,
    )
    if interval is not None:
        # the drop's interval: the live metric's, mirrored about the metric at validation
        ends = [
            float(at_validation) - v if HIGHER_IS_BETTER[metric] else v - float(at_validation)
            for v in interval
        ]
        summary.update(metric_drop=finding.effect, metric_drop_low=min(ends), metric_drop_high=max(ends))
    return finding


def _retrain_causes(ctx: StageContext, findings: list[Finding]) -> tuple[dict[str, float], list[str]]:
    """The causes that retrain the week, after the cooldown of earlier weeks' retrains.

    Reads only the decisions of weeks before this one (point in time): re-running a week, or
    its drift retrain's own monitor, decides the same.
    """
    from core.ml.drift_rules import PastDecision, cool_down, parse_causes
    from core.weeks import shift_week

    drift = ctx.settings.drift
    rows = ctx.warehouse.read_rows("drift_summary", columns=["week", "retrain_causes"])
    history = [
        PastDecision(str(week), parse_causes(causes))
        for week, causes in zip(rows["week"], rows["retrain_causes"], strict=True)
        if str(week) < ctx.week
    ]
    since = shift_week(ctx.week, -drift.cooldown_weeks) if drift.cooldown_weeks else ctx.week
    return cool_down(ctx.week, findings, history, since, drift.cooldown_growth)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
