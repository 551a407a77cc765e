"""The online endpoint on the local provider: the FastAPI app of include/serving on 127.0.0.1.

A deploy copies the verified artifact into the endpoint's folder and rewrites the model's
deployment record atomically; the running server picks it up on its next request.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include.errors import MLOpsError
from providers.base import (
    Deployment,
    JobHandle,
    JobState,
    JobStatus,
    ModelRegistry,
    ModelVersion,
    ObjectStore,
)
from providers.local import atomic


class EndpointUnavailableError(MLOpsError):
    """The endpoint did not answer (it may be starting, or not running)."""


class LocalHttpEndpoint:
    """Deploys to, and calls, the local endpoint server (``make serve``)."""

    def __init__(
        self, root: Path, registry: ModelRegistry, storage: ObjectStore, host: str, port: int
    ) -> None:
        self.root = Path(root).resolve()
        self.deployments = self.root / "deployments"
        self.models = self.root / "models"
        self.registry = registry
        self.storage = storage
        self.url = f"http://{host}:{port}"

    def _record_path(self, model_name: str) -> Path:
        return self.deployments / f"{model_name}.json"

    def current(self, model_name: str) -> Deployment | None:
        """Return the deployment record, or None."""
        path = self._record_path(model_name)
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        return Deployment(
            endpoint_name=f"local-{model_name}",
            model_name=model_name,
            version=str(record["version"]),
            url=f"{self.url}/models/{model_name}/predict",
            deployed_at=record["deployed_at"],
        )

    def start_rollout(self, version: ModelVersion) -> JobHandle:
        """Point the endpoint at ``version`` now (no-op if it already serves it).

        The running server reads the record on its next request: there is nothing to wait for.
        """
        handle = JobHandle(
            kind="rollout",
            name=f"local-{version.model_name}",
            details={"model_name": version.model_name, "version": version.version},
        )
        existing = self.current(version.model_name)
        if existing is not None and existing.version == version.version:
            return handle
        target_dir = self.models / version.model_name / version.version
        artifact = self.registry.fetch_artifact(version, target_dir)  # checks the sha256
        record = {
            "model_name": version.model_name,
            "version": version.version,
            "artifact_path": str(artifact),
            "sha256": version.sha256,
            "deployed_at": datetime.now(UTC).isoformat(),
        }
        atomic.write_bytes(self._record_path(version.model_name), json.dumps(record, indent=2).encode())
        return handle

    def status(self, handle: JobHandle) -> JobStatus:
        """Succeeded when the deployment record names the rollout's version."""
        served = self.current(handle.details["model_name"])
        if served is not None and served.version == handle.details["version"]:
            return JobStatus(JobState.SUCCEEDED)
        found = f"v{served.version}" if served else "nothing"
        return JobStatus(
            JobState.FAILED, f"the deployment record names {found}, not v{handle.details['version']}"
        )

    def finish_rollout(self, version: ModelVersion, handle: JobHandle) -> Deployment:
        """The deployment of ``version`` (the record was written by ``start_rollout``).

        Raises:
            EndpointUnavailableError: the record names another version (a concurrent deploy).
        """
        status = self.status(handle)
        if status.state is not JobState.SUCCEEDED:
            raise EndpointUnavailableError(status.reason)
        deployment = self.current(version.model_name)
        assert deployment is not None
        return deployment

    def invoke(self, model_name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """POST rows to the endpoint and return its JSON answer."""
        import httpx

        url = f"{self.url}/models/{model_name}/predict"
        try:
            response = httpx.post(url, json={"rows": rows}, timeout=30)
        except httpx.TransportError as exc:
            raise EndpointUnavailableError(
                f"the local endpoint at {self.url} did not answer ({exc.__class__.__name__}): "
                "start it with `make serve` (or see README, 'The online endpoint')"
            ) from None
        if response.status_code != 200:
            raise EndpointUnavailableError(
                f"the local endpoint answered {response.status_code} to {url}: {response.text[:500]}"
            )
        return response.json()
