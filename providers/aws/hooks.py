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


def cloudwatch_client(conn_id: str) -> Any:
    """A CloudWatch client (metric data) with the connection's credentials."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    return AwsBaseHook(aws_conn_id=conn_id, client_type="cloudwatch").conn


@functools.lru_cache(maxsize=32)
def region_of(conn_id: str, configured: str = "") -> str:
    """The region: ``[aws] region`` if set, else the connection's, else boto's own configuration.

    Boto's own configuration is what the hooks' sessions fall back to: ``AWS_REGION`` /
    ``AWS_DEFAULT_REGION`` or the region of the connection's (or the default) profile. Nothing
    here talks to AWS.

    Raises:
        ConfigError: no region is set anywhere; the message names the settings to fill.
    """
    if configured:
        return configured
    import botocore.session
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    wrapper = AwsBaseHook(aws_conn_id=conn_id).conn_config  # the connection's extra, read once
    region = wrapper.region_name
    if not region:
        session = botocore.session.Session(profile=wrapper.profile_name or None)
        try:
            region = session.get_config_variable("region")
        except Exception:  # a profile named by the connection that is not in the AWS config
            region = None
    if not region:
        from core.errors import ConfigError

        raise ConfigError(
            'no AWS region: set [aws] region in astro.toml (e.g. region = "eu-west-1"), or '
            f"region_name in the extra of the Airflow connection {conn_id!r}"
        )
    return region


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
