"""The online endpoint on GCP: one Vertex AI endpoint per model, rolled out blue/green.

A rollout deploys the version beside what is served, at 0% of the traffic, with the *inference*
hardware profile (``[hardware.inference.gcp] machine_type``); Vertex AI reports the deployment
done once the serving container (providers/gcp/vertex_serve.py) passed its health checks. Then
the new deployed model gets 100% of the traffic and the old ones are undeployed. If the
deployment fails, the new deployed model is undeployed and nothing else changes. The deploy
stage smoke-tests the endpoint afterwards and rolls back the same way.

Vertex AI's v1 predict cannot be aimed at one deployed model, so the smoke test runs once the
new model has the traffic (the stage's), not while it is at 0%.

How the endpoint served is read from the metrics Vertex AI publishes to Cloud Monitoring
(``serving_report``, providers/gcp/monitoring.py).
"""

from __future__ import annotations

import json
import logging
import tempfile
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from core.errors import MLOpsError
from providers.base import Deployment, JobHandle, JobState, JobStatus, ModelVersion, ServingReport
from providers.gcp.config import GcpSettings
from providers.gcp.registry import VertexModelRegistry
from providers.gcp.vertex import location_path, vertex_client

log = logging.getLogger(__name__)


class EndpointUnavailableError(MLOpsError):
    """The endpoint is missing, its rollout failed, or it answered with an error (retryable)."""


