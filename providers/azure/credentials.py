"""The Azure ML credential, built from an Airflow Connection (never from a file in the repo).

The connection named in ``[azure] ml_conn_id`` (any type; the microsoft-azure provider's
``azure`` type has the fields) chooses one of three ways, checked in this order:

- **service principal**: ``login`` = client id, ``password`` = client secret, extra
  ``tenant_id`` -> ``ClientSecretCredential``;
- **workload identity** (AKS, Astro): extra ``workload_identity_tenant_id`` (and the client id in
  ``login`` or extra ``managed_identity_client_id``); the federated token file is the one the
  platform mounts (``AZURE_FEDERATED_TOKEN_FILE``) -> ``WorkloadIdentityCredential``;
- **managed identity** (an Azure VM, Container Apps): nothing else, or extra
  ``managed_identity_client_id`` for a user-assigned identity -> ``ManagedIdentityCredential``.

DefaultAzureCredential is deliberately not used: it also reads the Azure CLI's token cache and
other files of the machine, which would make a task's identity depend on where it runs.
"""

from __future__ import annotations

from typing import Any

from core.errors import ConfigError


def credential_kind(
    login: str | None, password: str | None, extra: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """Which azure.identity credential a connection's fields describe, and its arguments.

    Raises:
        ConfigError: a half-set service principal (names the missing field).
    """
    tenant = extra.get("tenant_id") or extra.get("tenantId")
    if login and password:
        if not tenant:
            raise ConfigError(
                "the Azure ML connection has a client id and secret but no tenant: set extra "
                "'tenant_id' to the service principal's Entra ID tenant"
            )
        return "ClientSecretCredential", {"tenant_id": tenant, "client_id": login, "client_secret": password}
    client_id = extra.get("managed_identity_client_id") or login or None
    if extra.get("workload_identity_tenant_id"):
        if not client_id:
            raise ConfigError(
                "the Azure ML connection uses workload identity but names no client id: set login or "
                "extra 'managed_identity_client_id'"
            )
        return "WorkloadIdentityCredential", {
            "tenant_id": extra["workload_identity_tenant_id"],
            "client_id": client_id,
        }
    return "ManagedIdentityCredential", ({"client_id": client_id} if client_id else {})


def credential_from_connection(conn_id: str) -> Any:
    """The azure.identity credential of the Airflow Connection ``conn_id`` (nothing is contacted yet).

    Raises:
        ConfigError: the connection does not exist or is half set; the message says what to set.
    """
    import azure.identity
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:
        raise ConfigError(
            f"no Airflow Connection {conn_id!r} for Azure ML ([azure] ml_conn_id): create it with a service "
            "principal, workload identity or managed identity (docs/azure.md, Connections)"
        ) from exc
    kind, arguments = credential_kind(conn.login, conn.password, conn.extra_dejson or {})
    return getattr(azure.identity, kind)(**arguments)
