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

    from apps.ui.app import create_app

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
    history = client.get("/api/models").json()["history"]
    assert history[-1]["code"] == "promoted" and history[-1]["kind"] == "gate passed"  # read from the code
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


def test_a_provider_that_cannot_be_read_is_a_readable_error(client) -> None:
    """The test settings leave [azure] as shipped: its workspace ids are placeholders to fill."""
    page = client.get("/models?provider=azure")
    assert page.status_code == 200
    assert "Cannot read the azure provider" in page.text and "subscription" in page.text
    assert client.get("/models?provider=nope").status_code == 422
    answer = client.get("/api/models?provider=azure")  # the JSON twin: a 503 saying the same
    assert answer.status_code == 503 and "subscription" in answer.json()["detail"]


def test_run_summary_says_what_changed_this_week(seeded) -> None:
    from apps.ui.pages import summary_page
    from apps.ui.run_note import NOTE_LIMIT, note_text
    from lifecycle.context import StageContext
    from lifecycle.summary import run_summary

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


def test_empty_pages_say_which_settings_they_read_and_how_to_see_the_demo(tmp_path, monkeypatch) -> None:
    from fastapi.testclient import TestClient

    import demo
    from apps.ui.app import create_app

    config = write_config(tmp_path / "fresh", local={"endpoint_port": free_port()})
    demo_config = tmp_path / "demo" / "astro.toml"  # as `make demo` leaves it
    demo_config.parent.mkdir()
    demo_config.write_text(config.read_text())
    monkeypatch.setattr(demo, "DEMO_CONFIG", demo_config)
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    client = TestClient(create_app(require_auth=False))
    for page in ("/models", "/drift"):
        text = client.get(page).text
        assert f"Settings: <code>{config.resolve()}</code>" in text
        assert "nothing has run with them yet" in text
        assert "<code>make airflow-demo</code>" in text and str(demo_config) in text

    monkeypatch.setenv("MLOPS_CONFIG", str(demo_config))  # Airflow started with the demo's settings
    text = client.get("/models").text
    assert f"Settings: <code>{demo_config.resolve()}</code>" in text
    assert "make airflow-demo" not in text


def test_the_json_twins_say_what_to_fix_when_the_settings_are_invalid(tmp_path, monkeypatch) -> None:
    from fastapi.testclient import TestClient

    from apps.ui.app import create_app

    config = write_config(tmp_path, local={"endpoint_port": free_port()})
    config.write_text(config.read_text().replace("[project]\n", '[project]\nmodel_nmae = "churn"\n'))
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    client = TestClient(create_app(require_auth=False), raise_server_exceptions=False)
    for path in ("/api/models", "/api/drift"):
        answer = client.get(path)
        assert answer.status_code == 503, answer.text
        detail = answer.json()["detail"]
        assert detail.startswith("cannot read the configured provider: ConfigError: ")
        assert str(config) in detail and "model_nmae" in detail
    page = client.get("/models")  # the HTML page says the same on the page
    assert page.status_code == 200 and "model_nmae" in page.text
    report = client.get("/drift/report/2026-W05")
    assert report.status_code == 503 and "model_nmae" in report.text


def test_run_ids_show_on_one_line_with_the_full_id_on_hover() -> None:
    from apps.ui.pages import _run_id

    full = "drift_retrain__2026-W40"
    assert _run_id(full) == f'<span class="runid" title="{full}">{full}</span>'
    full = "manual__2026-11-30T08:54:07.503627+00:00_2LRL6eZL"
    assert _run_id(full) == f'<span class="runid" title="{full}">manual__2026-11-30T08:54:07_2LRL6eZL</span>'


def test_a_backfilled_winner_kept_out_of_production_is_not_shown_as_rejected() -> None:
    from apps.ui.pages import _decision_badge, _gate_badge

    kept = {"passed": True, "promote": False}
    assert ">passed, kept<" in _gate_badge(kept) and ">keep<" in _decision_badge(kept)
    assert ">passed<" in _gate_badge({"passed": True, "promote": True})
    assert ">rejected<" in _gate_badge({"passed": False, "promote": False})


# last in this module: it adds serving traffic to the seeded provider
def test_drift_page_shows_each_weeks_serving_beside_its_drift(client, seeded) -> None:
    from datetime import timedelta

    from core.serving_metrics import HourlyRecord
    from lifecycle.operations import watch_serving, week_window

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
