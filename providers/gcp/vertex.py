"""Vertex AI clients: the google-cloud-aiplatform SDK's REST transport, with the Connection's credentials.

The Airflow google provider's Vertex AI hooks build their clients for
``<region>-aiplatform.googleapis.com:443`` over gRPC and take no endpoint, so they cannot reach a
Private Service Connect endpoint or a local stand-in; the SDK's own clients can. Credentials
still come only from the Airflow Connection (GoogleBaseHook), never from a file or the code.
"""

from __future__ import annotations

from typing import Any

from providers.gcp.config import GcpSettings
from providers.gcp.hooks import credentials_of

_CLIENTS = {
    "model": "ModelServiceClient",
    "job": "JobServiceClient",
    "endpoint": "EndpointServiceClient",
    "prediction": "PredictionServiceClient",
}


def api_endpoint(gcp: GcpSettings) -> str:
    """The Vertex AI API's host: ``[gcp] vertex_api_endpoint``, or the region's."""
    return gcp.vertex_api_endpoint or f"{gcp.region}-aiplatform.googleapis.com"


def vertex_client(kind: str, gcp: GcpSettings) -> Any:
    """A Vertex AI service client (``model``, ``job``, ``endpoint`` or ``prediction``) over REST."""
    from google.cloud import aiplatform_v1

    client_class = getattr(aiplatform_v1, _CLIENTS[kind])
    return client_class(
        credentials=credentials_of(gcp.conn_id),
        transport="rest",
        client_options={"api_endpoint": api_endpoint(gcp)},
    )


def location_path(gcp: GcpSettings, project: str) -> str:
    """``projects/<project>/locations/<region>``: the parent of every Vertex AI resource here."""
    return f"projects/{project}/locations/{gcp.region}"
