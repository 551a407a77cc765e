"""How the online endpoint measures itself: Prometheus metrics and an hourly record on disk.

Two views of the same observations, for two readers:

- ``/metrics`` (Prometheus text format, through ``prometheus_client``): what a Prometheus server
  scrapes every few seconds. Its counters live as long as the process, so a scrape cannot tell
  what happened during last week: a restart resets them, and nothing between scrapes is kept.
- the **hourly record**: one small JSON file per (UTC hour, server process) under the metrics
  folder, rewritten atomically every few seconds. The week's serving report
  (``OnlineEndpoint.serving_report``) sums the files of the hours in its window, so a restart or
  a second server process loses nothing and the window is exact to the hour.

Only predictions are counted (``POST /models/<name>/predict``); ``/health`` and ``/metrics``
are not traffic. Payloads are never logged: a request's log line is its model, status and time.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict

log = logging.getLogger("apps.serving.access")

# The ASGI interface, spelled as Starlette spells it (the core does not import Starlette): a
# connection's scope and its messages are string-keyed mappings whose values depend on the key.
_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_ASGIApp = Callable[[_Scope, _Receive, _Send], Awaitable[None]]

#: latency histogram bucket bounds in seconds (the last bucket is +Inf); the serving report's
#: quantiles are exact to within one bucket
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25,
    0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
#: rows per model call (the micro-batcher's batches)
BATCH_ROWS_BUCKETS: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2048)
_PREDICT = re.compile(r"^/models/([^/]{1,128})/predict$")
UNKNOWN_MODEL = "_unknown"  # the label of requests naming a model that is not deployed
STATUS_CLASSES = ("2xx", "4xx", "5xx")


#: ``[local] endpoint_access_log``: which predictions get a log line (the line costs more server
#: CPU than the metrics; the metrics and the hourly record count every request either way)
ACCESS_LOG_LEVELS = {"all": logging.INFO, "errors": logging.WARNING, "off": logging.CRITICAL + 1}


def access_log_level(local_section: Mapping[str, Any]) -> int:
    """The access logger's level for the ``endpoint_access_log`` of a ``[local]`` section.

    Raises:
        ConfigError: the value is not one of ``all`` (the default), ``errors``, ``off``.
    """
    mode = local_section.get("endpoint_access_log", "all")
    if not isinstance(mode, str) or mode not in ACCESS_LOG_LEVELS:
        from core.errors import ConfigError

        raise ConfigError(
            f'[local] endpoint_access_log = {mode!r}: use "all" (a line per prediction), '
            '"errors" (4xx and 5xx answers only) or "off"'
        )
    return ACCESS_LOG_LEVELS[mode]


def status_class(status: int) -> str:
    """``2xx``, ``4xx`` or ``5xx`` (1xx and 3xx, which the endpoint never sends, count as 2xx)."""
    return "5xx" if status >= 500 else "4xx" if status >= 400 else "2xx"


def hour_of(moment: datetime) -> datetime:
    """The UTC hour a moment falls in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


class ModelHour(TypedDict):
    """One model's counts in an hour of the record.

    Attributes:
        requests: predictions by status class (``2xx``, ``4xx``, ``5xx``).
        latency_buckets: the latency histogram's bucket counts (``LATENCY_BUCKETS_S`` plus +Inf).
        latency_sum_s: the requests' latencies summed, in seconds.
    """

    requests: dict[str, int]
    latency_buckets: list[int]
    latency_sum_s: float


class HourFile(TypedDict):
    """One process's file of one hour of the record (its JSON).

    Attributes:
        hour: the hour's start, ISO 8601 in UTC.
        instance: the server process (pid and a random suffix).
        uptime_seconds: how long the process was up during the hour.
        latency_buckets_s: the histogram's bucket bounds the counts use.
        models: each model's counts.
    """

    hour: str
    instance: str
    uptime_seconds: float
    latency_buckets_s: list[float]
    models: dict[str, ModelHour]


