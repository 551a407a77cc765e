"""The ``[azure]`` section of astro.toml and the ``azure`` hardware profiles, checked once.

No credentials here: Blob Storage uses the Airflow Connection ``[azure] conn_id`` (a ``wasb``
connection), Azure ML the one in ``ml_conn_id`` (service principal, workload identity or
managed identity: see :mod:`providers.azure.credentials`) and Synapse the one in
``warehouse_conn_id`` (an ``mssql`` connection to the SQL pool).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.errors import ConfigError
from providers.settings import HardwareProfile, ProviderSettings

if TYPE_CHECKING:
    pass

# https://learn.microsoft.com/rest/api/storageservices/naming-and-referencing-containers--blobs--and-metadata
_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
_PREFIX = re.compile(r"^[A-Za-z0-9_.=\-]+(/[A-Za-z0-9_.=\-]+)*$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_RESOURCE_GROUP = re.compile(r"^[-\w._()]{1,90}(?<!\.)$")
_WORKSPACE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$")
_VM_SIZE = re.compile(r"^(Standard|Basic)_[A-Za-z0-9_]+$")
_ENDPOINT = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]$")  # 3-32 characters
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class TrainingProfile(HardwareProfile, use="training", cloud="azure"):
    """``[hardware.training.azure]``: the Azure ML compute a command job runs on."""

    compute: str = "cpu-cluster"  # an Azure ML compute cluster of the workspace
    instance_type: str = "Standard_DS3_v2"
    instance_count: int = 1
    low_priority: bool = False  # a low-priority (spot) cluster: cheaper, can be preempted
    max_run_seconds: int = 3 * 3600


@dataclass(frozen=True)
class InferenceProfile(HardwareProfile, use="inference", cloud="azure"):
    """``[hardware.inference.azure]``: the managed online deployment's and batch job's VMs."""

    instance_type: str = "Standard_DS2_v2"
    instance_count: int = 1


@dataclass(frozen=True)
class AzureSettings(ProviderSettings, cloud="azure"):
    """Everything the Azure provider reads from astro.toml (no credentials: those are Connections)."""

    conn_id: str = "wasb_default"  # Blob Storage (Airflow microsoft-azure provider's WasbHook)
    container: str = ""
    prefix: str = "mlops"
    ml_conn_id: str = "azure_ml_default"  # the Azure ML credential (an Airflow Connection)
    subscription_id: str = ""
    resource_group: str = ""
    workspace: str = ""
    # the curated scikit-learn environment jobs and deployments run in (AzureML-<name>@latest)
    environment: str = "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"
    endpoint_name: str = ""  # empty: mlops-<model name>
    poll_seconds: int = 30  # how often the deferred wait asks Azure ML about a job
    warehouse_conn_id: str = "synapse_default"  # an mssql Connection to the Synapse SQL pool
    warehouse_schema: str = "dbo"
    model_name: str = "model"
    training: TrainingProfile = field(default_factory=TrainingProfile)
    inference: InferenceProfile = field(default_factory=InferenceProfile)

    def check(self) -> None:
        """Check values that types alone do not catch (the Azure ML keys: see :meth:`require_workspace`)."""
        if not _CONTAINER.match(self.container or ""):
            raise ConfigError(
                f"[azure] container = {self.container!r} is not a Blob Storage container name (3-63 "
                "lowercase letters, digits and single hyphens): set it in astro.toml"
            )
        if not _PREFIX.match(self.prefix or ""):
            raise ConfigError(f"[azure] prefix = {self.prefix!r} must be a relative key prefix like 'mlops'")
        for key in ("conn_id", "ml_conn_id", "warehouse_conn_id"):
            if not getattr(self, key):
                raise ConfigError(f"[azure] {key} is empty: name the Airflow Connection to use")
        if self.endpoint_name and not _ENDPOINT.match(self.endpoint_name):
            raise ConfigError(
                f"[azure] endpoint_name = {self.endpoint_name!r} is not an online endpoint name: 3-32 "
                "letters, digits and hyphens, starting with a letter (or leave it empty)"
            )
        if not _SCHEMA.match(self.warehouse_schema):
            raise ConfigError(
                f"[azure] warehouse_schema = {self.warehouse_schema!r} must be lowercase letters, digits "
                "and underscores (e.g. 'dbo')"
            )
        if self.poll_seconds < 1:
            raise ConfigError("[azure] poll_seconds must be at least 1")
        for name, profile in (("training", self.training), ("inference", self.inference)):
            if not _VM_SIZE.match(profile.instance_type):
                raise ConfigError(
                    f"[hardware.{name}.azure] instance_type = {profile.instance_type!r} is not an Azure VM "
                    "size like 'Standard_DS3_v2'"
                )
            if not 1 <= profile.instance_count <= 100:
                raise ConfigError(f"[hardware.{name}.azure] instance_count must be between 1 and 100")
        if not self.training.compute:
            raise ConfigError("[hardware.training.azure] compute is empty: name the Azure ML compute cluster")

    def require_workspace(self) -> tuple[str, str, str]:
        """Return (subscription_id, resource_group, workspace), or say which key to set.

        Only Azure ML needs them (storage and the warehouse do not), so they are checked when
        the registry, a job or an endpoint is first used.
        """
        if not _UUID.match(self.subscription_id or ""):
            raise ConfigError(
                f"[azure] subscription_id = {self.subscription_id!r} is not a subscription id (a GUID "
                "like 00000000-0000-0000-0000-000000000000): set it to the Azure ML workspace's subscription"
            )
        if not _RESOURCE_GROUP.match(self.resource_group or ""):
            raise ConfigError(
                f"[azure] resource_group = {self.resource_group!r} is not a resource group name: set it to "
                "the Azure ML workspace's resource group"
            )
        if not _WORKSPACE.match(self.workspace or ""):
            raise ConfigError(
                f"[azure] workspace = {self.workspace!r} is not an Azure ML workspace name (3-33 letters, "
                "digits, '-' and '_'): set it in astro.toml"
            )
        return self.subscription_id, self.resource_group, self.workspace

    @property
    def endpoint(self) -> str:
        """The managed online endpoint's name."""
        if self.endpoint_name:
            return self.endpoint_name
        return f"mlops-{self.model_name}".replace("_", "-")[:32].rstrip("-")
