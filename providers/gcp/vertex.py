"""Vertex AI clients: the google-cloud-aiplatform SDK's REST transport, with the Connection's credentials.

The Airflow google provider's Vertex AI hooks build their clients for
``<region>-aiplatform.googleapis.com:443`` over gRPC and take no endpoint, so they cannot reach a
Private Service Connect endpoint or a local stand-in; the SDK's own clients can. Credentials
still come only from the Airflow Connection (GoogleBaseHook), never from a file or the code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from providers.base import JobState, JobStatus
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


# Vertex AI's JobState names (the REST answers carry their numbers; the client gives the names)
RUNNING = (
    "JOB_STATE_QUEUED",
    "JOB_STATE_PENDING",
    "JOB_STATE_RUNNING",
    "JOB_STATE_UPDATING",
    "JOB_STATE_PAUSED",
)
SUCCEEDED = "JOB_STATE_SUCCEEDED"
ENDED_BADLY = ("JOB_STATE_FAILED", "JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED")


def state_name(job: Any) -> str:
    """A job's state as its JobState name (``JOB_STATE_RUNNING``)."""
    return getattr(job.state, "name", str(job.state))


def job_status(job: Any) -> JobStatus:
    """A custom or batch prediction job's state in the job model's words (its error if it failed)."""
    state = state_name(job)
    if state in RUNNING:
        return JobStatus(JobState.RUNNING, state)
    if state == SUCCEEDED:
        return JobStatus(JobState.SUCCEEDED)
    return JobStatus(JobState.FAILED, f"{state}: {job.error.message or 'no reason given'}")


def jobs_named(list_jobs: Callable[..., Any], parent: str, display_name: str) -> list[Any]:
    """The jobs of a display name (a ``list_*_jobs`` method's), newest first."""
    found = list_jobs(request={"parent": parent, "filter": f'display_name="{display_name}"'})
    return sorted(found, key=lambda job: job.create_time, reverse=True)
