"""Real public datasets of different shapes through the whole loop, from weekly files.

Four tables, each split into four weekly files the test writes (the last week drifts):

* ``breast_cancer``: scikit-learn's breast-cancer table, binary 0/1 label, 30 numeric features;
* ``wine``: scikit-learn's wine table, multiclass (three cultivars), Parquet files;
* ``diabetes``: scikit-learn's diabetes table (unscaled), a regression label;
* ``tumours``: derived from breast-cancer: text categories, a yes/no boolean, string labels
  (malignant / benign), no id column and no event-time column (rows get a derived ``row_key``).

The first three have a ``row_id`` and an ``event_time`` column. Each dataset's spec is drafted
from its first week's file with ``core.ml.spec_draft`` and then fixed the way a user would
(no upper bound on the numeric features: the drift week goes beyond the sample's range). The
tables are small (178-569 rows), so each week resamples them with replacement and a little
multiplicative noise.

Each week runs ``retrain_pipeline`` with ``dag.test()`` (the drift week's triggered
``drift_retrain__<week>`` run too), with an endpoint server serving the dataset's spec.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import (
    STAGES_AFTER_TRAINING,
    STAGES_BEFORE_TRAINING,
    EndpointServer,
    _to_toml,
    clear_runs,
    drift_retrain_runs,
    free_port,
    run_dag,
    run_stages,
    run_state,
    task_states,
    write_config,
)

from providers.jobs import deploy

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]
ROWS_PER_WEEK = 320
NOISE = 0.02  # multiplicative noise on resampled numeric values (keeps their sign)
DRIFT_SHIFT = 2.5  # the drift week's shift of the drifting features, in standard deviations


@dataclass(frozen=True)
class Case:
    """One dataset: how to build its table, its weeks (the last drifts) and its model."""

    name: str
    label: str
    weeks: tuple[str, ...]
    drift_features: tuple[str, ...]
    estimator: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    file_format: str = "csv"
    keys: bool = True  # a row_id and an event_time column
    # [drift] concept_metric_drop: a regression's rmse on ~60 held-out rows moves by 10-15% from
    # week to week on this noisy table; concept drift is measured on the model that served the
    # week (trained before it), so the tolerance must be above that noise
    concept_metric_drop: float = 0.05

    @property
    def drift_week(self) -> str:
        return self.weeks[-1]


CASES = {
    case.name: case
    for case in (
        Case(
            "breast_cancer",
            "benign",
            ("2026-W10", "2026-W11", "2026-W12", "2026-W13"),
            (
                "mean_radius",
                "mean_texture",
                "worst_area",
                "mean_concavity",
                "worst_smoothness",
                "mean_symmetry",
            ),
            params={"max_iter": 30, "early_stopping": False},
        ),
        Case(
            "wine",
            "cultivar",
            ("2026-W20", "2026-W21", "2026-W22", "2026-W23"),
            ("alcohol", "malic_acid", "color_intensity", "proline"),
            estimator="sklearn.ensemble.RandomForestClassifier",
            params={"n_estimators": 30, "max_depth": 6, "random_state": 0},
            file_format="parquet",
        ),
        Case(
            "diabetes",
            "progression",
            ("2026-W30", "2026-W31", "2026-W32", "2026-W33"),
            ("bmi", "bp", "s1", "s5"),
            params={"max_iter": 30, "early_stopping": False},
            concept_metric_drop=0.3,
        ),
        Case(
            "tumours",
            "diagnosis",
            ("2026-W40", "2026-W41", "2026-W42", "2026-W43"),
            ("worst_radius", "worst_concave_points", "mean_compactness"),
            params={"max_iter": 30, "early_stopping": False},
            keys=False,
        ),
    )
}


# --------------------------------------------------------------------------------------------
# the data


def _snake(name: str) -> str:
    """A valid column name: lowercase, runs of other characters as one underscore."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


