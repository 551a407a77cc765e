"""A Vertex AI endpoint's serving report, from Cloud Monitoring (``projects.timeSeries.list``).

Vertex AI publishes an online endpoint's metrics to Cloud Monitoring (monitored resource
``aiplatform.googleapis.com/Endpoint``, labelled with the endpoint's ID and location):

- ``prediction/online/response_count`` (DELTA, INT64): responses, labelled ``response_code``;
- ``prediction/online/prediction_latencies`` (DELTA, DISTRIBUTION, ms), labelled
  ``latency_type`` (``total`` is always set: the model plus Vertex AI's overhead);
- ``prediction/online/replicas`` (GAUGE, INT64): the replicas of each deployed model.

Each is read with one aggregated ``timeSeries.list`` so Cloud Monitoring does the summing: the
counts and the latency distribution over one alignment period spanning the whole window (the
percentiles come from the summed distribution's buckets: exact to within one bucket), and the
replica count's samples summed (Vertex AI samples it every 60 s: a sample is a replica-minute).

The google-cloud-monitoring client speaks only gRPC, so this uses the REST API through
google-auth's ``AuthorizedSession`` with the Connection's credentials (as the Vertex AI clients
do); ``[gcp] monitoring_api_endpoint`` points it elsewhere (a local stand-in in the tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from core.errors import MLOpsError
from providers.base import ServingReport
from providers.gcp.config import GcpSettings
from providers.gcp.hooks import credentials_of

_PREFIX = "aiplatform.googleapis.com/prediction/online/"
RESPONSES, LATENCIES, REPLICAS = (
    f"{_PREFIX}response_count", f"{_PREFIX}prediction_latencies", f"{_PREFIX}replicas",
)  # fmt: skip
RESOURCE_TYPE = "aiplatform.googleapis.com/Endpoint"


class MonitoringError(MLOpsError):
    """Cloud Monitoring refused or failed a query (a missing permission, quota, an outage)."""


def api_root(gcp: GcpSettings) -> str:
    """``https://monitoring.googleapis.com``, or ``[gcp] monitoring_api_endpoint``."""
    host = gcp.monitoring_api_endpoint or "monitoring.googleapis.com"
    return host if host.startswith(("http://", "https://")) else f"https://{host}"


def _timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class CloudMonitoring:
    """The time series of one project, read through the REST API with the Connection's credentials."""

    def __init__(self, gcp: GcpSettings, project: str, session: Any = None) -> None:
        self.gcp = gcp
        self.project = project
        self._session = session

    @property
    def session(self) -> Any:
        """google-auth's AuthorizedSession (a requests session that adds the credentials)."""
        if self._session is None:
            from google.auth.transport.requests import AuthorizedSession

            self._session = AuthorizedSession(credentials_of(self.gcp.conn_id))
        return self._session

    def series(
        self, filter_: str, start: datetime, end: datetime, period_s: int, aligner: str,
        reducer: str = "REDUCE_SUM", group_by: tuple[str, ...] = (),
    ) -> Iterator[dict[str, Any]]:  # fmt: skip
        """Every aggregated time series of ``filter_`` in ``(start, end]``, page after page.

        Raises:
            MonitoringError: Cloud Monitoring answered an error (its message included).
        """
        params: dict[str, Any] = {
            "filter": filter_,
            "interval.startTime": _timestamp(start),
            "interval.endTime": _timestamp(end),
            "aggregation.alignmentPeriod": f"{period_s}s",
            "aggregation.perSeriesAligner": aligner,
            "aggregation.crossSeriesReducer": reducer,
            "aggregation.groupByFields": list(group_by),
            "view": "FULL",  # Required: the points, not only the series' identities
        }
        url = f"{api_root(self.gcp)}/v3/projects/{self.project}/timeSeries"
        while True:
            try:
                response = self.session.get(url, params=params, timeout=60)
            except Exception as exc:  # a connection failure
                raise MonitoringError(f"Cloud Monitoring ({url}) could not be reached: {exc}") from exc
            if response.status_code != 200:
                hint = (f"; the connection {self.gcp.conn_id!r} needs the role roles/monitoring.viewer on "
                        f"project {self.project}" if response.status_code in (401, 403) else "")  # fmt: skip
                raise MonitoringError(
                    f"Cloud Monitoring refused the serving report's query (HTTP {response.status_code}): "
                    f"{_message(response)}{hint}"
                )
            page = response.json()
            yield from page.get("timeSeries", [])
            if not page.get("nextPageToken"):
                return
            params["pageToken"] = page["nextPageToken"]


