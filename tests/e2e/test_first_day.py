"""A new user's first day, as the README tells it, from a fresh clone, in a real browser.

1. ``make airflow``, log in with the generated password, trigger ``retrain_pipeline`` from its
   trigger form with the defaults ("Unpause on trigger" left as it is): the run succeeds alone
   (the deploy starts the local endpoint by itself), and the Models page shows the model it
   registered. ``make serve-stop`` stops the endpoint the deploy started.
2. ``make demo`` (three weeks instead of six, drift in the last one, 2026-W40 as in the full
   demo): the demo's concept drift of W40 is measured on the model that served W40 and is seen
   in W40's own run; then ``make airflow-demo`` shows the demo's models and drift weeks in the UI,
   and W40's drift report has the distribution plots of its drifted features.

The clone: ``git clone`` of this checkout (its committed HEAD) into a temporary folder. It
reuses this checkout's virtualenv through a symlink ``.venv -> <checkout>/.venv`` (installing the
lock takes minutes); git gives every file of a clone the time of the clone, so the clone's
``requirements.txt`` gets the time of the virtualenv's install stamp, or make would re-install
the lock into the shared virtualenv and point its ``.pth`` at the clone. Nothing else is
prepared: ``make airflow`` migrates the clone's own SQLite database (``.airflow/``).

Ports: every port is a free one on 127.0.0.1, so the test never meets a user's Airflow (8080) or
endpoints (8765, 8766). The UI's by Airflow's ``AIRFLOW__API__PORT`` (the Makefile points the
tasks' execution API at it), the log servers' by ``AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT`` /
``..._TRIGGER_LOG_SERVER_PORT``; the one edit of the clone is its astro.toml's ``[local]
endpoint_port``; the demo's endpoint port is ``make demo``'s ``--endpoint-port`` option.

Every ``make`` runs in a process group of its own, stopped by pid (SIGTERM to the group and its
descendants, SIGKILL after a grace period) even when the test fails; the endpoint servers, which
run in sessions of their own, by the documented stop commands, then by the pid in their pid file.
Screenshots go to ``tests/artifacts/browser/first-day-*.png`` (``$UI_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from airflow_services import task_log_tail
from browser import UI_TIMEOUT, VIEWPORT, login, shot
from helpers import ROOT, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

DEMO_WEEKS = ["2026-W38", "2026-W39", "2026-W40"]
DEMO_ARGS = "--first-week 2026-W38 --weeks 3 --drift-from-week 3"  # drift (both kinds) in W40
RUN_TIMEOUT = 600  # seconds for the first-day pipeline run, trigger to success
UP_TIMEOUT = 300  # seconds for `make airflow` to answer with the DAG parsed
DEMO_TIMEOUT = 900  # seconds for `make demo`
GRACE = 15  # seconds between SIGTERM and SIGKILL
PASSWORDS = ".airflow/simple_auth_manager_passwords.json.generated"  # where the README says
#: how long the trigger form may take to create the run: longer than SQLite's busy timeout (60 s)
TRIGGER_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A fresh clone with this checkout's virtualenv, free ports, and an environment without ours."""
    stamp = ROOT / ".venv" / ".installed"
    if not stamp.exists():
        pytest.fail(f"{stamp} is missing: run `make setup` in {ROOT} first")
    folder = tmp_path_factory.mktemp("first-day") / "project"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(folder)], check=True, timeout=300)
    (folder / ".venv").symlink_to(ROOT / ".venv")
    installed = stamp.stat().st_mtime_ns  # to the nanosecond: make compares them so
    os.utime(folder / "requirements.txt", ns=(installed, installed))
    endpoint_port = free_port()
    settings = folder / "astro.toml"
    text, edits = re.subn(
        r"(?m)^endpoint_port = 8765\b", f"endpoint_port = {endpoint_port}", settings.read_text()
    )
    assert edits == 1, "astro.toml's [local] endpoint_port = 8765 line moved: update this test"
    settings.write_text(text)
    api_port = free_port()
    env = {
        # this process's own settings (the tests' AIRFLOW_HOME, PYTHONPATH, an outer make's
        # variables) must not leak into the clone's make: it is a new user's shell
        **{k: v for k, v in os.environ.items() if not _inherited_setting(k)},
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }
    info = {
        "folder": folder,
        "env": env,
        "base": f"http://127.0.0.1:{api_port}",
        "demo_endpoint_port": free_port(),
        "timings": {},
    }
    try:
        yield info
    finally:
        print(f"\nfirst-day timings: { {k: f'{v:.0f} s' for k, v in info['timings'].items()} }")


def _inherited_setting(name: str) -> bool:
    return name.startswith(("AIRFLOW", "MLOPS_", "MAKE")) or name in ("MFLAGS", "PYTHONPATH", "VIRTUAL_ENV")