def _sklearn(loader: str, label: str, **kwargs: Any) -> pd.DataFrame:
    from sklearn import datasets

    frame = getattr(datasets, loader)(as_frame=True, **kwargs).frame
    return frame.rename(columns=_snake).rename(columns={"target": label})


def _tumours() -> pd.DataFrame:
    """Breast-cancer with text categories, a yes/no boolean and string labels (no id, no time)."""
    base = _sklearn("load_breast_cancer", "target")
    size = pd.cut(base["mean_area"], [0, 500, 900, np.inf], labels=["small", "medium", "large"])
    texture = pd.qcut(base["mean_texture"], 3, labels=["smooth", "average", "rough"])
    symmetric = base["mean_symmetry"] < base["mean_symmetry"].median()
    return pd.DataFrame(
        {
            "size": size.astype(str),
            "texture": texture.astype(str),
            "symmetric": np.where(symmetric, "yes", "no"),
            "worst_radius": base["worst_radius"],
            "worst_concave_points": base["worst_concave_points"],
            "mean_compactness": base["mean_compactness"],
            "worst_texture": base["worst_texture"],
            "mean_smoothness": base["mean_smoothness"],
            # sklearn: 0 = malignant, 1 = benign
            "diagnosis": np.where(base["target"] == 0, "malignant", "benign"),
        }
    )


def base_table(case: Case) -> pd.DataFrame:
    """The dataset's rows: features and label."""
    if case.name == "breast_cancer":
        return _sklearn("load_breast_cancer", case.label)
    if case.name == "wine":
        return _sklearn("load_wine", case.label)
    if case.name == "diabetes":
        return _sklearn("load_diabetes", case.label, scaled=False)
    return _tumours()


def week_frame(case: Case, table: pd.DataFrame, index: int, week: str, drift: bool) -> pd.DataFrame:
    """One week's rows: a resample with noise; the drift week shifts the drifting features."""
    from core.weeks import week_start

    rng = np.random.default_rng(1000 + index)
    rows = table.sample(n=ROWS_PER_WEEK, replace=True, random_state=index).reset_index(drop=True)
    numeric = [
        c
        for c in table.columns
        if c != case.label and pd.api.types.is_float_dtype(table[c]) and table[c].nunique() > 10
    ]
    rows[numeric] = rows[numeric] * (1 + rng.normal(0, NOISE, (len(rows), len(numeric))))
    if drift:
        shift = DRIFT_SHIFT * table[list(case.drift_features)].std()
        rows[list(case.drift_features)] = rows[list(case.drift_features)] + shift
    if case.keys:
        start = pd.Timestamp(datetime.combine(week_start(week), datetime.min.time(), UTC))
        seconds = np.sort(rng.integers(0, 7 * 86400, len(rows)))
        rows.insert(0, "row_id", [f"{case.name}-{week}-{n:04d}" for n in range(len(rows))])
        rows.insert(1, "event_time", start + pd.to_timedelta(seconds, unit="s"))
    return rows


def write_weeks(case: Case, folder: Path) -> str:
    """Write the weekly files; return the ``[data] source`` template."""
    table = base_table(case)
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    for index, week in enumerate(case.weeks):
        frame = week_frame(case, table, index, week, drift=week == case.drift_week)
        path = data / f"{case.name}_{week}.{case.file_format}"
        if case.file_format == "parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
    return str(data / f"{case.name}_{{week}}.{case.file_format}")


