"""Opt-in: the AWS provider against a real account (a small, real SageMaker job; costs cents).

Run with ``pytest -m live_aws`` after setting:

- ``MLOPS_LIVE_AWS_CONFIG``: an astro.toml whose ``[aws]`` section names your bucket, prefix,
  region, ``role_arn`` (a SageMaker execution role that can read/write the bucket) and the
  connection id (default ``aws_default``);
- that Airflow Connection, e.g. ``AIRFLOW_CONN_AWS_DEFAULT='{"conn_type": "aws", "extra":
  {"region_name": "eu-west-1"}}'`` (keys from the usual AWS credential chain or in the
  connection).

It uploads a little data, trains for real on ``[hardware.training.aws]`` (a few minutes,
billed per second), registers the model in SageMaker Model Registry, moves ``production`` and
scores with a batch transform job. ``MLOPS_LIVE_AWS_ENDPOINT=1`` also deploys a real endpoint,
smoke-tests it and deletes it afterwards (endpoints are billed per hour while they exist).
Every object it writes is under ``<prefix>/live-<random>/``.
"""

from __future__ import annotations

import os
import uuid

import pytest

from providers.jobs import deploy, run_training, score

pytestmark = [pytest.mark.live_aws, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def provider():
    config = os.environ.get("MLOPS_LIVE_AWS_CONFIG")
    if not config:
        pytest.skip("set MLOPS_LIVE_AWS_CONFIG to an astro.toml with a real [aws] section to run this")
    import dataclasses

    from core.config import load_settings
    from providers import get_provider

    settings = load_settings(config).with_overrides(provider="aws")
    section = dict(settings.provider_sections["aws"])
    section["prefix"] = f"{section.get('prefix', 'mlops')}/live-{uuid.uuid4().hex[:8]}"
    settings = dataclasses.replace(settings, provider_sections={**settings.provider_sections, "aws": section})
    provider = get_provider(settings)
    try:
        provider.storage.list_keys("")
    except Exception as exc:  # configured but unusable: a failure to fix, not a skip to miss
        pytest.fail(
            f"MLOPS_LIVE_AWS_CONFIG is set but the AWS provider cannot list {section.get('bucket')!r} "
            f"with connection {section.get('conn_id', 'aws_default')!r}: {exc}"
        )
    return provider


def test_a_small_real_training_registration_and_batch_transform(provider, tmp_path):
    from contract.suites import smoke_rows, training_inputs, training_spec

    from demo.sample_data import generate_week, write_parquet_bytes

    name = f"churn-live-{uuid.uuid4().hex[:8]}"
    spec = training_spec(name, *training_inputs(provider.storage, f"training/{name}", rows=400))
    result = run_training(provider.training, spec)  # a real SageMaker job; waits in this process
    assert 0.5 < result.metrics["validation_roc_auc"] <= 1.0
    assert run_training(provider.training, spec).reused  # the same name finds the finished job

    registry = provider.registry
    version = registry.register("churn_live", result.model_key, registry_key=name, metrics=result.metrics,
                                params=dict(spec.hyperparameters), tags={"live": "yes"})  # fmt: skip
    assert registry.register("churn_live", result.model_key, registry_key=name, metrics={}, params={},
                             tags={}).version == version.version  # fmt: skip
    registry.set_alias("churn_live", "production", version.version, "live test", "pytest")
    assert registry.get_alias("churn_live", "production").tags["approval_status"] == "Approved"
    registry.fetch_artifact(version, tmp_path)

    key = "validated/live/data.parquet"
    provider.storage.put_bytes(key, write_parquet_bytes(generate_week("2026-W10", 200, seed=10)))
    scored = list(score(provider.batch, version, key))
    assert sum(len(chunk) for chunk in scored) == 200

    if os.environ.get("MLOPS_LIVE_AWS_ENDPOINT") == "1":
        endpoint = provider.endpoint
        try:
            deploy(endpoint, version)
            answer = endpoint.invoke("churn_live", smoke_rows(3))
            assert str(answer["model_version"]) == version.version and len(answer["predictions"]) == 3
        finally:
            endpoint.client.delete_endpoint(EndpointName=endpoint.endpoint_name("churn_live"))
