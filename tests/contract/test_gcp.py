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

from contract.suites import RegistryContract, StorageContract, WarehouseContract, unique
from providers.gcp.config import GcpSettings
from providers.gcp.registry import VertexModelRegistry
from providers.gcp.storage import GcsObjectStore, split_gs_uri
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
    return VertexModelRegistry(gcp, GCP_PROJECT, registry_store)


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
