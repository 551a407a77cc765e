"""The operator's journey through the Airflow UI, in a real browser (Playwright + Debian's Chromium).

Three weeks of the loop are run beforehand with the stage functions (drift injected in the
third), and the fourth week is ingested and validated, so that ``train_model`` has data to
train on. Then the test starts ``airflow api-server``, ``dag-processor`` and ``scheduler`` on
127.0.0.1 with a home of their own and a known admin password, and, in headless Chromium:

1. logs in;
2. opens the trigger form of ``train_model``, fills in the week, and submits it;
3. waits for the run to succeed and opens it;
4. opens the Models page (the plugin's view in the UI) and finds the new challenger and the
   registered versions;
5. opens the Drift page and finds the heat map and line charts, then a week's HTML report;
6. (with ``UI_TEST_PIPELINE=1``: 3-6 more minutes) runs ``retrain_pipeline`` for the same
   week through the REST API and finds its summary as the run's note (set by the plugin's
   listener in the scheduler) and in its "Run summary" tab, and the newly registered version
   on the Models page.

Each step saves a screenshot under ``tests/artifacts/browser/`` (or ``$UI_TEST_ARTIFACTS``).
Chromium comes from Debian (``make browser`` installs it when it is missing), not from
``playwright install``.
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest
from airflow_services import Airflow, airflow_env
from browser import UI_TIMEOUT, VIEWPORT, login, shot
from helpers import (
    STAGES_BEFORE_TRAINING,
    EndpointServer,
    free_port,
    run_stages,
    seed_loop,
    write_config,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

SEED_WEEKS = ["2026-W10", "2026-W11", "2026-W12"]
DRIFT_WEEK = "2026-W12"
TRAIN_WEEK = "2026-W13"
USER, PASSWORD = "admin", "browser-test-password"
RUN_TIMEOUT = 300  # seconds for the train_model run, queued to success
PIPELINE_TIMEOUT = 900  # seconds for the retrain_pipeline run (nine tasks)


@pytest.fixture(scope="module")
def airflow_ui(tmp_path_factory: pytest.TempPathFactory, postgres_cluster):
    """Seeded settings and Airflow's components up; yields the base URL and handles."""
    folder = tmp_path_factory.mktemp("browser")
    home = folder / "airflow"
    home.mkdir()
    api_port, endpoint_port = free_port(), free_port()
    config = write_config(
        folder,
        local={"endpoint_port": endpoint_port},
        data={"rows_per_week": 800, "covariate_drift_from_week": DRIFT_WEEK},
        model={"params": {"max_iter": 20}},
    )
    timings: dict[str, float] = {}
    started = time.monotonic()
    ctx = seed_loop(config, SEED_WEEKS)
    run_stages(config, TRAIN_WEEK, STAGES_BEFORE_TRAINING)
    timings["seed 3 weeks + 1 validated"] = time.monotonic() - started

    env = airflow_env(home, api_port, config)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    env.update(
        {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        }
    )
    airflow = Airflow(home, env, api_port, postgres_cluster.create_database("airflow_browser"))
    server = None
    try:
        server = EndpointServer(folder / "mlops" / "endpoint" / "deployments", endpoint_port).wait_ready()
        airflow.migrate()
        airflow.start("api-server", "--host", "127.0.0.1", "--port", str(api_port))
        airflow.start("dag-processor")
        airflow.start("scheduler", "--skip-serve-logs")
        airflow.wait_api_ready()
        airflow.wait_dag_parsed("train_model")
        timings["airflow up"] = time.monotonic() - started - timings["seed 3 weeks + 1 validated"]
        yield {
            "airflow": airflow,
            "base": f"http://127.0.0.1:{api_port}",
            "ctx": ctx,
            "timings": timings,
        }
    finally:
        airflow.stop()
        if server is not None:
            server.stop()
        timings["total"] = time.monotonic() - started
        print(f"\nbrowser e2e timings: { {k: f'{v:.0f} s' for k, v in timings.items()} }")