def write_spec(case: Case, sample: Path, folder: Path, drop: tuple[str, ...] = ()) -> Path:
    """Draft the spec from a sample file, fix it as a user would, write it; return its path.

    The fixes: no upper bound on the numeric features (the draft's range is the sample's, which
    a drifted week leaves), and a prediction name. ``drop`` moves features to ``ignore``.
    """
    from core.config import load_dataset_spec
    from core.ml.spec_draft import Options, draft_spec, read_sample

    text = draft_spec(read_sample(sample), Options(label=case.label, name=case.name), source=sample.name)
    raw = tomllib.loads(text)["dataset"]
    for feature in raw["features"].values():
        feature.pop("max", None)
    for name in drop:
        del raw["features"][name]
        raw["ignore"] = [*raw.get("ignore", []), name]
    raw["prediction_name"] = case.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{case.name}_dataset.toml"
    path.write_text(_to_toml({"dataset": raw}))
    spec = load_dataset_spec(path)  # it loads
    assert spec.task == {"breast_cancer": "binary", "wine": "multiclass", "diabetes": "regression"}.get(
        case.name, "binary"
    )
    assert (spec.id_column, spec.event_time_column) == (
        ("row_id", "event_time") if case.keys else (None, None)
    )
    return path


# --------------------------------------------------------------------------------------------
# running the loop


@dataclass
class Loop:
    case: Case
    config: Path
    ctx: Any
    server: EndpointServer
    runs: dict[str, Any]
    seconds: float


def _gate_table(ctx: Any) -> str:
    """The gate metric of every evaluated challenger week by week (a drift retrain last), and the
    monitor's verdict of the week."""
    warehouse = ctx.provider.warehouse
    evaluations = warehouse.read_rows("evaluations")
    reasons = warehouse.read_rows("training_runs", columns=["job_name", "reason"])
    table = evaluations.merge(reasons, on="job_name")
    table = table.assign(retrain=table["reason"] == "drift").sort_values(["week", "retrain"])
    drift = warehouse.read_rows("drift_summary").set_index("week")["drift_detected"]
    lines = []
    for row in table.itertuples():
        champion = "-" if pd.isna(row.champion_score) else f"{row.champion_score:.4f}"
        lines.append(
            f"  {row.week} {'drift retrain' if row.retrain else 'weekly run':<13} {row.metric} challenger "
            f"{row.challenger_score:.4f} champion {champion:<8} -> {row.decision.split(':')[0]:<7}"
            f" (week's drift: {'yes' if drift[row.week] else 'no'})"
        )
    return "\n".join(lines)


@pytest.fixture(scope="module", params=list(CASES))
def loop(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, airflow_db: Path):
    """Run the dataset's weeks (and the drift retrain) through retrain_pipeline with dag.test()."""
    case = CASES[request.param]
    folder = tmp_path_factory.mktemp(case.name)
    source = write_weeks(case, folder)
    spec = write_spec(case, Path(source.replace("{week}", case.weeks[0])), folder)
    port = free_port()
    config = case_config(case, folder, spec, source, port=port)
    os.environ["MLOPS_CONFIG"] = str(config)
    clear_runs("retrain_pipeline")
    server = EndpointServer(folder / "mlops" / "endpoint" / "deployments", port, config).wait_ready()
    try:
        from core.config import load_settings
        from lifecycle.context import StageContext

        started = time.monotonic()
        runs = {week: run_dag("retrain_pipeline", week) for week in case.weeks}
        for run_id, conf in drift_retrain_runs(case.weeks):
            runs[run_id] = run_dag("retrain_pipeline", conf=conf)
        seconds = time.monotonic() - started
        ctx = StageContext(settings=load_settings(config), week=case.drift_week, actor="test")
        print(
            f"\n{case.name}: {len(runs)} runs in {seconds:.1f} s; gate metric per week:\n{_gate_table(ctx)}"
        )
        yield Loop(case, config, ctx, server, runs, seconds)
    finally:
        server.stop()
        os.environ.pop("MLOPS_CONFIG", None)


# --------------------------------------------------------------------------------------------
# per dataset


def test_every_run_succeeds(loop: Loop) -> None:
    assert len(loop.runs) == len(loop.case.weeks) + 1  # the weeks and one drift retrain
    for name, run in loop.runs.items():
        assert run_state(run) == "success", (name, task_states(run))


def test_a_version_is_in_production_and_served(loop: Loop) -> None:
    ctx = loop.ctx
    production = ctx.provider.registry.get_alias(ctx.model_name, "production")
    assert production is not None
    assert ctx.provider.endpoint.current(ctx.model_name).version == production.version
    assert production.tags["code_version"].startswith("sha256:")


