"""The endpoint measures itself: /metrics counts a bounded load exactly, the hourly record agrees.

The app runs in this process (FastAPI's TestClient) with a real model; one model call is made
slow on cue, to land in the latency histogram's tail.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import fit_model, write_deployment

from apps.serving.app import create_app
from core.errors import ConfigError
from core.ml.modeling import TrainedModel
from core.serving_metrics import (
    LATENCY_BUCKETS_S,
    access_log_level,
    histogram_quantile,
    hour_of,
    read_hours,
)
from demo.sample_data import generate_week
from demo.spec import DEMO_SPEC, ID_COLUMN, RAW_FEATURES

MODEL = "churn"
SLOW_ID = "slow-one"
SLOW_SECONDS = 0.3


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A deployments folder serving one small model as version 7."""
    root = tmp_path_factory.mktemp("metrics")
    model = fit_model(generate_week("2026-W05", 600, seed=1), {"max_iter": 5})
    write_deployment(root, model, "7", MODEL)
    return root


@pytest.fixture(scope="module")
def rows():
    frame = generate_week("2026-W07", 30, seed=3)[[ID_COLUMN, *RAW_FEATURES]]
    return json.loads(frame.to_json(orient="records"))


@pytest.fixture(scope="module")
def slow_model():
    """One model call sleeps when it holds the row with id SLOW_ID (a stalled model call)."""
    original = TrainedModel.predict_records

    def maybe_slow(self, records):
        if any(r.get(ID_COLUMN) == SLOW_ID for r in records):
            time.sleep(SLOW_SECONDS)
        return original(self, records)

    TrainedModel.predict_records = maybe_slow
    try:
        yield
    finally:
        TrainedModel.predict_records = original


@pytest.fixture(scope="module")
def load(folder, rows, slow_model):
    """A bounded load: 12 good requests (one slow), 3 invalid, 2 of an unknown model, 1 too large."""
    app = create_app(folder / "deployments", spec=DEMO_SPEC, metrics=folder / "metrics")
    url = f"/models/{MODEL}/predict"
    statuses = []
    with TestClient(app) as client:
        for i in range(12):
            batch = rows[i : i + 2]
            if i == 5:
                batch = [{**batch[0], ID_COLUMN: SLOW_ID}]
            statuses.append(client.post(url, json={"rows": batch}).status_code)
        for bad in ({"rows": []}, {"rows": [{**rows[0], "tenure_months": "x"}]}, {"nope": 1}):
            statuses.append(client.post(url, json=bad).status_code)
        for _ in range(2):
            statuses.append(client.post("/models/nothing-here/predict", json={"rows": rows[:1]}).status_code)
        statuses.append(
            client.post(
                url, content=b"x" * (2 * 1024 * 1024), headers={"content-type": "application/json"}
            ).status_code
        )
        exposition = client.get("/metrics").text
    # leaving the client ran the app's shutdown: the record is flushed
    return statuses, exposition, app