class HourlyRecord:
    """This process's counts per (UTC hour, model), flushed to ``<folder>/hour=<hour>/<id>.json``.

    Each file holds, per model: requests by status class, the latency histogram's bucket counts
    (``LATENCY_BUCKETS_S`` plus +Inf), and the seconds this process was up during the hour (the
    instance time the cost estimate needs).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.instance = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.started = datetime.now(UTC)
        self._counts: dict[datetime, dict[str, ModelHour]] = {}
        self._dirty: set[datetime] = set()
        self._lock = threading.Lock()
        self._last_flush = self.started

    def add(self, model: str, status: str, seconds: float, moment: datetime | None = None) -> None:
        """Count one request."""
        hour = hour_of(moment or datetime.now(UTC))
        with self._lock:
            per_model = self._counts.setdefault(hour, {})
            counts = per_model.get(model)
            if counts is None:
                counts = per_model[model] = {
                    "requests": dict.fromkeys(STATUS_CLASSES, 0),
                    "latency_buckets": [0] * (len(LATENCY_BUCKETS_S) + 1),
                    "latency_sum_s": 0.0,
                }
            counts["requests"][status] += 1
            counts["latency_buckets"][bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
            counts["latency_sum_s"] += seconds
            self._dirty.add(hour)

    def flush(self, now: datetime | None = None) -> None:
        """Write every hour that changed since the last flush (and the hours it was up in)."""
        now = now or datetime.now(UTC)
        with self._lock:
            hours = set(self._dirty)
            hour = hour_of(self._last_flush)
            while hour <= hour_of(now):  # up-time of every hour since the last flush, even idle ones
                hours.add(hour)
                hour += timedelta(hours=1)
            snapshot = {h: json.loads(json.dumps(self._counts.get(h, {}))) for h in hours}
            self._dirty.clear()
            self._last_flush = now
        for hour, models in snapshot.items():
            up = (min(now, hour + timedelta(hours=1)) - max(self.started, hour)).total_seconds()
            body: HourFile = {
                "hour": hour.isoformat(),
                "instance": self.instance,
                "uptime_seconds": max(0.0, up),
                "latency_buckets_s": list(LATENCY_BUCKETS_S),
                "models": models,
            }
            path = self.folder / f"hour={hour:%Y-%m-%dT%H}" / f"{self.instance}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps(body))
            os.replace(tmp, path)  # a reader never sees half a file
        # counts of hours that are over and written are never needed again
        with self._lock:
            for old in [h for h in self._counts if h < hour_of(now) and h not in self._dirty]:
                del self._counts[old]


def read_hours(folder: Path, start: datetime, end: datetime) -> list[HourFile]:
    """The hourly files whose hour starts in ``[start, end)``, every process's."""
    files: list[HourFile] = []
    for hour_dir in sorted(Path(folder).glob("hour=*")):
        try:
            hour = datetime.strptime(hour_dir.name[5:], "%Y-%m-%dT%H").replace(tzinfo=UTC)
        except ValueError:
            continue
        if start <= hour < end:
            for path in sorted(hour_dir.glob("*.json")):
                files.append(json.loads(path.read_text()))
    return files


def histogram_quantile(bounds: Sequence[float], counts: Sequence[int], q: float) -> float | None:
    """The q-quantile of a bucketed histogram, as Prometheus's ``histogram_quantile`` does.

    Linear interpolation inside the bucket the quantile falls in; in the +Inf bucket, the last
    finite bound. ``counts`` are per bucket (not cumulative), one more than ``bounds``.

    Returns:
        The quantile (in the bounds' unit), or None for an empty histogram.
    """
    total = sum(counts)
    if total == 0:
        return None
    rank, seen = q * total, 0
    for i, count in enumerate(counts):
        if seen + count >= rank and count > 0:
            if i == len(bounds):
                return float(bounds[-1])
            lower = 0.0 if i == 0 else bounds[i - 1]
            return float(lower + (bounds[i] - lower) * (rank - seen) / count)
        seen += count
    return float(bounds[-1])


