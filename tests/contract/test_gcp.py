"""The provider contract on the GCP provider, against stand-ins that run here.

fake-gcs-server executes GCS (and its generation preconditions, which the alias ledger's
compare-and-set needs); bqemulator executes BigQuery SQL (DuckDB behind BigQuery's REST API);
the Vertex AI stand-in (tests/vertex_standin.py) checks every request against Vertex AI's own
discovery document and protos and keeps the model registry's versions and aliases. The Cloud
Monitoring stand-in (tests/monitoring_standin.py) answers the serving report's queries from the
time series a test puts in, checked against Cloud Monitoring's discovery document.
"""

from __future__ import annotations

import uuid

import pytest
from emulators import GCP_BUCKET, GCP_PROJECT, GCP_REGION

from contract.suites import (
    BatchContract,
    EndpointContract,
    RegistryContract,
    ServingReportContract,
    StorageContract,
    TrainingContract,
    WarehouseContract,
    unique,
)
from demo.spec import DEMO_SPEC
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


# --------------------------------------------------------------------------------------------
# the serving report (Cloud Monitoring)

#: Cloud Monitoring's linear buckets of the latency distribution the test puts: [0, 1), [1, 2)... ms
LATENCY_BUCKETS = {"linearBuckets": {"numFiniteBuckets": 100, "width": 1, "offset": 0}}


def _distribution(latencies_ms: list[int]) -> dict:
    counts = [0] * 102  # underflow, 100 finite buckets, overflow
    for ms in latencies_ms:
        counts[ms + 1] += 1
    return {"distributionValue": {
        "count": str(len(latencies_ms)), "mean": sum(latencies_ms) / len(latencies_ms),
        "bucketOptions": LATENCY_BUCKETS, "bucketCounts": [str(c) for c in counts],
    }}  # fmt: skip


class TestGcpServing(ServingReportContract):
    @pytest.fixture(scope="class")
    @classmethod
    def serving_traffic(cls, monitoring_standin):
        """Put the time series Vertex AI writes for an endpoint into the Cloud Monitoring stand-in.

        Per minute and deployed model: response_count by response_code (DELTA), the "total"
        prediction_latencies distribution (DELTA, ms) and the replica count (GAUGE), on the
        monitored resource aiplatform.googleapis.com/Endpoint of the model's endpoint. Traffic
        is split over two deployed models (a rollout in the window); an endpoint of another
        model in the same minutes must not be counted.
        """
        from datetime import UTC, datetime, timedelta

        from emulators import gcp_connection_env
        from helpers import environment
        from monitoring_standin import ENDPOINT_LABELS

        from contract.suites import TRAFFIC
        from core.serving_metrics import hour_of

        gcp = gcp_settings(
            "", f"serving-{uuid.uuid4().hex[:6]}", monitoring_api_endpoint=monitoring_standin.url
        )
        endpoint = VertexEndpoint(gcp, GCP_PROJECT, None, "n1-standard-2")  # type: ignore[arg-type]
        model = unique("served")
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        minutes = [now - timedelta(minutes=m) for m in (3, 2, 1)]

        def stamp(moment: datetime) -> str:
            return moment.isoformat().replace("+00:00", "Z")

        def delta(moment: datetime, value: dict) -> dict:
            return {"interval": {"startTime": stamp(moment - timedelta(minutes=1)), "endTime": stamp(moment)},
                    "value": value}  # fmt: skip

        def put(endpoint_id: str, metric: str, labels: dict, points: list[dict]) -> None:
            resource = dict(zip(ENDPOINT_LABELS, ("123456789", gcp.region, endpoint_id), strict=True))
            monitoring_standin.put(GCP_PROJECT, f"aiplatform.googleapis.com/prediction/online/{metric}",
                                   resource, labels, points)  # fmt: skip

        mine = endpoint.endpoint_id(model)
        put(
            mine,
            "response_count",
            {"deployed_model_id": "1", "response_code": "200"},
            [delta(minutes[0], {"int64Value": "12"}), delta(minutes[1], {"int64Value": "5"})],
        )
        put(
            mine,
            "response_count",
            {"deployed_model_id": "2", "response_code": "200"},
            [delta(minutes[2], {"int64Value": str(TRAFFIC["ok"] - 17)})],
        )
        put(
            mine,
            "response_count",
            {"deployed_model_id": "1", "response_code": "400"},
            [delta(minutes[0], {"int64Value": str(TRAFFIC["4xx"])})],
        )
        put(
            mine,
            "response_count",
            {"deployed_model_id": "2", "response_code": "503"},
            [delta(minutes[2], {"int64Value": str(TRAFFIC["5xx"])})],
        )
        latencies = list(range(1, sum(TRAFFIC.values()) + 1))  # 1..25 ms
        put(
            mine,
            "prediction_latencies",
            {"deployed_model_id": "1", "latency_type": "total"},
            [delta(minutes[0], _distribution(latencies[:15]))],
        )
        put(
            mine,
            "prediction_latencies",
            {"deployed_model_id": "2", "latency_type": "total"},
            [delta(minutes[2], _distribution(latencies[15:]))],
        )
        put(
            mine,
            "prediction_latencies",
            {"deployed_model_id": "2", "latency_type": "model"},
            [delta(minutes[2], _distribution([99]))],
        )  # not the total: not counted
        put(
            mine,
            "replicas",
            {"deployed_model_id": "1"},
            [{"interval": {"endTime": stamp(m)}, "value": {"int64Value": "1"}} for m in minutes],
        )
        put(
            f"{mine}-other",
            "response_count",
            {"deployed_model_id": "9", "response_code": "200"},
            [delta(minutes[1], {"int64Value": "999"})],
        )
        with environment(gcp_connection_env("gcp_test")):
            yield endpoint, model, hour_of(now) - timedelta(hours=1), hour_of(now) + timedelta(hours=1)
        assert monitoring_standin.rejected == [], "queries Cloud Monitoring would refuse"

    def test_latency_quantiles_come_from_the_distributions_buckets(self, serving_traffic):
        endpoint, model, start, end = serving_traffic
        report = endpoint.serving_report(model, start, end)
        # 1..25 ms, one per 1 ms bucket: each quantile within its bucket (13, 24 and 25 ms)
        assert (report.latency_p50_ms, report.latency_p95_ms, report.latency_p99_ms) == (13.5, 24.75, 25.75)
        assert report.instance_hours == pytest.approx(3 / 60)  # three one-minute replica samples
        assert report.cost_usd == pytest.approx(3 / 60 * 0.109)

    def test_a_refused_query_names_cloud_monitoring(self, serving_traffic, monitoring_standin):
        from providers.gcp.monitoring import MonitoringError

        endpoint, model, start, end = serving_traffic
        monitoring_standin.fail_next("PERMISSION_DENIED")
        try:
            with pytest.raises(
                MonitoringError, match=r"Cloud Monitoring refused .*HTTP 403.*monitoring.viewer"
            ):
                endpoint.serving_report(model, start, end)
        finally:
            monitoring_standin.rejected.clear()  # the cue's refusal, not the provider's


