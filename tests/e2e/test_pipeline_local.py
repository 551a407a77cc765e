"""The whole loop on the local provider, run in-process with dag.test() for consecutive weeks.

Weeks 2026-W01..W04 are clean; covariate drift is injected from 2026-W05. The tests assert on
what the runs wrote: data versions, registered models, the production alias, predictions,
drift rows, and exactly one triggered retrain.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import (
    EndpointServer,
    clear_runs,
    drift_retrain_runs,
    free_port,
    run_dag,
    run_state,
    task_states,
    write_config,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]
WEEKS = ["2026-W01", "2026-W02", "2026-W03", "2026-W04", "2026-W05"]
DRIFT_WEEK = "2026-W05"
ROWS = 2000


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path):
    """Run the pipeline for five weeks (drift in the last) against a fresh local provider."""
    folder = tmp_path_factory.mktemp("loop")
    port = free_port()
    config = write_config(
        folder,
        local={"endpoint_port": port},
        data={"rows_per_week": ROWS, "covariate_drift_from_week": DRIFT_WEEK},
        model={"params": {"max_iter": 60}},
    )
    os.environ["MLOPS_CONFIG"] = str(config)
    clear_runs("retrain_pipeline")
    server = EndpointServer(folder / "mlops" / "endpoint" / "deployments", port).wait_ready()
    try:
        from core.config import load_settings
        from lifecycle.context import StageContext

        runs = {week: run_dag("retrain_pipeline", week) for week in WEEKS}
        ctx = StageContext(settings=load_settings(config), week=WEEKS[-1], actor="test")
        yield {"runs": runs, "ctx": ctx, "server": server, "config": config}
    finally:
        server.stop()
        os.environ.pop("MLOPS_CONFIG", None)


def test_every_week_succeeds(loop) -> None:
    for week, run in loop["runs"].items():
        assert run_state(run) == "success", (week, task_states(run))


def test_one_data_version_per_week(loop) -> None:
    versions = loop["ctx"].provider.warehouse.read_rows("data_versions")
    assert sorted(versions["week"]) == WEEKS
    assert versions["data_version"].is_unique
    storage = loop["ctx"].provider.storage
    for key in versions["raw_key"]:
        assert storage.exists(key)


def test_models_registered_and_production_alias_set(loop) -> None:
    ctx = loop["ctx"]
    registry = ctx.provider.registry
    versions = registry.list_versions(ctx.model_name)
    assert len(versions) == len(WEEKS)  # one challenger a week
    production = registry.get_alias(ctx.model_name, "production")
    assert production is not None
    history = registry.alias_history(ctx.model_name, "production")
    assert history and history[-1].version == production.version
    assert history[0].previous_version is None
    # lineage recorded on the version
    assert production.tags["data_versions"] and production.tags["code_version"].startswith("sha256:")
    assert "n_jobs" in production.tags["hardware_profile"]
    assert 0.6 < production.metrics["validation_roc_auc"] <= 1.0
    # the endpoint serves production
    assert ctx.provider.endpoint.current(ctx.model_name).version == production.version


def test_predictions_for_every_row_of_every_week(loop) -> None:
    warehouse = loop["ctx"].provider.warehouse
    validated = warehouse.read_rows("validation_results")
    for week in WEEKS:
        predictions = warehouse.read_rows("predictions", {"week": week})
        expected = int(validated.loc[validated["week"] == week, "n_rows"].iloc[0])
        assert len(predictions) == expected == ROWS
        assert predictions["customer_id"].is_unique
        assert predictions["churn_probability"].between(0, 1).all()


def test_drift_rows_and_report(loop) -> None:
    ctx = loop["ctx"]
    summary = ctx.provider.warehouse.read_rows("drift_summary").set_index("week")
    assert sorted(summary.index) == WEEKS
    assert not summary.loc[WEEKS[:-1], "drift_detected"].any()
    assert summary.loc[DRIFT_WEEK, "drift_detected"]
    assert summary.loc[DRIFT_WEEK, "data_drifted"]
    metrics = ctx.provider.warehouse.read_rows("drift_metrics", {"week": DRIFT_WEEK})
    drifted = set(metrics.loc[metrics["drifted"].astype(bool), "feature"])
    assert {"monthly_charges", "sessions_last_30d"} <= drifted
    report = ctx.provider.storage.get_bytes(summary.loc[DRIFT_WEEK, "report_key"]).decode()
    assert "<html" in report.lower() and "monthly_charges" in report


def test_drift_triggered_exactly_one_retrain(loop) -> None:
    states = {week: task_states(run) for week, run in loop["runs"].items()}
    for week in WEEKS[:-1]:
        assert states[week]["trigger_retrain"] == "skipped", week
    assert states[DRIFT_WEEK]["trigger_retrain"] == "success"
    assert drift_retrain_runs() == [(f"drift_retrain__{DRIFT_WEEK}", {"week": DRIFT_WEEK, "reason": "drift"})]


def test_each_run_ends_with_its_summary(loop) -> None:
    from apps.ui.run_note import summary_of_run

    # before test_rerun_of_a_week_duplicates_nothing: a dag.test() of the same logical date
    # replaces the week's run, and these DagRun objects would find no task instances
    for week, run in loop["runs"].items():
        assert task_states(run)["run_summary"] == "success", week
        # what the plugin shows in the run's "Run summary" tab (and, under the scheduler, its note)
        summary = summary_of_run(run.dag_id, run.run_id)
        assert summary and summary.startswith(f"**{week}**: "), (week, summary)
        assert "- Gate: " in summary and "- Drift: " in summary, summary


def test_rerun_of_a_week_duplicates_nothing(loop) -> None:
    ctx = loop["ctx"]
    warehouse, registry = ctx.provider.warehouse, ctx.provider.registry
    before = {
        "versions": len(registry.list_versions(ctx.model_name)),
        "history": len(registry.alias_history(ctx.model_name, "production")),
        "data_versions": len(warehouse.read_rows("data_versions")),
        "predictions": len(warehouse.read_rows("predictions")),
        "retrains": drift_retrain_runs(),
    }
    for week in ("2026-W03", DRIFT_WEEK):
        assert run_state(run_dag("retrain_pipeline", week)) == "success"
    assert len(warehouse.read_rows("predictions", {"week": "2026-W03"})) == ROWS
    after = {
        "versions": len(registry.list_versions(ctx.model_name)),
        "history": len(registry.alias_history(ctx.model_name, "production")),
        "data_versions": len(warehouse.read_rows("data_versions")),
        "predictions": len(warehouse.read_rows("predictions")),
        "retrains": drift_retrain_runs(),
    }
    assert after == before


def test_the_triggered_retrain_trains_on_post_drift_data_only(loop) -> None:
    ctx = loop["ctx"]
    [(run_id, conf)] = drift_retrain_runs()
    run = run_dag("retrain_pipeline", conf=conf)
    assert run_state(run) == "success", task_states(run)
    assert task_states(run)["trigger_retrain"] == "skipped"  # a drift retrain never triggers another
    runs = ctx.provider.warehouse.read_rows("training_runs", {"week": DRIFT_WEEK})
    drift_runs = runs[runs["reason"] == "drift"]
    assert len(drift_runs) == 1
    assert drift_runs["train_weeks"].iloc[0] == f'["{DRIFT_WEEK}"]'
    assert len(drift_retrain_runs()) == 1


def test_rollback_points_production_and_the_endpoint_back(loop) -> None:
    ctx = loop["ctx"]
    registry, endpoint = ctx.provider.registry, ctx.provider.endpoint
    history = registry.alias_history(ctx.model_name, "production")
    current, previous = history[-1].version, history[-1].previous_version
    assert previous is not None
    run = run_dag("rollback_model", conf={"week": DRIFT_WEEK})
    assert run_state(run) == "success", task_states(run)
    assert registry.get_alias(ctx.model_name, "production").version == previous
    last = registry.alias_history(ctx.model_name, "production")[-1]
    assert (last.previous_version, last.version) == (current, previous)
    assert last.reason.startswith("manual rollback")
    assert endpoint.current(ctx.model_name).version == previous
    answer = endpoint.invoke(ctx.model_name, _sample_rows(ctx))
    assert answer["model_version"] == previous
    # batch scoring uses the restored version from its next run
    assert run_state(run_dag("batch_score", conf={"week": DRIFT_WEEK})) == "success"
    scored = ctx.provider.warehouse.read_rows("predictions", {"week": DRIFT_WEEK})
    assert set(scored["model_version"]) == {previous} and len(scored) == ROWS


def test_an_older_week_after_newer_ones_leaves_production_where_it_was(loop) -> None:
    """Point in time through the DAG: a week older than every trained one (as a backfill runs it).

    Its challenger is registered and passes (no production model existed as of that week), but
    production stays on the model trained on newer data, the endpoint keeps serving it, and the
    week is scored with the model of its time (its own challenger), not today's production.
    """
    ctx = loop["ctx"]
    registry, warehouse = ctx.provider.registry, ctx.provider.warehouse
    production = registry.get_alias(ctx.model_name, "production")
    history = registry.alias_history(ctx.model_name, "production")
    versions = {v.version for v in registry.list_versions(ctx.model_name)}
    week = "2025-W50"

    run = run_dag("retrain_pipeline", week)
    assert run_state(run) == "success", task_states(run)

    [evaluation] = warehouse.read_rows("evaluations", {"week": week}).to_dict(orient="records")
    assert evaluation["passed"] and not evaluation["promote"]
    assert evaluation["decision"].startswith(
        f"keep: production v{production.version} was trained on {production.tags['week']}, newer "
        f"than this week {week}"
    ), evaluation["decision"]
    [challenger] = {v.version for v in registry.list_versions(ctx.model_name)} - versions
    assert registry.get_alias(ctx.model_name, "production").version == production.version
    assert registry.alias_history(ctx.model_name, "production") == history
    assert ctx.provider.endpoint.current(ctx.model_name).version == production.version
    scored = warehouse.read_rows("predictions", {"week": week})
    assert set(scored["model_version"]) == {challenger} and len(scored) == ROWS


def _sample_rows(ctx) -> list[dict]:
    from demo.spec import ID_COLUMN, RAW_FEATURES
    from lifecycle.datasets import read_validated

    frame = read_validated(ctx, DRIFT_WEEK).head(3)
    return frame[[ID_COLUMN, *RAW_FEATURES]].to_dict(orient="records")