def test_first_day_make_airflow_then_a_pipeline_run_from_the_trigger_form(clone, browser) -> None:
    folder, base, timings = clone["folder"], clone["base"], clone["timings"]
    try:
        with _signed_in(clone, browser, "airflow") as (page, make, token):
            # unpaused first, as with the DAG's toggle: the form's "Unpause on trigger" sends the
            # unpause and the trigger at once, two writes SQLite once held up past the form's
            # wait in CI (the README says so); the assertions below hold either way
            _api(clone, token, "/api/v2/dags/retrain_pipeline", "PATCH", {"is_paused": False})
            page.goto(f"{base}/dags/retrain_pipeline")
            page.get_by_role("button", name="Trigger").first.click()
            dialog = page.get_by_role("dialog")
            dialog.get_by_text("ISO week to process").first.wait_for()
            shot(page, "first-day-01-trigger-form")
            triggered = time.monotonic()
            dialog.get_by_role("button", name="Trigger").last.click()  # the defaults, as they are
            # the api-server writes the run to SQLite, which may wait out another component's
            # write lock (the Makefile's busy timeout is 60 s) while the components start up
            dialog.wait_for(state="hidden", timeout=TRIGGER_TIMEOUT_MS)

            run = _wait_for_run(clone, make, token)
            timings["pipeline run (trigger to success)"] = time.monotonic() - triggered
            assert run["state"] == "success", f"{run}\n{_diagnostics(clone, make)}"
            # unpausing started no scheduled run beside it
            runs = _api(clone, token, "/api/v2/dags/retrain_pipeline/dagRuns")["dag_runs"]
            assert [r["dag_run_id"] for r in runs] == [run["dag_run_id"]], runs

            # the deploy started the local endpoint by itself, under the data folder
            assert (folder / ".mlops" / "endpoint" / "server.pid").exists()

            page.goto(f"{base}/plugin/mlops-models")
            frame = page.frame_locator("iframe[title='Models']")
            frame.locator("#version-1").wait_for()
            assert frame.locator("#production-version").inner_text() == "v1"
            week = _week_before(run)
            assert frame.locator("#version-1 td").nth(1).inner_text() == week
            # the version names the run that trained it (the full run id on hover)
            assert frame.locator(f'#version-1 span.runid[title="{run["dag_run_id"]}"]').count() == 1
            assert frame.locator(f'#history span.runid[title="{run["dag_run_id"]}"]').count() == 1
            shot(page, "first-day-02-models-in-airflow")
            page.goto(f"{base}/mlops/models")
            page.locator("#versions").wait_for()
            print(f"\nfirst-day Models page: {shot(page, 'first-day-03-models-page')}")
    finally:
        _stop_endpoint(folder, ["make", "serve-stop"], folder / ".mlops", clone["env"])
    assert not (folder / ".mlops" / "endpoint" / "server.pid").exists()  # make serve-stop stopped it


@pytest.fixture(scope="module")
def demo(clone) -> Iterator[dict]:
    """``make demo`` over three weeks (W38..W40, drift in W40) in the clone; its output."""
    folder, started = clone["folder"], time.monotonic()
    args = f"{DEMO_ARGS} --endpoint-port {clone['demo_endpoint_port']}"
    try:
        with _make(clone, "demo", f"DEMO_ARGS={args}", log_name="make-demo.log") as make:
            try:
                make.process.wait(timeout=DEMO_TIMEOUT)
            except subprocess.TimeoutExpired:
                pytest.fail(f"make demo did not finish in {DEMO_TIMEOUT} s:\n{_tail(make.log, 40)}")
        output = make.log.read_text(errors="replace")
        code = make.process.returncode
        assert code == 0, f"make demo exited with {code}:\n{output[-4000:]}"
        clone["timings"]["make demo (3 weeks)"] = time.monotonic() - started
        yield {"output": output, "config": folder / ".mlops-demo" / "astro.toml"}
    finally:
        demo_stop = (
            "providers.local.server_process stop --config .mlops-demo/astro.toml"  # its README command
        )
        _stop_endpoint(
            folder,
            [".venv/bin/python", "-m", *demo_stop.split()],
            folder / ".mlops-demo" / "mlops",
            clone["env"],
        )


