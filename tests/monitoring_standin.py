"""A Cloud Monitoring stand-in: a local HTTP server answering ``projects.timeSeries.list`` (v3 REST).

Cloud Monitoring has no emulator. The GCP provider's serving report reads it over REST
(providers/gcp/monitoring.py, ``[gcp] monitoring_api_endpoint``), so the tests point it here.
It judges each request by the service's own published definitions, not by what the project
sends:

- the route, the query parameters (names, enums, durations, timestamps, int32, which repeat)
  and which are ``Required.`` come from Cloud Monitoring's v3 discovery document
  (``monitoring.v3.json`` as google-api-python-client ships it, pinned in requirements.txt);
  the aggregation rules are the ones that document states for ``Aggregation`` (a cross-series
  reducer needs an aligner and an alignment period; periods are at least 60 s); an aligner must
  suit the metric's kind and value type as the ``Aligner`` enum describes;
- the metrics and their labels are Vertex AI's as Cloud Monitoring publishes them
  (https://cloud.google.com/monitoring/api/metrics_gcp_a_b#gcp-aiplatform, monitored resource
  ``aiplatform.googleapis.com/Endpoint``): an unknown metric type is NOT_FOUND, a label the
  metric or resource does not have is INVALID_ARGUMENT;
- every answer is checked against the document's ``ListTimeSeriesResponse`` schema before it is
  sent.

What it really executes: the filter (``key = "value"`` terms joined by AND, the subset the
project writes; anything else is UNIMPLEMENTED, never silently ignored), the interval
(``(startTime, endTime]``), alignment into periods that end at ``endTime`` (ALIGN_DELTA sums
counts and merges distributions bucket by bucket; ALIGN_SUM and ALIGN_MEAN sum and average
numbers), the cross-series
reducers REDUCE_SUM and REDUCE_NONE with ``groupByFields``, and paging. Points are answered
newest first, as the service does.

A test puts the time series Vertex AI would have written with :meth:`put` (the service accepts
no writes to ``aiplatform.googleapis.com`` metrics, so this is the stand-in's own door; the
series is still checked against the ``TimeSeries`` schema and the metric's descriptor).
:meth:`fail_next` answers the next queries with an error (a missing permission, quota).
"""

from __future__ import annotations

import copy
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from json_http import JsonHttpServer
from vertex_standin import STATUS_CODES, ApiError, Method, RequestValidator, _methods

#: Vertex AI's online prediction metrics, as Cloud Monitoring publishes them:
#: type -> (metric kind, value type, unit, metric labels)
AIPLATFORM_METRICS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "aiplatform.googleapis.com/prediction/online/response_count": (
        "DELTA", "INT64", "1", ("deployed_model_id", "response_code", "spot", "model_display_name",
                                "endpoint_display_name"),
    ),
    "aiplatform.googleapis.com/prediction/online/prediction_count": (
        "DELTA", "INT64", "1", ("deployed_model_id", "spot", "model_display_name", "endpoint_display_name"),
    ),
    "aiplatform.googleapis.com/prediction/online/error_count": (
        "DELTA", "INT64", "1", ("deployed_model_id", "spot", "model_display_name", "endpoint_display_name"),
    ),
    "aiplatform.googleapis.com/prediction/online/prediction_latencies": (
        "DELTA", "DISTRIBUTION", "ms", ("deployed_model_id", "latency_type", "spot", "model_display_name",
                                        "endpoint_display_name"),
    ),
    "aiplatform.googleapis.com/prediction/online/replicas": (
        "GAUGE", "INT64", "1", ("deployed_model_id", "spot", "model_display_name", "endpoint_display_name"),
    ),
}  # fmt: skip
ENDPOINT_RESOURCE = "aiplatform.googleapis.com/Endpoint"
ENDPOINT_LABELS = ("resource_container", "location", "endpoint_id")
_TERM = re.compile(r'^\s*([A-Za-z_.]+)\s*=\s*"([^"]*)"\s*$')
_DURATION = re.compile(r"^([0-9]+)(\.[0-9]{1,9})?s$")


