"""The Airflow Connection of the GCP provider: credentials and project, through GoogleBaseHook."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from core.errors import ConfigError


@lru_cache(maxsize=16)
def base_hook(conn_id: str) -> Any:
    """The GoogleBaseHook of a ``google_cloud_platform`` connection (cached: it is read once)."""
    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

    return GoogleBaseHook(gcp_conn_id=conn_id)


def project_of(conn_id: str, project: str = "") -> str:
    """The project: ``[gcp] project`` if set, else the connection's.

    Raises:
        ConfigError: neither names a project.
    """
    if project:
        return project
    found = base_hook(conn_id).project_id
    if not found:
        raise ConfigError(
            f"no GCP project: set [gcp] project in astro.toml, or 'project' in the extra of the "
            f"Airflow connection {conn_id!r}"
        )
    return found


def credentials_of(conn_id: str) -> Any:
    """The google-auth credentials of the connection (anonymous when its extra says so)."""
    return base_hook(conn_id).get_credentials()
