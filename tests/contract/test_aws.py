"""The provider contract on the AWS provider, against moto (S3, SageMaker) and PostgreSQL.

moto executes S3 and the Model Registry for real; SageMaker training, transform and endpoint
invocations are done by the test's container stand-in (tests/emulators.py), and PostgreSQL is
the SQL stand-in for Redshift (through PostgresHook).
"""

from __future__ import annotations

import io
import tarfile
import uuid

import pytest
from emulators import REGION, ROLE_ARN

from contract.suites import (
    TRAFFIC,
    BatchContract,
    EndpointContract,
    RegistryContract,
    ServingReportContract,
    StorageContract,
    TrainingContract,
    WarehouseContract,
)
from demo.spec import DEMO_SPEC
from providers.aws.batch import SageMakerBatchScorer
from providers.aws.config import AwsSettings
from providers.aws.endpoint import SageMakerEndpoint
from providers.aws.registry import SageMakerModelRegistry
from providers.aws.storage import S3ObjectStore, split_s3_uri
from providers.aws.training import SageMakerTrainingJobs
from providers.aws.warehouse import SqlWarehouse

BUCKET = "mlops-test"


def aws_settings(prefix: str, **changes) -> AwsSettings:
    """Settings of the AWS provider on the emulators."""
    return AwsSettings(
        conn_id="aws_test", bucket=BUCKET, prefix=prefix, region=REGION, role_arn=ROLE_ARN, poll_seconds=1,
        warehouse="postgres", warehouse_conn_id="warehouse_test", **changes,
    )  # fmt: skip


@pytest.fixture(scope="module")
def aws(aws_env) -> AwsSettings:
    return aws_settings(f"contract-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="module")
def registry_store(aws) -> S3ObjectStore:
    return S3ObjectStore(aws.conn_id, aws.bucket, aws.prefix)


@pytest.fixture(scope="module")
def registry(aws, registry_store) -> SageMakerModelRegistry:
    return SageMakerModelRegistry(aws, registry_store)


@pytest.fixture(scope="module")
def native_alias(aws):
    def approved(model: str, alias: str) -> str | None:
        """The version SageMaker has Approved (the ledger's mirror of production), read afresh."""
        assert alias == "production", "only production is mirrored as an approval status"
        found = [
            v.version for v in SageMakerModelRegistry(aws, S3ObjectStore(aws.conn_id, aws.bucket, aws.prefix))
            .list_versions(model) if v.tags["approval_status"] == "Approved"
        ]  # fmt: skip
        assert len(found) <= 1, f"more than one approved version: {found}"
        return found[0] if found else None

    return approved


@pytest.fixture(scope="module")
def tamper(registry_store):
    def flip_a_byte(version) -> None:
        """Replace the registered model.tar.gz with one whose model.joblib has a byte flipped."""
        bucket, key = split_s3_uri(version.artifact_uri)
        client = registry_store.client
        with tarfile.open(
            fileobj=io.BytesIO(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        ) as tar:
            data = bytearray(tar.extractfile("model.joblib").read())
        data[len(data) // 2] ^= 0xFF
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            info = tarfile.TarInfo("model.joblib")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(bytes(data)))
        client.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())

    return flip_a_byte


class TestAwsStorage(StorageContract):
    @pytest.fixture
    def store(self, aws_env) -> S3ObjectStore:
        return S3ObjectStore("aws_test", BUCKET, f"storage-{uuid.uuid4().hex[:8]}")


class TestAwsWarehouse(WarehouseContract):
    @pytest.fixture(scope="class")
    @classmethod
    def warehouse(cls, aws_env) -> SqlWarehouse:
        return SqlWarehouse("warehouse_test", "postgres", "public")


class TestAwsTraining(TrainingContract):
    @pytest.fixture(scope="class")
    @classmethod
    def training_store(cls, registry_store):
        return registry_store

    @pytest.fixture(scope="class")
    @classmethod
    def training(cls, aws, training_store) -> SageMakerTrainingJobs:
        return SageMakerTrainingJobs(aws, training_store)


class TestAwsRegistry(RegistryContract):
    pass


@pytest.fixture(scope="module")
def endpoint(aws, registry_store, registry) -> SageMakerEndpoint:
    return SageMakerEndpoint(aws, registry_store, registry, DEMO_SPEC)


class TestAwsEndpoint(EndpointContract):
    pass


class TestAwsBatch(BatchContract):
    @pytest.fixture(scope="class")
    @classmethod
    def batch(cls, aws, registry_store, endpoint) -> SageMakerBatchScorer:
        return SageMakerBatchScorer(aws, registry_store, endpoint, DEMO_SPEC, chunk_rows=256)


#: the model latencies (ms) the serving test puts: 1..25, so p50 = 13, p95 = 24, p99 = 25
LATENCIES_MS = list(range(1, sum(TRAFFIC.values()) + 1))


class TestAwsServing(ServingReportContract):
    @pytest.fixture(scope="class")
    @classmethod
    def serving_traffic(cls, aws, aws_env, endpoint):
        """Put the datapoints SageMaker publishes for an endpoint into moto's CloudWatch.

        Per minute and variant: Invocations, Invocation4XXErrors, Invocation5XXErrors (Count) and
        ModelLatency (Microseconds), dimensions EndpointName and VariantName, namespace
        AWS/SageMaker. moto stores them and answers GetMetricData from them; its missing
        percentiles come from tests/cloudwatch_percentiles.py.
        """
        from datetime import UTC, datetime, timedelta

        from cloudwatch_percentiles import installed

        from core.serving_metrics import hour_of

        moto, _, _ = aws_env
        model = f"served-{uuid.uuid4().hex[:6]}"
        name = endpoint.endpoint_name(model)
        dimensions = [{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": "AllTraffic"}]
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        minutes = [now - timedelta(minutes=m) for m in (3, 2, 1)]

        def datum(metric: str, when: datetime, value: float, unit: str = "Count") -> dict:
            return {
                "MetricName": metric,
                "Dimensions": dimensions,
                "Timestamp": when,
                "Value": value,
                "Unit": unit,
            }

        total = sum(TRAFFIC.values())
        data = [
            datum("Invocations", minutes[0], total - 10), datum("Invocations", minutes[1], 10),
            datum("Invocation4XXErrors", minutes[0], TRAFFIC["4xx"]),
            datum("Invocation4XXErrors", minutes[1], 0),
            datum("Invocation5XXErrors", minutes[2], TRAFFIC["5xx"]),
        ]  # fmt: skip
        latency = {"MetricName": "ModelLatency", "Dimensions": dimensions, "Timestamp": minutes[1],
                   "Values": [ms * 1000.0 for ms in LATENCIES_MS], "Unit": "Microseconds"}  # fmt: skip
        # an endpoint of another model in the same minutes must not be counted
        elsewhere = [{"Name": "EndpointName", "Value": f"{name}-other"}, dimensions[1]]
        other = [{**datum("Invocations", minutes[1], 999), "Dimensions": elsewhere}]
        moto.client("cloudwatch").put_metric_data(
            Namespace="AWS/SageMaker", MetricData=[*data, latency, *other]
        )
        with installed():
            yield endpoint, model, hour_of(now) - timedelta(hours=1), hour_of(now) + timedelta(hours=1)

    def test_latency_quantiles_are_cloudwatchs_own(self, serving_traffic):
        endpoint, model, start, end = serving_traffic
        report = endpoint.serving_report(model, start, end)
        assert (report.latency_p50_ms, report.latency_p95_ms, report.latency_p99_ms) == (13, 24, 25)
        assert report.instance_hours == 0 and report.cost_usd == 0  # no endpoint of the model exists