def discovery_document() -> dict[str, Any]:
    """Cloud Monitoring's v3 discovery document, as google-api-python-client ships it."""
    import googleapiclient

    folder = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"
    return json.loads((folder / "monitoring.v3.json").read_text())


def _time(value: str, name: str) -> datetime:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise ApiError("INVALID_ARGUMENT", f"Invalid value at '{name}' ({value}): not a timestamp") from None


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class CloudMonitoringStandIn:
    """The server, in a thread of this process, on 127.0.0.1:<port>.

    Attributes:
        url: the ``[gcp] monitoring_api_endpoint`` to give the provider.
        queries: the accepted queries' parameters, oldest first.
        rejected: ``(status, message)`` of every refused request.
    """

    def __init__(self, port: int) -> None:
        document = discovery_document()
        self.revision = document["revision"]
        (self.list_method,) = [m for m in _methods(document) if m.id == "monitoring.projects.timeSeries.list"]
        self.validator = RequestValidator(document["schemas"])
        self.series: list[dict[str, Any]] = []  # (project, TimeSeries) pairs, see put()
        self.queries: list[dict[str, list[str]]] = []
        self.rejected: list[tuple[str, str]] = []
        self.faults: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.http = JsonHttpServer(port, lambda method, path, _raw: self.handle(method, path))
        self.url = self.http.url

    def stop(self) -> None:
        self.http.stop()

    # -- the test's side -------------------------------------------------------------------

    def put(
        self, project: str, metric: str, resource_labels: dict[str, str], metric_labels: dict[str, str],
        points: list[dict[str, Any]],
    ) -> None:  # fmt: skip
        """Keep a time series as Vertex AI would have written it (checked like a write).

        ``points`` are Point messages (``{"interval": {...}, "value": {...}}``).
        """
        if metric not in AIPLATFORM_METRICS:
            raise ValueError(f"not a published Vertex AI online prediction metric: {metric}")
        kind, value_type, unit, labels = AIPLATFORM_METRICS[metric]
        if set(resource_labels) != set(ENDPOINT_LABELS):
            raise ValueError(f"{ENDPOINT_RESOURCE} has exactly the labels {ENDPOINT_LABELS}")
        if unknown := set(metric_labels) - set(labels):
            raise ValueError(f"{metric} has no labels {sorted(unknown)}")
        series = {
            "metric": {"type": metric, "labels": dict(metric_labels)},
            "resource": {"type": ENDPOINT_RESOURCE, "labels": dict(resource_labels)},
            "metricKind": kind, "valueType": value_type, "unit": unit, "points": copy.deepcopy(points),
        }  # fmt: skip
        self.validator.check(series, "TimeSeries")
        field = {"INT64": "int64Value", "DISTRIBUTION": "distributionValue"}[value_type]
        for point in points:
            if set(point["value"]) != {field}:
                raise ValueError(f"{metric} is {value_type}: each point's value is a {field}")
            end, start = point["interval"]["endTime"], point["interval"].get("startTime")
            if kind == "DELTA" and not (start and _time(start, "startTime") < _time(end, "endTime")):
                raise ValueError("a DELTA point's interval needs a startTime before its endTime")
        with self._lock:
            self.series.append({"project": project, "series": series})

    def fail_next(self, status: str = "PERMISSION_DENIED", message: str = "", times: int = 1) -> None:
        """Answer the next ``times`` queries with an error, as the service would."""
        if status not in STATUS_CODES:
            raise ValueError(f"unknown status {status!r}")
        default = (
            "Permission monitoring.timeSeries.list denied (or the resource may not exist). (stand-in cue)"
        )
        self.faults += [(status, message or default)] * times

    # -- the service's side ----------------------------------------------------------------

    def handle(self, verb: str, raw_path: str) -> tuple[int, Any]:
        """Route, validate and answer one request: (HTTP status, JSON body)."""
        try:
            split = urlsplit(raw_path)
            path = unquote(split.path).lstrip("/")
            method = self.list_method
            if not method.pattern.match(path) or verb != method.http_method:
                raise ApiError("NOT_FOUND", f"The requested URL /{path} was not found on this server.")
            name = method.template.match(path).group(method.path_parameter)  # type: ignore[union-attr]
            if method.parameter_pattern and not method.parameter_pattern.match(name):
                raise ApiError(
                    "INVALID_ARGUMENT", f"name {name!r} does not match {method.parameter_pattern.pattern}"
                )
            query = parse_qs(split.query, keep_blank_values=True)
            query.pop("$alt", None)
            _check_parameters(method, query)
            with self._lock:
                if self.faults:
                    status, message = self.faults.pop(0)
                    raise ApiError(status, message)
                self.queries.append(copy.deepcopy(query))
                stored = [s["series"] for s in self.series if s["project"] == name.split("/")[1]]
            answer = _list(
                stored, {k: v[0] for k, v in query.items()}, query.get("aggregation.groupByFields", [])
            )
            errors: list[str] = []
            self.validator._value(answer, {"$ref": "ListTimeSeriesResponse"}, "", errors)
            if errors:
                raise ApiError(
                    "INTERNAL", "stand-in answer breaks ListTimeSeriesResponse: " + "; ".join(errors)
                )
            return 200, answer
        except ApiError as error:
            self.rejected.append((error.status, str(error)))
            return error.code, error.body()