class ServingMetrics:
    """The endpoint's Prometheus metrics (a registry of its own) and its hourly record.

    Args:
        folder: where the hourly record is written; None keeps no record.
        known: tells whether a model name is deployed; requests naming any other model are
            counted under ``_unknown`` (a client can name any model: labels must stay few).
        flush_seconds: how often the record is written by a background thread.
    """

    def __init__(
        self, folder: Path | None, known: Callable[[str], bool], flush_seconds: float = 10.0
    ) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "mlops_endpoint_requests", "Prediction requests answered, by model and status class",
            ["model", "status_class"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "mlops_endpoint_request_seconds", "Time from a prediction request's arrival to its answer",
            ["model"], buckets=LATENCY_BUCKETS_S, registry=self.registry,
        )  # fmt: skip
        self.batch_rows = Histogram(
            "mlops_endpoint_batch_rows", "Rows per model call (concurrent requests batched together)",
            ["model"], buckets=BATCH_ROWS_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.in_flight = Gauge(
            "mlops_endpoint_in_flight_requests", "Prediction requests being answered now",
            registry=self.registry,
        )  # fmt: skip
        self.version = Gauge(
            "mlops_endpoint_model_version_info", "The version each model is served at (value 1)",
            ["model", "version"], registry=self.registry,
        )  # fmt: skip
        self._versions: dict[str, str] = {}
        self._known, self._known_names = known, set[str]()
        self.record = HourlyRecord(folder) if folder is not None else None
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        if self.record is not None:
            self._flusher = threading.Thread(
                target=self._flush_loop, args=(flush_seconds,), name="metrics-flush", daemon=True
            )
            self._flusher.start()

    def _flush_loop(self, every: float) -> None:
        while not self._stop.wait(every):
            self.flush()

    def flush(self) -> None:
        """Write the hourly record now (also at shutdown)."""
        if self.record is None:
            return
        try:
            self.record.flush()
        except OSError as exc:  # a full disk must not take the endpoint down
            logging.getLogger("apps.serving").error("could not write the serving record: %s", exc)

    def close(self) -> None:
        """Stop the flusher and write the record one last time."""
        self._stop.set()
        self.flush()

    def served(self, model: str, version: str) -> None:
        """Note the version a model is served at (called for each model call: a dict lookup)."""
        if self._versions.get(model) == version:
            return
        old = self._versions.get(model)
        if old is not None:
            self.version.remove(model, old)
        self.version.labels(model, version).set(1)
        self._versions[model] = version

    def batch(self, model: str, rows: int) -> None:
        """Count one model call of ``rows`` rows."""
        self.batch_rows.labels(model).observe(rows)

    def exposition(self) -> tuple[bytes, str]:
        """The metrics in Prometheus's text format, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def middleware(self, app: _ASGIApp) -> _ASGIApp:
        """An ASGI middleware that counts and times every prediction request around ``app``."""
        metrics = self

        async def measured(scope: _Scope, receive: _Receive, send: _Send) -> None:
            match = _PREDICT.match(scope.get("path", "")) if scope["type"] == "http" else None
            if match is None:
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500  # an exception before the answer started is a 500 to the client
            metrics.in_flight.inc()

            async def send_status(message: _Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                await send(message)

            try:
                await app(scope, receive, send_status)
            finally:
                metrics.in_flight.dec()
                metrics.observe(match.group(1), status, time.perf_counter() - started)

        return measured

    def observe(self, model: str, status: int, seconds: float) -> None:
        """Count one answered prediction request and log its outcome (never its payload)."""
        if model not in self._known_names and self._known(model):
            self._known_names.add(model)
        label = model if model in self._known_names else UNKNOWN_MODEL
        kind = status_class(status)
        self.requests.labels(label, kind).inc()
        self.latency.labels(label).observe(seconds)
        if self.record is not None:
            self.record.add(label, kind, seconds)
        level = logging.INFO if kind == "2xx" else logging.WARNING
        if log.isEnabledFor(level):
            log.log(level, "predict model=%s status=%d ms=%.1f", label, status, seconds * 1000)
