"""An Azure ML online endpoint's serving report, from Azure Monitor metrics (Microsoft.Insights).

Azure ML publishes a managed online endpoint's metrics to Azure Monitor, read with the metrics
REST API (``GET {resource id}/providers/Microsoft.Insights/metrics``, api-version 2023-10-01)
and the credential of ``[azure] ml_conn_id``:

- on the endpoint: ``RequestsPerMinute`` (Count) split by its ``statusCodeClass`` dimension
  (``2xx``, ``4xx``, ``5xx``), summed over the window (aggregation ``Total``, interval ``FULL``);
  ``RequestLatency_P50``/``_P95``/``_P99`` (ms), Azure's own per-minute percentiles, averaged
  over the window's minutes (Azure Monitor publishes no percentile of a whole window);
- on each deployment: ``DeploymentCapacity`` (instances), averaged per minute: the sum of the
  minutes' averages over 60 is instance-hours.

Only deployments that still exist can be asked (a deleted deployment's resource, and its
metrics, are gone from the API): a report read after a rollout counts the instance-hours of the
deployments it kept. azure-monitor-query is not a dependency, so the API is called through
azure-core's pipeline (bearer token for Azure Resource Manager, retries) with the workspace's
credential and transport.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.errors import MLOpsError
from providers.base import ServingReport

API_VERSION = "2023-10-01"
ARM = "https://management.azure.com"
LATENCY = {"p50": "RequestLatency_P50", "p95": "RequestLatency_P95", "p99": "RequestLatency_P99"}


class MonitorError(MLOpsError):
    """Azure Monitor refused or failed a metrics query (a missing role, throttling, an outage)."""


class AzureMonitorMetrics:
    """Azure Monitor's metrics API, through an azure-core pipeline with the given credential."""

    def __init__(self, credential: Any, transport: Any = None, base_url: str = ARM) -> None:
        from azure.core import PipelineClient
        from azure.core.pipeline.policies import (
            BearerTokenCredentialPolicy,
            HeadersPolicy,
            RetryPolicy,
        )

        policies = [
            HeadersPolicy(),
            RetryPolicy(),
            BearerTokenCredentialPolicy(credential, f"{ARM}/.default"),
        ]
        options = {"transport": transport} if transport is not None else {}
        self.client = PipelineClient(base_url=base_url, policies=policies, **options)
        self.base_url = base_url

    def query(self, resource_id: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """The ``value`` (one Metric per name) of a metrics query of one resource.

        Raises:
            MonitorError: Azure Monitor answered an error; the message carries its code and text.
        """
        from azure.core.rest import HttpRequest

        request = HttpRequest(
            "GET",
            f"{self.base_url}{resource_id}/providers/Microsoft.Insights/metrics",
            params={**params, "api-version": API_VERSION},
        )
        response = self.client.send_request(request)
        if response.status_code != 200:
            try:
                error = response.json().get("error", {})
                detail = f"{error.get('code')}: {error.get('message')}"
            except ValueError:
                detail = response.text()[:300]
            hint = (
                "; the Azure ML connection's identity needs the Monitoring Reader role on the endpoint"
                if response.status_code in (401, 403)
                else ""
            )
            raise MonitorError(
                f"Azure Monitor refused the serving report's metrics query (HTTP {response.status_code}) "
                f"for {resource_id}: {detail}{hint}"
            )
        return list(response.json().get("value", []))


def _timespan(start: datetime, end: datetime) -> str:
    return f"{start.isoformat().replace('+00:00', 'Z')}/{end.isoformat().replace('+00:00', 'Z')}"


def _values(metric: dict[str, Any], aggregation: str) -> list[float]:
    return [
        float(point[aggregation])
        for series in metric.get("timeseries", [])
        for point in series.get("data", [])
        if point.get(aggregation) is not None
    ]


def serving_report(
    metrics: AzureMonitorMetrics, endpoint_id: str | None, deployment_ids: list[str], model_name: str,
    start: datetime, end: datetime, instance_type: str,
) -> ServingReport:  # fmt: skip
    """A window's serving report of a managed online endpoint from Azure Monitor.

    ``endpoint_id`` is the endpoint's ARM resource ID (None: no endpoint, so nothing served).
    """
    from providers.azure.prices import HOURLY_USD
    from providers.prices import serving_cost

    counts = {"2": 0, "4": 0, "5": 0}
    latency: dict[str, float | None] = dict.fromkeys(LATENCY)
    hours = 0.0
    if endpoint_id is not None:
        window = {"timespan": _timespan(start, end), "interval": "FULL"}
        (requests,) = metrics.query(endpoint_id, {
            **window, "metricnames": "RequestsPerMinute", "aggregation": "Total",
            "$filter": "statusCodeClass eq '*'",
        })  # fmt: skip
        for series in requests.get("timeseries", []):
            found = {m["name"]["value"].lower(): m.get("value", "") for m in series.get("metadatavalues", [])}
            code = str(found.get("statuscodeclass", "2xx"))[:1]
            total = sum(float(p.get("total") or 0) for p in series.get("data", []))
            counts[code if code in counts else "2"] += int(round(total))  # 1xx/3xx: answered
        answered = metrics.query(endpoint_id, {
            **window, "metricnames": ",".join(LATENCY.values()), "aggregation": "Average",
        })  # fmt: skip
        by_name = {m["name"]["value"]: m for m in answered}
        for key, name in LATENCY.items():
            values = _values(by_name.get(name, {}), "average")
            latency[key] = max(values) if values else None  # one FULL interval: one value
        for deployment in deployment_ids:
            (capacity,) = metrics.query(deployment, {
                "timespan": _timespan(start, end), "interval": "PT1M", "metricnames": "DeploymentCapacity",
                "aggregation": "Average",
            })  # fmt: skip
            hours += sum(_values(capacity, "average")) / 60  # instances per minute -> instance-hours
    if sum(counts.values()) == 0:
        latency = dict.fromkeys(LATENCY)  # no request: Azure's zero-filled percentiles mean nothing
    cost, basis = serving_cost(HOURLY_USD, instance_type, hours)
    return ServingReport(
        model_name=model_name, start=start, end=end, requests=sum(counts.values()),
        errors_4xx=counts["4"], errors_5xx=counts["5"],
        latency_p50_ms=latency["p50"], latency_p95_ms=latency["p95"], latency_p99_ms=latency["p99"],
        instance_hours=hours, cost_usd=cost, cost_basis=basis,
        source=f"Azure Monitor metrics of online endpoint {endpoint_id or '(none)'} (latency: Azure's "
        "per-minute percentiles averaged over the window)",
    )  # fmt: skip
