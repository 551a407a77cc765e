"""The online endpoint on the local provider: the FastAPI app of apps/serving on 127.0.0.1.

A deploy copies the verified artifact into the endpoint's folder and rewrites the model's
deployment record atomically; the running server picks it up on its next request. The server's
hourly serving record (``<root>/metrics``, core/serving_metrics.py) is what
``serving_report`` reads: unlike a scrape of ``/metrics``, it survives restarts and covers any
window of whole hours.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import MLOpsError
from providers.base import (
    Deployment,
    JobHandle,
    JobState,
    JobStatus,
    ModelRegistry,
    ModelVersion,
    ObjectStore,
    ServingReport,
)
from providers.local import atomic

if TYPE_CHECKING:
    from providers.local.server_process import EndpointProcess


class EndpointUnavailableError(MLOpsError):
    """The endpoint did not answer (it may be starting, or not running)."""


class LocalHttpEndpoint:
    """Deploys to, and calls, the local endpoint server (``make serve``)."""

    def __init__(
        self,
        root: Path,
        registry: ModelRegistry,
        storage: ObjectStore,
        host: str,
        port: int,
        server: EndpointProcess | None = None,
    ) -> None:
        """``server``: started when a call finds nothing answering (None: never started)."""
        self.server = server
        self.root = Path(root).resolve()
        self.deployments = self.root / "deployments"
        self.models = self.root / "models"
        self.metrics = self.root / "metrics"  # the server's default (--metrics)
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
            try:
                response = httpx.post(url, json={"rows": rows}, timeout=30)
            except httpx.ConnectError:
                if self.server is None:
                    raise
                self.server.start()  # nothing answered: start the server (or reuse a starting one)
                response = httpx.post(url, json={"rows": rows}, timeout=30)
        except httpx.TransportError as exc:
            raise EndpointUnavailableError(
                f"the local endpoint at {self.url} did not answer ({exc.__class__.__name__}): "
                "start it with `make serve` (or see docs/local.md, 'The online endpoint')"
            ) from None
        if response.status_code != 200:
            raise EndpointUnavailableError(
                f"the local endpoint answered {response.status_code} to {url}: {response.text[:500]}"
            )
        return response.json()

    def serving_report(self, model_name: str, start: datetime, end: datetime) -> ServingReport:
        """Sum the server's hourly record over the hours that start in ``[start, end)``.

        Local serving runs on this machine: its instance hours are the servers' up-time in the
        window, at no cloud charge.
        """
        from core.serving_metrics import histogram_quantile, read_hours

        requests = {"2xx": 0, "4xx": 0, "5xx": 0}
        buckets: list[int] = []
        bounds: list[float] = []
        uptime = 0.0
        for hour in read_hours(self.metrics, start, end):
            uptime += float(hour.get("uptime_seconds", 0.0))
            counts = hour["models"].get(model_name)
            if counts is None:
                continue
            for kind, n in counts["requests"].items():
                requests[kind] = requests.get(kind, 0) + int(n)
            bounds = hour["latency_buckets_s"]
            buckets = [a + b for a, b in zip(buckets or [0] * len(counts["latency_buckets"]),
                                             counts["latency_buckets"], strict=True)]  # fmt: skip

        def quantile_ms(q: float) -> float | None:
            value = histogram_quantile(bounds, buckets, q) if buckets else None
            return None if value is None else value * 1000

        return ServingReport(
            model_name=model_name, start=start, end=end, requests=sum(requests.values()),
            errors_4xx=requests["4xx"], errors_5xx=requests["5xx"], latency_p50_ms=quantile_ms(0.5),
            latency_p95_ms=quantile_ms(0.95), latency_p99_ms=quantile_ms(0.99),
            instance_hours=uptime / 3600, cost_usd=0.0, cost_basis="local machine: no cloud charge",
            source=f"the endpoint's hourly record in {self.metrics}",
        )  # fmt: skip