def test_the_demos_concept_drift_of_w40_is_seen_in_w40s_own_run(demo) -> None:
    """The model that served W40 (trained on W39) is judged on W40, not the W40 retrain."""
    from core.config import load_settings
    from lifecycle.context import StageContext

    ctx = StageContext(settings=load_settings(demo["config"]), week="2026-W40", actor="test")
    [summary] = ctx.provider.warehouse.read_rows("drift_summary", {"week": "2026-W40"}).to_dict("records")
    served = ctx.provider.registry.get_version(ctx.model_name, summary["concept_model_version"])
    assert served.tags["week"] == "2026-W39", dict(served.tags)
    assert bool(summary["concept_drifted"]), summary
    assert summary["live_metric"] < summary["reference_metric"] - ctx.settings.drift.concept_metric_drop
    [evaluation] = ctx.provider.warehouse.read_rows("evaluations", {"week": "2026-W40"}).to_dict("records")[
        :1
    ]
    assert evaluation["champion_version"] == served.version  # the champion the week's gate compared with
    assert "monitor_drift triggered drift_retrain__2026-W40" in demo["output"]


def test_make_airflow_demo_shows_the_demos_models_and_drift(clone, demo, browser) -> None:
    base = clone["base"]
    production = re.search(r"Model versions of '\w+' \(production: v(\d+)\)", demo["output"])
    assert production, demo["output"][-3000:]
    versions = sorted(set(re.findall(r"(?m)^ [ *] v(\d+) ", demo["output"])), key=int)
    with _signed_in(clone, browser, "airflow-demo") as (page, _, token):
        _check_the_demos_runs_in_the_grid(clone, token)
        page.goto(f"{base}/dags/retrain_pipeline")
        page.get_by_text("trigger_retrain").first.wait_for()  # the grid's last task row
        shot(page, "first-day-07-demo-grid")

        page.goto(f"{base}/plugin/mlops-models")
        frame = page.frame_locator("iframe[title='Models']")
        frame.locator("#versions").wait_for()
        assert ".mlops-demo/astro.toml" in frame.locator("#settings-note").inner_text()
        for version in versions:
            frame.locator(f"#version-{version}").wait_for()
        assert frame.locator("#production-version").inner_text() == f"v{production[1]}"
        shot(page, "first-day-04-demo-models")

        page.goto(f"{base}/plugin/mlops-drift")
        frame = page.frame_locator("iframe[title='Drift']")
        frame.locator("svg.heatmap").wait_for()
        for week in DEMO_WEEKS:
            frame.locator(f"#week-{week}").wait_for()
        # the verdict's badge (DRIFT: ...), not the decision's text under it
        assert frame.locator("#week-2026-W40").get_by_text(re.compile("^DRIFT:")).count() == 1
        shot(page, "first-day-05-demo-drift")

        page.goto(f"{base}/mlops/reports/drift/2026-W40")  # the report itself, from storage
        page.locator("svg.distribution").first.wait_for()
        plotted = page.locator("svg.distribution").count()
        drifted = page.locator("tr.drifted").count()
        assert plotted == drifted > 0, (plotted, drifted)
        print(f"\nfirst-day drift report: {shot(page, 'first-day-06-demo-drift-report')}")


def _check_the_demos_runs_in_the_grid(clone: dict, token: str) -> None:
    """What the grid shows of the demo: one run per week and one drift retrain, all tasks with a state.

    Each week's run records reason 'scheduled', the retrain (the ``drift_retrain__<week>`` run
    monitor_drift triggered, not a run beside it) 'drift'; each run lasted minutes, not the
    months since its logical date.
    """
    from urllib.parse import quote

    runs = _api(clone, token, "/api/v2/dags/retrain_pipeline/dagRuns?order_by=run_after")["dag_runs"]
    runs = [
        run for run in runs if run["triggered_by"] == "test"
    ]  # the demo's (dag.test), not the trigger form's
    assert [run["conf"].get("reason") for run in runs] == ["scheduled"] * len(DEMO_WEEKS) + ["drift"], runs
    assert runs[-1]["dag_run_id"] == "drift_retrain__2026-W40", runs
    for run in runs:
        path = f"/api/v2/dags/retrain_pipeline/dagRuns/{quote(run['dag_run_id'], safe='')}/taskInstances"
        instances = _api(clone, token, path)["task_instances"]
        assert instances and all(ti["state"] for ti in instances), (run["dag_run_id"], instances)
        began, ended = (
            datetime.fromisoformat(run[key].replace("Z", "+00:00")) for key in ("start_date", "end_date")
        )
        assert (ended - began).total_seconds() < 1800, run


@contextmanager
def _signed_in(clone: dict, browser, target: str) -> Iterator[tuple[object, _Make, str]]:  # noqa: ANN001
    """``make <target>`` up, and a browser page signed in as admin with the generated password.

    Yields:
        The page, the make process and a REST API token. A failing step saves what the page
        showed (while Airflow still runs); then make is stopped and the page closed.
    """
    started = time.monotonic()
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.set_default_timeout(UI_TIMEOUT)
    try:
        with _make(clone, target, log_name=f"make-{target}.log") as make:
            token, password = _wait_until_up(clone, make)
            clone["timings"][f"make {target} up"] = time.monotonic() - started
            try:
                login(page, clone["base"], "admin", password)
                yield page, make, token
            except BaseException:
                with suppress(Exception):
                    shot(page, f"first-day-failure-{target}")
                raise
    finally:
        page.context.close()


