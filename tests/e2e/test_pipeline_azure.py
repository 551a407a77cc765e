"""The whole loop on the Azure provider, against Azurite, the Azure ML and the Synapse stand-ins.

``retrain_pipeline`` runs with ``provider = "azure"`` in astro.toml for two weeks (covariate
drift in the second), then a re-run of a week, each with ``dag.test()``. Azure ML has no
emulator and Synapse no engine here, so the test hands the provider the stand-ins where it
builds its clients (the MLClient's credential and transport, the SQL pool's DB-API connect):
everything else - the tasks, the deferred waits through ``ProviderJobTrigger``, the SDK's
requests, the jobs and the deployment's scoring process - runs as in production.
"""

from __future__ import annotations

import uuid

import pytest
from contract.suites import smoke_rows
from helpers import clear_runs, record_deferred_waits, run_dag, run_state, task_states, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
WEEKS = ["2026-W01", "2026-W02"]
DRIFT_WEEK = "2026-W02"
ROWS = 400


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory, airflow_db, azure_env):
    """Run the pipeline for two weeks on the Azure provider; spy on the deferred waits.

    Before the runs, Azure Monitor (its stand-in) holds the first week's RequestsPerMinute of
    the model's endpoint, as Azure ML would have emitted them: ``SERVED`` requests by class.
    """
    import os

    from azureml_standin import AzureMLStandIn, StaticTokenCredential
    from emulators import AZURE_CONTAINER
    from synapse_standin import SynapseStandIn

    from providers.azure import warehouse, workspace

    azureml, synapse = AzureMLStandIn(azure_env.connection_string), SynapseStandIn()
    patch = pytest.MonkeyPatch()
    original_workspace = workspace.Workspace.__init__

    def on_the_stand_in(self, azure, credential=None, **options):
        original_workspace(self, azure, StaticTokenCredential(), transport=azureml.transport())

    patch.setattr(workspace.Workspace, "__init__", on_the_stand_in)
    patch.setattr(warehouse.SynapseWarehouse, "connect", lambda self: synapse.connect())
    deferred = record_deferred_waits(patch)
    folder = tmp_path_factory.mktemp("azure-loop")
    config = write_config(
        folder,
        data={"rows_per_week": ROWS, "covariate_drift_from_week": DRIFT_WEEK},
        model={"params": {"max_iter": 20}},
        project={"provider": "azure"},
        azure={
            "conn_id": "wasb_test", "container": AZURE_CONTAINER, "prefix": f"e2e-{uuid.uuid4().hex[:6]}",
            "ml_conn_id": "azure_ml_test", "subscription_id": "00000000-0000-0000-0000-000000000000",
            "resource_group": "mlops-rg", "workspace": "mlops-ws", "poll_seconds": 1,
            "warehouse_conn_id": "synapse_test",
        },
        hardware={"training": {"azure": {"compute": "cpu-e2e", "instance_type": "Standard_DS3_v2"}}},
    )  # fmt: skip
    os.environ["MLOPS_CONFIG"] = str(config)
    _served_in_the_first_week(azureml, config)
    clear_runs("retrain_pipeline", "rollback_model")
    try:
        from core.config import load_settings
        from lifecycle.context import StageContext

        runs = {week: run_dag("retrain_pipeline", week) for week in WEEKS}
        ctx = StageContext(settings=load_settings(config), week=WEEKS[-1], actor="test")
        yield {"runs": runs, "ctx": ctx, "azureml": azureml, "deferred": deferred}
    finally:
        os.environ.pop("MLOPS_CONFIG", None)
        patch.undo()
        azureml.close()
        azureml.join()
    assert azureml.invalid == [], "requests that break the published REST schema"


#: the first week's requests by status class, in Azure Monitor before the runs
SERVED = {"2xx": 30, "4xx": 3, "5xx": 1}


def _served_in_the_first_week(azureml, config) -> None:
    from datetime import timedelta

    from core.config import load_settings
    from lifecycle.operations import week_window
    from providers.azure.config import AzureSettings

    azure = AzureSettings.from_settings(load_settings(config))
    endpoint_id = (
        f"/subscriptions/{azure.subscription_id}/resourceGroups/{azure.resource_group}/providers/"
        f"Microsoft.MachineLearningServices/workspaces/{azure.workspace}/onlineEndpoints/{azure.endpoint}"
    )
    start, _ = week_window(WEEKS[0])
    for code_class, count in SERVED.items():
        azureml.monitor.put(endpoint_id, "RequestsPerMinute", start + timedelta(days=2), count,
                            deployment="blue", statusCodeClass=code_class)  # fmt: skip


def _puts(loop, part: str) -> list[tuple[str, dict]]:
    return [(path, body) for _, path, body in loop["azureml"].requests_of("PUT", part)]