def _check_parameters(method: Method, query: dict[str, list[str]]) -> None:
    """The query parameters against the method's published ones (names, types, enums, required)."""
    published = method.query_parameters
    for key, values in query.items():
        spec = published.get(key)
        if spec is None:
            raise ApiError(
                "INVALID_ARGUMENT",
                f'Invalid JSON payload received. Unknown name "{key}": Cannot bind query parameter.',
            )
        if len(values) > 1 and not spec.get("repeated"):
            raise ApiError("INVALID_ARGUMENT", f"{key} is not a repeated field: given {len(values)} times")
        for value in values:
            if "enum" in spec and value not in spec["enum"]:
                raise ApiError(
                    "INVALID_ARGUMENT", f"Invalid value at '{key}' ({value}): not one of its enum values"
                )
            if spec.get("format") == "google-duration" and not _DURATION.match(value):
                raise ApiError(
                    "INVALID_ARGUMENT", f"Invalid value at '{key}' ({value}): expected a duration like '60s'"
                )
            if spec.get("format") == "google-datetime":
                _time(value, key)
            if spec.get("format") == "int32" and not re.fullmatch(r"-?[0-9]+", value):
                raise ApiError("INVALID_ARGUMENT", f"Invalid value at '{key}' ({value}): expected an int32")
    for key, spec in published.items():
        if (
            spec.get("description", "").startswith("Required.")
            and spec.get("location") == "query"
            and not query.get(key, [""])[0]
        ):
            raise ApiError("INVALID_ARGUMENT", f"Field {key} is required")


def _filter(text: str) -> tuple[str, dict[str, str], dict[str, str], str | None]:
    """``(metric type, resource label terms, metric label terms, resource type)`` of a filter."""
    terms = re.split(r"\s+AND\s+", text.strip())
    metric, resource_type = None, None
    resource: dict[str, str] = {}
    labels: dict[str, str] = {}
    for term in terms:
        match = _TERM.match(term)
        if not match:
            raise ApiError(
                "UNIMPLEMENTED",
                f"the stand-in executes only 'key = \"value\"' terms joined by AND, not {term!r}",
            )
        key, value = match.groups()
        if key == "metric.type":
            metric = value
        elif key == "resource.type":
            resource_type = value
        elif key.startswith(("resource.labels.", "resource.label.")):
            resource[key.rsplit(".", 1)[1]] = value
        elif key.startswith(("metric.labels.", "metric.label.")):
            labels[key.rsplit(".", 1)[1]] = value
        else:
            raise ApiError("INVALID_ARGUMENT", f"The provided filter has an unknown key: {key}")
    if metric is None:
        raise ApiError("INVALID_ARGUMENT", "The provided filter doesn't specify a metric type (metric.type).")
    return metric, resource, labels, resource_type


