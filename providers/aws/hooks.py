"""Airflow hooks of the AWS provider, built from the Connection named in astro.toml."""

from __future__ import annotations

import functools
from typing import Any


def sagemaker_hook(conn_id: str) -> Any:
    """The SageMakerHook of the connection."""
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

    return SageMakerHook(aws_conn_id=conn_id)


def runtime_client(conn_id: str) -> Any:
    """A ``sagemaker-runtime`` client (invoke_endpoint) with the connection's credentials."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    return AwsBaseHook(aws_conn_id=conn_id, client_type="sagemaker-runtime").conn


@functools.lru_cache(maxsize=32)
def region_of(conn_id: str, configured: str = "") -> str:
    """The region: ``[aws] region`` if set, else the connection's ``region_name``."""
    if configured:
        return configured
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    region = AwsBaseHook(aws_conn_id=conn_id, client_type="sts").conn_region_name
    if not region:
        from include.errors import ConfigError

        raise ConfigError(
            "no AWS region: set [aws] region in astro.toml or region_name in the extra of "
            f"connection {conn_id!r}"
        )
    return region


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