def test_operator_journey(airflow_ui, browser) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(UI_TIMEOUT)
    page = context.new_page()
    try:
        _journey(airflow_ui, page)
    except BaseException:
        shot(page, "failure")  # what the browser showed when a step failed
        raise
    finally:
        context.close()


def _journey(airflow_ui, page) -> None:
    base, airflow, timings = airflow_ui["base"], airflow_ui["airflow"], airflow_ui["timings"]
    started = time.monotonic()

    # 1. log in
    page.goto(f"{base}/")
    page.locator("input[name=username]").fill(USER)
    page.locator("input[name=password]").fill(PASSWORD)
    shot(page, "01-login")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")
    page.get_by_role("link", name="Dags").first.wait_for()
    shot(page, "02-home")

    # 2. the trigger form of train_model, with the week filled in
    page.goto(f"{base}/dags/train_model")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Training window (weeks)").wait_for()
    assert "ISO week to process" in dialog.inner_text()  # the Params explain themselves
    dialog.locator("input[name=element_week]").fill(TRAIN_WEEK)
    shot(page, "03-trigger-form")
    dialog.get_by_role("button", name="Trigger").last.click()
    dialog.wait_for(state="hidden")

    # 3. the run succeeds
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        airflow.check_alive()
        runs = airflow.runs("train_model")
        if runs and runs[-1]["state"] in ("success", "failed"):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"train_model did not finish in {RUN_TIMEOUT} s: {runs}\n{airflow.diagnostics()}")
        time.sleep(2)
    timings["train_model run (trigger to success)"] = time.monotonic() - started
    run = runs[-1]
    assert run["state"] == "success", f"{run}\n{airflow.diagnostics()}"
    page.goto(f"{base}/dags/train_model/runs/{run['run_id']}")
    page.get_by_text("success", exact=False).first.wait_for()
    shot(page, "04-run-succeeded")

    ctx = airflow_ui["ctx"]
    [job] = ctx.provider.warehouse.read_rows("training_runs", {"week": TRAIN_WEEK})["job_name"]
    versions = ctx.provider.registry.list_versions(ctx.model_name)
    production = ctx.provider.registry.get_alias(ctx.model_name, "production")

    # 4. the Models page, inside the Airflow UI
    page.goto(f"{base}/plugin/mlops-models")
    frame = page.frame_locator("iframe[title='Models']")
    frame.locator("#versions").wait_for()
    frame.locator(f"#challenger-{job}").wait_for()  # the model this run trained
    for version in versions:
        frame.locator(f"#version-{version.version}").wait_for()
    assert frame.locator("#production-version").inner_text() == f"v{production.version}"
    assert frame.locator("#history").get_by_text("gate passed").count() >= 1
    shot(page, "05-models-in-airflow")
    page.goto(f"{base}/mlops/models")  # the page alone, to see all of it
    page.locator("#gate").wait_for()
    shot(page, "06-models-page")

    # 5. the Drift page: heat map, line charts, a week's report
    page.goto(f"{base}/plugin/mlops-drift")
    frame = page.frame_locator("iframe[title='Drift']")
    frame.locator("svg.heatmap").wait_for()
    assert frame.locator("svg.line").count() == 3
    # the verdict's badge (DRIFT: ...), not the decision's text under it
    assert frame.locator(f"#week-{DRIFT_WEEK}").get_by_text(re.compile("^DRIFT:")).count() == 1
    shot(page, "07-drift-in-airflow")
    page.goto(f"{base}/mlops/drift")
    page.locator("svg.heatmap rect").first.wait_for()
    shot(page, "08-drift-page")
    page.locator(f"#week-{DRIFT_WEEK}").get_by_role("link", name="report").click()
    report = page.frame_locator("iframe[title^='drift report']")
    report.get_by_text("monthly_charges").first.wait_for()
    shot(page, "09-drift-report")
    timings["browser journey"] = time.monotonic() - started


