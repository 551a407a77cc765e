"""An Azure Monitor metrics stand-in: ``GET {resource id}/providers/Microsoft.Insights/metrics``.

Azure Monitor has no emulator. The Azure provider's serving report calls the metrics REST API
through azure-core with the workspace's credential and transport; in the tests that transport is
the Azure ML stand-in's (tests/azureml_standin.py), which hands these requests here, as Azure
Resource Manager hands them to the Microsoft.Insights provider.

What it checks, from the service's own definitions (``tests/azure_monitor/metrics-2023-10-01.json``,
copied from azure-rest-api-specs with its source): a bearer token; the api-version the spec
is; the query parameters of the ``Metrics_List`` operation (an unknown one, a value outside
``resultType``'s enum, a non-integer ``top`` or a non-boolean flag is a 400); the metric names
and dimensions Azure Monitor publishes for online endpoints and their deployments (an unknown
metric or dimension is the service's 400 ``BadRequest``); every answer against the spec's
``Response`` definition before it is sent.

What it executes: the timespan (``start/end``), the interval (``FULL`` or an ISO 8601
duration: points per grain from the start), the aggregations (``Total``, ``Average``,
``Minimum``, ``Maximum``, ``Count`` of the per-minute values a test put in), and ``$filter``
terms ``dim eq 'value'`` (keep) or ``dim eq '*'`` (one time series per value) joined by ``and``.

A test puts the per-minute values Azure ML would have emitted with :meth:`put`;
:meth:`fail_next` answers the next query with an error (a missing role, throttling).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

SPEC = json.loads((Path(__file__).parent / "azure_monitor" / "metrics-2023-10-01.json").read_text())
_RESOURCE = re.compile(
    r"^(?P<id>/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.MachineLearningServices/"
    r"workspaces/[^/]+/onlineEndpoints/[^/]+(?P<deployment>/deployments/[^/]+)?)"
    r"/providers/Microsoft\.Insights/metrics$",
    re.IGNORECASE,
)
_TERM = re.compile(r"^\s*(\w+)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?$|^P(\d+)D$")
AGGREGATIONS = ("average", "count", "minimum", "maximum", "total")


class MonitorRefusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(frozen=True)
class Sample:
    """One metric's value in one minute for one combination of dimension values."""

    resource_id: str  # lower case: ARM resource IDs compare case-insensitively
    metric: str
    dimensions: tuple[tuple[str, str], ...]  # (lower-case name, value)
    minute: datetime
    value: float


