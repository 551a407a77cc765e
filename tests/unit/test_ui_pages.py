"""The Models and Drift pages over a real local provider seeded by the stage functions."""

from __future__ import annotations

import re

import pytest
from helpers import free_port, seed_loop, write_config

WEEKS = ["2026-W11", "2026-W12", "2026-W13"]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ui")
    config = write_config(
        folder,
        local={"endpoint_port": free_port()},
        data={"rows_per_week": 800, "covariate_drift_from_week": "2026-W13"},
        model={"params": {"max_iter": 20}},
    )
    ctx = seed_loop(config, WEEKS)
    return config, ctx


@pytest.fixture
def client(seeded, monkeypatch):
    from fastapi.testclient import TestClient

    from include.ui.app import create_app

    monkeypatch.setenv("MLOPS_CONFIG", str(seeded[0]))
    return TestClient(create_app(require_auth=False))


def test_models_page_lists_every_version_and_production(client, seeded) -> None:
    ctx = seeded[1]
    page = client.get("/models")
    assert page.status_code == 200, page.text
    versions = ctx.provider.registry.list_versions(ctx.model_name)
    production = ctx.provider.registry.get_alias(ctx.model_name, "production")
    for version in versions:
        assert f'id="version-{version.version}"' in page.text
    assert f'id="production-version">v{production.version}<' in page.text
    assert "gate passed" in page.text  # the alias history says why production moved
    assert "2026-W13" in page.text


def test_models_json_matches_registry(client, seeded) -> None:
    ctx = seeded[1]
    data = client.get("/api/models").json()
    assert [v["version"] for v in data["versions"]] == [
        v.version for v in reversed(ctx.provider.registry.list_versions(ctx.model_name))
    ]
    assert data["evaluations"] and {e["week"] for e in data["evaluations"]} == set(WEEKS)
    local = data["versions"][0]["cost"]
    assert local["usd"] == 0.0 and "local" in local["basis"]


def test_drift_page_has_heat_map_and_lines(client) -> None:
    page = client.get("/drift")
    assert page.status_code == 200, page.text
    assert page.text.count('class="chart heatmap"') == 1
    assert page.text.count('class="chart line"') == 3
    assert "DRIFT" in page.text  # the covariate drift of W13 is flagged
    assert re.search(r'href="drift/report/2026-W13\?provider=local"', page.text)


def test_drift_report_is_served_from_storage(client) -> None:
    report = client.get("/reports/drift/2026-W13")
    assert report.status_code == 200
    assert "<html" in report.text.lower()
    assert "default-src 'none'" in report.headers["content-security-policy"]
    assert client.get("/drift/report/2026-W13").status_code == 200
    assert client.get("/reports/drift/2026-W40").status_code == 404
    assert client.get("/reports/drift/..%2F..%2Fetc").status_code in (400, 404)


def test_a_provider_not_written_yet_is_a_readable_error(client) -> None:
    page = client.get("/models?provider=gcp")
    assert page.status_code == 200
    assert "Cannot read the gcp provider" in page.text and "not implemented" in page.text
    assert client.get("/models?provider=nope").status_code == 422


def test_run_summary_says_what_changed_this_week(seeded) -> None:
    from include.stages.context import StageContext
    from include.stages.summary import run_summary
    from include.ui.pages import summary_page
    from include.ui.run_note import NOTE_LIMIT, note_text

    config, ctx = seeded
    week_ctx = StageContext(settings=ctx.settings, week="2026-W13", actor="seed-2026-W13", reason="manual")
    text = run_summary(week_ctx)
    assert text.startswith("**2026-W13**: manual run")
    assert "- Data: version `" in text and "rows valid" in text
    assert "- Gate: " in text and "- Scored: 800 rows" in text
    assert "- Drift: DRIFT (data" in text and "retrain triggered" in text
    assert "[report](/mlops/drift/report/2026-W13)" in text
    assert len(text) <= NOTE_LIMIT
    assert note_text("x" * 2000).endswith("…") and len(note_text("x" * 2000)) <= NOTE_LIMIT
    html = summary_page("retrain_pipeline", "manual__1", text)
    assert "<li>" in html and '<a href="/mlops/drift/report/2026-W13" target="_top">report</a>' in html


# last in this module: it adds serving traffic to the seeded provider
def test_drift_page_shows_each_weeks_serving_beside_its_drift(client, seeded) -> None:
    from datetime import timedelta

    from include.serving.metrics import HourlyRecord
    from include.stages.operations import watch_serving, week_window

    ctx = seeded[1]
    assert 'id="serving-none"' in client.get("/drift").text  # the seeding served nothing
    record = HourlyRecord(ctx.provider.endpoint.metrics)
    start, _ = week_window("2026-W12")
    for i in range(200):
        record.add(ctx.model_name, "5xx" if i < 20 else "2xx", 0.02, start + timedelta(hours=i % 100))
    record.flush()
    watch_serving(type(ctx)(settings=ctx.settings, week="2026-W12", actor="ui-test"))
    page = client.get("/drift").text
    assert page.count('class="chart line"') == 5  # the three drift charts and latency, error rate
    assert "Endpoint latency (ms)" in page and "Error rate (% of requests)" in page
    assert re.search(r'id="serving-unhealthy">Serving unhealthy in 2026-W12 ', page)
    assert client.get("/api/drift").json()["ops"]["2026-W12"]["errors_5xx"] == 20
