"""The provider contract on the Azure provider, against its stand-ins.

Azurite executes Blob Storage for real (conditional writes included). The Synapse stand-in
(tests/synapse_standin.py) checks every statement strictly as T-SQL and runs it on DuckDB. The
real MLClient talks to the Azure ML stand-in (tests/azureml_standin.py), which validates every
request body against the service's published REST schema. The serving report's Azure Monitor
metrics queries go through the same transport to the Azure Monitor stand-in
(tests/azure_monitor_standin.py), checked against the published metrics API.
"""

from __future__ import annotations

import json
import uuid

import pytest
from emulators import AZURE_CONTAINER

from contract.suites import (
    BatchContract,
    EndpointContract,
    RegistryContract,
    ServingReportContract,
    StorageContract,
    TrainingContract,
    WarehouseContract,
    smoke_rows,
    unique,
)
from demo.spec import DEMO_SPEC
from providers.azure.batch import AzureMLBatchScorer
from providers.azure.config import AzureSettings
from providers.azure.endpoint import AzureMLOnlineEndpoint
from providers.azure.registry import PRODUCTION_TAG, AzureMLModelRegistry
from providers.azure.storage import BlobObjectStore
from providers.azure.training import AzureMLTrainingJobs
from providers.azure.warehouse import SynapseWarehouse
from providers.azure.workspace import Workspace