def _list(stored: list[dict[str, Any]], query: dict[str, str], group_by: list[str]) -> dict[str, Any]:
    metric, resource_terms, label_terms, resource_type = _filter(query["filter"])
    if metric not in AIPLATFORM_METRICS:
        raise ApiError("NOT_FOUND", f'Cannot find metric(s) that match type = "{metric}".')
    kind, value_type, _, labels = AIPLATFORM_METRICS[metric]
    if resource_type not in (None, ENDPOINT_RESOURCE):
        raise ApiError("INVALID_ARGUMENT", f"{metric} is not written for monitored resource {resource_type}")
    for key in resource_terms:
        if key not in ENDPOINT_LABELS:
            raise ApiError("INVALID_ARGUMENT", f"{ENDPOINT_RESOURCE} has no label {key!r}")
    for key in label_terms:
        if key not in labels:
            raise ApiError("INVALID_ARGUMENT", f"{metric} has no label {key!r}")
    end = _time(query["interval.endTime"], "interval.endTime")
    start = _time(query.get("interval.startTime") or query["interval.endTime"], "interval.startTime")
    if start > end:
        raise ApiError("INVALID_ARGUMENT", "The start time must be before the end time.")
    aligner = query.get("aggregation.perSeriesAligner", "ALIGN_NONE")
    reducer = query.get("aggregation.crossSeriesReducer", "REDUCE_NONE")
    period_text = query.get("aggregation.alignmentPeriod", "")
    if reducer != "REDUCE_NONE" and (aligner == "ALIGN_NONE" or not period_text):
        raise ApiError(
            "INVALID_ARGUMENT", "A cross-series reducer needs a per-series aligner and an alignment period."
        )
    if aligner == "ALIGN_NONE":
        raise ApiError("UNIMPLEMENTED", "the stand-in answers only aligned queries (perSeriesAligner)")
    period = int(float(period_text[:-1])) if period_text else 60
    if period < 60:
        raise ApiError("INVALID_ARGUMENT", "The alignment period must be at least 60 seconds.")
    if aligner == "ALIGN_DELTA" and kind not in ("DELTA", "CUMULATIVE"):
        raise ApiError("INVALID_ARGUMENT", f"ALIGN_DELTA is not valid for the {kind} metric {metric}")
    if aligner in ("ALIGN_MEAN", "ALIGN_SUM") and value_type not in ("INT64", "DOUBLE"):
        raise ApiError("UNIMPLEMENTED", f"the stand-in does not execute {aligner} over {value_type} values")
    if aligner not in ("ALIGN_DELTA", "ALIGN_MEAN", "ALIGN_SUM"):
        raise ApiError("UNIMPLEMENTED", f"the stand-in does not execute {aligner}")
    if reducer not in ("REDUCE_SUM", "REDUCE_NONE"):
        raise ApiError("UNIMPLEMENTED", f"the stand-in does not execute {reducer}")
    for field in group_by:
        key = field.rsplit(".", 1)[1]
        if not (field.startswith("metric.label") and key in labels) and not (
            field.startswith("resource.label") and key in ENDPOINT_LABELS
        ):
            raise ApiError("INVALID_ARGUMENT", f"groupByFields: {field!r} is not a label of {metric}")

    def matches(series: dict[str, Any]) -> bool:
        return (series["metric"]["type"] == metric
                and all(series["resource"]["labels"].get(k) == v for k, v in resource_terms.items())
                and all(series["metric"]["labels"].get(k) == v for k, v in label_terms.items()))  # fmt: skip

    aligned = [(s, _align(s, start, end, period, aligner)) for s in stored if matches(s)]
    out_type = "DOUBLE" if aligner == "ALIGN_MEAN" else value_type
    result: list[dict[str, Any]] = []
    if reducer == "REDUCE_NONE":
        for series, points in aligned:
            if points:
                result.append(
                    {**copy.deepcopy(series), "valueType": out_type, "points": _points(points, kind, period)}
                )
    else:
        groups: dict[tuple[str, ...], dict[datetime, Any]] = {}
        containers: dict[
            tuple[str, ...], str
        ] = {}  # the project a reduced series keeps as its resource label
        for series, points in aligned:
            key = tuple(_field(series, f) for f in group_by)
            containers[key] = series["resource"]["labels"]["resource_container"]
            group = groups.setdefault(key, {})
            for moment, value in points.items():
                group[moment] = _add(group[moment], value) if moment in group else value
        for key, points in groups.items():
            if not points:
                continue
            metric_labels = {
                f.rsplit(".", 1)[1]: v for f, v in zip(group_by, key, strict=True) if f.startswith("metric")
            }
            resource_labels = {"resource_container": containers[key]}
            resource_labels |= {
                f.rsplit(".", 1)[1]: v for f, v in zip(group_by, key, strict=True) if f.startswith("resource")
            }
            result.append({
                "metric": {"type": metric, "labels": metric_labels},
                "resource": {"type": ENDPOINT_RESOURCE, "labels": resource_labels},
                "metricKind": kind, "valueType": out_type, "points": _points(points, kind, period),
            })  # fmt: skip
    size = int(query.get("pageSize") or 100000)
    offset = int(query.get("pageToken") or 0)
    if query.get("view") == "HEADERS":  # the series' identities only
        result = [{k: v for k, v in series.items() if k != "points"} for series in result]
    answer: dict[str, Any] = {"timeSeries": result[offset : offset + size]}
    if offset + size < len(result):
        answer["nextPageToken"] = str(offset + size)
    return answer


