"""The GCP provider: GCS, Vertex AI (training, Model Registry, endpoints, batch prediction), BigQuery.

Storage and the warehouse go through the Airflow google provider's hooks (GCSHook, BigQueryHook)
with the credentials of the Airflow Connection named in ``[gcp] conn_id`` of astro.toml; Vertex AI
through the google-cloud-aiplatform SDK's REST clients with the same connection's credentials
(providers/gcp/vertex.py says why). Cloud SDKs are imported inside methods only, so loading this
package is cheap.

Layout in the bucket, under ``[gcp] prefix``:

    <storage keys>                               the same keys as the local provider
    _vertex/code/<hash>/mlops_bundle-1.0.tar.gz  the package jobs install and serving images hold
    _vertex/registry/<model>/<registry key>/     registered artifacts (model.joblib,
                                                 registration.json) and registration claims
    _vertex/batch/<job>/                         batch prediction instances and output
    _registry/aliases/<model>/<alias>.json       the alias ledger (providers/ledger.py)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from providers.base import Provider

if TYPE_CHECKING:
    from core.config import Settings


def build_provider(settings: Settings) -> Provider:
    """Build the GCP provider from ``[gcp]`` and the ``gcp`` hardware profiles.

    Raises:
        ConfigError: a setting is invalid, or no project is set (``[gcp] project`` or the
            connection's ``project``).
    """
    from providers.gcp.batch import VertexBatchScorer
    from providers.gcp.config import GcpSettings
    from providers.gcp.endpoint import VertexEndpoint
    from providers.gcp.hooks import project_of
    from providers.gcp.registry import VertexModelRegistry
    from providers.gcp.storage import GcsObjectStore
    from providers.gcp.training import VertexTrainingJobs
    from providers.gcp.warehouse import BigQueryWarehouse

    gcp = GcpSettings.from_settings(settings)  # [gcp] and both hardware profiles, read once
    project = project_of(gcp.conn_id, gcp.project)  # a missing project fails here, saying what to set
    storage = GcsObjectStore(gcp.conn_id, gcp.bucket, gcp.prefix)
    registry = VertexModelRegistry(gcp, project, storage, settings.dataset)
    return Provider(
        name="gcp",
        storage=storage,
        training=VertexTrainingJobs(gcp, project, storage),
        registry=registry,
        endpoint=VertexEndpoint(gcp, project, registry, gcp.inference.machine_type),
        batch=VertexBatchScorer(
            gcp, project, storage, registry, settings.dataset, gcp.inference.machine_type
        ),
        warehouse=BigQueryWarehouse(gcp, project),
        details={"bucket": gcp.bucket, "prefix": gcp.prefix, "project": project, "region": gcp.region},
    )
