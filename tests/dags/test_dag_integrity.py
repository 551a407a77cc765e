"""DAG integrity: every file parses, every DAG is documented and retried, parsing stays light."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_DAGS = {
    "ingest_data",
    "validate_data",
    "train_model",
    "evaluate_model",
    "register_model",
    "deploy_model",
    "batch_score",
    "monitor_drift",
    "retrain_pipeline",
    "rollback_model",
}
HEAVY = ("great_expectations", "evidently", "mlflow", "sklearn", "boto3", "botocore", "sagemaker",
         "google.cloud.", "google.api_core", "azure.ai", "azure.storage", "duckdb", "scipy",
         # the alert channels' notifiers load when a breach is told, not when serving_alert is parsed
         # (Airflow itself reads every installed provider's get_provider_info)
         "airflow.providers.smtp.notifications", "airflow.providers.smtp.hooks", "aiosmtplib",
         "airflow.providers.slack.notifications", "airflow.providers.slack.hooks", "slack_sdk")  # fmt: skip

# Parse the folder the way the dag-processor does, in a fresh interpreter, so sys.modules shows
# exactly what parsing imported (other tests in this process import the heavy libraries).
PARSE = """
import json, sys, time
started = time.perf_counter()
from airflow.dag_processing.dagbag import BundleDagBag
bag = BundleDagBag(dag_folder=sys.argv[1], bundle_path=sys.argv[1])
elapsed = time.perf_counter() - started
dags = {}
for dag_id, dag in bag.dags.items():
    dags[dag_id] = {
        "tags": sorted(dag.tags),
        "doc_md": bool(dag.doc_md),
        "params": sorted(dag.params.keys()),
        "fileloc": dag.fileloc,
        "tasks": {t.task_id: {"owner": t.owner, "retries": t.retries, "upstream": sorted(t.upstream_task_ids),
                              "queue": t.queue, "pool": t.pool,
                              "timeout": t.execution_timeout.total_seconds() if t.execution_timeout else None}
                  for t in dag.tasks},
    }
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": dags,
                  "modules": sorted(sys.modules), "seconds": elapsed}))
"""


def _parse(**env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PARSE, str(ROOT / "dags")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def parsed(airflow_db: Path) -> dict:
    return _parse()


def test_every_file_imports_without_error(parsed: dict) -> None:
    assert parsed["errors"] == {}


def test_every_dag_file_defines_its_dag(parsed: dict) -> None:
    assert set(parsed["dags"]) == EXPECTED_DAGS
    for dag_id, dag in parsed["dags"].items():
        assert Path(dag["fileloc"]).name == f"{dag_id}.py"


def test_every_dag_has_tags_owner_doc_and_week_param(parsed: dict) -> None:
    for dag_id, dag in parsed["dags"].items():
        assert dag["tags"], dag_id
        assert "mlops" in dag["tags"], dag_id
        assert dag["doc_md"], dag_id
        assert {"week", "provider"} <= set(dag["params"]), dag_id


def test_every_task_has_owner_retries_and_timeout(parsed: dict) -> None:
    for dag_id, dag in parsed["dags"].items():
        for task_id, task in dag["tasks"].items():
            assert task["owner"] == "mlops", (dag_id, task_id)
            assert task["retries"] >= 1, (dag_id, task_id)
            assert task["timeout"] and task["timeout"] > 0, (dag_id, task_id)


def test_parsing_imports_no_heavy_library(parsed: dict) -> None:
    heavy = [m for m in parsed["modules"] if any(m == h.rstrip(".") and not h.endswith(".") or m.startswith(h)
                                                  for h in HEAVY)]  # fmt: skip
    assert heavy == []


def test_pipeline_runs_the_stages_in_order(parsed: dict) -> None:
    tasks = parsed["dags"]["retrain_pipeline"]["tasks"]
    stages = ["ingest_data", "validate_data", "train_model", "evaluate_model", "register_model",
              "deploy_model", "batch_score", "monitor_drift",
              "drift_needs_retrain", "trigger_retrain"]  # fmt: skip
    assert tasks["ingest_data"]["upstream"] == []
    for before, after in zip(stages, stages[1:], strict=False):
        assert before in tasks[after]["upstream"], (before, after)
    # the run's summary comes last, beside the drift branch (a skipped retrain must not skip it)
    assert tasks["run_summary"]["upstream"] == ["monitor_drift"]


def _routes(parsed: dict) -> dict[tuple[str, str], tuple[str, str]]:
    return {
        (dag_id, task_id): (task["queue"], task["pool"])
        for dag_id, dag in parsed["dags"].items()
        for task_id, task in dag["tasks"].items()
    }


def test_train_model_goes_to_the_training_queue_and_pool(parsed: dict) -> None:
    routes = _routes(parsed)
    training = {key for key in routes if key[1] == "train_model"}
    assert training == {("train_model", "train_model"), ("retrain_pipeline", "train_model")}
    for key, route in routes.items():  # astro.toml's [airflow] as shipped
        assert route == (("training", "training") if key in training else ("default", "default_pool")), key


def test_queues_and_the_pool_come_from_the_settings(tmp_path: Path, airflow_db: Path) -> None:
    from helpers import write_config

    routing = {"default_queue": "cpu", "training_queue": "gpu", "training_pool": "fits"}
    config = write_config(tmp_path, airflow=routing)
    parsed = _parse(MLOPS_CONFIG=str(config))
    assert parsed["errors"] == {}
    for (_, task_id), route in _routes(parsed).items():
        assert route == (("gpu", "fits") if task_id == "train_model" else ("cpu", "default_pool")), task_id


def test_unpausing_the_pipeline_waits_for_the_next_monday() -> None:
    """The trigger form's "Unpause on trigger" must not start a scheduled run of its own.

    Asked of the timetable as the scheduler holds it (serialized and read back): the first run
    of a never-run, just-unpaused DAG is the next Monday 06:00 UTC, never the last one (that run
    would process the same week as a run triggered with the defaults, and run first).
    """
    from datetime import UTC, datetime, timedelta

    from airflow.serialization.serialized_objects import DagSerialization
    from retrain_pipeline import retrain_pipeline

    scheduled = DagSerialization.from_dict(DagSerialization.to_dict(retrain_pipeline()))
    first = scheduled.timetable.next_dagrun_info(
        last_automated_data_interval=None, restriction=scheduled._time_restriction
    )
    now = datetime.now(UTC)
    assert now < first.run_after <= now + timedelta(days=7)
    assert (first.run_after.isoweekday(), first.run_after.hour, first.run_after.minute) == (1, 6, 0)
    # a backfill still gets every Monday it asks for (2026-01-05 .. 2026-01-26)
    mondays = [
        info.logical_date
        for info in scheduled.iter_dagrun_infos_between(  # what `airflow backfill create` asks
            datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 27, tzinfo=UTC)
        )
    ]
    assert [d.day for d in mondays] == [5, 12, 19, 26] and {d.hour for d in mondays} == {6}


def test_only_batch_score_offers_a_deliberate_re_score(parsed: dict) -> None:
    dags = parsed["dags"]
    assert "rescore_with_production" in dags["batch_score"]["params"]
    assert "rescore_with_production" not in dags["retrain_pipeline"]["params"]