@dataclass
class _Make:
    """A ``make`` process of the clone and the file its output goes to."""

    process: subprocess.Popen
    log: Path

    def check_alive(self) -> None:
        """Fail the test with make's output if it exited."""
        if self.process.poll() is not None:
            pytest.fail(f"`{self.command}` exited with {self.process.returncode}:\n{_tail(self.log, 60)}")

    @property
    def command(self) -> str:
        """The make command line."""
        return " ".join(self.process.args)


@contextmanager
def _make(clone: dict, *args: str, log_name: str) -> Iterator[_Make]:
    """``make <args>`` in the clone, in a process group of its own; stopped by pid afterwards."""
    from scripts.cluster import stop_groups

    log_path = clone["folder"] / log_name
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            ["make", *args],
            cwd=clone["folder"],
            env=clone["env"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        yield _Make(process, log_path)
    finally:
        stop_groups([process.pid], GRACE)  # SIGTERM to the group and its descendants, SIGKILL after GRACE s


def _wait_until_up(clone: dict, make: _Make) -> tuple[str, str]:
    """Wait until the UI answers, the password file exists and retrain_pipeline is parsed.

    Returns:
        A REST API token and the admin's generated password.
    """
    import httpx

    base, deadline = clone["base"], time.monotonic() + UP_TIMEOUT
    passwords = clone["folder"] / PASSWORDS
    while time.monotonic() < deadline:
        make.check_alive()
        with suppress(httpx.TransportError, OSError, ValueError, KeyError):
            password = json.loads(passwords.read_text())["admin"]
            token = httpx.post(
                f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=10
            ).json()["access_token"]
            answer = httpx.get(
                f"{base}/api/v2/dags/retrain_pipeline",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            if answer.status_code == 200:
                return token, password
        time.sleep(2)
    pytest.fail(f"`{make.command}` did not serve retrain_pipeline in {UP_TIMEOUT} s:\n{_tail(make.log, 40)}")


def _wait_for_run(clone: dict, make: _Make, token: str) -> dict:
    """The triggered run of retrain_pipeline, once it finished (bounded by RUN_TIMEOUT)."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        make.check_alive()
        runs = _api(clone, token, "/api/v2/dags/retrain_pipeline/dagRuns")["dag_runs"]
        manual = [r for r in runs if r["run_type"] == "manual"]
        if manual and manual[0]["state"] in ("success", "failed"):
            return manual[0]
        time.sleep(3)
    pytest.fail(f"retrain_pipeline did not finish in {RUN_TIMEOUT} s\n{_diagnostics(clone, make)}")


def _api(clone: dict, token: str, path: str, method: str = "GET", body: dict | None = None) -> dict:
    """Call the clone's REST API as the admin; the answer's JSON."""
    import httpx

    answer = httpx.request(
        method,
        f"{clone['base']}{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=TRIGGER_TIMEOUT_MS / 1000,  # a write may wait out SQLite's locks
    )
    answer.raise_for_status()
    return answer.json()


def _week_before(run: dict) -> str:
    """The week a run with the defaults processes: the last complete ISO week before its date."""
    from core.weeks import week_partition

    when = run.get("logical_date") or run["run_after"]
    return week_partition(datetime.fromisoformat(when.replace("Z", "+00:00")).astimezone(UTC))


def _diagnostics(clone: dict, make: _Make) -> str:
    """The end of make's output and of every task log of the clone's Airflow."""
    parts = [f"----- {make.log.name} (tail) -----\n{_tail(make.log, 40)}"]
    for path in sorted((clone["folder"] / ".airflow" / "logs").glob("dag_id=*/run_id=*/task_id=*/**/*.log")):
        parts.append(f"----- {path} (tail) -----\n{task_log_tail(path, 15)}")
    return "\n".join(parts)


def _stop_endpoint(folder: Path, command: list[str], root: Path, env: dict[str, str]) -> None:
    """Stop an endpoint server by its documented command, then (if that failed) by its pid file."""
    with suppress(subprocess.SubprocessError, OSError):
        subprocess.run(command, cwd=folder, env=env, capture_output=True, timeout=60)
    pid_file = root / "endpoint" / "server.pid"
    with suppress(OSError, ValueError):
        pid = int(pid_file.read_text().split()[0])
        if b"apps.serving.app" in Path(f"/proc/{pid}/cmdline").read_bytes():  # not a reused pid
            os.kill(pid, signal.SIGKILL)


def _tail(path: Path, lines: int) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
