"""The provider contract on the local provider (folder, subprocess, MLflow, FastAPI, DuckDB)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from helpers import EndpointServer, free_port, seed_mlflow_db

from contract.suites import (
    TRAFFIC,
    BatchContract,
    EndpointContract,
    RegistryContract,
    ServingReportContract,
    StorageContract,
    TrainingContract,
    WarehouseContract,
    smoke_rows,
    store_model,
    unique,
)
from providers.local.batch import ChunkedBatchScorer
from providers.local.endpoint import LocalHttpEndpoint
from providers.local.registry import MlflowModelRegistry
from providers.local.storage import LocalObjectStore
from providers.local.training import SubprocessTrainingJobs
from providers.local.warehouse import DuckDBWarehouse


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("local-contract")


@pytest.fixture(scope="module")
def registry_store(root) -> LocalObjectStore:
    return LocalObjectStore(root / "storage")


@pytest.fixture(scope="module")
def registry(root, registry_store, tmp_path_factory) -> MlflowModelRegistry:
    seed_mlflow_db(root / "mlflow", tmp_path_factory)
    return MlflowModelRegistry(root / "mlflow", registry_store)


@pytest.fixture(scope="module")
def native_alias(registry):
    def mlflow_alias(model: str, alias: str) -> str | None:
        """The version MLflow's own alias names (the ledger's mirror)."""
        from mlflow.exceptions import MlflowException

        try:
            return str(registry.client.get_model_version_by_alias(model, alias).version)
        except MlflowException:
            return None

    return mlflow_alias


@pytest.fixture(scope="module")
def tamper():
    def flip_a_byte(version) -> None:
        path = Path(unquote(urlparse(version.artifact_uri).path)) / "model.joblib"
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))

    return flip_a_byte


class TestLocalStorage(StorageContract):
    @pytest.fixture
    def store(self, tmp_path) -> LocalObjectStore:
        return LocalObjectStore(tmp_path / "store")


class TestLocalWarehouse(WarehouseContract):
    @pytest.fixture(scope="class")
    @classmethod
    def warehouse(cls, root) -> DuckDBWarehouse:
        return DuckDBWarehouse(root / "warehouse.duckdb")


class TestLocalTraining(TrainingContract):
    @pytest.fixture(scope="class")
    @classmethod
    def training_store(cls, registry_store):
        return registry_store

    @pytest.fixture(scope="class")
    @classmethod
    def training(cls, training_store) -> SubprocessTrainingJobs:
        return SubprocessTrainingJobs(training_store)


class TestLocalRegistry(RegistryContract):
    pass


class TestLocalEndpoint(EndpointContract):
    @pytest.fixture(scope="class")
    @classmethod
    def endpoint(cls, root, registry, registry_store):
        port = free_port()
        server = EndpointServer(root / "endpoint" / "deployments", port).wait_ready()
        try:
            yield LocalHttpEndpoint(root / "endpoint", registry, registry_store, host="127.0.0.1", port=port)
        finally:
            server.stop()


class TestLocalBatch(BatchContract):
    @pytest.fixture(scope="class")
    @classmethod
    def batch(cls, registry, registry_store) -> ChunkedBatchScorer:
        return ChunkedBatchScorer(registry_store, registry, chunk_rows=256)


class TestLocalServing(ServingReportContract):
    @pytest.fixture(scope="class")
    @classmethod
    def serving_traffic(cls, root, registry, registry_store):
        """Real requests to a server of its own: answered, invalid (422), and refused (503).

        The 503s are the endpoint's own: the deployment record is made to name the wrong
        sha256, so the server refuses to load the artifact. Stopping the server flushes its
        hourly record (a SIGTERM runs the app's shutdown).
        """
        import json
        from datetime import UTC, datetime, timedelta

        import httpx

        from core.serving_metrics import hour_of
        from providers.jobs import deploy

        model = unique("served")
        version = registry.register(
            model, store_model(registry_store, f"serving/{model}/model.joblib", 1), model, {}, {}, {}
        )
        folder = root / f"serving-{model}"
        port = free_port()
        endpoint = LocalHttpEndpoint(folder, registry, registry_store, host="127.0.0.1", port=port)
        start = hour_of(datetime.now(UTC))
        server = EndpointServer(folder / "deployments", port).wait_ready()
        try:
            deploy(endpoint, version)
            url, rows = f"{endpoint.url}/models/{model}/predict", smoke_rows(2)
            with httpx.Client(timeout=30) as client:
                answers = [client.post(url, json={"rows": rows}).status_code for _ in range(TRAFFIC["ok"])]
                answers += [client.post(url, json={"rows": []}).status_code for _ in range(TRAFFIC["4xx"])]
                record = folder / "deployments" / f"{model}.json"
                record.write_text(json.dumps({**json.loads(record.read_text()), "sha256": "0" * 64}))
                answers += [client.post(url, json={"rows": rows}).status_code for _ in range(TRAFFIC["5xx"])]
        finally:
            server.stop()
        assert answers == [200] * TRAFFIC["ok"] + [422] * TRAFFIC["4xx"] + [503] * TRAFFIC["5xx"]
        return endpoint, model, start, hour_of(datetime.now(UTC)) + timedelta(hours=1)