def test_the_monitoring_standin_refuses_what_cloud_monitoring_would(monitoring_standin):
    """Requests that break the published API are refused, as the service would (so the provider's pass)."""
    import requests

    url = f"{monitoring_standin.url}/v3/projects/{GCP_PROJECT}/timeSeries"
    metric = 'metric.type = "aiplatform.googleapis.com/prediction/online/response_count"'
    end = {
        "view": "FULL",
        "interval.endTime": "2026-01-01T00:00:00Z",
        "interval.startTime": "2025-12-31T00:00:00Z",
    }
    aligned = {**end, "aggregation.perSeriesAligner": "ALIGN_DELTA", "aggregation.alignmentPeriod": "60s"}
    cases = [
        (
            {**end, "filter": metric, "aggregation.perSeriesAligner": "ALIGN_SOMETHING"},
            400,
        ),  # not in the enum
        ({**end, "filter": metric, "aggregation.alignmentPeriod": "60"}, 400),  # not a duration
        ({**aligned, "filter": metric, "window": "7d"}, 400),  # an unknown parameter
        (
            {"filter": metric, "aggregation.perSeriesAligner": "ALIGN_DELTA"},
            400,
        ),  # interval.endTime is required
        (
            {**end, "filter": metric, "aggregation.crossSeriesReducer": "REDUCE_SUM"},
            400,
        ),  # reducer, no aligner
        ({**aligned, "filter": metric.replace("response_count", "replicas")}, 400),  # ALIGN_DELTA on a GAUGE
        ({**aligned, "filter": metric.replace("response_count", "nothing")}, 404),  # no such metric
        ({**aligned, "filter": metric + ' AND metric.labels.colour = "red"'}, 400),  # no such label
    ]
    for params, status in cases:
        answer = requests.get(url, params=params, timeout=10)
        assert answer.status_code == status, (params, answer.text)
        assert answer.json()["error"]["message"]
    good = {
        **end,
        "filter": metric,
        "aggregation.perSeriesAligner": "ALIGN_DELTA",
        "aggregation.alignmentPeriod": "60s",
    }
    assert requests.get(url, params=good, timeout=10).json() == {"timeSeries": []}
    monitoring_standin.rejected.clear()
