"""The Azure ML workspace client (azure-ai-ml's MLClient), made once per provider."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from providers.azure.config import AzureSettings


class Workspace:
    """The MLClient of ``[azure]``'s workspace with the credential of ``[azure] ml_conn_id``.

    Args:
        azure: the provider's settings.
        credential: an azure-core TokenCredential to use instead of the connection's.
        client_options: extra MLClient keyword arguments (e.g. an azure-core ``transport``).
    """

    def __init__(self, azure: AzureSettings, credential: Any = None, **client_options: Any) -> None:
        self.azure = azure
        self._credential = credential
        self.client_options = client_options

    @cached_property
    def credential(self) -> Any:
        """The credential given, or the one of ``[azure] ml_conn_id`` (built on first use)."""
        from providers.azure.credentials import credential_from_connection

        return self._credential or credential_from_connection(self.azure.ml_conn_id)

    @cached_property
    def client(self) -> Any:
        """The MLClient (checks the workspace settings and builds the credential on first use)."""
        from azure.ai.ml import MLClient

        subscription, resource_group, workspace = self.azure.require_workspace()
        return MLClient(self.credential, subscription, resource_group, workspace, **self.client_options)

    @cached_property
    def metrics(self) -> Any:
        """Azure Monitor's metrics API with the same credential (and transport, if one was given)."""
        from providers.azure.monitor import AzureMonitorMetrics

        return AzureMonitorMetrics(self.credential, self.client_options.get("transport"))


def word(value: Any) -> str:
    """A state as the service spells it (``Completed``, ``Succeeded``): the SDK's enums print otherwise."""
    return str(getattr(value, "value", value))
