"""The online endpoint on Azure: a managed online endpoint with blue/green deployments.

Each registered version is a deployment of the model's endpoint, named from the version and its
sha256 (``v3-1a2b3c4d``), running the bundle's ``azureml_score.py`` (``init``/``run``) in the
curated scikit-learn environment on the *inference* hardware profile's VMs. A rollout is:

1. ``start_rollout``: the new deployment is created beside the one serving; a new deployment
   takes no traffic, so the endpoint keeps answering with the old version;
2. ``status``: the new deployment's provisioning state (Creating -> Succeeded | Failed);
3. ``finish_rollout``: once the deployment is ready (Succeeded: its ``init`` loaded the model
   after checking its sha256), the endpoint's traffic moves to it (100%), and only then are the
   old deployments deleted. If the deployment failed, it is deleted and the traffic stays where
   it was; the deploy stage then smoke-tests the endpoint (and rolls back on failure).

How the endpoint served is read from Azure Monitor's metrics of the endpoint and its
deployments (``serving_report``, providers/azure/monitor.py).
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from core.errors import MLOpsError
from core.ml.dataset import DatasetSpec
from providers.azure.bundle import SCORING_SCRIPT, upload_bundle_folder
from providers.azure.config import AzureSettings
from providers.azure.registry import AzureMLModelRegistry
from providers.azure.storage import BlobObjectStore
from providers.azure.workspace import Workspace, word
from providers.base import Deployment, JobHandle, JobState, JobStatus, ModelVersion, ServingReport
from providers.payload import rows_json

log = logging.getLogger(__name__)
RUNNING = ("Creating", "Updating", "Scaling")
_NOT_ALLOWED = re.compile(r"[^a-zA-Z0-9-]")


class EndpointUnavailableError(MLOpsError):
    """The endpoint or a deployment is missing, failed, or answered with an error (retryable)."""


def deployment_name(version: ModelVersion) -> str:
    """The deployment of a version: ``v<version>-<sha256[:8]>`` (stable: a re-run finds it)."""
    return f"v{version.version}-{version.sha256[:8]}"[:32].lower()


class AzureMLOnlineEndpoint:
    """Rolls versions out on, and invokes, the model's managed online endpoint."""

    def __init__(
        self,
        azure: AzureSettings,
        workspace: Workspace,
        storage: BlobObjectStore,
        registry: AzureMLModelRegistry,
        spec: DatasetSpec,
    ) -> None:
        self.azure = azure
        self.workspace = workspace
        self.storage = storage
        self.registry = registry
        self.spec = spec  # its feature function ships in the scoring code

    @cached_property
    def endpoints(self) -> Any:
        """MLClient's online endpoint operations."""
        return self.workspace.client.online_endpoints

    @cached_property
    def deployments(self) -> Any:
        """MLClient's online deployment operations."""
        return self.workspace.client.online_deployments

    def endpoint_name(self, model_name: str) -> str:
        """The endpoint of a model (``[azure] endpoint_name`` or ``mlops-<model>`` for the project's)."""
        if model_name == self.azure.model_name:
            return self.azure.endpoint
        return _NOT_ALLOWED.sub("-", f"mlops-{model_name}")[:32].rstrip("-").lower()

    # -- the contract ----------------------------------------------------------------------

    def current(self, model_name: str) -> Deployment | None:
        """The deployment taking the endpoint's traffic, or None."""
        endpoint = self._endpoint(self.endpoint_name(model_name))
        serving = _serving(endpoint)
        if serving is None:
            return None
        deployment = self.deployments.get(name=serving, endpoint_name=endpoint.name)
        return Deployment(
            endpoint_name=endpoint.name,
            model_name=model_name,
            version=str((deployment.tags or {}).get("mlops_version", "")),
            url=str(endpoint.scoring_uri),
            deployed_at=str((deployment.tags or {}).get("mlops_deployed_at", "")),
        )

    def start_rollout(self, version: ModelVersion) -> JobHandle:
        """Create the version's deployment at 0% traffic beside the serving one (no wait).

        Raises:
            ArtifactIntegrityError: the version's bytes do not match its sha256 (nothing changed).
        """
        with tempfile.TemporaryDirectory(prefix="deploy-check-") as tmp:
            self.registry.fetch_artifact(version, Path(tmp))  # refuses a tampered artifact before deploying
        name = self.endpoint_name(version.model_name)
        endpoint = self._endpoint(name) or self._create_endpoint(name, version.model_name)
        target = deployment_name(version)
        handle = JobHandle(
            kind="rollout",
            name=target,
            details={"endpoint": name, "model_name": version.model_name},
            poll_seconds=self.azure.poll_seconds,
        )
        existing = self._deployment(name, target)
        if existing is not None and word(existing.provisioning_state) not in ("Failed", "Canceled"):
            log.info("Deployment %s/%s exists (%s): reusing it", name, target, existing.provisioning_state)
            return handle
        if existing is not None:  # a failed deployment keeps its name: replace it
            self.deployments.begin_delete(name=target, endpoint_name=name).result()
        from azure.ai.ml.entities import CodeConfiguration, ManagedOnlineDeployment

        deployment = ManagedOnlineDeployment(
            name=target,
            endpoint_name=name,
            model=f"azureml:{version.model_name}:{version.version}",
            code_configuration=CodeConfiguration(code=self._code(), scoring_script=SCORING_SCRIPT),
            environment=self.azure.environment,
            environment_variables={"MODEL_SHA256": version.sha256, "MODEL_VERSION": version.version},
            instance_type=self.azure.inference.instance_type,
            instance_count=self.azure.inference.instance_count,
            tags={"mlops_model": version.model_name, "mlops_version": version.version,
                  "mlops_deployed_at": datetime.now(UTC).isoformat(timespec="seconds")},
        )  # fmt: skip
        log.info("Creating deployment %s/%s (%s v%s) at 0%% traffic, beside %s", name, target,
                 version.model_name, version.version, _serving(endpoint) or "nothing")  # fmt: skip
        self.deployments.begin_create_or_update(deployment, skip_script_validation=True)
        return handle

    def status(self, handle: JobHandle) -> JobStatus:
        """The new deployment's provisioning state in the job model's words."""
        deployment = self.deployments.get(name=handle.name, endpoint_name=handle.details["endpoint"])
        state = word(deployment.provisioning_state)
        if state == "Succeeded":
            return JobStatus(JobState.SUCCEEDED)
        if state in RUNNING:
            return JobStatus(JobState.RUNNING, state)
        return JobStatus(
            JobState.FAILED, f"deployment {handle.name} is {state}; see its logs in Azure ML studio"
        )

    def finish_rollout(self, version: ModelVersion, handle: JobHandle) -> Deployment:
        """Give the ready deployment 100% of the traffic, then delete the old ones.

        Raises:
            EndpointUnavailableError: the deployment failed; it is deleted and the traffic stays
                where it was.
        """
        name, target = handle.details["endpoint"], handle.name
        endpoint = self._endpoint(name)
        if _serving(endpoint) != target:
            try:
                status = self.status(handle)
                if status.state is not JobState.SUCCEEDED:
                    raise EndpointUnavailableError(f"endpoint {name}: {status.reason}")
            except Exception:
                log.warning("Deployment %s/%s failed: deleting it; the traffic stays on %s",
                            name, target, _serving(endpoint) or "nothing")  # fmt: skip
                self.deployments.begin_delete(name=target, endpoint_name=name).result()
                raise
            endpoint.traffic = {target: 100}
            self.endpoints.begin_create_or_update(endpoint).result()
            log.info("Endpoint %s: 100%% of the traffic on %s", name, target)
        for old in self.deployments.list(endpoint_name=name):
            if old.name != target:
                log.info("Deleting the old deployment %s/%s", name, old.name)
                self.deployments.begin_delete(name=old.name, endpoint_name=name).result()
        deployment = self.current(version.model_name)
        assert deployment is not None
        return deployment

    def serving_report(self, model_name: str, start: datetime, end: datetime) -> ServingReport:
        """How the model's endpoint served in ``[start, end)``, from Azure Monitor (no request to it)."""
        from providers.azure.monitor import serving_report

        name = self.endpoint_name(model_name)
        endpoint = self._endpoint(name)
        endpoint_id = deployment_ids = None
        if endpoint is not None:  # no endpoint: never served (its metrics' resource does not exist)
            endpoint_id = str(endpoint.id)
            deployment_ids = [str(d.id) for d in self.deployments.list(endpoint_name=name)]
        return serving_report(
            self.workspace.metrics, endpoint_id, deployment_ids or [], model_name, start, end,
            self.azure.inference.instance_type,
        )  # fmt: skip

    def invoke(self, model_name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Send rows as JSON; return ``{"model_version", "predictions"}``."""
        name = self.endpoint_name(model_name)
        with tempfile.TemporaryDirectory(prefix="invoke-") as tmp:
            request = Path(tmp) / "request.json"
            request.write_bytes(rows_json(rows))
            try:
                answer = self.endpoints.invoke(endpoint_name=name, request_file=str(request))
            except Exception as exc:
                raise EndpointUnavailableError(f"endpoint {name} did not answer: {exc}") from exc
        try:
            return json.loads(answer)
        except ValueError:
            raise EndpointUnavailableError(f"endpoint {name} answered non-JSON: {answer[:200]!r}") from None

    # -- Azure ML --------------------------------------------------------------------------

    def _code(self) -> str:
        """The scoring files' folder URL (uploaded once per content); the SDK registers it as code."""
        return upload_bundle_folder(self.storage, self.spec.to_json())[1]

    def _endpoint(self, name: str) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.endpoints.get(name=name)
        except ResourceNotFoundError:
            return None

    def _deployment(self, endpoint: str, name: str) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.deployments.get(name=name, endpoint_name=endpoint)
        except ResourceNotFoundError:
            return None

    def _create_endpoint(self, name: str, model_name: str) -> Any:
        from azure.ai.ml.entities import ManagedOnlineEndpoint

        log.info("Creating the managed online endpoint %s", name)
        endpoint = ManagedOnlineEndpoint(name=name, auth_mode="key", tags={"mlops_model": model_name})
        return self.endpoints.begin_create_or_update(endpoint).result()


def _serving(endpoint: Any) -> str | None:
    """The deployment taking all of an endpoint's traffic (None: no endpoint, or no traffic)."""
    if endpoint is None:
        return None
    served = [name for name, share in (endpoint.traffic or {}).items() if int(share) > 0]
    return max(served, key=lambda n: int(endpoint.traffic[n])) if served else None