class AzureMonitorStandIn:
    """The metrics of the resources a test put in.

    Attributes:
        queries: ``(resource id, query)`` of every accepted query.
        rejected: ``(status, code, message)`` of every refused one.
    """

    def __init__(self) -> None:
        from azureml_standin import PublishedSchema

        self.schema = PublishedSchema(Path(__file__).parent / "azure_monitor")
        self.samples: list[Sample] = []
        self.queries: list[tuple[str, dict[str, str]]] = []
        self.rejected: list[tuple[int, str, str]] = []
        self.faults: list[tuple[int, str, str]] = []
        self._lock = threading.Lock()

    def put(self, resource_id: str, metric: str, minute: datetime, value: float, **dimensions: str) -> None:
        """Keep one minute's value of a published metric of an endpoint or deployment."""
        kind = _kind(resource_id)
        published = SPEC["metrics"][kind]
        if metric not in published:
            raise ValueError(f"{kind} publishes no metric {metric}")
        names = {d.lower() for d in published[metric]["dimensions"]}
        if unknown := {d.lower() for d in dimensions} - names:
            raise ValueError(f"{metric} has no dimensions {sorted(unknown)}")
        moment = minute.astimezone(UTC).replace(second=0, microsecond=0)
        dims = tuple(sorted((k.lower(), v) for k, v in dimensions.items()))
        with self._lock:
            self.samples.append(Sample(resource_id.lower(), metric, dims, moment, float(value)))

    def fail_next(self, status: int = 403, code: str = "AuthorizationFailed", message: str = "") -> None:
        """Answer the next query with an error, as the service would."""
        self.faults.append((status, code, message or "The client does not have authorization to perform "
                            "action 'Microsoft.Insights/metrics/read' (stand-in cue)"))  # fmt: skip

    def handle(self, request: Any) -> tuple[int, Any]:
        """Answer one metrics request of the transport: (HTTP status, JSON body)."""
        url = urlparse(request.url)
        path = unquote(url.path)
        query = {k: v for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            if request.method.upper() != "GET":
                raise MonitorRefusal(
                    405, "MethodNotAllowed", f"{request.method} is not an operation of metrics"
                )
            if not request.headers.get("Authorization", "").startswith("Bearer "):
                raise MonitorRefusal(401, "AuthenticationFailed", "Authentication failed: no bearer token")
            match = _RESOURCE.match(path)
            if not match:
                raise MonitorRefusal(404, "ResourceNotFound", f"the stand-in keeps no metrics for {path}")
            params = _checked(query)
            with self._lock:
                if self.faults:
                    raise MonitorRefusal(*self.faults.pop(0))
                self.queries.append((match["id"], params))
                answer = self._answer(match["id"], params)
            if errors := self.schema.errors("Response", answer):
                raise MonitorRefusal(
                    500, "InternalServerError", f"stand-in answer breaks Response: {errors[:3]}"
                )
            return 200, answer
        except MonitorRefusal as refusal:
            self.rejected.append((refusal.status, refusal.code, str(refusal)))
            return refusal.status, {"error": {"code": refusal.code, "message": str(refusal)}}

    def _answer(self, resource_id: str, params: dict[str, str]) -> dict[str, Any]:
        kind = _kind(resource_id)
        published = SPEC["metrics"][kind]
        names = [n.strip() for n in params.get("metricnames", "").split(",") if n.strip()]
        if not names:
            raise MonitorRefusal(400, "BadRequest", "metricnames is required for a data query")
        start, end = _timespan(params.get("timespan", ""))
        grain = _grain(params.get("interval", "PT1M"), end - start)
        aggregations = [a.strip().lower() for a in params.get("aggregation", "average").split(",")]
        if bad := [a for a in aggregations if a not in AGGREGATIONS]:
            raise MonitorRefusal(400, "BadRequest", f"unknown aggregation types {bad}")
        keep, split = _filter(params.get("$filter", ""))
        value = []
        for name in names:
            spec = published.get(name)
            if spec is None:
                raise MonitorRefusal(400, "BadRequest", (
                    f"Failed to find metric configuration for provider: Microsoft.MachineLearningServices, "
                    f"resource Type: {kind.split('/', 1)[1]}, metric: {name}, "
                    f"Valid metrics: {', '.join(published)}"
                ))  # fmt: skip
            dims = {d.lower() for d in spec["dimensions"]}
            if unknown := (set(keep) | set(split)) - dims:
                raise MonitorRefusal(400, "BadRequest", f"Metric {name} has no dimensions {sorted(unknown)}")
            samples = [
                s for s in self.samples
                if s.resource_id == resource_id.lower() and s.metric == name and start <= s.minute < end
                and all(dict(s.dimensions).get(k) == v for k, v in keep.items())
            ]  # fmt: skip
            groups: dict[tuple[str, ...], list[Sample]] = {}
            for sample in samples:
                groups.setdefault(tuple(dict(sample.dimensions).get(d, "") for d in split), []).append(sample)
            if not split:
                groups.setdefault((), [])
            series = [{
                "metadatavalues": [{"name": {"value": d, "localizedValue": d}, "value": v}
                                   for d, v in zip(split, key, strict=True)],
                "data": _points(members, start, end, grain, aggregations),
            } for key, members in sorted(groups.items())]  # fmt: skip
            value.append({
                "id": f"{resource_id}/providers/Microsoft.Insights/metrics/{name}",
                "type": "Microsoft.Insights/metrics", "name": {"value": name, "localizedValue": name},
                "unit": spec["unit"], "timeseries": series, "errorCode": "Success",
            })  # fmt: skip
        return {
            "cost": 0, "timespan": params["timespan"], "interval": params.get("interval", "PT1M"),
            "namespace": kind, "resourceregion": "westeurope", "value": value,
        }  # fmt: skip


def _kind(resource_id: str) -> str:
    base = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
    return f"{base}/deployments" if "/deployments/" in resource_id.lower() else base


def _checked(query: dict[str, list[str]]) -> dict[str, str]:
    """The query parameters against Metrics_List's (names, types, enums, api-version)."""
    published = SPEC["parameters"]
    out: dict[str, str] = {}
    for key, values in query.items():
        spec = published.get(key)
        if spec is None:
            raise MonitorRefusal(
                400, "BadRequest", f"The query parameter '{key}' is not a parameter of Metrics_List"
            )
        if len(values) > 1:
            raise MonitorRefusal(
                400, "BadRequest", f"The query parameter '{key}' is given {len(values)} times"
            )
        value = values[0]
        if "enum" in spec and value not in spec["enum"]:
            raise MonitorRefusal(400, "BadRequest", f"{key} = {value!r} is not one of {spec['enum']}")
        if spec["type"] == "integer" and not re.fullmatch(r"-?\d+", value):
            raise MonitorRefusal(400, "BadRequest", f"{key} = {value!r} is not an integer")
        if spec["type"] == "boolean" and value.lower() not in ("true", "false"):
            raise MonitorRefusal(400, "BadRequest", f"{key} = {value!r} is not a boolean")
        out[key] = value
    if out.get("api-version") != SPEC["apiVersion"]:
        raise MonitorRefusal(400, "InvalidApiVersionParameter", (
            f"The api-version '{out.get('api-version')}' is invalid; the stand-in serves {SPEC['apiVersion']}"
        ))  # fmt: skip
    return out


def _time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise MonitorRefusal(400, "BadRequest", f"{text!r} is not an ISO 8601 time") from None


def _timespan(text: str) -> tuple[datetime, datetime]:
    if text.count("/") != 1:
        raise MonitorRefusal(
            400, "BadRequest", f"timespan {text!r} is not 'startDateTime_ISO/endDateTime_ISO'"
        )
    start, end = (_time(part) for part in text.split("/"))
    if start >= end:
        raise MonitorRefusal(400, "BadRequest", "the timespan's start must be before its end")
    return start, end


def _grain(text: str, span: timedelta) -> timedelta:
    if text.upper() == "FULL":
        return span
    match = _DURATION.match(text)
    if not match or not any(match.groups()):
        raise MonitorRefusal(
            400, "BadRequest", f"interval {text!r} is not an ISO 8601 duration (PT1M, PT1H, P1D) or FULL"
        )
    hours, minutes, days = (int(g or 0) for g in match.groups())
    grain = timedelta(days=days, hours=hours, minutes=minutes)
    if grain < timedelta(minutes=1):
        raise MonitorRefusal(400, "BadRequest", "the interval must be at least PT1M")
    return grain


def _filter(text: str) -> tuple[dict[str, str], list[str]]:
    """``(dimension -> value kept, dimensions split by)`` of a ``$filter``."""
    keep: dict[str, str] = {}
    split: list[str] = []
    for term in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE) if text.strip() else []:
        match = _TERM.match(term)
        if not match:
            raise MonitorRefusal(
                400,
                "BadRequest",
                f"the stand-in executes only \"dim eq 'value'\" terms joined by 'and', not {term!r}",
            )
        name, value = match[1].lower(), match[2]
        if value == "*":
            split.append(name)
        else:
            keep[name] = value
    return keep, split


def _points(
    samples: list[Sample], start: datetime, end: datetime, grain: timedelta, aggregations: list[str]
) -> list[dict[str, Any]]:
    """One MetricValue per grain from the start; the aggregations only where the grain has values."""
    points = []
    moment = start
    while moment < end:
        values = [s.value for s in samples if moment <= s.minute < moment + grain]
        point: dict[str, Any] = {"timeStamp": moment.isoformat().replace("+00:00", "Z")}
        if values:
            found = {"average": sum(values) / len(values), "count": float(len(values)),
                     "minimum": min(values), "maximum": max(values), "total": sum(values)}  # fmt: skip
            point |= {a: found[a] for a in aggregations}
        points.append(point)
        moment += grain
    return points
