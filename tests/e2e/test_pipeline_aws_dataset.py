"""The loop on the AWS provider with a dataset that is not the churn demo's.

scikit-learn's bundled wine set (multiclass, three cultivars as text labels, no id column, no
event-time column) goes through ``retrain_pipeline`` with ``provider = "aws"`` for two weeks of
files, against moto + the SageMaker stand-in + PostgreSQL. The spec travels to the training
"container" in the code bundle and inside the model to the serving one; the predictions table
gets the spec's columns.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from emulators import aws_sections
from helpers import clear_runs, run_dag, run_state, task_states, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]
WEEKS = ["2026-W20", "2026-W21"]
BUCKET = "mlops-test"
CULTIVARS = ["barolo", "grignolino", "barbera"]


def write_wine_weeks(folder: Path) -> tuple[str, dict]:
    """Weekly CSV files of the wine set (each wine in one week); the source template and spec."""
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame.columns = [re.sub(r"[^a-z0-9]+", "_", c.lower()).strip("_") for c in frame.columns]
    frame["cultivar"] = [CULTIVARS[i] for i in frame.pop("target")]
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    for i, week in enumerate(WEEKS):
        frame.iloc[i :: len(WEEKS)].to_csv(folder / f"wine_{week}.csv", index=False)
    features = {
        c: {"kind": "numeric", "min": 0.0, "max": float(frame[c].max() * 3)}
        for c in frame.columns
        if c != "cultivar"
    }
    spec = {
        "name": "wine",
        "label": "cultivar",
        "task": "multiclass",
        "classes": CULTIVARS,
        "features": features,
    }
    return str(folder / "wine_{week}.csv"), spec


@pytest.fixture(scope="module")
def wine_loop(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path, aws_env):
    server, stand_in, _ = aws_env
    folder = tmp_path_factory.mktemp("aws-wine")
    source, spec = write_wine_weeks(folder)
    sections = aws_sections(BUCKET)
    sections["aws"]["prefix"] = f"e2e-{folder.name}"
    sections["project"]["model_name"] = "wine"
    config = write_config(
        folder,
        dataset=spec,
        data={"source": source},
        validation={"min_rows": 50},
        model={"params": {"max_iter": 20}},
        **sections,
    )
    os.environ["MLOPS_CONFIG"] = str(config)
    clear_runs("retrain_pipeline")
    start = len(stand_in.requests)
    try:
        from core.config import load_settings
        from lifecycle.context import StageContext

        runs = {week: run_dag("retrain_pipeline", week) for week in WEEKS}
        ctx = StageContext(settings=load_settings(config), week=WEEKS[-1], actor="test")
        yield {"runs": runs, "ctx": ctx, "stand_in": stand_in, "start": start, "server": server}
    finally:
        os.environ.pop("MLOPS_CONFIG", None)


def _requests(loop: dict, action: str) -> list[dict]:
    return [r for name, r in loop["stand_in"].requests[loop["start"] :] if name == action]


def test_every_week_succeeds(wine_loop) -> None:
    for week, run in wine_loop["runs"].items():
        assert run_state(run) == "success", (week, task_states(run))


def test_the_spec_travels_in_the_training_code_bundle(wine_loop) -> None:
    ctx = wine_loop["ctx"]
    jobs = _requests(wine_loop, "CreateTrainingJob")
    assert len(jobs) == len(WEEKS)
    hps = jobs[-1]["hyper_parameters"]
    assert json.loads(hps["estimator"]) == "sklearn.ensemble.HistGradientBoostingClassifier"
    uri = json.loads(hps["sagemaker_submit_directory"])
    key = uri.removeprefix(ctx.provider.storage.uri("x")[:-1])
    with tarfile.open(fileobj=io.BytesIO(ctx.provider.storage.get_bytes(key))) as tar:
        names = set(tar.getnames())
        shipped = json.loads(tar.extractfile("dataset_spec.json").read())  # type: ignore[union-attr]
    assert {"train.py", "sagemaker_inference.py", "core/ml/modeling.py", "dataset_spec.json"} <= names
    assert shipped["label"] == "cultivar" and shipped["task"] == "multiclass"


def test_predictions_have_the_spec_columns(wine_loop) -> None:
    ctx = wine_loop["ctx"]
    predictions = ctx.provider.warehouse.read_rows("predictions", {"week": WEEKS[-1]})
    assert {"row_key", "cultivar_class", "cultivar_probability", "cultivar_probabilities"} <= set(predictions)
    assert predictions["row_key"].is_unique and len(predictions) > 50
    assert set(predictions["cultivar_class"]) <= set(CULTIVARS)
    first = json.loads(predictions["cultivar_probabilities"].iloc[0])
    assert set(first) == set(CULTIVARS) and sum(first.values()) == pytest.approx(1.0, abs=1e-4)
    assert predictions["cultivar_probability"].between(0, 1).all()


def test_the_endpoint_answers_classes(wine_loop) -> None:
    from core.ml.features import request_records
    from lifecycle.datasets import read_validated

    ctx = wine_loop["ctx"]
    rows = request_records(read_validated(ctx, WEEKS[-1]).head(3), ctx.settings.dataset)
    answer = ctx.provider.endpoint.invoke("wine", rows)
    assert len(answer["predictions"]) == 3 and set(answer["predictions"]) <= set(CULTIVARS)


def test_the_gate_used_the_multiclass_metric(wine_loop) -> None:
    # the session's PostgreSQL is shared with the churn loop of test_pipeline_aws: this model's rows
    evaluations = wine_loop["ctx"].provider.warehouse.read_rows("evaluations")
    evaluations = evaluations[evaluations["job_name"].str.startswith("wine-")]
    assert len(evaluations) >= len(WEEKS)
    assert set(evaluations["metric"]) == {"log_loss"}
    assert not evaluations["higher_is_better"].astype(bool).any()
    assert (evaluations["challenger_score"] > 0).all()


def test_a_rerun_writes_nothing_new(wine_loop) -> None:
    ctx = wine_loop["ctx"]
    before = ctx.provider.warehouse.read_rows("predictions", {"week": WEEKS[0]})
    jobs_before = len(_requests(wine_loop, "CreateTrainingJob"))
    versions_before = len(ctx.provider.registry.list_versions("wine"))
    run = run_dag("retrain_pipeline", WEEKS[0])
    assert run_state(run) == "success", task_states(run)
    after = ctx.provider.warehouse.read_rows("predictions", {"week": WEEKS[0]})
    key = ["row_key"]
    pd.testing.assert_frame_equal(
        before.sort_values(key).reset_index(drop=True), after.sort_values(key).reset_index(drop=True)
    )
    assert len(_requests(wine_loop, "CreateTrainingJob")) == jobs_before
    assert len(ctx.provider.registry.list_versions("wine")) == versions_before