def _sample(exposition: str, name: str, **labels: str) -> float:
    """One sample's value from the Prometheus text format (0 if absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_the_load_got_the_answers_it_should(load):
    statuses, _, _ = load
    assert statuses == [200] * 12 + [422] * 3 + [404] * 2 + [413]


def test_metrics_count_requests_by_model_and_status_class(load):
    _, text, _ = load
    assert _sample(text, "mlops_endpoint_requests_total", model=MODEL, status_class="2xx") == 12
    assert _sample(text, "mlops_endpoint_requests_total", model=MODEL, status_class="4xx") == 4  # 422s, 413
    assert _sample(text, "mlops_endpoint_requests_total", model="_unknown", status_class="4xx") == 2
    assert _sample(text, "mlops_endpoint_requests_total", status_class="5xx") == 0
    assert "nothing-here" not in text  # a client cannot make up label values


def test_latency_histogram_holds_every_request_and_the_slow_one_in_its_tail(load):
    _, text, _ = load
    assert _sample(text, "mlops_endpoint_request_seconds_count", model=MODEL) == 16
    below = _sample(text, "mlops_endpoint_request_seconds_bucket", model=MODEL, le="0.25")
    assert below == 15  # every request but the slow one answered within 250 ms
    assert _sample(text, "mlops_endpoint_request_seconds_sum", model=MODEL) >= SLOW_SECONDS


def test_batch_sizes_version_and_in_flight(load):
    _, text, _ = load
    assert _sample(text, "mlops_endpoint_batch_rows_sum", model=MODEL) == 11 * 2 + 1
    assert _sample(text, "mlops_endpoint_batch_rows_count", model=MODEL) == 12  # one at a time: no batching
    assert _sample(text, "mlops_endpoint_model_version_info", model=MODEL, version="7") == 1
    assert _sample(text, "mlops_endpoint_in_flight_requests") == 0


def test_the_hourly_record_agrees_with_the_metrics(load, folder):
    now = datetime.now(UTC)
    hours = read_hours(
        folder / "metrics", hour_of(now) - timedelta(hours=1), hour_of(now) + timedelta(hours=1)
    )
    counts = [h["models"][MODEL] for h in hours if MODEL in h["models"]]
    requests = {k: sum(c["requests"][k] for c in counts) for k in ("2xx", "4xx", "5xx")}
    assert requests == {"2xx": 12, "4xx": 4, "5xx": 0}
    buckets = [sum(col) for col in zip(*(c["latency_buckets"] for c in counts), strict=True)]
    assert sum(buckets) == 16
    # the slowest of 16 is the one stalled call: the 99th percentile lies in its bucket
    p99 = histogram_quantile(LATENCY_BUCKETS_S, buckets, 0.99)
    assert 0.25 <= p99 <= 0.5
    assert all(h["uptime_seconds"] > 0 for h in hours)


def test_request_logs_carry_the_outcome_not_the_payload(folder, rows, caplog):
    app = create_app(folder / "deployments", spec=DEMO_SPEC, metrics=folder / "metrics-logs")
    secret = {**rows[0], ID_COLUMN: "customer-secret-123"}
    with caplog.at_level(logging.INFO, logger="apps.serving.access"), TestClient(app) as client:
        assert client.post(f"/models/{MODEL}/predict", json={"rows": [secret]}).status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "apps.serving.access"]
    assert len(lines) == 1 and f"model={MODEL} status=200" in lines[0]
    assert "customer-secret-123" not in caplog.text


@pytest.mark.parametrize(("mode", "logged"), [("all", [200, 422]), ("errors", [422]), ("off", [])])
def test_the_access_log_setting_chooses_which_predictions_get_a_line(folder, rows, caplog, mode, logged):
    access = logging.getLogger("apps.serving.access")
    app = create_app(folder / "deployments", spec=DEMO_SPEC, metrics=folder / f"metrics-{mode}")
    try:
        with caplog.at_level(logging.NOTSET, logger="apps.serving.access"), TestClient(app) as client:
            access.setLevel(access_log_level({"endpoint_access_log": mode}))  # as the server's main
            assert client.post(f"/models/{MODEL}/predict", json={"rows": rows[:1]}).status_code == 200
            assert client.post(f"/models/{MODEL}/predict", json={"rows": "none"}).status_code == 422
            counted = client.get("/metrics").text
    finally:
        access.setLevel(logging.NOTSET)
    lines = [r.getMessage() for r in caplog.records if r.name == "apps.serving.access"]
    assert [int(re.search(r"status=(\d+)", line).group(1)) for line in lines] == logged
    assert re.search(r'mlops_endpoint_requests_total\{model="churn",status_class="4xx"\} 1', counted)


@pytest.mark.parametrize("mode", ["debug", "", True, None, ["all"]])
def test_an_access_log_setting_that_is_not_a_mode_is_refused_by_name(mode):
    with pytest.raises(ConfigError, match=r"endpoint_access_log.*\"all\".*\"errors\".*\"off\""):
        access_log_level({"endpoint_access_log": mode})


@pytest.mark.parametrize(
    ("counts", "q", "expected"),
    [
        ([0, 10, 0], 0.5, 0.5 * 1 + 0.5 * 2),  # half-way through the (1, 2] bucket
        ([4, 0, 0], 0.99, 0.99),  # in (0, 1]
        ([0, 0, 3], 0.5, 2.0),  # the +Inf bucket: the last finite bound
        ([0, 0, 0], 0.5, None),
    ],
)
def test_histogram_quantile(counts, q, expected):
    found = histogram_quantile((1.0, 2.0), counts, q)
    assert found is None if expected is None else found == pytest.approx(expected)


# --------------------------------------------------------------------------------------------
# The Grafana-ready view (monitoring/): every query of the dashboard reads what /metrics serves

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
_GROUPING = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)"
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
             "offset", "inf", "nan"}  # fmt: skip


def _promql_uses(expr: str) -> tuple[set[str], set[str]]:
    """The metric names and the label names a PromQL expression uses."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values are not names
    labels = {name for matchers in re.findall(r"\{([^}]*)\}", expr)
              for name in re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers)}  # fmt: skip
    labels |= {
        name.strip() for group in re.findall(_GROUPING, expr) for name in group.split(",") if name.strip()
    }
    bare = re.sub(_GROUPING, " ", re.sub(r"\{[^}]*\}|\[[^\]]*\]|\$\w+", " ", expr))
    names = {
        m.group()
        for m in re.finditer(r"[a-zA-Z_:][\w:]*", bare)
        if not bare[m.end() :].lstrip().startswith("(") and m.group() not in _KEYWORDS  # not a function
    }
    return names, labels