def test_pipeline_summary_becomes_the_run_note(airflow_ui, browser) -> None:
    """Step 6: retrain_pipeline for the week (through the REST API) under the real scheduler."""
    if os.environ.get("UI_TEST_PIPELINE") != "1":
        pytest.skip("the whole pipeline under the scheduler takes 3-6 more minutes: set UI_TEST_PIPELINE=1")
    base, airflow, timings = airflow_ui["base"], airflow_ui["airflow"], airflow_ui["timings"]
    ctx = airflow_ui["ctx"]
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(UI_TIMEOUT)
    page = context.new_page()
    started = time.monotonic()
    try:
        login(page, base, USER, PASSWORD)
        run = _run_pipeline(airflow_ui)
        timings["retrain_pipeline run"] = time.monotonic() - started
        note = airflow.query(
            "SELECT content FROM dag_run_note JOIN dag_run ON dag_run.id = dag_run_note.dag_run_id "
            "WHERE dag_run.run_id = %s",
            run["run_id"],
        )
        # set by the plugin's listener in the scheduler when the run succeeded
        assert note and note[0]["content"].startswith(f"**{TRAIN_WEEK}**: manual run"), note
        page.goto(f"{base}/dags/retrain_pipeline/runs/{run['run_id']}")
        page.get_by_text(": manual run").first.wait_for()  # the note's first line, rendered
        shot(page, "10-pipeline-run-note")
        page.get_by_text("Run summary", exact=True).first.click()  # the plugin's dag_run view
        page.frame_locator("iframe[title='Run summary']").get_by_text("Gate:").wait_for()
        shot(page, "11-pipeline-run-summary-tab")
        new = ctx.provider.registry.list_versions(ctx.model_name)[-1]
        assert new.tags["week"] == TRAIN_WEEK
        page.goto(f"{base}/plugin/mlops-models")
        page.frame_locator("iframe[title='Models']").locator(f"#version-{new.version}").wait_for()
        shot(page, "12-models-new-version")
    except BaseException:
        shot(page, "failure-pipeline")
        raise
    finally:
        context.close()


def _run_pipeline(airflow_ui) -> dict:
    """Trigger retrain_pipeline for TRAIN_WEEK through the REST API and wait for it to succeed."""
    import httpx

    base, airflow = airflow_ui["base"], airflow_ui["airflow"]
    token = httpx.post(
        f"{base}/auth/token", json={"username": USER, "password": PASSWORD}, timeout=30
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    httpx.patch(
        f"{base}/api/v2/dags/retrain_pipeline", json={"is_paused": False}, headers=headers, timeout=30
    ).raise_for_status()
    answer = httpx.post(
        f"{base}/api/v2/dags/retrain_pipeline/dagRuns",
        json={"logical_date": None, "conf": {"week": TRAIN_WEEK}},
        headers=headers,
        timeout=30,
    )
    answer.raise_for_status()
    run_id = answer.json()["dag_run_id"]
    deadline = time.monotonic() + PIPELINE_TIMEOUT
    while True:
        airflow.check_alive()
        runs = [r for r in airflow.runs("retrain_pipeline") if r["run_id"] == run_id]
        if runs and runs[-1]["state"] in ("success", "failed"):
            break
        if time.monotonic() > deadline:
            pytest.fail(
                f"retrain_pipeline did not finish in {RUN_TIMEOUT} s: {runs}\n{airflow.diagnostics()}"
            )
        time.sleep(2)
    assert runs[-1]["state"] == "success", f"{runs[-1]}\n{airflow.diagnostics()}"
    return runs[-1]


def test_pages_need_an_airflow_login(airflow_ui) -> None:
    import httpx

    base = airflow_ui["base"]
    for path in ("/mlops/models", "/mlops/drift", "/mlops/api/models", f"/mlops/reports/drift/{DRIFT_WEEK}"):
        assert httpx.get(f"{base}{path}", timeout=30).status_code == 401, path
    token = httpx.post(
        f"{base}/auth/token", json={"username": USER, "password": PASSWORD}, timeout=30
    ).json()["access_token"]
    answer = httpx.get(f"{base}/mlops/api/models", headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert answer.status_code == 200
    assert len(answer.json()["versions"]) >= len(SEED_WEEKS)