def test_every_week_succeeds_on_azure(loop) -> None:
    assert loop["ctx"].provider.name == "azure"
    for week, run in loop["runs"].items():
        assert run_state(run) == "success", (week, task_states(run))


def test_each_cloud_wait_was_deferred(loop) -> None:
    jobs = [path.rsplit("/", 1)[-1] for path, _ in _puts(loop, "/jobs/")]
    training = [name for name in jobs if not name.startswith("score-")]
    scoring = [name for name in jobs if name.startswith("score-")]
    assert len(training) == len(WEEKS) and len(scoring) == len(WEEKS)
    assert [name for kind, name in loop["deferred"] if kind == "training"] == training
    assert [name for kind, name in loop["deferred"] if kind == "batch"] == scoring
    deployments = [path.rsplit("/", 1)[-1] for path, _ in _puts(loop, "/deployments/")]
    assert deployments and [name for kind, name in loop["deferred"] if kind == "rollout"] == deployments
    for _, body in _puts(loop, "/jobs/"):
        assert body["properties"]["computeId"].endswith("/computes/cpu-e2e")


def test_the_endpoint_serves_production_and_predictions_reach_the_warehouse(loop) -> None:
    ctx = loop["ctx"]
    production = ctx.provider.registry.get_alias(ctx.model_name, "production")
    assert ctx.provider.endpoint.current(ctx.model_name).version == production.version
    name = ctx.provider.endpoint.endpoint_name(ctx.model_name)
    assert len(loop["azureml"].deployments[name]) == 1  # the old deployments were removed
    warehouse = ctx.provider.warehouse
    for week in WEEKS:
        predictions = warehouse.read_rows("predictions", {"week": week})
        assert len(predictions) == ROWS and predictions["customer_id"].is_unique
        assert predictions["churn_probability"].between(0, 1).all()


def test_each_weeks_serving_comes_from_azure_monitor(loop) -> None:
    ops = loop["ctx"].provider.warehouse.read_rows("ops_summary").set_index("week")
    first, second = ops.loc[WEEKS[0]], ops.loc[WEEKS[1]]
    assert (first["requests"], first["errors_4xx"], first["errors_5xx"]) == (sum(SERVED.values()), 3, 1)
    assert second["requests"] == 0  # the stand-in holds no metrics for the second week
    assert "Azure Monitor" in first["source"] and "Azure Monitor" in second["source"]
    assert loop["azureml"].monitor.rejected == []


def test_drift_detected_in_the_second_week(loop) -> None:
    summary = loop["ctx"].provider.warehouse.read_rows("drift_summary").set_index("week")
    assert bool(summary.loc[DRIFT_WEEK, "drift_detected"])
    assert task_states(loop["runs"][DRIFT_WEEK])["trigger_retrain"] == "success"


def test_rerun_reuses_the_jobs_and_duplicates_nothing(loop) -> None:
    ctx = loop["ctx"]
    warehouse, registry = ctx.provider.warehouse, ctx.provider.registry
    before = (len(registry.list_versions(ctx.model_name)), len(warehouse.read_rows("predictions")),
              len(_puts(loop, "/jobs/")))  # fmt: skip
    run = run_dag("retrain_pipeline", WEEKS[-1])
    assert run_state(run) == "success", task_states(run)
    after = (len(registry.list_versions(ctx.model_name)), len(warehouse.read_rows("predictions")),
             len(_puts(loop, "/jobs/")))  # fmt: skip
    assert after == before, [path.rsplit("/", 1)[-1] for path, _ in _puts(loop, "/jobs/")]


def test_drift_retrain_then_rollback(loop) -> None:
    ctx = loop["ctx"]
    run = run_dag("retrain_pipeline", conf={"week": DRIFT_WEEK, "reason": "drift"})
    assert run_state(run) == "success", task_states(run)
    runs = ctx.provider.warehouse.read_rows("training_runs", {"week": DRIFT_WEEK})
    assert list(runs.loc[runs["reason"] == "drift", "train_weeks"]) == [f'["{DRIFT_WEEK}"]']
    registry, endpoint = ctx.provider.registry, ctx.provider.endpoint
    history = registry.alias_history(ctx.model_name, "production")
    current, previous = history[-1].version, history[-1].previous_version
    assert previous is not None and current != previous
    run = run_dag("rollback_model", conf={"week": DRIFT_WEEK})
    assert run_state(run) == "success", task_states(run)
    assert registry.get_alias(ctx.model_name, "production").version == previous
    tagged = [v.version for v in registry.list_versions(ctx.model_name) if v.tags.get("production") == "true"]
    assert tagged == [previous]  # the Azure ML tag moved with the ledger
    assert endpoint.current(ctx.model_name).version == previous
    assert str(endpoint.invoke(ctx.model_name, smoke_rows())["model_version"]) == previous