def _served(exposition: str) -> dict[str, set[str]]:
    """``{sample name: its label names}`` of a /metrics page, read by prometheus_client's parser."""
    from prometheus_client.parser import text_string_to_metric_families

    served: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            served.setdefault(sample.name, set()).update(sample.labels)
    return served


@pytest.fixture(scope="module")
def dashboard():
    return json.loads((MONITORING / "grafana-dashboard.json").read_text())


def _queries(dashboard: dict) -> list[tuple[str, str]]:
    """``(where, PromQL)`` of every panel target and of the template variables' label_values()."""
    found = [
        (f"panel {p['title']!r} {t['refId']}", t["expr"]) for p in dashboard["panels"] for t in p["targets"]
    ]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else ""
        for metric, label in re.findall(r"label_values\(\s*([\w:]+)\s*,\s*(\w+)\s*\)", text):
            found.append((f"variable {variable['name']!r}", f"{metric}{{{label}!=''}}"))
    return found


def test_the_dashboard_has_grafanas_dashboard_model(dashboard):
    required = {"uid": str, "title": str, "tags": list, "timezone": str, "editable": bool,
                "graphTooltip": int, "panels": list, "time": dict, "timepicker": dict, "templating": dict,
                "annotations": dict, "refresh": str, "schemaVersion": int, "version": int,
                "links": list}  # fmt: skip
    for key, kind in required.items():
        assert isinstance(dashboard.get(key), kind), key
    assert "id" in dashboard and dashboard["id"] is None  # imported as a new dashboard
    assert 8 <= len(dashboard["uid"]) <= 40 and set(dashboard["time"]) == {"from", "to"}
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells = set()
    for panel in dashboard["panels"]:
        assert panel["type"] in {"timeseries", "table", "stat", "gauge"} and panel["title"], panel
        grid = panel["gridPos"]
        assert 1 <= grid["w"] and grid["x"] + grid["w"] <= 24 and grid["h"] >= 1, panel["title"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & mine, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)) and all(t["expr"].strip() for t in panel["targets"])
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_every_query_of_the_dashboard_reads_metrics_the_endpoint_serves(load, dashboard):
    _, exposition, _ = load
    served = _served(exposition)
    used = set()
    for where, expr in _queries(dashboard):
        names, labels = _promql_uses(expr)
        assert names, f"{where}: no metric in {expr!r}"
        missing = names - set(served)
        assert not missing, f"{where} queries {sorted(missing)}, which /metrics does not serve"
        known = set().union(*(served[name] for name in names))
        assert labels <= known, f"{where} uses labels {sorted(labels - known)} the metrics do not carry"
        used |= names
    # every measurement of the endpoint is on the dashboard
    for family in ("mlops_endpoint_requests_total", "mlops_endpoint_request_seconds_bucket",
                   "mlops_endpoint_batch_rows_sum", "mlops_endpoint_in_flight_requests",
                   "mlops_endpoint_model_version_info"):  # fmt: skip
        assert family in used, family
    quantiles = " ".join(expr for _, expr in _queries(dashboard))
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}, sum by (le) (rate(mlops_endpoint_request_seconds_bucket" in quantiles


def test_the_query_reader_finds_names_and_labels():
    names, labels = _promql_uses(
        'histogram_quantile(0.99, sum by (le) (rate(x_bucket{model=~"$m",a="b{c}"}[$__rate_interval]))) / y'
    )
    assert (names, labels) == ({"x_bucket", "y"}, {"le", "model", "a"})


def test_the_prometheus_config_scrapes_the_endpoint_astro_toml_names():
    import tomllib

    import yaml

    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "mlops-endpoint"]
    local = tomllib.loads((MONITORING.parent / "astro.toml").read_text())["local"]
    assert job["metrics_path"] == "/metrics"
    assert [t for group in job["static_configs"] for t in group["targets"]] == [
        f"{local['endpoint_host']}:{local['endpoint_port']}"
    ]
