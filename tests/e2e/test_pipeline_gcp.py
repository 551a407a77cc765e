"""The whole loop on the GCP provider, against fake-gcs-server, bqemulator and the Vertex AI stand-in.

``retrain_pipeline`` runs with ``provider = "gcp"`` in astro.toml - the only change - for two
weeks (covariate drift in the second), then a re-run of the second week, each with
``dag.test()``. The training jobs really run (the package's ``vertex_train`` in a child
process), the endpoint and the batch prediction jobs really serve (``vertex_serve``), BigQuery
SQL really executes; the tests assert on what the runs wrote there and on the Vertex AI
requests, each of which met Vertex AI's published schema.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from emulators import GCP_BUCKET, gcp_sections
from helpers import clear_runs, record_deferred_waits, run_dag, run_state, task_states, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]
WEEKS = ["2026-W01", "2026-W02"]
DRIFT_WEEK = "2026-W02"
ROWS = 600


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path, gcp_env, monitoring_standin):
    """Run the pipeline for two weeks on the GCP provider; spy on the deferred waits.

    Before the runs, Cloud Monitoring (its stand-in) holds the first week's serving metrics of the
    model's endpoint, as Vertex AI would have written them: ``SERVED`` responses by code.
    """
    vertex = gcp_env[2]
    folder = tmp_path_factory.mktemp("gcp-loop")
    config = write_config(
        folder,
        data={"rows_per_week": ROWS, "covariate_drift_from_week": DRIFT_WEEK},
        model={"params": {"max_iter": 20}},
        hardware={
            "training": {"gcp": {"machine_type": "n1-highmem-4", "spot": True, "max_run_seconds": 3600}},
            "inference": {"gcp": {"machine_type": "n1-standard-2"}},
        },
        **gcp_sections(
            GCP_BUCKET, f"e2e-{folder.name}".replace("_", "-"), vertex.url, monitoring_standin.url
        ),
    )  # fmt: skip
    os.environ["MLOPS_CONFIG"] = str(config)
    _served_in_the_first_week(monitoring_standin, config)
    clear_runs("retrain_pipeline", "rollback_model")
    patch = pytest.MonkeyPatch()
    deferred = record_deferred_waits(patch)
    start = len(vertex.requests)
    rejected_before = len(vertex.rejected)  # the stand-in is the session's: other tests' refusals
    monitoring_rejected_before = len(monitoring_standin.rejected)
    try:
        from core.config import load_settings
        from lifecycle.context import StageContext

        runs = {week: run_dag("retrain_pipeline", week) for week in WEEKS}
        ctx = StageContext(settings=load_settings(config), week=WEEKS[-1], actor="test")
        yield {
            "runs": runs,
            "ctx": ctx,
            "vertex": vertex,
            "start": start,
            "deferred": deferred,
            "rejected_before": rejected_before,
            "monitoring": monitoring_standin,
            "monitoring_rejected_before": monitoring_rejected_before,
        }
    finally:
        patch.undo()
        os.environ.pop("MLOPS_CONFIG", None)


#: the first week's responses by code, in Cloud Monitoring before the runs
SERVED = {"200": 48, "400": 2, "500": 1}


def _served_in_the_first_week(monitoring, config: Path) -> None:
    from datetime import timedelta

    from emulators import GCP_PROJECT, GCP_REGION

    from core.config import load_settings
    from lifecycle.operations import week_window
    from providers.gcp.config import GcpSettings
    from providers.gcp.endpoint import VertexEndpoint

    settings = load_settings(config)
    endpoint_id = VertexEndpoint(GcpSettings.from_settings(settings), GCP_PROJECT, None, "").endpoint_id(
        settings.model_name
    )  # type: ignore[arg-type]
    start, _ = week_window(WEEKS[0])
    minute = start + timedelta(days=2)
    interval = {"startTime": (minute - timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
                "endTime": minute.isoformat().replace("+00:00", "Z")}  # fmt: skip
    for code, count in SERVED.items():
        monitoring.put(
            GCP_PROJECT, "aiplatform.googleapis.com/prediction/online/response_count",
            {"resource_container": "123456789", "location": GCP_REGION, "endpoint_id": endpoint_id},
            {"deployed_model_id": "1", "response_code": code},
            [{"interval": interval, "value": {"int64Value": str(count)}}],
        )  # fmt: skip


def _calls(loop, method: str) -> list:
    return [body for short, _, body in loop["vertex"].requests[loop["start"] :] if short == method]


def test_every_week_succeeds_on_gcp(loop) -> None:
    assert loop["ctx"].provider.name == "gcp"
    for week, run in loop["runs"].items():
        print(week, {ti.task_id: round(ti.duration or 0, 1) for ti in run.get_task_instances()})
        assert run_state(run) == "success", (week, task_states(run))
    refused = loop["vertex"].rejected[loop["rejected_before"] :]
    assert [r for r in refused if r[1] == "INVALID_ARGUMENT"] == []  # all met the schema


def test_training_ran_as_custom_jobs_from_the_profile_and_was_deferred(loop) -> None:
    from google.cloud import aiplatform_v1

    jobs = _calls(loop, "customJobs.create")
    assert len(jobs) == len(WEEKS)
    assert [name for kind, name in loop["deferred"] if kind == "training"] == [j["displayName"] for j in jobs]
    for week, job in zip(WEEKS, jobs, strict=True):
        assert job["displayName"].startswith(f"churn-{week.lower()}-")
        pool = job["jobSpec"]["workerPoolSpecs"][0]
        assert pool["machineSpec"] == {"machineType": "n1-highmem-4"}
        assert pool["pythonPackageSpec"]["executorImageUri"].endswith(
            "/vertex-ai/training/sklearn-cpu.1-6:latest"
        )
        assert pool["pythonPackageSpec"]["pythonModule"] == "vertex_train"
        spot = aiplatform_v1.Scheduling.Strategy.SPOT.value  # the REST body carries enums as numbers
        assert job["jobSpec"]["scheduling"] == {"timeout": "3600s", "strategy": spot}
    states = {job["displayName"]: job["state"] for job in loop["vertex"].custom_jobs.values()}
    assert all(states[j["displayName"]] == "JOB_STATE_SUCCEEDED" for j in jobs)


def test_registry_has_a_version_per_week_and_production_is_the_vertex_alias(loop) -> None:
    ctx = loop["ctx"]
    registry = ctx.provider.registry
    versions = registry.list_versions(ctx.model_name)
    assert [v.version for v in versions] == ["1", "2"][: len(versions)] and len(versions) >= 1
    production = registry.get_alias(ctx.model_name, "production")
    holder = registry.client.get_model(name=f"{registry.model_resource(ctx.model_name)}@production")
    assert str(holder.version_id) == production.version


def test_the_endpoint_serves_production_and_rollouts_were_deferred(loop) -> None:
    ctx = loop["ctx"]
    production = ctx.provider.registry.get_alias(ctx.model_name, "production")
    assert ctx.provider.endpoint.current(ctx.model_name).version == production.version
    deploys = _calls(loop, "endpoints.deployModel")
    assert deploys and all(
        d["deployedModel"]["dedicatedResources"]["machineSpec"] == {"machineType": "n1-standard-2"}
        for d in deploys
    )
    assert len(_calls(loop, "endpoints.create")) == 1
    endpoint = ctx.provider.endpoint.client.get_endpoint(
        name=ctx.provider.endpoint.endpoint_resource(ctx.model_name)
    )
    assert len(endpoint.deployed_models) == 1  # the old one was undeployed
    assert [kind for kind, _ in loop["deferred"]].count("rollout") == len(deploys)


def test_batch_predictions_in_bigquery(loop) -> None:
    ctx = loop["ctx"]
    jobs = _calls(loop, "batchPredictionJobs.create")
    assert len(jobs) == len(WEEKS)
    assert [name for kind, name in loop["deferred"] if kind == "batch"] == [j["displayName"] for j in jobs]
    for week in WEEKS:
        predictions = ctx.provider.warehouse.read_rows("predictions", {"week": week})
        assert len(predictions) == ROWS and predictions["customer_id"].is_unique
        assert predictions["churn_probability"].between(0, 1).all()


def test_drift_detected_in_the_second_week(loop) -> None:
    summary = loop["ctx"].provider.warehouse.read_rows("drift_summary").set_index("week")
    assert bool(summary.loc[DRIFT_WEEK, "drift_detected"])
    assert not bool(summary.loc[WEEKS[0], "drift_detected"])


def test_each_weeks_serving_comes_from_cloud_monitoring(loop) -> None:
    ops = loop["ctx"].provider.warehouse.read_rows("ops_summary").set_index("week")
    first, second = ops.loc[WEEKS[0]], ops.loc[WEEKS[1]]
    assert (first["requests"], first["errors_4xx"], first["errors_5xx"]) == (sum(SERVED.values()), 2, 1)
    assert second["requests"] == 0  # the stand-in holds no metrics for the second week
    assert "Cloud Monitoring" in first["source"] and "Cloud Monitoring" in second["source"]
    assert loop["monitoring"].rejected[loop["monitoring_rejected_before"] :] == []


def test_rerun_reuses_the_jobs_and_duplicates_nothing(loop) -> None:
    ctx = loop["ctx"]
    warehouse, registry = ctx.provider.warehouse, ctx.provider.registry

    def counts():
        return (
            len(registry.list_versions(ctx.model_name)),
            len(warehouse.read_rows("predictions")),
            len(_calls(loop, "customJobs.create")),
            len(_calls(loop, "batchPredictionJobs.create")),
        )

    before = counts()
    run = run_dag("retrain_pipeline", DRIFT_WEEK)
    assert run_state(run) == "success", task_states(run)
    assert counts() == before  # the same job names: found and reused