def rows_json(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as JSON values: numpy numbers as numbers, timestamps as ISO strings."""
    import pandas as pd

    return json.loads(pd.DataFrame.from_records(rows).to_json(orient="records", date_format="iso"))


class VertexEndpoint:
    """Deploys registered versions to, and invokes, the model's Vertex AI endpoint."""

    def __init__(
        self, gcp: GcpSettings, project: str, registry: VertexModelRegistry, machine_type: str
    ) -> None:
        self.gcp = gcp
        self.project = project
        self.registry = registry
        self.machine_type = machine_type

    @cached_property
    def client(self) -> Any:
        """The EndpointServiceClient (REST, the Connection's credentials)."""
        return vertex_client("endpoint", self.gcp)

    @cached_property
    def prediction(self) -> Any:
        """The PredictionServiceClient (REST, the Connection's credentials)."""
        return vertex_client("prediction", self.gcp)

    def endpoint_id(self, model_name: str) -> str:
        """The endpoint's ID (its display name too): ``[gcp] endpoint_name`` for the project's model."""
        if model_name == self.gcp.model_name:
            return self.gcp.endpoint_display_name.lower()
        return f"mlops-{model_name}".replace("_", "-").lower()[:63].rstrip("-")

    def endpoint_resource(self, model_name: str) -> str:
        """``projects/<p>/locations/<r>/endpoints/<id>``."""
        return f"{location_path(self.gcp, self.project)}/endpoints/{self.endpoint_id(model_name)}"

    def _get(self, model_name: str) -> Any | None:
        from google.api_core.exceptions import NotFound

        try:
            return self.client.get_endpoint(name=self.endpoint_resource(model_name))
        except NotFound:
            return None

    def _ensure(self, model_name: str) -> Any:
        endpoint = self._get(model_name)
        if endpoint is None:
            self.client.create_endpoint(
                parent=location_path(self.gcp, self.project),
                endpoint={"display_name": self.endpoint_id(model_name), "labels": {"managed_by": "mlops"}},
                endpoint_id=self.endpoint_id(model_name),
            ).result(timeout=600)
            endpoint = self._get(model_name)
        return endpoint

    @staticmethod
    def _serving(endpoint: Any) -> Any | None:
        """The deployed model with the traffic (the largest share), or None."""
        split = dict(endpoint.traffic_split)
        models = [m for m in endpoint.deployed_models if split.get(m.id, 0) > 0]
        return max(models, key=lambda m: split.get(m.id, 0)) if models else None

    # -- the contract ----------------------------------------------------------------------

    def current(self, model_name: str) -> Deployment | None:
        """What the endpoint serves now (its deployed model with the traffic), or None."""
        endpoint = self._get(model_name)
        if endpoint is None:
            return None
        serving = self._serving(endpoint)
        if serving is None:
            return None
        return Deployment(
            endpoint_name=endpoint.display_name,
            model_name=model_name,
            version=str(serving.model_version_id),
            url=endpoint.name,
            deployed_at=serving.create_time.isoformat() if serving.create_time else "",
        )

    def start_rollout(self, version: ModelVersion) -> JobHandle:
        """Deploy ``version`` beside what is served, at 0% of the traffic (no wait).

        Idempotent: a deployed model of this version (served, or left by a killed rollout) is
        reused instead of deployed again.

        Raises:
            ArtifactIntegrityError: the version's bytes do not match its sha256 (nothing changed).
        """
        with tempfile.TemporaryDirectory(prefix="deploy-check-") as tmp:
            self.registry.fetch_artifact(version, Path(tmp))  # refuses a tampered artifact before deploying
        endpoint = self._ensure(version.model_name)
        details: dict[str, Any] = {"endpoint": endpoint.name, "model_name": version.model_name}
        existing = [m for m in endpoint.deployed_models if str(m.model_version_id) == version.version]
        if existing:
            details.update(deployed_model_id=existing[0].id, operation="")
        else:
            deployed_id = str(int(version.version))  # numeric, as Vertex AI requires; unique while deployed
            split = {**dict(endpoint.traffic_split), deployed_id: 0}
            if sum(split.values()) == 0:  # nothing served yet: the shares must add up to 100
                split[deployed_id] = 100
            operation = self.client.deploy_model(
                endpoint=endpoint.name,
                deployed_model={
                    "id": deployed_id,
                    "model": f"{self.registry.model_resource(version.model_name)}@{version.version}",
                    "display_name": f"{version.model_name}-v{version.version}",
                    "dedicated_resources": {
                        "machine_spec": {"machine_type": self.machine_type},
                        "min_replica_count": 1,
                        "max_replica_count": 1,
                    },
                },
                traffic_split=split,
            )
            details.update(deployed_model_id=deployed_id, operation=operation.operation.name)
            log.info(
                "Deploying %s v%s on %s at 0%% traffic", version.model_name, version.version, endpoint.name
            )
        return JobHandle(
            kind="rollout", name=endpoint.name, details=details, poll_seconds=self.gcp.poll_seconds
        )

    def status(self, handle: JobHandle) -> JobStatus:
        """The deployment's long-running operation in the job model's words."""
        if not handle.details.get("operation"):
            return JobStatus(JobState.SUCCEEDED)
        operation = self.client.get_operation(request={"name": handle.details["operation"]})
        if not operation.done:
            return JobStatus(JobState.RUNNING, "deploying")
        if operation.error.code:
            return JobStatus(
                JobState.FAILED, f"deploying failed: {operation.error.message or operation.error.code}"
            )
        return JobStatus(JobState.SUCCEEDED)

    def finish_rollout(self, version: ModelVersion, handle: JobHandle) -> Deployment:
        """Give the new deployed model 100% of the traffic and undeploy the others.

        Raises:
            EndpointUnavailableError: the deployment failed: the new deployed model is undeployed
                and what was served before is still served.
        """
        status = self.status(handle)
        new_id = handle.details["deployed_model_id"]
        endpoint = self.client.get_endpoint(name=handle.details["endpoint"])
        if status.state is not JobState.SUCCEEDED:
            if any(m.id == new_id for m in endpoint.deployed_models):
                self._undeploy(endpoint.name, new_id)
            raise EndpointUnavailableError(
                f"endpoint {endpoint.name} did not deploy v{version.version}: {status.reason}"
            )
        if dict(endpoint.traffic_split) != {new_id: 100}:
            self.client.update_endpoint(
                endpoint={
                    "name": endpoint.name,
                    "display_name": endpoint.display_name,
                    "traffic_split": {new_id: 100},
                },
                update_mask={"paths": ["traffic_split"]},
            )
        for old in [m.id for m in endpoint.deployed_models if m.id != new_id]:
            self._undeploy(endpoint.name, old)
        deployment = self.current(version.model_name)
        assert deployment is not None and deployment.version == version.version, deployment
        log.info("Endpoint %s serves %s v%s", endpoint.name, version.model_name, version.version)
        return deployment

    def _undeploy(self, endpoint: str, deployed_model_id: str) -> None:
        self.client.undeploy_model(endpoint=endpoint, deployed_model_id=deployed_model_id).result(timeout=600)

    def serving_report(self, model_name: str, start: datetime, end: datetime) -> ServingReport:
        """How the model's endpoint served in ``[start, end)``, from Cloud Monitoring (no request to it)."""
        from providers.gcp.monitoring import CloudMonitoring, serving_report

        return serving_report(
            CloudMonitoring(self.gcp, self.project), self.endpoint_id(model_name),
            model_name, start, end, self.machine_type,
        )  # fmt: skip

    def invoke(self, model_name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Send rows as instances; return ``{"model_version", "predictions"}``."""
        name = self.endpoint_resource(model_name)
        try:
            response = self.prediction.predict(endpoint=name, instances=rows_json(rows))
        except Exception as exc:
            raise EndpointUnavailableError(f"endpoint {name} did not answer: {exc}") from exc
        return {
            "model_version": str(response.model_version_id),
            "predictions": [dict(p)["answer"] for p in response.predictions],
        }
