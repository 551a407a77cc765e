"""The GCP provider: GCS, Vertex AI (training, Model Registry, endpoints, batch prediction), BigQuery.

Storage and the warehouse go through the Airflow google provider's hooks (GCSHook, BigQueryHook)
with the credentials of the Airflow Connection named in ``[gcp] conn_id`` of astro.toml; Vertex AI
through the google-cloud-aiplatform SDK's REST clients with the same connection's credentials
(providers/gcp/vertex.py says why). Cloud SDKs are imported inside methods only, so loading this
package is cheap.

Layout in the bucket, under ``[gcp] prefix``:

    <storage keys>                               the same keys as the local provider
    _vertex/registry/<model>/<registry key>/     registered artifacts (model.joblib,
                                                 registration.json) and registration claims
    _registry/aliases/<model>/<alias>.json       the alias ledger (providers/ledger.py)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from include.errors import ProviderNotAvailableError

if TYPE_CHECKING:
    from include.config import Settings
    from providers.base import Provider

# written: storage (GcsObjectStore), the warehouse (BigQueryWarehouse), the model registry
# (VertexModelRegistry); still to come on the job model: training, the endpoint, batch scoring
MISSING = ("training", "endpoint", "batch")


def build_provider(settings: Settings) -> Provider:
    """Build the GCP provider from ``[gcp]``.

    Raises:
        ConfigError: a setting is invalid.
        ProviderNotAvailableError: training, the endpoint and batch scoring are not written yet.
    """
    from providers.gcp.config import GcpSettings

    GcpSettings.from_settings(settings)  # a bad setting is reported first
    raise ProviderNotAvailableError(
        f"provider 'gcp' is not implemented in this version of the project for {', '.join(MISSING)} "
        "(storage, the model registry and the warehouse are); use 'local' or 'aws'"
    )