def test_predictions_one_row_per_validated_row(loop: Loop) -> None:
    from lifecycle.datasets import read_validated

    ctx = loop.ctx
    spec = ctx.settings.dataset
    warehouse = ctx.provider.warehouse
    predictions = warehouse.read_rows("predictions")
    assert {"week", spec.key_table_column, *spec.prediction_columns(), "model_version"} <= set(predictions)
    validation = warehouse.read_rows("validation_results").set_index("week")
    for week in loop.case.weeks:
        scored = predictions[predictions["week"] == week]
        validated = read_validated(ctx, week)
        n_rows, n_bad = validation.loc[week, ["n_rows", "n_bad_rows"]]
        assert n_rows == ROWS_PER_WEEK
        assert len(scored) == len(validated) == n_rows - n_bad, week
        assert sorted(scored[spec.key_table_column]) == sorted(validated[spec.key_column].astype(str)), week
        _check_prediction_columns(scored, spec)


def _check_prediction_columns(scored: pd.DataFrame, spec: Any) -> None:
    p = spec.prediction_prefix
    if spec.task == "binary":
        assert scored[f"{p}_probability"].between(0, 1).all()
        assert set(scored[f"{p}_class"]) <= set(spec.classes)
    elif spec.task == "multiclass":
        assert set(scored[f"{p}_class"]) <= set(spec.classes)
        assert scored[f"{p}_probability"].between(0, 1).all()
        for text in scored[f"{p}_probabilities"].head(20):
            probabilities = json.loads(text)
            assert set(probabilities) <= set(spec.classes)
            assert math.isclose(sum(probabilities.values()), 1, abs_tol=1e-4)
    else:
        assert np.isfinite(scored[f"{p}_prediction"].to_numpy(dtype=float)).all()