def _field(series: dict[str, Any], field: str) -> str:
    part = "metric" if field.startswith("metric") else "resource"
    return str(series[part]["labels"].get(field.rsplit(".", 1)[1], ""))


def _align(
    series: dict[str, Any], start: datetime, end: datetime, period: int, aligner: str
) -> dict[datetime, Any]:
    """The series' value per alignment period ending at ``end``, keyed by the period's end."""
    step = timedelta(seconds=period)
    found: dict[datetime, list[Any]] = {}
    for point in series["points"]:
        moment = _time(point["interval"]["endTime"], "endTime")
        if not start < moment <= end and not (start == end == moment):
            continue
        periods_back = int((end - moment) / step)  # (end - (k+1)P, end - kP]
        found.setdefault(end - periods_back * step, []).append(point["value"])
    out: dict[datetime, Any] = {}
    for moment, values in found.items():
        if aligner == "ALIGN_MEAN":
            out[moment] = {
                "doubleValue": sum(float(v.get("int64Value", v.get("doubleValue", 0))) for v in values)
                / len(values)
            }
        else:
            total = values[0]
            for value in values[1:]:
                total = _add(total, value)
            out[moment] = total
    return out


def _add(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Sum two values of one type (distributions bucket by bucket, which needs equal bucket options)."""
    if "int64Value" in a:
        return {"int64Value": str(int(a["int64Value"]) + int(b["int64Value"]))}
    if "doubleValue" in a:
        return {"doubleValue": float(a["doubleValue"]) + float(b["doubleValue"])}
    da, db = a["distributionValue"], b["distributionValue"]
    if da.get("bucketOptions") != db.get("bucketOptions"):
        raise ApiError("INVALID_ARGUMENT", "distributions with different bucket options cannot be summed")
    ca, cb = [int(c) for c in da.get("bucketCounts", [])], [int(c) for c in db.get("bucketCounts", [])]
    width = max(len(ca), len(cb))
    ca, cb = ca + [0] * (width - len(ca)), cb + [0] * (width - len(cb))
    count_a, count_b = int(da.get("count", 0)), int(db.get("count", 0))
    count = count_a + count_b
    mean = (float(da.get("mean", 0)) * count_a + float(db.get("mean", 0)) * count_b) / count if count else 0.0
    return {"distributionValue": {
        "count": str(count), "mean": mean, "bucketOptions": copy.deepcopy(da["bucketOptions"]),
        "bucketCounts": [str(x + y) for x, y in zip(ca, cb, strict=True)],
    }}  # fmt: skip


def _points(points: dict[datetime, Any], kind: str, period: int) -> list[dict[str, Any]]:
    out = []
    for moment in sorted(points, reverse=True):  # newest first, as the service answers
        begin = moment - timedelta(seconds=period) if kind != "GAUGE" else moment
        out.append(
            {"interval": {"startTime": _stamp(begin), "endTime": _stamp(moment)}, "value": points[moment]}
        )
    return out
