"""evaluate_model: the gate. Challenger, champion and baseline are scored on the same holdout."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from core.errors import DeterministicError, ParamError
from core.ml.dataset import HIGHER_IS_BETTER, DatasetSpec, incompatibilities, spec_from_json
from lifecycle.context import StageContext
from lifecycle.datasets import holdout_mask, read_validated
from lifecycle.history import newer_production, production_as_of, trained_week
from providers.base import ModelVersion

log = logging.getLogger(__name__)


class IncompatibleModelError(DeterministicError):
    """A model was trained under a dataset spec the current one cannot score with."""


def _text(value: Any) -> str:
    """A warehouse cell as text ("" for a missing value: None, NaN)."""
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


@dataclass(frozen=True)
class TrainingRun:
    """A training job's lineage, as ``training_runs`` records it (the JSON columns as text)."""

    week: str
    job_name: str
    train_weeks: str  # JSON list of weeks
    data_versions: str  # JSON week -> data version
    code_version: str
    hardware: str  # JSON
    hyperparameters: str  # JSON
    metrics: str  # JSON metric -> value
    model_key: str
    model_sha256: str
    reason: str
    dataset_spec: str  # JSON of the dataset spec ("" before specs were recorded)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TrainingRun:
        """The run of a ``training_runs`` row."""
        return cls(**{name: _text(row.get(name)) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Evaluation:
    """The gate's decision for a challenger and week, as ``evaluations`` records it.

    Its fields are evaluate_model's XCom keys.
    """

    week: str
    job_name: str
    metric: str
    higher_is_better: bool
    challenger_score: float
    champion_version: str  # "" when there was no champion
    champion_score: float | None  # None when there was none, or it could not score the spec
    margin: float
    passed: bool  # the gate's verdict against the champion of the week's time
    promote: bool  # whether production moves (see :func:`promotes`)
    decision: str
    n_holdout: int
    # the challenger's baseline (class prior, training mean); None for a model without one
    baseline_score: float | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Evaluation:
        """The evaluation of an ``evaluations`` row (an older row without ``promote`` too)."""
        return cls(
            week=str(row["week"]),
            job_name=str(row["job_name"]),
            metric=str(row["metric"]),
            higher_is_better=bool(row["higher_is_better"]),
            challenger_score=float(row["challenger_score"]),
            champion_version=_text(row.get("champion_version")),
            champion_score=_score(row.get("champion_score")),
            margin=float(row["margin"]),
            passed=bool(row["passed"]),
            promote=promotes(row),
            decision=str(row["decision"]),
            n_holdout=int(row["n_holdout"]),
            baseline_score=_score(row.get("baseline_score")),
        )


def _score(value: Any) -> float | None:
    """A warehouse score cell as a float (None for a missing value: None, NaN)."""
    return None if value is None or pd.isna(value) else float(value)


def beats(score: float, other: float, margin: float, higher: bool) -> bool:
    """Whether ``score`` is better than ``other`` by more than ``margin`` in the metric's direction."""
    return score > other + margin if higher else score < other - margin


def baseline_name(spec: DatasetSpec) -> str:
    """What the baseline of a task is, as a decision names it."""
    return "class prior" if spec.is_classification else "training mean"


def gate_verdict(
    metric: str,
    margin: float,
    challenger_score: float,
    baseline_score: float | None,
    champion_version: str | None,
    champion_score: float | None,
    baseline: str = "baseline",
) -> tuple[bool, str]:
    """The gate's verdict and its reason for a challenger that is not production already.

    The challenger must beat its baseline (the trivial model of its training rows) by more than
    the margin, whatever the champion, the first model of a history too; then the champion by
    more than the margin. A champion that cannot score the spec's rows is not compared with.

    Args:
        metric: the gate's metric (its direction is ``HIGHER_IS_BETTER``).
        margin: ``[gate] margin``.
        challenger_score: the challenger's score on the holdout.
        baseline_score: the baseline's score on the same rows; None: no baseline to compare with.
        champion_version: the production version of the week's time; None: there is none.
        champion_score: its score on the same rows; None: it cannot score this spec's rows.
        baseline: what the baseline is (:func:`baseline_name`), for the reason.

    Returns:
        ``(passed, decision)``: the decision starts with ``promote`` or ``reject``.
    """
    higher = HIGHER_IS_BETTER[metric]
    challenger = f"challenger {metric} {challenger_score:.4f}"
    if baseline_score is not None and not beats(challenger_score, baseline_score, margin, higher):
        stays = f"production stays v{champion_version}" if champion_version else "no production model is set"
        return False, (
            f"reject: {challenger} does not beat the baseline ({baseline}) {baseline_score:.4f} "
            f"by more than the margin {margin}; {stays}"
        )
    if champion_version is None:
        against = "" if baseline_score is None else f" vs baseline ({baseline}) {baseline_score:.4f}"
        return True, f"promote: there is no production model yet ({challenger}{against}, margin {margin})"
    if champion_score is None:
        return True, (
            f"promote: champion v{champion_version} was trained under another dataset spec ({challenger})"
        )
    passed = beats(challenger_score, champion_score, margin, higher)
    verb = "promote" if passed else "reject"
    versus = f"champion v{champion_version} {champion_score:.4f}"
    return passed, f"{verb}: {challenger} vs {versus} (margin {margin})"


def check_compatible(ctx: StageContext, model_spec: DatasetSpec, what: str) -> None:
    """Refuse to score with a model whose dataset spec differs from the settings' in what it reads.

    Raises:
        IncompatibleModelError: names every difference and says how to fix it.
    """
    differences = incompatibilities(model_spec, ctx.settings.dataset)
    if differences:
        raise IncompatibleModelError(
            f"{what} was trained under a dataset spec that differs from the current one: "
            f"{'; '.join(differences)}. Retrain under the current spec (trigger train_model, then "
            "evaluate_model and register_model, or retrain_pipeline), or restore the old spec"
        )


def trained_spec(ctx: StageContext, job_name: str) -> DatasetSpec | None:
    """The dataset spec a training job ran under (from its lineage), or None if not recorded."""
    rows = ctx.warehouse.read_rows("training_runs", {"job_name": job_name}, columns=["dataset_spec"])
    text = str(rows["dataset_spec"].iloc[-1]) if len(rows) and rows["dataset_spec"].iloc[-1] else ""
    return spec_from_json(text) if text else None


def training_run(ctx: StageContext, job_name: str | None = None) -> TrainingRun:
    """Return a training run's record: the named job, or the week's latest one.

    Raises:
        ParamError: there is no such training run.
    """
    where = {"job_name": job_name} if job_name else {"week": ctx.week}
    rows = ctx.warehouse.read_rows("training_runs", where)
    if rows.empty:
        what = f"training job {job_name}" if job_name else f"a training run for week {ctx.week}"
        raise ParamError(f"there is no {what}: run train_model for {ctx.week} first")
    return TrainingRun.from_row(rows.iloc[-1].to_dict())


def evaluate_challenger(ctx: StageContext, job_name: str | None = None) -> Evaluation:
    """Score the challenger, its baseline and the champion on the week's holdout; decide the gate.

    The challenger must beat the baseline (the class prior or the mean of its own training rows,
    kept in its artifact) by the margin, whatever the champion (see :func:`gate_verdict`).
    The champion is the production version as of the week (the latest production version
    trained for this week or an earlier one: a backfilled week is judged against the model of
    its time, not today's), recorded when the week is first evaluated; a re-run compares
    against the same version again, so its decision does not change later. A challenger that
    would win while today's production was trained for a later week (a backfill) is registered
    but does not move production: the decision says why.

    Returns:
        The evaluation as recorded (``passed``: the gate's verdict; ``promote``: whether
        production moves; ``decision``, scores, champion version).
    """
    from core.ml.scoring.artifacts import load_model

    run = training_run(ctx, job_name)
    job_name = run.job_name
    holdout = _holdout(ctx)
    metric, margin = ctx.settings.gate_metric, ctx.settings.gate.margin
    higher = HIGHER_IS_BETTER[metric]
    registry, storage, warehouse = ctx.provider.registry, ctx.provider.storage, ctx.warehouse

    with tempfile.TemporaryDirectory(prefix="evaluate-") as tmp:
        artifact = storage.get_file(run.model_key, Path(tmp) / "challenger" / "model.joblib")
        challenger = load_model(artifact, run.model_sha256)
        check_compatible(ctx, challenger.spec, f"challenger {job_name}")
        challenger_score = challenger.metrics(holdout)[metric]
        baseline = challenger.baseline_metrics(holdout)
        baseline_score = None if baseline is None else baseline[metric]

        previous = warehouse.read_rows("evaluations", {"week": ctx.week, "job_name": job_name})
        champion = _champion(ctx, previous)
        champion_score = None
        if champion is not None and champion.registry_key != job_name:
            path = registry.fetch_artifact(champion, Path(tmp) / "champion")
            model = load_model(path, champion.sha256)
            differences = incompatibilities(model.spec, ctx.settings.dataset)
            if differences:  # a champion of another spec cannot be judged on this holdout
                log.warning("Champion v%s cannot score this spec's rows: %s", champion.version, differences)
            else:
                champion_score = model.metrics(holdout)[metric]

    if challenger_score is None:
        raise ParamError(
            f"the gate metric {metric} is undefined on week {ctx.week}'s holdout ({len(holdout)} "
            "labelled rows, "
            "e.g. a single class): wait for more labels, or choose another [gate] metric"
        )
    if champion is not None and champion.registry_key == job_name:
        passed, decision = True, f"keep: the challenger is already production (v{champion.version})"
    else:
        passed, decision = gate_verdict(
            metric,
            margin,
            challenger_score,
            baseline_score,
            champion.version if champion is not None else None,
            champion_score,
            baseline_name(ctx.settings.dataset),
        )
    promote = passed
    newer = newer_production(ctx)
    if passed and newer is not None and newer.registry_key != job_name:
        # a first evaluation, or a re-run of one that kept production (a re-run of a week that
        # was promoted in its time keeps its decision: register's compare-and-set guards it)
        if previous.empty or not promotes(previous.iloc[-1].to_dict()):
            promote = False  # the gate passed; production stays on the newer model
            of_its_time = f"v{champion.version}" if champion is not None else "none"
            decision = (
                f"keep: production v{newer.version} was trained on {trained_week(newer)}, newer than "
                f"this week {ctx.week} (against the production of its time, {of_its_time}: {decision})"
            )
    evaluation = Evaluation(
        week=ctx.week,
        job_name=job_name,
        metric=metric,
        higher_is_better=higher,
        challenger_score=float(challenger_score),
        champion_version=champion.version if champion else "",
        champion_score=float(champion_score) if champion_score is not None else None,
        margin=float(margin),
        passed=passed,
        promote=promote,
        decision=decision,
        n_holdout=len(holdout),
        baseline_score=float(baseline_score) if baseline_score is not None else None,
    )
    warehouse.replace_rows(
        "evaluations", {"week": ctx.week, "job_name": job_name}, pd.DataFrame([asdict(evaluation)])
    )
    log.info("Gate for %s, week %s: %s", job_name, ctx.week, decision)
    return evaluation


def promotes(evaluation: Mapping[str, Any]) -> bool:
    """Whether an evaluation moves production.

    ``passed`` is the gate's verdict against the champion of the week's time; ``promote`` is
    False too when a backfilled winner stays out of production because today's was trained on
    newer data. Rows written before ``promote`` existed have it empty: then ``passed`` decided.
    """
    value = evaluation.get("promote")
    return bool(evaluation["passed"]) if value is None or pd.isna(value) else bool(value)


def _holdout(ctx: StageContext) -> pd.DataFrame:
    """The week's held-out rows that have a label."""
    spec = ctx.settings.dataset
    week = read_validated(ctx, ctx.week)
    holdout = week[holdout_mask(week[spec.key_column], ctx.settings.training.holdout_fraction)]
    holdout = holdout[holdout[spec.label].notna()]
    enough = holdout[spec.label].nunique() >= 2 if spec.is_classification else len(holdout) >= 2
    if not enough:
        what = "with two classes" if spec.is_classification else "with two labelled rows"
        raise ParamError(
            f"week {ctx.week} has no labelled holdout {what} ({len(holdout)} rows): "
            "the gate needs labels; wait until they arrive or raise [training] holdout_fraction"
        )
    return holdout


def _champion(ctx: StageContext, previous: pd.DataFrame) -> ModelVersion | None:
    """Return the version to compare with.

    That is the one recorded by an earlier evaluation of this challenger if there is one (so
    re-runs are stable), else the production version as of the week (see ``production_as_of``).
    """
    if not previous.empty:
        recorded = previous.iloc[-1]["champion_version"]
        return ctx.provider.registry.get_version(ctx.model_name, recorded) if recorded else None
    return production_as_of(ctx, ctx.week)