def _message(response: Any) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:300]


def serving_report(
    monitoring: CloudMonitoring, endpoint_id: str, model_name: str, start: datetime, end: datetime,
    machine_type: str,
) -> ServingReport:  # fmt: skip
    """A window's serving report of a Vertex AI endpoint from its Cloud Monitoring metrics."""
    from providers.gcp.prices import HOURLY_USD
    from providers.prices import serving_cost

    resource = (
        f'resource.type = "{RESOURCE_TYPE}" AND resource.labels.endpoint_id = "{endpoint_id}" '
        f'AND resource.labels.location = "{monitoring.gcp.region}"'
    )
    window_s = max(60, int((end - start).total_seconds()))
    counts = {"2": 0, "4": 0, "5": 0}
    for series in monitoring.series(
        f'metric.type = "{RESPONSES}" AND {resource}', start, end, window_s, "ALIGN_DELTA",
        group_by=("metric.label.response_code",),
    ):  # fmt: skip
        code = str(series.get("metric", {}).get("labels", {}).get("response_code", "2"))
        total = sum(int(p["value"].get("int64Value", 0)) for p in series.get("points", []))
        counts[code[:1] if code[:1] in counts else "2"] += total  # 1xx/3xx: answered
    bounds: list[float] = []
    buckets: list[int] = []
    for series in monitoring.series(
        f'metric.type = "{LATENCIES}" AND metric.labels.latency_type = "total" AND {resource}',
        start, end, window_s, "ALIGN_DELTA",
    ):  # fmt: skip
        for point in series.get("points", []):
            bounds, found = _buckets(point["value"]["distributionValue"])
            buckets = [a + b for a, b in zip(buckets or [0] * len(found), found, strict=True)]
    replica_minutes = 0.0  # the replica count is sampled every 60 s: each sample is a replica-minute
    for series in monitoring.series(
        f'metric.type = "{REPLICAS}" AND {resource}', start, end, window_s, "ALIGN_SUM"
    ):
        replica_minutes += sum(_number(p["value"]) for p in series.get("points", []))
    hours = replica_minutes / 60
    cost, basis = serving_cost(HOURLY_USD, machine_type, hours)
    from core.serving_metrics import histogram_quantile

    def quantile(q: float) -> float | None:
        return histogram_quantile(bounds, buckets, q) if buckets else None

    return ServingReport(
        model_name=model_name, start=start, end=end, requests=sum(counts.values()),
        errors_4xx=counts["4"], errors_5xx=counts["5"],
        latency_p50_ms=quantile(0.50), latency_p95_ms=quantile(0.95), latency_p99_ms=quantile(0.99),
        instance_hours=hours, cost_usd=cost, cost_basis=basis,
        source=f"Cloud Monitoring {_PREFIX}* metrics of Vertex AI endpoint {endpoint_id} "
        f"({monitoring.gcp.region}, project {monitoring.project})",
    )  # fmt: skip


def _number(value: dict[str, Any]) -> float:
    return float(value.get("doubleValue", value.get("int64Value", 0)))


def _buckets(distribution: dict[str, Any]) -> tuple[list[float], list[int]]:
    """A Distribution's finite bucket bounds and its per-bucket counts (underflow first, overflow last).

    The three layouts of ``BucketOptions`` (linear, exponential, explicit) give N+1 bounds for N
    finite buckets; ``bucketCounts`` may leave out trailing zero buckets.
    """
    options = distribution.get("bucketOptions", {})
    if "linearBuckets" in options:
        o = options["linearBuckets"]
        bounds = [o.get("offset", 0) + o.get("width", 0) * i for i in range(int(o["numFiniteBuckets"]) + 1)]
    elif "exponentialBuckets" in options:
        o = options["exponentialBuckets"]
        bounds = [o.get("scale", 1) * o["growthFactor"] ** i for i in range(int(o["numFiniteBuckets"]) + 1)]
    elif "explicitBuckets" in options:
        bounds = [float(b) for b in options["explicitBuckets"]["bounds"]]
    else:
        raise MonitoringError(f"Cloud Monitoring sent a latency distribution without buckets: {distribution}")
    counts = [int(c) for c in distribution.get("bucketCounts", [])]
    counts += [0] * (len(bounds) + 1 - len(counts))
    return [float(b) for b in bounds], counts
