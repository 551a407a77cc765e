"""The loop's safety nets, run in-process with dag.test() on the local provider.

From CSV files of the user's own (the ``source_uri`` Param): a good first week; a second week
whose challenger is worse than the champion (registered, not promoted); a third week whose file
is corrupted (validation stops the run before training, the data is quarantined with a report,
production is unchanged).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import EndpointServer, free_port, run_dag, run_state, task_states, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
GOOD, WORSE, CORRUPT = "2026-W10", "2026-W11", "2026-W12"
ROWS = 1500


@pytest.fixture(scope="module")
def failures(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path):
    from demo.sample_data import generate_week

    folder = tmp_path_factory.mktemp("failures")
    data = folder / "data"
    data.mkdir()
    for week in (GOOD, WORSE, CORRUPT):
        frame = generate_week(week, rows=ROWS, seed=7)
        if week == CORRUPT:
            frame = frame.drop(columns=["tenure_months"])  # a batch-level failure: a missing column
        frame.to_csv(data / f"churn_{week}.csv", index=False)
    conf = {"source_uri": str(data / "churn_{week}.csv")}
    port = free_port()
    good = write_config(folder / "good", local={"endpoint_port": port, "root": str(folder / "mlops")},
                        model={"params": {"max_iter": 60}})  # fmt: skip
    # The same project with a crippled model: one two-leaf tree cannot beat the champion.
    worse = write_config(folder / "worse", local={"endpoint_port": port, "root": str(folder / "mlops")},
                         model={"params": {"max_iter": 1, "max_leaf_nodes": 2}})  # fmt: skip
    server = EndpointServer(folder / "mlops" / "endpoint" / "deployments", port).wait_ready()
    runs = {}
    try:
        from core.config import load_settings
        from lifecycle.context import StageContext

        os.environ["MLOPS_CONFIG"] = str(good)
        runs[GOOD] = run_dag("retrain_pipeline", GOOD, conf)
        ctx = StageContext(settings=load_settings(good), week=GOOD, actor="test")
        production_after_good = ctx.provider.registry.get_alias(ctx.model_name, "production")
        os.environ["MLOPS_CONFIG"] = str(worse)
        runs[WORSE] = run_dag("retrain_pipeline", WORSE, conf)
        os.environ["MLOPS_CONFIG"] = str(good)
        runs[CORRUPT] = run_dag("retrain_pipeline", CORRUPT, conf)
        yield {"runs": runs, "ctx": ctx, "first_production": production_after_good}
    finally:
        server.stop()
        os.environ.pop("MLOPS_CONFIG", None)


def test_good_week_promotes_the_first_model(failures) -> None:
    assert run_state(failures["runs"][GOOD]) == "success", task_states(failures["runs"][GOOD])
    assert failures["first_production"] is not None


def test_worse_challenger_is_registered_but_not_promoted(failures) -> None:
    ctx = failures["ctx"]
    run = failures["runs"][WORSE]
    assert run_state(run) == "success", task_states(run)
    registry = ctx.provider.registry
    versions = registry.list_versions(ctx.model_name)
    assert len(versions) == 2
    challenger = versions[-1]
    assert challenger.tags["week"] == WORSE
    production = registry.get_alias(ctx.model_name, "production")
    assert production.version == failures["first_production"].version != challenger.version
    evaluation = ctx.provider.warehouse.read_rows("evaluations", {"week": WORSE}).iloc[0]
    assert not evaluation["passed"]
    assert evaluation["challenger_score"] < evaluation["champion_score"]
    assert evaluation["decision"].startswith("reject")
    assert len(registry.alias_history(ctx.model_name, "production")) == 1
    # the week was still scored, by the champion
    predictions = ctx.provider.warehouse.read_rows("predictions", {"week": WORSE})
    assert len(predictions) == ROWS and set(predictions["model_version"]) == {production.version}


def test_corrupted_week_stops_before_training(failures) -> None:
    run = failures["runs"][CORRUPT]
    states = task_states(run)
    assert run_state(run) == "failed"
    assert states["ingest_data"] == "success"
    assert states["validate_data"] == "failed"
    for task_id in ("train_model", "evaluate_model", "register_model", "deploy_model", "batch_score",
                    "monitor_drift"):  # fmt: skip
        assert states[task_id] == "upstream_failed", task_id
    [validate] = [ti for ti in run.get_task_instances() if ti.task_id == "validate_data"]
    assert validate.try_number == 1  # a deterministic failure is not retried


def test_corrupted_week_is_quarantined_with_a_report(failures) -> None:
    ctx = failures["ctx"]
    storage, warehouse = ctx.provider.storage, ctx.provider.warehouse
    result = warehouse.read_rows("validation_results", {"week": CORRUPT}).iloc[0]
    assert not result["passed"]
    assert "expect_table_columns_to_match_set" in result["failed_expectations"]
    quarantined = storage.list_keys(result["quarantine_key"])
    assert any(key.endswith("data.csv") for key in quarantined)
    report = storage.get_bytes(f"{result['quarantine_key']}/report.md").decode()
    assert "expect_table_columns_to_match_set" in report and "tenure_months" in report
    # the raw data is kept where ingest put it, and nothing was validated for training
    raw_key = warehouse.read_rows("data_versions", {"week": CORRUPT}).iloc[0]["raw_key"]
    assert storage.exists(raw_key)
    assert not storage.exists(f"validated/week={CORRUPT}/data.parquet")


def test_corrupted_week_leaves_production_unchanged(failures) -> None:
    ctx = failures["ctx"]
    registry, warehouse = ctx.provider.registry, ctx.provider.warehouse
    assert registry.get_alias(ctx.model_name, "production").version == failures["first_production"].version
    assert len(registry.list_versions(ctx.model_name)) == 2
    assert warehouse.read_rows("predictions", {"week": CORRUPT}).empty
    assert warehouse.read_rows("training_runs", {"week": CORRUPT}).empty
