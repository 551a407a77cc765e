"""The online endpoint on AWS: one SageMaker endpoint per model, updated in place.

A version is deployed as a SageMaker model (the scikit-learn container with the project's
inference script and the registered ``model.tar.gz``) and an endpoint config with the
*inference* hardware profile; names derive from the version and the profile, so a re-deploy
reuses them. Moving to a new version is ``UpdateEndpoint`` with the new config: SageMaker
brings up the new fleet, shifts traffic and only then retires the old one (blue/green), so
the endpoint keeps answering. The deploy stage smoke-tests it and, on failure, deploys the
previous version the same way. How it served is read from the metrics SageMaker publishes to
CloudWatch (``serving_report``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from core.errors import MLOpsError
from core.ml.dataset import DatasetSpec
from providers.aws.config import AwsSettings
from providers.aws.hooks import cloudwatch_client, error_code, region_of, runtime_client, sagemaker_hook
from providers.aws.names import sagemaker_name
from providers.aws.registry import SageMakerModelRegistry, group_name
from providers.aws.sourcedir import INFERENCE_PROGRAM, upload_sourcedir
from providers.aws.storage import S3ObjectStore
from providers.base import Deployment, JobHandle, JobState, JobStatus, ModelVersion, ServingReport
from providers.payload import rows_json

log = logging.getLogger(__name__)


class EndpointUnavailableError(MLOpsError):
    """The endpoint is missing, failed, or answered with an error (retryable)."""


class SageMakerEndpoint:
    """Deploys registered versions to, and invokes, the model's SageMaker endpoint."""

    def __init__(
        self, aws: AwsSettings, storage: S3ObjectStore, registry: SageMakerModelRegistry, spec: DatasetSpec
    ) -> None:
        self.aws = aws
        self.storage = storage
        self.registry = registry
        self.spec = spec  # its feature function ships in the serving code

    @cached_property
    def client(self) -> Any:
        """The SageMaker client of the connection (boto3 clients are thread-safe)."""
        return sagemaker_hook(self.aws.conn_id).conn

    @cached_property
    def runtime(self) -> Any:
        """The sagemaker-runtime client of the connection."""
        return runtime_client(self.aws.conn_id)

    def endpoint_name(self, model_name: str) -> str:
        """The endpoint of a model (``[aws] endpoint_name`` for the project's model)."""
        if model_name == self.aws.model_name and self.aws.endpoint_name:
            return self.aws.endpoint_name
        return sagemaker_name(f"mlops-{model_name}")

    # -- SageMaker models ------------------------------------------------------------------

    def sagemaker_model_name(self, version: ModelVersion) -> str:
        """The SageMaker model of a version (stable: the same version gets the same name)."""
        return sagemaker_name(group_name(version.model_name), f"v{version.version}-{version.sha256[:8]}")

    def ensure_model(self, version: ModelVersion) -> str:
        """Create the version's SageMaker model if it does not exist; return its name."""
        name = self.sagemaker_model_name(version)
        try:
            self.client.describe_model(ModelName=name)
            return name
        except Exception as exc:
            if error_code(exc) not in ("ValidationException", "ResourceNotFound"):
                raise
        region = region_of(self.aws.conn_id, self.aws.region)
        self.client.create_model(
            ModelName=name,
            ExecutionRoleArn=self.aws.require_role(),
            PrimaryContainer={
                "Image": self.aws.image("inference", region),
                "ModelDataUrl": version.artifact_uri,
                "Environment": {
                    "SAGEMAKER_PROGRAM": INFERENCE_PROGRAM,
                    "SAGEMAKER_SUBMIT_DIRECTORY": upload_sourcedir(self.storage, self.spec),
                    "SAGEMAKER_REGION": region,
                    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                    "MODEL_NAME": version.model_name,
                    "MODEL_VERSION": version.version,
                    "MODEL_SHA256": version.sha256,
                },
            },
            Tags=[
                {"Key": "mlops:model", "Value": version.model_name},
                {"Key": "mlops:version", "Value": version.version},
            ],  # fmt: skip
        )
        log.info("Created SageMaker model %s", name)
        return name

    def _config_name(self, model: str) -> str:
        profile = self.aws.inference
        digest = hashlib.sha256(f"{profile.instance_type}:{profile.instance_count}".encode()).hexdigest()[:6]
        return sagemaker_name(model, digest)

    def _ensure_config(self, model: str) -> str:
        name = self._config_name(model)
        try:
            self.client.describe_endpoint_config(EndpointConfigName=name)
            return name
        except Exception as exc:
            if error_code(exc) not in ("ValidationException", "ResourceNotFound"):
                raise
        self.client.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": VARIANT,
                    "ModelName": model,
                    "InstanceType": self.aws.inference.instance_type,
                    "InitialInstanceCount": self.aws.inference.instance_count,
                    "InitialVariantWeight": 1.0,
                }
            ],
        )
        return name

    # -- the contract ----------------------------------------------------------------------

    def _describe(self, model_name: str) -> dict[str, Any] | None:
        return self._describe_name(self.endpoint_name(model_name))

    def _describe_name(self, name: str) -> dict[str, Any] | None:
        try:
            return self.client.describe_endpoint(EndpointName=name)
        except Exception as exc:
            if error_code(exc) in ("ValidationException", "ResourceNotFound"):
                return None
            raise

    def current(self, model_name: str) -> Deployment | None:
        """What the endpoint serves now (read from its config's model), or None."""
        endpoint = self._describe(model_name)
        if endpoint is None:
            return None
        config = self.client.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        model = self.client.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
        environment = model.get("PrimaryContainer", {}).get("Environment", {})
        changed = endpoint.get("LastModifiedTime") or endpoint.get("CreationTime")
        return Deployment(
            endpoint_name=endpoint["EndpointName"],
            model_name=model_name,
            version=str(environment.get("MODEL_VERSION", "")),
            url=endpoint["EndpointArn"],
            deployed_at=changed.isoformat() if isinstance(changed, datetime) else str(changed or ""),
        )

    def start_rollout(self, version: ModelVersion) -> JobHandle:
        """Create or update the endpoint with the version's config (no wait).

        ``UpdateEndpoint`` is SageMaker's blue/green: the new fleet comes up beside the old one,
        takes the traffic, and only then is the old one retired; if the new fleet fails, the
        endpoint keeps serving the old config.
        """
        with tempfile.TemporaryDirectory(prefix="deploy-check-") as tmp:
            self.registry.fetch_artifact(version, Path(tmp))  # refuses a tampered artifact before deploying
        config = self._ensure_config(self.ensure_model(version))
        name = self.endpoint_name(version.model_name)
        endpoint = self._describe(version.model_name)
        if endpoint is not None and endpoint["EndpointStatus"] == "Failed":
            # SageMaker accepts only DeleteEndpoint on a failed endpoint: delete, then create
            log.warning(
                "Endpoint %s is Failed (%s): deleting it to create it again",
                name, endpoint.get("FailureReason") or "no reason given",
            )  # fmt: skip
            self.client.delete_endpoint(EndpointName=name)
            self._wait_deleted(name)
            endpoint = None
        if endpoint is None:
            log.info("Creating endpoint %s with %s", name, config)
            self.client.create_endpoint(EndpointName=name, EndpointConfigName=config)
        elif endpoint["EndpointConfigName"] != config:
            log.info("Updating endpoint %s: %s -> %s", name, endpoint["EndpointConfigName"], config)
            self.client.update_endpoint(EndpointName=name, EndpointConfigName=config)
        return JobHandle(
            kind="rollout",
            name=name,
            details={"model_name": version.model_name, "config": config},
            poll_seconds=self.aws.poll_seconds,
        )

    def _wait_deleted(self, name: str, timeout_seconds: float = 1800) -> None:
        """Poll until a deleted endpoint is gone (only on the rare path of a Failed endpoint)."""
        deadline = time.monotonic() + timeout_seconds
        while self._describe_name(name) is not None:
            if time.monotonic() > deadline:
                raise EndpointUnavailableError(
                    f"endpoint {name} was still being deleted after {timeout_seconds:.0f} s"
                )
            time.sleep(self.aws.poll_seconds)

    def status(self, handle: JobHandle) -> JobStatus:
        """DescribeEndpoint in the job model's words: ended once the rollout's config is InService.

        A failed update leaves the endpoint InService on its old config with a FailureReason.
        """
        endpoint = self.client.describe_endpoint(EndpointName=handle.name)
        status, config = endpoint["EndpointStatus"], endpoint["EndpointConfigName"]
        reason = endpoint.get("FailureReason") or ""
        if status in ("Creating", "Updating", "SystemUpdating"):
            return JobStatus(JobState.RUNNING, status)
        if status == "InService" and config == handle.details["config"]:
            return JobStatus(JobState.SUCCEEDED)
        return JobStatus(
            JobState.FAILED,
            f"endpoint {handle.name} is {status} on {config}, not on {handle.details['config']}: "
            f"{reason or 'no reason given'}",
        )

    def finish_rollout(self, version: ModelVersion, handle: JobHandle) -> Deployment:
        """What the endpoint serves after the rollout ended.

        Raises:
            EndpointUnavailableError: the rollout did not bring ``version`` InService.
        """
        status = self.status(handle)
        if status.state is not JobState.SUCCEEDED:
            raise EndpointUnavailableError(f"endpoint {handle.name} did not come InService: {status.reason}")
        deployment = self.current(version.model_name)
        assert deployment is not None
        return deployment

    def serving_report(self, model_name: str, start: datetime, end: datetime) -> ServingReport:
        """How the model's endpoint served in ``[start, end)``, from CloudWatch (no request to it)."""
        return serving_report(
            cloudwatch_client(self.aws.conn_id), self._describe(model_name), self.endpoint_name(model_name),
            model_name, start, end, self.aws.inference.instance_type,
        )  # fmt: skip

    def invoke(self, model_name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Send rows as JSON; return ``{"model_version", "predictions"}``."""
        name = self.endpoint_name(model_name)
        try:
            response = self.runtime.invoke_endpoint(
                EndpointName=name, ContentType="application/json", Accept="application/json",
                Body=rows_json(rows),
            )  # fmt: skip
        except Exception as exc:
            raise EndpointUnavailableError(f"endpoint {name} did not answer: {exc}") from exc
        body = response["Body"].read()
        try:
            return json.loads(body)
        except ValueError:
            raise EndpointUnavailableError(f"endpoint {name} answered non-JSON: {body[:200]!r}") from None


#: the SageMaker endpoint metrics (namespace AWS/SageMaker) a serving report sums, by report field
_SUMS = {"requests": "Invocations", "errors_4xx": "Invocation4XXErrors", "errors_5xx": "Invocation5XXErrors"}
_LATENCY = "ModelLatency"  # microseconds, from the container's receipt of a request to its answer
VARIANT = "AllTraffic"


def serving_report(
    cloudwatch: Any, endpoint: dict[str, Any] | None, name: str, model_name: str,
    start: datetime, end: datetime,
    instance_type: str, hourly_usd: float | None = None,
) -> ServingReport:  # fmt: skip
    """A window's serving report from CloudWatch's SageMaker endpoint metrics (one GetMetricData).

    One period spans the whole window, so CloudWatch itself sums the counts and computes the
    latency percentiles over every request of the window (percentiles of per-minute figures
    could not be combined). Instance hours: the variant's current instance count times the
    part of the window the endpoint existed in.
    """
    from providers.aws.prices import HOURLY_USD
    from providers.prices import serving_cost

    seconds = max(60, int((end - start).total_seconds()) // 60 * 60)  # a multiple of 60
    dimensions = [{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": VARIANT}]

    def query(qid: str, metric: str, stat: str) -> dict[str, Any]:
        return {
            "Id": qid,
            "MetricStat": {
                "Metric": {"Namespace": "AWS/SageMaker", "MetricName": metric, "Dimensions": dimensions},
                "Period": seconds,
                "Stat": stat,
            },
        }

    queries = [query(key, metric, "Sum") for key, metric in _SUMS.items()]
    queries += [query(f"p{q}", _LATENCY, f"p{q}") for q in (50, 95, 99)]
    values: dict[str, list[float]] = {}
    paginator = cloudwatch.get_paginator("get_metric_data")
    for page in paginator.paginate(MetricDataQueries=queries, StartTime=start, EndTime=end):
        for result in page["MetricDataResults"]:
            values.setdefault(result["Id"], []).extend(v for v in result.get("Values", []) if v is not None)
    counts = {key: int(round(sum(values.get(key, [])))) for key in _SUMS}

    def latency_ms(qid: str) -> float | None:
        found = values.get(qid)
        return max(found) / 1000 if found else None  # one period: one value (microseconds)

    hours = 0.0
    if endpoint is not None:
        created = endpoint.get("CreationTime") or start
        instances = sum(
            int(v.get("CurrentInstanceCount", 0) or 0) for v in endpoint.get("ProductionVariants", [])
        )
        overlap = (min(end, datetime.now(UTC)) - max(start, created)).total_seconds()
        hours = instances * max(0.0, overlap) / 3600
    cost, basis = serving_cost(HOURLY_USD, instance_type, hours, hourly_usd)
    return ServingReport(
        model_name=model_name, start=start, end=end, **counts,
        latency_p50_ms=latency_ms("p50"), latency_p95_ms=latency_ms("p95"), latency_p99_ms=latency_ms("p99"),
        instance_hours=hours, cost_usd=cost, cost_basis=basis,
        source=f"CloudWatch AWS/SageMaker metrics of endpoint {name}, variant {VARIANT}",
    )  # fmt: skip
