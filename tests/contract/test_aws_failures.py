"""The AWS provider's error paths, driven by stand-ins that fail on cue (tests/emulators.py).

An endpoint that never comes InService, a failed batch transform and its next attempt, a
transform over its payload limit, throttling, a registration whose claimant died, and two
registrations of one key racing.
"""

from __future__ import annotations

import threading
import uuid

import pandas as pd
import pytest
from botocore.exceptions import ClientError
from emulators import wait_for

from contract.suites import smoke_rows, store_model
from contract.test_aws import aws_settings
from demo.sample_data import generate_week, write_parquet_bytes
from demo.spec import DEMO_SPEC
from providers.aws.batch import SageMakerBatchScorer, TransformFailedError
from providers.aws.endpoint import EndpointUnavailableError, SageMakerEndpoint
from providers.aws.registry import SageMakerModelRegistry, group_name
from providers.aws.storage import S3ObjectStore
from providers.jobs import deploy, score
from providers.ledger import RegistryConflictError


@pytest.fixture(scope="module")
def aws(aws_env):
    return aws_settings(f"failures-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="module")
def store(aws) -> S3ObjectStore:
    return S3ObjectStore(aws.conn_id, aws.bucket, aws.prefix)


@pytest.fixture(scope="module")
def model_key(store) -> str:
    return store_model(store, "failures/model.joblib", seed=1)


def _registry(aws, store) -> SageMakerModelRegistry:
    return SageMakerModelRegistry(aws, store)


def _register(registry, model: str, key: str, model_key: str):
    return registry.register(model, model_key, registry_key=key, metrics={"validation_roc_auc": 0.8},
                             params={}, tags={"week": "2026-W05"})  # fmt: skip


@pytest.fixture(scope="module")
def version(aws, store, model_key):
    return _register(_registry(aws, store), f"fail-{uuid.uuid4().hex[:6]}", "k1", model_key)


# -- the registry -----------------------------------------------------------------------------


def test_racing_registrations_of_one_key_make_one_version(aws_env, aws, store, model_key) -> None:
    """Four writers register one key at once; the claim lets one create the package, and the
    others return that version (one of them waits for it: its first request is throttled)."""
    server = aws_env[0]
    model = f"race-{uuid.uuid4().hex[:6]}"
    before = server.rules.checked.get("sagemaker.CreateModelPackage", 0)
    server.rules.throttle("sagemaker.CreateModelPackage", 2)  # the winner is slowed: others must wait
    barrier, results, errors = threading.Barrier(4), [], []

    def register() -> None:
        barrier.wait()
        try:
            results.append(_register(_registry(aws, store), model, "same-key", model_key).version)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=register) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert errors == [] and results == [results[0]] * 4, (results, errors)
    packages = server.client("sagemaker").list_model_packages(ModelPackageGroupName=group_name(model))
    assert len(packages["ModelPackageSummaryList"]) == 1
    # one CreateModelPackage reached the service (after 2 throttled answers, retried by botocore)
    assert server.rules.checked["sagemaker.CreateModelPackage"] - before == 1
    assert server.rules.throttled["sagemaker.CreateModelPackage"] == 0


def test_a_claim_whose_registration_died_is_a_registry_conflict_naming_it(aws, store, model_key) -> None:
    model = f"dead-{uuid.uuid4().hex[:6]}"
    claim = f"_sagemaker/registry/{group_name(model)}/k9/claim.json"
    store.put_if_match(claim, b'{"registry_key": "k9"}', None)  # a registration killed after its claim
    registry = _registry(aws, store)
    registry.claim_wait_seconds = 2
    with pytest.raises(
        RegistryConflictError, match=r"k9 of dead-\w+ was claimed but no version appeared.*claim\.json"
    ):
        _register(registry, model, "k9", model_key)


# -- the endpoint -----------------------------------------------------------------------------


def test_an_endpoint_that_never_comes_up_is_unavailable_with_its_reason(aws_env, aws, store, version) -> None:
    stand_in = aws_env[1]
    endpoint = SageMakerEndpoint(aws, store, _registry(aws, store), DEMO_SPEC)
    stand_in.fail_endpoint = endpoint.endpoint_name(version.model_name)
    try:
        with pytest.raises(
            EndpointUnavailableError, match="did not come InService.*Failed.*ping health check"
        ):
            deploy(endpoint, version)
    finally:
        stand_in.fail_endpoint = None
    with pytest.raises(EndpointUnavailableError, match="did not answer.*ValidationError.*not found"):
        endpoint.invoke(version.model_name, smoke_rows(2))


def test_the_next_deploy_after_a_failed_create_serves_the_version(aws_env, aws, store, model_key) -> None:
    stand_in = aws_env[1]
    registry = _registry(aws, store)
    version = _register(registry, f"retry-{uuid.uuid4().hex[:6]}", "k1", model_key)
    endpoint = SageMakerEndpoint(aws, store, registry, DEMO_SPEC)
    stand_in.fail_endpoint = endpoint.endpoint_name(version.model_name)
    try:
        with pytest.raises(EndpointUnavailableError):
            deploy(endpoint, version)
    finally:
        stand_in.fail_endpoint = None
    assert deploy(endpoint, version).version == version.version
    # the failed endpoint was deleted and created again (SageMaker refuses to update it)
    name = endpoint.endpoint_name(version.model_name)
    assert [r["endpoint_name"] for r in stand_in.requests_of("CreateEndpoint")].count(name) == 2


