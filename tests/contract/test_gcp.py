"""The provider contract on the GCP provider, against stand-ins that run here.

fake-gcs-server executes GCS (and its generation preconditions, which the alias ledger's
compare-and-set needs); bqemulator executes BigQuery SQL (DuckDB behind BigQuery's REST API);
the Vertex AI stand-in (tests/vertex_standin.py) checks every request against Vertex AI's own
discovery document and protos and keeps the model registry's versions and aliases.
"""

from __future__ import annotations

import uuid

import pytest
from conftest import GCP_BUCKET
from emulators import GCP_PROJECT, GCP_REGION

from contract.suites import (
    BatchContract,
    EndpointContract,
    RegistryContract,
    StorageContract,
    TrainingContract,
    WarehouseContract,
    unique,
)
from include.demo.spec import DEMO_SPEC
from providers.gcp.batch import VertexBatchScorer
from providers.gcp.config import GcpSettings
from providers.gcp.endpoint import VertexEndpoint
from providers.gcp.registry import VertexModelRegistry
from providers.gcp.storage import GcsObjectStore, split_gs_uri
from providers.gcp.training import VertexTrainingJobs
from providers.gcp.warehouse import BigQueryWarehouse


def gcp_settings(vertex_url: str, prefix: str, **changes) -> GcpSettings:
    """Settings of the GCP provider on the stand-ins."""
    return GcpSettings(
        conn_id="gcp_test", project=GCP_PROJECT, region=GCP_REGION, bucket=GCP_BUCKET, prefix=prefix,
        dataset=f"contract_{uuid.uuid4().hex[:6]}", vertex_api_endpoint=vertex_url, poll_seconds=1,
        model_name="churn", **changes,
    )  # fmt: skip


