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
    BatchContract,
    EndpointContract,
    RegistryContract,
    StorageContract,
    TrainingContract,
    WarehouseContract,
)
from include.demo.spec import DEMO_SPEC
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