def test_a_failed_update_keeps_the_endpoint_on_the_old_version(aws_env, aws, store, model_key) -> None:
    """SageMaker's blue/green: the new fleet fails its health check, the old one keeps serving."""
    stand_in = aws_env[1]
    registry = _registry(aws, store)
    model = f"upd-{uuid.uuid4().hex[:6]}"
    first, second = (_register(registry, model, key, model_key) for key in ("k1", "k2"))
    endpoint = SageMakerEndpoint(aws, store, registry, DEMO_SPEC)
    assert deploy(endpoint, first).version == first.version
    stand_in.fail_endpoint = endpoint.endpoint_name(model)
    try:
        with pytest.raises(EndpointUnavailableError, match=r"is InService on .*, not on .*ping health check"):
            deploy(endpoint, second)
    finally:
        stand_in.fail_endpoint = None
    assert endpoint.current(model).version == first.version
    assert str(endpoint.invoke(model, smoke_rows(2))["model_version"]) == first.version
    assert deploy(endpoint, second).version == second.version  # the next try, healthy, moves it


def test_throttled_calls_are_retried_and_endless_throttling_names_itself(
    aws_env, aws, store, version
) -> None:
    server = aws_env[0]
    endpoint = SageMakerEndpoint(aws, store, _registry(aws, store), DEMO_SPEC)
    server.rules.throttle("sagemaker.DescribeEndpoint", 2)
    assert endpoint.current(f"none-{uuid.uuid4().hex[:6]}") is None  # answered on the third try
    assert server.rules.throttled["sagemaker.DescribeEndpoint"] == 0
    server.rules.throttle("sagemaker.DescribeEndpoint", 100)
    try:
        with pytest.raises(ClientError, match="ThrottlingException"):
            endpoint.current("anything")
    finally:
        server.rules.throttle("sagemaker.DescribeEndpoint", 0)


# -- batch transform --------------------------------------------------------------------------


def test_a_failed_transform_raises_its_reason_and_the_retry_is_the_next_attempt(
    aws_env, aws, store, version
) -> None:
    stand_in = aws_env[1]
    endpoint = SageMakerEndpoint(aws, store, _registry(aws, store), DEMO_SPEC)
    batch = SageMakerBatchScorer(aws, store, endpoint, DEMO_SPEC)
    key = "failures/week.parquet"
    store.put_bytes(key, write_parquet_bytes(generate_week("2026-W05", 120, seed=5)))
    first = batch.job_name(version, key)
    stand_in.fail_transform = first
    try:
        with pytest.raises(TransformFailedError, match=rf"{first} ended Failed: AlgorithmError"):
            list(score(batch, version, key))
    finally:
        stand_in.fail_transform = None
    assert sum(len(chunk) for chunk in score(batch, version, key)) == 120  # the retry
    names = [r["transform_job_name"] for r in stand_in.requests_of("CreateTransformJob")]
    assert names[-2:] == [first, f"{first}-a2"]


def test_a_week_over_the_payload_limit_is_cut_into_parts_and_scored_whole(
    aws_env, aws, store, version
) -> None:
    """A week bigger than MaxPayloadInMB (1 MB here, 100 as shipped) is transformed in parts."""
    from demo.spec import ID_COLUMN

    stand_in = aws_env[1]
    endpoint = SageMakerEndpoint(aws, store, _registry(aws, store), DEMO_SPEC)
    batch = SageMakerBatchScorer(aws, store, endpoint, DEMO_SPEC)
    batch.max_payload_mb = 1
    frame = generate_week("2026-W06", 40_000, seed=6)
    key = f"failures/big-{uuid.uuid4().hex[:6]}.parquet"
    store.put_bytes(key, write_parquet_bytes(frame))
    head = store.client.head_object(Bucket=store.bucket, Key=store.object_name(key))
    assert head["ContentLength"] > 1024**2
    scored = pd.concat(list(score(batch, version, key)), ignore_index=True)
    # every row once, in the input's order, though the transform read several files
    assert scored[ID_COLUMN].astype(str).tolist() == frame[ID_COLUMN].astype(str).tolist()
    request = stand_in.requests_of("CreateTransformJob")[-1]
    parts = store.list_keys(f"_sagemaker/transform-input/{batch.job_name(version, key)}/")
    assert request["transform_input"]["DataSource"]["S3DataSource"]["S3Uri"].endswith("/part-")
    assert len([p for p in parts if p.endswith(".parquet")]) >= 2
    # a re-run finds the job and its parts: nothing is cut or submitted again
    before = len(stand_in.requests_of("CreateTransformJob"))
    assert sum(len(chunk) for chunk in score(batch, version, key)) == len(frame)
    assert len(stand_in.requests_of("CreateTransformJob")) == before


def test_a_transform_over_its_payload_limit_fails_when_the_input_is_not_split(aws_env) -> None:
    server = aws_env[0]
    name = f"payload-{uuid.uuid4().hex[:6]}"
    server.client("s3").put_object(
        Bucket="mlops-test", Key=f"{name}/in.parquet", Body=b"x" * (1024 * 1024 + 1)
    )
    client = server.client("sagemaker")
    client.create_transform_job(
        TransformJobName=name, ModelName="any-model", MaxPayloadInMB=1, BatchStrategy="SingleRecord",
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                        "S3Uri": f"s3://mlops-test/{name}/in.parquet"}},
                        "ContentType": "application/x-parquet", "SplitType": "None"},
        TransformOutput={"S3OutputPath": f"s3://mlops-test/{name}/out"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )  # fmt: skip
    status = lambda: client.describe_transform_job(TransformJobName=name)["TransformJobStatus"]  # noqa: E731
    wait_for(lambda: status() != "InProgress", timeout=60)
    job = client.describe_transform_job(TransformJobName=name)
    assert job["TransformJobStatus"] == "Failed"
    assert "1048577 bytes, over MaxPayloadInMB=1" in job["FailureReason"]
