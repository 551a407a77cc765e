"""Point in time: a run for week W uses only the models of W's time.

- concept drift of W is measured on the model that was serving when W's rows arrived, not on
  a model trained on W in the same run;
- a backfilled week is gated against the production version as of that week, never moves
  production away from a model trained on newer data, and is scored with the model of its time.

The stage functions run directly on the local provider (no Airflow, no endpoint).
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

from helpers import STAGES_AFTER_TRAINING, STAGES_BEFORE_TRAINING, free_port, seed_loop, write_config

ALL_STAGES = STAGES_BEFORE_TRAINING + STAGES_AFTER_TRAINING


def _config(folder: Path, **data) -> Path:
    return write_config(
        folder,
        local={"endpoint_port": free_port()},
        data={"rows_per_week": 600, **data},
        model={"params": {"max_iter": 20}},
        # all the rows train: W03's model must beat W01's (early stopping keeps 10% of them aside)
        training={"early_stopping": False},
    )


def _run_week(config: Path, week: str, reason: str) -> tuple[object, dict]:
    """Every stage but deployment for a week, with a context built as the DAG builds it."""
    from core.config import load_settings
    from lifecycle.context import build_context

    ctx = build_context(
        week=week, logical_date=None, actor=f"{reason}-{week}", reason=reason, settings=load_settings(config)
    )
    results = {}
    for target in ALL_STAGES:
        module, function = target.rsplit(".", 1)
        result = getattr(importlib.import_module(f"lifecycle.{module}"), function)(ctx)
        # a typed result as its task's XCom holds it
        results[target] = dataclasses.asdict(result) if dataclasses.is_dataclass(result) else result
    return ctx, results


def _version_of(ctx, week: str):
    """The registered version trained for ``week`` (exactly one)."""
    versions = [v for v in ctx.provider.registry.list_versions(ctx.model_name) if v.tags.get("week") == week]
    assert len(versions) == 1, [(v.version, dict(v.tags)) for v in versions]
    return versions[0]


def _evaluation(ctx, week: str) -> dict:
    rows = ctx.provider.warehouse.read_rows("evaluations", {"week": week})
    assert len(rows) == 1, rows
    return rows.iloc[0].to_dict()


def _scored_with(ctx, week: str) -> set[str]:
    rows = ctx.provider.warehouse.read_rows("predictions", {"week": week}, columns=["model_version"])
    return set(rows["model_version"].astype(str))


def test_concept_drift_is_measured_on_the_model_that_served_the_week(tmp_path: Path) -> None:
    from core.ml.scoring.artifacts import load_model
    from lifecycle.datasets import holdout_mask, read_validated

    weeks = ["2026-W01", "2026-W02", "2026-W03"]
    config = _config(tmp_path, concept_drift_from_week=weeks[2])
    before = seed_loop(config, weeks[:2])
    served = before.provider.registry.get_alias(before.model_name, "production")  # when W03 arrived
    assert served.tags["week"] < weeks[2]
    ctx, results = _run_week(config, weeks[2], "scheduled")
    verdict = results["monitor.monitor_week"]

    assert _evaluation(ctx, weeks[2])["champion_version"] == served.version
    row = ctx.provider.warehouse.read_rows("drift_summary", {"week": weeks[2]}).iloc[0]
    assert bool(row["concept_drifted"]), row.to_dict()  # the concept drift is seen in its own week

    # the live metric is the serving model's on the week's labelled holdout
    spec, metric = ctx.settings.dataset, ctx.settings.gate_metric
    frame = read_validated(ctx, weeks[2])
    held_out = frame[holdout_mask(frame[spec.key_column], ctx.settings.training.holdout_fraction)]
    model = load_model(ctx.provider.registry.fetch_artifact(served, tmp_path / "served"), served.sha256)
    assert verdict["live_metric"] == float(model.metrics(held_out[held_out[spec.label].notna()])[metric])
    assert row["reference_metric"] == served.metrics[f"validation_{metric}"]
    assert verdict["concept_model_version"] == str(row["concept_model_version"]) == served.version
    report = ctx.provider.storage.get_bytes(verdict["report_key"]).decode()
    assert f"v{served.version}, the model serving when the week" in report
    # the finding carries its interval, retrains, and says so; re-running the monitor decides the same
    assert row["metric_drop_low"] > 0 and row["metric_drop"] > ctx.settings.drift.concept_metric_drop
    assert bool(row["retrain"]) and verdict["should_trigger_retrain"], row["decision"]
    assert "concept: roc_auc" in verdict["decision"] and "interval" in verdict["decision"]
    assert "<h2>Decision</h2>" in report and "concept: roc_auc" in report
    from lifecycle.monitor import monitor_week

    again = monitor_week(ctx)
    assert (again.decision, again.should_trigger_retrain) == (verdict["decision"], True)
    rerun = ctx.provider.warehouse.read_rows("drift_summary", {"week": weeks[2]}).iloc[0]
    assert rerun.drop("report_key").to_dict() == row.drop("report_key").to_dict()


def test_a_backfill_judges_past_weeks_with_the_models_of_their_time(tmp_path: Path) -> None:
    config = _config(tmp_path)
    ctx = seed_loop(config, ["2026-W10", "2026-W11"])
    registry = ctx.provider.registry
    production = registry.get_alias(ctx.model_name, "production")
    assert production.tags["week"] == "2026-W11"
    history = registry.alias_history(ctx.model_name, "production")

    for week in ("2026-W01", "2026-W02"):
        ctx, results = _run_week(config, week, "backfill")
        assert not results["register.register_challenger"]["promoted"]
        evaluation = _evaluation(ctx, week)
        # no production model existed as of these weeks: nothing of their time to compare with
        assert evaluation["champion_version"] == ""
        # the gate passed (nothing of its time to beat), but production stays on the newer model
        assert evaluation["passed"] and not evaluation["promote"]
        assert evaluation["decision"].startswith(
            f"keep: production v{production.version} was trained on 2026-W11, newer than this week {week}"
        ), evaluation["decision"]
        # scored with the model of its time (its own, registered but not promoted), not today's
        assert _scored_with(ctx, week) == {_version_of(ctx, week).version}
        # no model served the week before it was trained: concept drift is not measured
        assert results["monitor.monitor_week"]["concept_model_version"] == ""

    assert registry.get_alias(ctx.model_name, "production").version == production.version
    assert registry.alias_history(ctx.model_name, "production") == history


def test_a_backfill_between_weeks_compares_with_and_is_scored_by_the_production_of_its_time(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    ctx = seed_loop(config, ["2026-W01", "2026-W03"])
    registry = ctx.provider.registry
    of_its_time = _version_of(ctx, "2026-W01")
    production = registry.get_alias(ctx.model_name, "production")
    assert production.tags["week"] == "2026-W03"

    ctx, results = _run_week(config, "2026-W02", "backfill")
    evaluation = _evaluation(ctx, "2026-W02")
    assert evaluation["champion_version"] == of_its_time.version  # not today's production
    assert not evaluation["promote"]
    # the gate against v1 decides on its own merits: a challenger that loses is rejected; one that
    # wins is kept out of production, which holds a model trained on newer data
    decision = evaluation["decision"]
    assert decision.startswith(
        (
            f"keep: production v{production.version} was trained on 2026-W03, newer than this week "
            f"2026-W02 (against the production of its time, v{of_its_time.version}: promote: ",
            "reject: ",
        )
    ), decision
    assert f"vs champion v{of_its_time.version} " in decision
    assert evaluation["passed"] == decision.startswith("keep: ")  # a win kept out is still a win
    assert registry.get_alias(ctx.model_name, "production").version == production.version
    assert _scored_with(ctx, "2026-W02") == {of_its_time.version}  # the version that served W02
    assert results["monitor.monitor_week"]["concept_model_version"] == of_its_time.version

    # a re-run of the backfilled week changes nothing
    again, _ = _run_week(config, "2026-W02", "backfill")
    assert _evaluation(again, "2026-W02") == evaluation
    assert _scored_with(again, "2026-W02") == {of_its_time.version}

    # a deliberate re-score with today's model (batch_score's Param), which a re-run then keeps
    from lifecycle.score import score_week

    assert score_week(again, rescore_with_production=True).model_version == production.version
    assert _scored_with(again, "2026-W02") == {production.version}
    assert score_week(again).model_version == production.version


def test_an_evaluation_written_before_promote_existed_promotes_when_it_passed() -> None:
    from lifecycle.evaluate import promotes

    assert promotes({"passed": True, "promote": None}) and promotes({"passed": True, "promote": float("nan")})
    assert not promotes({"passed": False, "promote": None})
    assert not promotes({"passed": True, "promote": False})