@pytest.fixture(scope="module")
def gcp(gcp_env) -> GcpSettings:
    return gcp_settings(gcp_env[2].url, f"contract-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="module")
def registry_store(gcp) -> GcsObjectStore:
    return GcsObjectStore(gcp.conn_id, gcp.bucket, gcp.prefix)


@pytest.fixture(scope="module")
def registry(gcp, registry_store) -> VertexModelRegistry:
    return VertexModelRegistry(gcp, GCP_PROJECT, registry_store, DEMO_SPEC)


@pytest.fixture(scope="module")
def native_alias(gcp, registry_store):
    def vertex_alias(model: str, alias: str) -> str | None:
        """The version that holds the Vertex AI version alias (the ledger's mirror), read afresh."""
        from google.api_core.exceptions import NotFound

        fresh = VertexModelRegistry(gcp, GCP_PROJECT, registry_store)
        try:
            found = fresh.client.get_model(name=f"{fresh.model_resource(model)}@{alias}")
        except NotFound:
            return None
        holders = [v for v in fresh.client.list_model_versions(name=fresh.model_resource(model))
                   if alias in v.version_aliases]  # fmt: skip
        assert len(holders) == 1, f"{len(holders)} versions hold {alias}"
        return str(found.version_id)

    return vertex_alias


@pytest.fixture(scope="module")
def tamper(registry_store):
    def flip_a_byte(version) -> None:
        """Replace the registered model.joblib with one whose middle byte is flipped."""
        bucket, folder = split_gs_uri(version.artifact_uri)
        blob = registry_store.client.bucket(bucket).blob(f"{folder}/model.joblib")
        data = bytearray(blob.download_as_bytes())
        data[len(data) // 2] ^= 0xFF
        blob.upload_from_string(bytes(data))

    return flip_a_byte


class TestGcpStorage(StorageContract):
    @pytest.fixture
    def store(self, gcp_env) -> GcsObjectStore:
        return GcsObjectStore("gcp_test", GCP_BUCKET, f"storage-{uuid.uuid4().hex[:8]}")


class TestGcpWarehouse(WarehouseContract):
    @pytest.fixture(scope="class")
    def warehouse(self, gcp) -> BigQueryWarehouse:
        return BigQueryWarehouse(gcp, GCP_PROJECT)

    def test_query_leaves_literals_comments_casts_and_percent_alone(self, warehouse, timed_table):
        # BigQuery's dialect: "..." is a string literal, a cast is CAST(x AS STRING) (no ::), and
        # no driver formats '%'; placeholders in literals and comments stay text
        read = warehouse.query(
            f'SELECT n, "it\'s :week, 100%" AS lit, CAST(CAST(ts AS DATE) AS STRING) AS day '
            f"FROM {timed_table} -- :not_a_placeholder\n"
            f"WHERE note LIKE '100%' /* :nor_this */ AND n = :n;",
            {"n": 3},
        )
        assert read["lit"].tolist() == ["it's :week, 100%"] and read["day"].tolist() == ["2026-02-01"]


class TestGcpRegistry(RegistryContract):
    pass


class TestGcpTraining(TrainingContract):
    @pytest.fixture(scope="class")
    def training_store(self, registry_store):
        return registry_store

    @pytest.fixture(scope="class")
    def training(self, gcp, training_store) -> VertexTrainingJobs:
        return VertexTrainingJobs(gcp, GCP_PROJECT, training_store)


@pytest.fixture(scope="module")
def endpoint(gcp, registry) -> VertexEndpoint:
    return VertexEndpoint(gcp, GCP_PROJECT, registry, "n1-standard-2")


class TestGcpEndpoint(EndpointContract):
    pass


class TestGcpBatch(BatchContract):
    @pytest.fixture(scope="class")
    def batch(self, gcp, registry_store, registry) -> VertexBatchScorer:
        return VertexBatchScorer(
            gcp, GCP_PROJECT, registry_store, registry, DEMO_SPEC, "n1-standard-2", chunk_rows=256
        )


def test_every_registry_request_met_vertex_ais_schema(gcp_env, registry):
    """The stand-in refused none of the registry's requests: each one met Vertex AI's schema."""
    vertex = gcp_env[2]
    model = unique("schema")
    registry.register(model, store_key(registry), "k1", {}, {}, {})
    assert [r for r in vertex.rejected if r[0].startswith("models.") and r[1] == "INVALID_ARGUMENT"] == []
    (_, upload), *_ = [c for c in vertex.calls("models.upload") if c[1].get("modelId") == model]
    assert upload["model"]["labels"]["registry_key"] == "k1"


def store_key(registry) -> str:
    from contract.suites import store_model

    return store_model(registry.storage, f"schema-models/{uuid.uuid4().hex[:6]}/model.joblib", 1)


# --------------------------------------------------------------------------------------------
# GCP specifics: failures as Vertex AI reports them


def test_a_failed_job_reports_the_services_reason_and_the_retry_is_a_new_attempt(
    gcp_env, gcp, registry_store
):
    from contract.suites import training_inputs, training_spec
    from providers.gcp.training import TrainingFailedError
    from providers.jobs import wait

    vertex = gcp_env[2]
    training = VertexTrainingJobs(gcp, GCP_PROJECT, registry_store)
    name = f"failing-{uuid.uuid4().hex[:6]}"
    spec = training_spec(name, *training_inputs(registry_store, f"training/{name}", weeks=1, rows=200))
    vertex.fail_job(name, "The following quota metrics exceed quota limits: custom_model_training_cpus")
    handle = training.submit(spec)
    status = wait(training, handle)
    assert status.state.value == "failed" and "quota metrics exceed" in status.reason
    with pytest.raises(TrainingFailedError, match="quota metrics exceed"):
        training.collect(spec, handle)
    vertex.job_failures.clear()
    again = training.submit(spec)  # the failed attempt keeps its name: the retry is -a2
    assert again.name == f"{name}-a2" and wait(training, again).state.value == "succeeded"


def test_a_script_that_refuses_its_input_fails_the_job_with_its_stderr(gcp_env, gcp, registry_store):
    from contract.suites import training_inputs, training_spec
    from providers.jobs import wait

    training = VertexTrainingJobs(gcp, GCP_PROJECT, registry_store)
    name = f"badparam-{uuid.uuid4().hex[:6]}"
    spec = training_spec(name, *training_inputs(registry_store, f"training/{name}", weeks=1, rows=200))
    spec = type(spec)(**{**spec.__dict__, "hyperparameters": {"learning_rate": "not-a-number"}})
    status = wait(training, training.submit(spec))
    assert status.state.value == "failed"
    assert "exited with a non-zero status of 1" in status.reason and "learning_rate" in status.reason


def test_quota_exhausted_on_submit_starts_nothing(gcp_env, gcp, registry_store):
    from google.api_core.exceptions import TooManyRequests

    from contract.suites import training_inputs, training_spec

    vertex = gcp_env[2]
    training = VertexTrainingJobs(gcp, GCP_PROJECT, registry_store)
    name = f"quota-{uuid.uuid4().hex[:6]}"
    spec = training_spec(name, *training_inputs(registry_store, f"training/{name}", weeks=1, rows=200))
    vertex.fail_next("customJobs.create", "RESOURCE_EXHAUSTED")
    with pytest.raises(TooManyRequests):
        training.submit(spec)
    assert not [job for job in vertex.custom_jobs.values() if job["displayName"] == name]


def test_a_deployment_that_never_gets_ready_changes_nothing(gcp_env, endpoint, registry, registry_store):
    from contract.suites import store_model
    from providers.gcp.endpoint import EndpointUnavailableError
    from providers.jobs import deploy, wait

    vertex = gcp_env[2]
    model = unique("ready")
    key = store_model(registry_store, f"ready-models/{model}/model.joblib", 1)
    first, second = (registry.register(model, key, k, {}, {}, {}) for k in ("a", "b"))
    deploy(endpoint, first)
    vertex.fail_deploy()
    handle = endpoint.start_rollout(second)
    assert wait(endpoint, handle).state.value == "failed"
    with pytest.raises(EndpointUnavailableError, match="never became ready"):
        endpoint.finish_rollout(second, handle)
    served = endpoint.client.get_endpoint(name=endpoint.endpoint_resource(model))
    assert [m.model_version_id for m in served.deployed_models] == ["1"]
    assert endpoint.current(model).version == "1" and endpoint.invoke(model, _rows())["model_version"] == "1"


def _rows() -> list[dict]:
    from contract.suites import smoke_rows

    return smoke_rows(3)
