"""The Azure provider: Blob Storage, Azure ML (command jobs, model registry, online endpoint), Synapse.

Storage goes through the Airflow microsoft-azure provider's WasbHook (``[azure] conn_id``), the
warehouse through the microsoft-mssql provider's MsSqlHook (``[azure] warehouse_conn_id``), and
Azure ML, which has no Airflow hook, through azure-ai-ml's MLClient with a credential built from
the Connection ``[azure] ml_conn_id`` (providers/azure/credentials.py). Cloud SDKs are imported
inside methods only, so loading this package is cheap.

Training and batch scoring are Azure ML command jobs running the code bundle
(providers/azure/bundle.py); the online endpoint is a managed online endpoint with blue/green
deployments (providers/azure/endpoint.py).

Layout in the container, under ``[azure] prefix``:

    <storage keys>                                   the same keys as the local provider
    _azureml/code/<hash>/bundle.tar.gz               the code bundle jobs unpack and run
    _azureml/code/<hash>/files/...                   the same files: an online deployment's code
    _azureml/batch/<job>/predictions.csv             a scoring job's output
    _azureml/registry/<model>/<registry_key>/...     registered artifacts (and registration claims)
    _azureml/registry/<model>/versions/<n>.json      version-number claims
    _registry/aliases/<model>/<alias>.json           the alias ledger (providers/ledger.py)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from providers.base import Provider

if TYPE_CHECKING:
    from core.config import Settings


def build_provider(settings: Settings) -> Provider:
    """Build the Azure provider from the ``[azure]`` section and the ``azure`` hardware profiles.

    Nothing is contacted here: the Azure ML workspace keys and credential are checked when the
    registry is first used.

    Raises:
        ConfigError: a setting is invalid; the message names the key.
    """
    from providers.azure.batch import AzureMLBatchScorer
    from providers.azure.config import AzureSettings
    from providers.azure.endpoint import AzureMLOnlineEndpoint
    from providers.azure.registry import AzureMLModelRegistry
    from providers.azure.storage import BlobObjectStore
    from providers.azure.training import AzureMLTrainingJobs
    from providers.azure.warehouse import SynapseWarehouse
    from providers.azure.workspace import Workspace

    azure = AzureSettings.from_settings(settings)
    storage = BlobObjectStore(azure.conn_id, azure.container, azure.prefix)
    workspace = Workspace(azure)  # one MLClient for the registry and the jobs
    registry = AzureMLModelRegistry(workspace, storage)
    return Provider(
        name="azure",
        storage=storage,
        training=AzureMLTrainingJobs(azure, workspace, storage),
        registry=registry,
        endpoint=AzureMLOnlineEndpoint(azure, workspace, storage, registry, settings.dataset),
        batch=AzureMLBatchScorer(azure, workspace, storage, registry, settings.dataset),
        warehouse=SynapseWarehouse(azure.warehouse_conn_id, azure.warehouse_schema),
        details={"container": azure.container, "prefix": azure.prefix, "workspace": azure.workspace},
    )