class TestAzureStorage(StorageContract):
    @pytest.fixture
    def store(self, azure_env) -> BlobObjectStore:
        return BlobObjectStore("wasb_test", AZURE_CONTAINER, f"storage-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def synapse():
    from synapse_standin import SynapseStandIn

    return SynapseStandIn()


class TestAzureWarehouse(WarehouseContract):
    @pytest.fixture(scope="class")
    def warehouse(self, synapse) -> SynapseWarehouse:
        return SynapseWarehouse("synapse_test", "dbo", connect=synapse.connect)


# --------------------------------------------------------------------------------------------
# Azure ML


def azure_settings(prefix: str, **changes) -> AzureSettings:
    """Settings of the Azure provider on the stand-ins."""
    return AzureSettings(
        conn_id="wasb_test", container=AZURE_CONTAINER, prefix=prefix, ml_conn_id="azure_ml_test",
        subscription_id="00000000-0000-0000-0000-000000000000", resource_group="mlops-rg",
        workspace="mlops-ws", poll_seconds=1, warehouse_conn_id="synapse_test", **changes,
    )  # fmt: skip


@pytest.fixture(scope="module")
def azureml(azure_env):
    from azureml_standin import AzureMLStandIn

    stand_in = AzureMLStandIn(azure_env.connection_string)
    try:
        yield stand_in
    finally:
        stand_in.close()
        stand_in.join()
    assert stand_in.invalid == [], "requests that break the published REST schema"


@pytest.fixture(scope="module")
def azure(azure_env) -> AzureSettings:
    return azure_settings(f"contract-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="module")
def registry_store(azure) -> BlobObjectStore:
    return BlobObjectStore(azure.conn_id, azure.container, azure.prefix)


def workspace(azure: AzureSettings, azureml) -> Workspace:
    from azureml_standin import StaticTokenCredential

    return Workspace(azure, StaticTokenCredential(), transport=azureml.transport())


@pytest.fixture(scope="module")
def registry(azure, azureml, registry_store) -> AzureMLModelRegistry:
    return AzureMLModelRegistry(workspace(azure, azureml), registry_store)


@pytest.fixture(scope="module")
def native_alias(azure, azureml):
    def tagged(model: str, alias: str) -> str | None:
        """The version Azure ML tags as production (the ledger's mirror), read afresh."""
        assert alias == PRODUCTION_TAG, "only production is mirrored as a tag"
        fresh = AzureMLModelRegistry(
            workspace(azure, azureml), BlobObjectStore(azure.conn_id, azure.container, azure.prefix)
        )
        found = [v.version for v in fresh.list_versions(model) if v.tags.get(PRODUCTION_TAG) == "true"]
        assert len(found) <= 1, f"more than one version tagged production: {found}"
        return found[0] if found else None

    return tagged


@pytest.fixture(scope="module")
def tamper(registry_store):
    def flip_a_byte(version) -> None:
        """Replace the registered model.joblib with a copy that has one byte flipped."""
        key = registry_store.key_of_uri(version.artifact_uri)
        data = bytearray(registry_store.get_bytes(key))
        data[len(data) // 2] ^= 0xFF
        registry_store.put_bytes(key, bytes(data))

    return flip_a_byte


class TestAzureRegistry(RegistryContract):
    pass


class TestAzureTraining(TrainingContract):
    @pytest.fixture(scope="class")
    def training_store(self, registry_store):
        return registry_store

    @pytest.fixture(scope="class")
    def training(self, azure, azureml, training_store) -> AzureMLTrainingJobs:
        return AzureMLTrainingJobs(azure, workspace(azure, azureml), training_store)


class TestAzureBatch(BatchContract):
    @pytest.fixture(scope="class")
    def batch(self, azure, azureml, registry_store, registry) -> AzureMLBatchScorer:
        return AzureMLBatchScorer(
            azure, workspace(azure, azureml), registry_store, registry, DEMO_SPEC, chunk_rows=256
        )


@pytest.fixture(scope="module")
def endpoint(azure, azureml, registry_store, registry) -> AzureMLOnlineEndpoint:
    return AzureMLOnlineEndpoint(azure, workspace(azure, azureml), registry_store, registry, DEMO_SPEC)


class TestAzureEndpoint(EndpointContract):
    def test_blue_green_and_a_failed_deployment_keeps_the_traffic(
        self, endpoint, azureml, registry, artifacts
    ):
        from contract.suites import unique
        from providers.azure.endpoint import EndpointUnavailableError, deployment_name
        from providers.base import JobState
        from providers.jobs import deploy, wait

        model = unique("bg")
        first, second, broken = (
            self.register(registry, model, key, artifacts, seed=seed)
            for key, seed in (("a", 1), ("b", 2), ("c", 1))
        )
        name = endpoint.endpoint_name(model)
        blue, green = deployment_name(first), deployment_name(second)
        deploy(endpoint, first)
        handle = endpoint.start_rollout(second)  # green beside blue, no traffic yet
        assert azureml.endpoints[name]["properties"]["traffic"] == {blue: 100}
        assert sorted(azureml.deployments[name]) == sorted([blue, green])
        assert wait(endpoint, handle).state is JobState.SUCCEEDED
        assert endpoint.finish_rollout(second, handle).version == "2"
        assert azureml.endpoints[name]["properties"]["traffic"] == {green: 100}
        assert list(azureml.deployments[name]) == [green]  # blue removed only afterwards
        azureml.fail_deployments = deployment_name(broken)
        try:
            handle = endpoint.start_rollout(broken)
            status = wait(endpoint, handle)
        finally:
            azureml.fail_deployments = None
        assert status.state is JobState.FAILED and "Failed" in status.reason
        with pytest.raises(EndpointUnavailableError, match="Failed"):
            endpoint.finish_rollout(broken, handle)
        assert azureml.endpoints[name]["properties"]["traffic"] == {green: 100}
        assert list(azureml.deployments[name]) == [green]
        assert str(endpoint.invoke(model, smoke_rows())["model_version"]) == "2"


def test_a_failed_job_keeps_its_name_and_the_retry_is_attempt_two(azure, azureml, registry_store):
    from contract.suites import training_inputs, training_spec
    from core.errors import MLOpsError
    from providers.base import JobState
    from providers.jobs import wait

    training = AzureMLTrainingJobs(azure, workspace(azure, azureml), registry_store)
    name = f"contract-fail-{uuid.uuid4().hex[:6]}"
    spec = training_spec(name, *training_inputs(registry_store, f"training/{name}", weeks=1, rows=300))
    azureml.fail_jobs = name  # the job's script exits 1 (a hyperparameter the estimator refuses)
    try:
        first = training.submit(spec)
        assert first.name == name and wait(training, first).state is JobState.FAILED
    finally:
        azureml.fail_jobs = None
    with pytest.raises(MLOpsError, match=rf"{name} ended Failed"):
        training.collect(spec, first)
    second = training.submit(spec)
    assert second.name == f"{name}-a2" and not second.details["reused"]
    assert wait(training, second).state is JobState.SUCCEEDED
    assert training.collect(spec, second).details["job_name"] == f"{name}-a2"
    (_, _, body), *_ = azureml.requests_of("PUT", f"/jobs/{name}-a2")
    job = body["properties"]
    assert job["jobType"] == "Command" and job["computeId"].endswith("/computes/cpu-cluster")
    assert json.loads(job["environmentVariables"]["SM_HPS"]) == spec.hyperparameters


# --------------------------------------------------------------------------------------------
# the serving report (Azure Monitor)


class TestAzureServing(ServingReportContract):
    @pytest.fixture(scope="class")
    @classmethod
    def serving_traffic(cls, endpoint, azureml):
        """Put the per-minute metrics Azure ML emits for an endpoint into the Azure Monitor stand-in.

        On the endpoint: RequestsPerMinute by deployment and statusCodeClass, and its per-minute
        RequestLatency_P50/_P95/_P99; on its deployment: DeploymentCapacity. The endpoint is
        created through MLClient; its deployment is put in the Azure ML stand-in as the service
        would hold it (deploying a model for real is the endpoint contract's job). An endpoint of
        another model in the same minutes must not be counted.
        """
        from datetime import UTC, datetime, timedelta

        from contract.suites import TRAFFIC
        from core.serving_metrics import hour_of

        model = unique("served")
        name = endpoint.endpoint_name(model)
        created = endpoint._create_endpoint(name, model)
        deployment_id = f"{created.id}/deployments/blue"
        azureml.deployments.setdefault(name, {})["blue"] = {
            "id": deployment_id, "name": "blue", "location": "westeurope", "tags": {},
            "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
            "sku": {"name": "Default", "capacity": 1},
            "properties": {"endpointComputeType": "Managed", "instanceType": "Standard_DS2_v2",
                           "scaleSettings": {"scaleType": "Default"}, "provisioningState": "Succeeded"},
        }  # fmt: skip
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        minutes = [now - timedelta(minutes=m) for m in (3, 2, 1)]
        put = azureml.monitor.put
        put(
            created.id,
            "RequestsPerMinute",
            minutes[0],
            12,
            deployment="blue",
            statusCodeClass="2xx",
            statusCode="200",
        )
        put(created.id, "RequestsPerMinute", minutes[1], TRAFFIC["ok"] - 12, deployment="blue",
            statusCodeClass="2xx", statusCode="200")  # fmt: skip
        put(created.id, "RequestsPerMinute", minutes[1], TRAFFIC["4xx"], deployment="blue",
            statusCodeClass="4xx", statusCode="400")  # fmt: skip
        put(created.id, "RequestsPerMinute", minutes[2], TRAFFIC["5xx"], deployment="blue",
            statusCodeClass="5xx", statusCode="503")  # fmt: skip
        for minute, (p50, p95, p99) in zip(minutes, [(10, 20, 30), (12, 24, 36), (14, 28, 42)], strict=True):
            for metric, value in (
                ("RequestLatency_P50", p50),
                ("RequestLatency_P95", p95),
                ("RequestLatency_P99", p99),
            ):
                put(created.id, metric, minute, value, deployment="blue")
        for minute in minutes:
            put(deployment_id, "DeploymentCapacity", minute, 2, instanceId="i-0", State="Running")
        other = created.id.replace(name, f"{name}-x")
        put(
            other,
            "RequestsPerMinute",
            minutes[1],
            999,
            deployment="blue",
            statusCodeClass="2xx",
            statusCode="200",
        )
        yield endpoint, model, hour_of(now) - timedelta(hours=1), hour_of(now) + timedelta(hours=1)
        assert azureml.monitor.rejected == [], "queries Azure Monitor would refuse"

    def test_latency_and_capacity_are_azure_monitors_own(self, serving_traffic):
        endpoint, model, start, end = serving_traffic
        report = endpoint.serving_report(model, start, end)
        # Azure's per-minute percentiles, averaged over the window's minutes
        assert (report.latency_p50_ms, report.latency_p95_ms, report.latency_p99_ms) == (12, 24, 36)
        assert report.instance_hours == pytest.approx(3 * 2 / 60)  # two instances for three minutes
        assert report.cost_usd == pytest.approx(0.1 * 0.146)

    def test_a_refused_query_names_azure_monitor(self, serving_traffic, azureml):
        from providers.azure.monitor import MonitorError

        endpoint, model, start, end = serving_traffic
        azureml.monitor.fail_next(403)
        try:
            with pytest.raises(MonitorError, match=r"Azure Monitor refused .*HTTP 403.*Monitoring Reader"):
                endpoint.serving_report(model, start, end)
        finally:
            azureml.monitor.rejected.clear()  # the cue's refusal, not the provider's


def test_the_monitor_standin_refuses_what_azure_monitor_would(azureml, endpoint):
    """Queries that break the published API are refused, as the service would (so the provider's pass)."""
    from providers.azure.monitor import MonitorError

    model = unique("refused")
    created = endpoint._create_endpoint(endpoint.endpoint_name(model), model)
    metrics = endpoint.workspace.metrics
    span = {"timespan": "2026-01-01T00:00:00Z/2026-01-02T00:00:00Z", "interval": "FULL"}
    cases = [
        {**span, "metricnames": "RequestsPerHour"},  # not a published metric
        {**span, "metricnames": "RequestsPerMinute", "$filter": "colour eq '*'"},  # no such dimension
        {
            **span,
            "metricnames": "RequestLatency_P99",
            "$filter": "statusCodeClass eq '*'",
        },  # not its dimension
        {**span, "metricnames": "RequestsPerMinute", "resultType": "Everything"},  # not in the enum
        {**span, "metricnames": "RequestsPerMinute", "top": "ten"},  # not an integer
        {**span, "metricnames": "RequestsPerMinute", "granularity": "PT1M"},  # not a parameter
        {"timespan": "2026-01-02T00:00:00Z/2026-01-01T00:00:00Z", "metricnames": "RequestsPerMinute"},
    ]
    for params in cases:
        with pytest.raises(MonitorError, match="HTTP 400"):
            metrics.query(created.id, params)
    assert metrics.query(created.id, {**span, "metricnames": "RequestsPerMinute", "aggregation": "Total"})
    azureml.monitor.rejected.clear()