def test_endpoint_answers_a_request_built_from_the_spec(loop: Loop) -> None:
    import httpx

    from core.ml.features import request_records
    from lifecycle.datasets import read_validated

    ctx = loop.ctx
    spec = ctx.settings.dataset
    rows = request_records(read_validated(ctx, loop.case.drift_week).head(7), spec)
    response = httpx.post(
        f"{loop.server.url}/models/{ctx.model_name}/predict", json={"rows": rows}, timeout=30
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    production = ctx.provider.registry.get_alias(ctx.model_name, "production")
    assert answer["model_version"] == production.version
    predictions = answer["predictions"]
    assert len(predictions) == len(rows) == 7
    if spec.task == "binary":
        assert all(isinstance(p, float) and 0 <= p <= 1 for p in predictions)
    elif spec.task == "multiclass":
        assert all(isinstance(p, str) and p in spec.classes for p in predictions)
        assert set(answer["classes"]) <= set(spec.classes)
    else:
        assert all(isinstance(p, float) and math.isfinite(p) for p in predictions)


def test_openapi_schema_lists_the_spec_features(loop: Loop) -> None:
    import httpx

    spec = loop.ctx.settings.dataset
    schemas = httpx.get(f"{loop.server.url}/openapi.json", timeout=10).json()["components"]["schemas"]
    [row] = [s for s in schemas.values() if set(spec.feature_names) <= set(s.get("properties", {}))]
    expected = {*spec.feature_names, *([spec.id_column] if spec.id_column else [])}
    assert set(row["properties"]) == expected
    assert set(row["required"]) == set(spec.feature_names)
    for feature in spec.features_of_kind("categorical"):
        assert row["properties"][feature.name]["enum"] == list(feature.values), feature.name
    for feature in spec.features_of_kind("boolean"):
        assert row["properties"][feature.name]["type"] == "boolean"


def test_drift_week_drifts_and_its_retrain_ran(loop: Loop) -> None:
    case, ctx = loop.case, loop.ctx
    warehouse = ctx.provider.warehouse
    summary = warehouse.read_rows("drift_summary").set_index("week")
    assert summary.loc[case.drift_week, "drift_detected"]
    assert summary.loc[case.drift_week, "data_drifted"]
    assert not summary.loc[list(case.weeks[:-1]), "drift_detected"].any(), summary
    drifted = warehouse.read_rows("drift_metrics", {"week": case.drift_week})
    assert set(case.drift_features) <= set(drifted.loc[drifted["drifted"].astype(bool), "feature"])
    states = {week: task_states(loop.runs[week]) for week in case.weeks}
    for week in case.weeks[:-1]:
        assert states[week]["trigger_retrain"] == "skipped", week
    assert states[case.drift_week]["trigger_retrain"] == "success"
    retrain = loop.runs[f"drift_retrain__{case.drift_week}"]
    assert task_states(retrain)["trigger_retrain"] == "skipped"  # a retrain never triggers another
    runs = warehouse.read_rows("training_runs", {"week": case.drift_week})
    drift_runs = runs[runs["reason"] == "drift"]
    assert len(drift_runs) == 1
    assert json.loads(drift_runs["train_weeks"].iloc[0]) == [case.drift_week]
    evaluated = warehouse.read_rows("evaluations", {"week": case.drift_week})
    assert drift_runs["job_name"].iloc[0] in set(evaluated["job_name"])


def test_rerun_of_a_week_changes_nothing(loop: Loop) -> None:
    ctx, week = loop.ctx, loop.case.weeks[1]
    warehouse, registry = ctx.provider.warehouse, ctx.provider.registry
    spec = ctx.settings.dataset

    def state() -> dict[str, Any]:
        predictions = warehouse.read_rows("predictions")
        return {
            "predictions": predictions.sort_values(["week", spec.key_table_column]).reset_index(drop=True),
            "versions": len(registry.list_versions(ctx.model_name)),
            "production": registry.get_alias(ctx.model_name, "production").version,
            "history": len(registry.alias_history(ctx.model_name, "production")),
            "retrains": drift_retrain_runs(loop.case.weeks),
        }

    before = state()
    assert run_state(run_dag("retrain_pipeline", week)) == "success"
    after = state()
    pd.testing.assert_frame_equal(after.pop("predictions"), before.pop("predictions"))
    assert after == before


# --------------------------------------------------------------------------------------------
# specs and classes (the stage functions, no Airflow)


def case_config(
    case: Case, folder: Path, spec: Path, source: str, root: Path | None = None, port: int | None = None
) -> Path:
    """A dataset's settings; ``root``: another config's provider root; ``port``: its endpoint's."""
    local: dict[str, Any] = {"root": str(root or folder / "mlops")}
    if port is not None:
        local["endpoint_port"] = port
    return write_config(
        folder,
        project={"model_name": case.name},
        dataset={"spec": str(spec)},
        data={"source": source},
        model={"estimator": case.estimator, "params": case.params},
        drift={"concept_metric_drop": case.concept_metric_drop},
        local=local,
    )


def test_a_model_is_refused_under_a_spec_that_adds_a_feature(tmp_path: Path) -> None:
    """A model trained without ``worst_symmetry`` cannot score under a spec that reads it."""
    from fastapi.testclient import TestClient

    from apps.serving.app import create_app
    from core.config import load_settings
    from core.ml.features import request_records
    from lifecycle.context import StageContext
    from lifecycle.datasets import read_validated
    from lifecycle.deploy import deploy_production
    from lifecycle.evaluate import IncompatibleModelError, evaluate_challenger
    from lifecycle.score import score_week

    case, week = CASES["breast_cancer"], CASES["breast_cancer"].weeks[0]
    source = write_weeks(case, tmp_path)
    sample = Path(source.replace("{week}", week))
    narrow_spec = write_spec(case, sample, tmp_path / "narrow", drop=("worst_symmetry",))
    narrow = case_config(case, tmp_path, narrow_spec, source)
    ctx, results = run_stages(narrow, week, STAGES_BEFORE_TRAINING + STAGES_AFTER_TRAINING)
    assert "worst_symmetry" not in ctx.settings.dataset.feature_names

    wide_spec = write_spec(case, sample, tmp_path / "wide")
    wide = case_config(case, tmp_path / "wide", wide_spec, source, root=tmp_path / "mlops")
    wide_ctx = StageContext(settings=load_settings(wide), week=week, actor="test")
    message = "feature 'worst_symmetry' was added"
    for stage in (score_week, deploy_production):
        with pytest.raises(IncompatibleModelError, match=message):
            stage(wide_ctx)
    with pytest.raises(IncompatibleModelError, match=message):
        evaluate_challenger(wide_ctx, job_name=results["train.train_challenger"]["job_name"])

    # the endpoint serving the wide spec refuses the deployed model, naming the feature
    endpoint = ctx.provider.endpoint
    deploy(endpoint, ctx.provider.registry.get_alias(ctx.model_name, "production"))
    rows = request_records(read_validated(ctx, week).head(2), wide_ctx.settings.dataset)
    with TestClient(create_app(endpoint.deployments, spec=wide_ctx.settings.dataset)) as client:
        response = client.post(f"/models/{ctx.model_name}/predict", json={"rows": rows})
    assert response.status_code == 409, response.text
    assert message in response.json()["detail"]


def test_multiclass_weeks_missing_a_class_and_with_a_class_never_seen_in_training(tmp_path: Path) -> None:
    """A week without cultivar 2 trains a two-class model; the next week, with cultivar 2, is
    scored and monitored by it (no crash; the unseen class shows as concept drift), and the
    challenger that knows all three classes wins the gate."""
    from core.ml.scoring.artifacts import load_model

    case = CASES["wine"]
    first, second = case.weeks[:2]
    source = write_weeks(case, tmp_path)
    table = base_table(case)
    without = week_frame(case, table[table[case.label] != 2], 0, first, drift=False)
    without.to_parquet(source.replace("{week}", first), index=False)
    spec_path = write_spec(case, Path(source.replace("{week}", second)), tmp_path)
    config = case_config(case, tmp_path, spec_path, source)

    ctx, _ = run_stages(config, first, STAGES_BEFORE_TRAINING + STAGES_AFTER_TRAINING)
    spec, registry, warehouse = ctx.settings.dataset, ctx.provider.registry, ctx.provider.warehouse
    assert spec.classes == ("0", "1", "2")
    production = registry.get_alias(ctx.model_name, "production")
    model = load_model(registry.fetch_artifact(production, tmp_path / "v1"), production.sha256)
    assert model.classes == ["0", "1"]

    # week two scored by the two-class model before it is retrained (as a batch_score run would)
    ctx, results = run_stages(
        config, second, STAGES_BEFORE_TRAINING + ("score.score_week", "monitor.monitor_week")
    )
    scored = warehouse.read_rows("predictions", {"week": second})
    assert (
        len(scored)
        == results["validate.validate_week_data"]["n_rows"]
        - results["validate.validate_week_data"]["n_bad_rows"]
    )
    assert set(scored["wine_class"]) <= {"0", "1"}
    assert all(set(json.loads(text)) == {"0", "1"} for text in scored["wine_probabilities"])
    verdict = warehouse.read_rows("drift_summary", {"week": second}).iloc[0]
    assert verdict["concept_drifted"], verdict.to_dict()  # a whole class predicted wrong

    ctx, results = run_stages(config, second, STAGES_AFTER_TRAINING)
    evaluation = results["evaluate.evaluate_challenger"]
    print(f"\nwine with an unseen class: {evaluation['decision']}")
    assert evaluation["passed"], evaluation["decision"]
    assert evaluation["challenger_score"] < evaluation["champion_score"]
    assert set(warehouse.read_rows("predictions", {"week": second})["wine_class"]) == {"0", "1", "2"}
