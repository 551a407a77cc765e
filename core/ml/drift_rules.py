"""The monitor's rules: when a week is judged, when a statistic is a finding, when it retrains.

- a week too small to judge says so and decides nothing (``too_small``);
- a finding needs its effect over the threshold AND beyond its noise: the metric drop's
  interval excludes no change (``judge_concept``), a PSI is over its sampling noise (the
  feature table's ``psi_noise``, ``judge_prediction``);
- a cause that retrained recently retrains again only if its effect grew (``cool_down``).

Plain functions over numbers: the stage (lifecycle/monitor.py) reads the week and the history.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

CAUSES = ("data", "prediction", "concept")


@dataclass(frozen=True)
class Finding:
    """One cause's judgement of a week.

    Attributes:
        cause: "data", "prediction" or "concept".
        judged: False when the week was too small (or lacked what the cause needs).
        found: the cause drifted (judged, over the threshold and beyond the noise).
        effect: the effect size that retrains compare: the share of drifted features (data),
            the predictions' PSI (prediction), the metric's drop (concept); None if not measured.
        reason: one line saying why, for the report, the pages and the log.
    """

    cause: str
    judged: bool
    found: bool
    effect: float | None
    reason: str


def not_judged(cause: str, reason: str) -> Finding:
    """A cause the week could not be judged on."""
    return Finding(cause, judged=False, found=False, effect=None, reason=f"{cause}: not judged: {reason}")


def too_small(
    n_rows: int,
    min_rows: int,
    what: str = "rows",
    class_counts: Mapping[str, int] | None = None,
    min_class_rows: int = 0,
) -> str | None:
    """Why a sample is too small to judge (None when it is big enough).

    Args:
        n_rows: the rows there are.
        min_rows: the rows needed.
        what: what the rows are ("rows", "labelled rows").
        class_counts: classification: rows per class among them (every class the labels hold).
        min_class_rows: the rows each class needs.

    Returns:
        e.g. "96 labelled rows, 4 of class '1' (need 100 and 10 of each of 2+ classes)", or None
        (no "; " inside: the monitor joins its reasons with it).
    """
    rarest = min(class_counts.items(), key=lambda item: item[1]) if class_counts else None
    few_rows = n_rows < min_rows
    few_classes = class_counts is not None and (
        len(class_counts) < 2 or (rarest and rarest[1] < min_class_rows)
    )
    if not (few_rows or few_classes):
        return None
    text = f"{n_rows} {what}"
    need = f"need {min_rows}"
    if class_counts is not None:
        text += f", {rarest[1]} of class {rarest[0]!r}" if rarest and len(class_counts) > 1 else ", one class"
        need += f" and {min_class_rows} of each of 2+ classes"
    return f"{text} ({need})"


def judge_data(n_features: int, n_drifted: int, share: float, share_threshold: float) -> Finding:
    """Data drift from the feature table (each feature's PSI already checked against its noise)."""
    found = n_features > 0 and share >= share_threshold
    verdict = "drift" if found else "below the share threshold"
    return Finding(
        "data",
        judged=True,
        found=bool(found),
        effect=float(share),
        reason=f"data: {n_drifted}/{n_features} features over their PSI threshold and noise "
        f"(share {share:.2f}, threshold {share_threshold:.2f}): {verdict}",
    )


def judge_prediction(psi: float, noise: float, threshold: float) -> Finding:
    """Prediction drift: the scores' PSI over the threshold and over its sampling noise."""
    if math.isnan(psi):
        return not_judged("prediction", "no scores to compare")
    over, noisy = psi > threshold, psi <= noise
    verdict = "drift" if over and not noisy else ("within noise" if over else "below the threshold")
    return Finding(
        "prediction",
        judged=True,
        found=bool(over and not noisy),
        effect=float(psi),
        reason=f"prediction: PSI {psi:.3f} (threshold {threshold:.3f}, noise {noise:.3f}): {verdict}",
    )


def judge_concept(
    metric: str,
    at_validation: float,
    live: float,
    live_interval: tuple[float, float] | None,
    *,
    higher_is_better: bool,
    allowed: float,
    confidence: float,
) -> Finding:
    """Concept drift: the metric's drop over ``allowed`` AND its interval excluding no change.

    Args:
        metric: the metric's name.
        at_validation: the serving model's metric at validation (the reference).
        live: the metric on the week's labelled rows.
        live_interval: the bootstrap interval of ``live`` (None: undefined, not judged).
        higher_is_better: the metric's direction.
        allowed: the drop that counts as drift (in the metric's units).
        confidence: the interval's level (for the text).

    Returns:
        The finding; its effect is the drop (positive: worse than at validation).
    """
    if live_interval is None:
        return not_judged("concept", f"{metric} undefined in most bootstrap resamples")
    low_live, high_live = live_interval
    if higher_is_better:
        drop, low, high = at_validation - live, at_validation - high_live, at_validation - low_live
    else:
        drop, low, high = live - at_validation, low_live - at_validation, high_live - at_validation
    over, excludes_zero = drop > allowed, low > 0
    found = over and excludes_zero
    if found:
        verdict = "drift"
    elif over:
        verdict = "within noise: the interval includes no change"
    else:
        verdict = "below the threshold"
    return Finding(
        "concept",
        judged=True,
        found=bool(found),
        effect=float(drop),
        reason=f"concept: {metric} {live:.3f} vs {at_validation:.3f} at validation, drop {drop:.3f} "
        f"({confidence:.0%} interval {low:.3f} to {high:.3f}, threshold {allowed:.3f}): {verdict}",
    )


@dataclass(frozen=True)
class PastDecision:
    """A week's stored retrain decision (a ``drift_summary`` row): the causes that retrained it."""

    week: str
    retrain_causes: dict[str, float]


def parse_causes(text: str | None) -> dict[str, float]:
    """The ``retrain_causes`` column: JSON ``{cause: effect}`` ("" or None: none)."""
    if not text or (isinstance(text, float) and math.isnan(text)):
        return {}
    return {str(k): float(v) for k, v in json.loads(text).items()}


def cool_down(
    week: str,
    findings: Sequence[Finding],
    history: Sequence[PastDecision],
    since: str,
    growth: float,
) -> tuple[dict[str, float], list[str]]:
    """The causes that retrain this week, after the cooldown of the causes that retrained lately.

    A cause that retrained in a week from ``since`` up to (not including) ``week`` retrains
    again only if its effect grew beyond ``growth`` times the largest effect it retrained with
    then. Only decisions of earlier weeks count (point in time), so re-running a week decides
    the same.

    Args:
        week: the judged week (ISO weeks compare as text).
        findings: this week's findings.
        history: stored decisions (any weeks; later ones and this week's own are ignored).
        since: the cooldown's first week (``[drift] cooldown_weeks`` before ``week``; ``week``
            itself: no cooldown).
        growth: the factor by which an effect must grow to retrain again within it.

    Returns:
        ({cause: effect} of the causes that retrain, notes on the causes held back).
    """
    first = since
    recent: dict[str, tuple[str, float]] = {}
    for past in history:
        if not first <= past.week < week:
            continue
        for cause, effect in past.retrain_causes.items():
            if cause not in recent or abs(effect) > abs(recent[cause][1]):
                recent[cause] = (past.week, effect)
    retrain: dict[str, float] = {}
    notes: list[str] = []
    for finding in findings:
        if not finding.found or finding.effect is None:
            continue
        if finding.cause in recent:
            past_week, past_effect = recent[finding.cause]
            if abs(finding.effect) <= growth * abs(past_effect):
                notes.append(
                    f"{finding.cause}: no retrain (cooldown): it retrained in {past_week} with effect "
                    f"{past_effect:.3f}, and {finding.effect:.3f} is not {growth:g}x that"
                )
                continue
        retrain[finding.cause] = finding.effect
    return retrain, notes
