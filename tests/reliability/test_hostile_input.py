"""Hostile input from the UI, the CLI and astro.toml is rejected before any work, with a message.

Two layers guard a run: the DAGs' Param JSON schemas (checked when a run is created from the UI,
the CLI or the API) and ``build_context`` (checked by every task before it does anything). Then
the providers' own guards: SQL identifiers and object keys. The last test runs the pipeline with
a secret in an Airflow Connection and scans everything the run wrote for it.
"""

from __future__ import annotations

import importlib
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from helpers import ROOT, EndpointServer, free_port, run_dag, run_state, task_states, write_config

from core.errors import ConfigError, ParamError

pytestmark = pytest.mark.timeout(300)
DAG_IDS = sorted(p.stem for p in (ROOT / "dags").glob("*.py"))
TABLE: list[tuple[str, str, str]] = []  # (case, where rejected, message), printed at the end
NOTHING = object()  # "this layer has no such parameter"


def _record(case: str, where: str, message: object) -> None:
    text = " ".join(str(message).split())
    TABLE.append((case, where, text[:110]))


# -- (a) the DAG Param schemas ----------------------------------------------------------------

# (param, hostile value, what the message must say)
SCHEMA_CASES = [
    ("week", "../../etc", "does not match"),
    ("week", "2026-W05; DROP TABLE predictions", "does not match"),
    ("week", 202605, "is not of type"),
    ("provider", "oracle", "is not one of"),
    ("provider", "local; rm -rf /", "is not one of"),
    ("gate_margin", -1, "less than the minimum"),
    ("gate_margin", "0.1", "is not of type"),
    ("feature_psi_threshold", 1e9, "greater than the maximum"),
    ("drifted_share_threshold", 0, "less than or equal to the minimum"),
    ("window_weeks", 10**6, "greater than the maximum"),
    ("window_weeks", 2.5, "is not of type"),
    ("reason", "drift'; --", "is not one of"),
    ("job_name", "x'; DROP TABLE evaluations; --", "does not match"),
    ("version", "1 OR 1=1", "does not match"),
    ("source_uri", "x" * 2000, "is too long"),
]


@pytest.fixture(scope="module")
def dags() -> dict:
    from airflow.serialization.serialized_objects import DagSerialization

    found = {}
    for dag_id in DAG_IDS:
        module = importlib.import_module(dag_id)
        dag = getattr(module, dag_id)()
        # the server's view of the DAG: what validates dag_run.conf when a run is created
        found[dag_id] = (dag, DagSerialization.from_dict(DagSerialization.to_dict(dag)))
    return found


def test_every_dag_accepts_an_empty_and_a_good_conf(dags):
    good = {"week": "2026-W05", "provider": "local"}
    for dag_id, (_, serialized) in dags.items():
        serialized.params.deep_merge({}).validate()
        assert serialized.params.deep_merge(good).validate()["week"] == "2026-W05", dag_id


@pytest.mark.parametrize(("param", "value", "expected"), SCHEMA_CASES, ids=lambda v: str(v)[:30])
def test_param_schema_rejects_hostile_conf(dags, param, value, expected):
    from airflow.sdk.definitions.param import ParamValidationError

    checked = []
    for dag_id, (dag, serialized) in dags.items():
        if param not in dag.params:
            continue
        # the API server / CLI path: conf merged into the serialized DAG's params, validated
        with pytest.raises(ParamValidationError) as info:
            serialized.params.deep_merge({param: value}).validate()
        message = str(info.value)
        assert f"Invalid input for param {param}" in message and expected in message, message
        # the SDK path (dag.test(), task-side params): assigning the value validates it
        params = dag.params.deep_merge({}) if hasattr(dag.params, "deep_merge") else _copy(dag.params)
        with pytest.raises(ParamValidationError, match=f"param {param}"):
            params[param] = value
        checked.append(dag_id)
    assert checked, f"no DAG has a {param} Param"
    _record(f"conf {param}={value!r}"[:60], f"Param schema ({len(checked)} DAGs)", message.split("\n")[0])


def _copy(params):
    import copy

    return copy.deepcopy(params)


def test_week_that_passes_the_schema_but_does_not_exist_is_caught_by_the_task(dags):
    # the pattern only checks the shape (weeks 01..53): 2027-W53 passes it, build_context
    # rejects it (2027 has 52 ISO weeks)
    _, serialized = dags["retrain_pipeline"]
    serialized.params.deep_merge({"week": "2027-W53"}).validate()
    with pytest.raises(ParamError, match="2027 has no ISO week 53") as info:
        _build(week="2027-W53")
    _record("conf week='2027-W53'", "build_context (schema passes)", info.value)


# -- (b) build_context: the task-side check, before any work ----------------------------------


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A fresh project whose local root must stay empty."""
    folder = tmp_path_factory.mktemp("hostile")
    config = write_config(folder)
    from core.config import load_settings

    return {"root": folder / "mlops", "settings": load_settings(config), "config": config}


def _build(settings=None, week: str | None = "2026-W05", **kwargs):
    from lifecycle.context import build_context

    return build_context(
        week=week,
        logical_date=datetime(2026, 2, 2, tzinfo=UTC),
        actor="manual__hostile",
        settings=settings,
        **kwargs,
    )


# (case, build_context kwargs, what the message must say)
CONTEXT_CASES = [
    ("week ../../etc", {"week": "../../etc"}, "is not an ISO week"),
    ("week with SQL", {"week": "2026-W05'; DROP TABLE predictions; --"}, "is not an ISO week"),
    ("week not a string", {"week": 202605}, "is not an ISO week"),
    ("week 2027-W53", {"week": "2027-W53"}, "does not exist"),
    ("provider not registered", {"overrides": {"provider": "oracle"}}, "provider 'oracle' is not one of"),
    ("provider with shell", {"overrides": {"provider": "local; rm -rf /"}}, "is not one of"),
    ("gate_margin negative", {"overrides": {"gate_margin": -1}}, "[gate] margin = -1"),
    ("gate_margin NaN", {"overrides": {"gate_margin": float("nan")}}, "[gate] margin = nan"),
    ("gate_margin string", {"overrides": {"gate_margin": "0.1"}}, "must be a number"),
    ("gate_margin bool", {"overrides": {"gate_margin": True}}, "must be a number"),
    ("psi threshold absurd", {"overrides": {"feature_psi_threshold": 1e9}}, "feature_psi_threshold"),
    ("psi threshold inf", {"overrides": {"feature_psi_threshold": float("inf")}}, "feature_psi_threshold"),
    ("drifted share 0", {"overrides": {"drifted_share_threshold": 0}}, "drifted_share_threshold"),
    ("window_weeks negative", {"overrides": {"window_weeks": -4}}, "window_weeks = -4"),
    ("window_weeks 2.5", {"overrides": {"window_weeks": 2.5}}, "must be a whole number"),
    ("window_weeks huge", {"overrides": {"window_weeks": 10**12}}, "window_weeks"),
    ("unknown override model_name", {"overrides": {"model_name": "x; DROP"}}, "unknown override"),
    ("reason with SQL", {"reason": "drift'; --"}, "reason"),
]


@pytest.mark.parametrize(("case", "kwargs", "expected"), CONTEXT_CASES, ids=[c[0] for c in CONTEXT_CASES])
def test_build_context_rejects_hostile_values(fresh, case, kwargs, expected):
    with pytest.raises(ParamError) as info:
        _build(settings=fresh["settings"], **kwargs)
    assert expected in str(info.value), str(info.value)
    _record(case, "build_context -> ParamError", info.value)
    assert _files(fresh["root"]) == [], "a rejected run wrote something"


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_task_fails_before_any_work(fresh, monkeypatch):
    """run_stage (what every task calls) fails with the message and never reaches the stage."""
    from airflow.sdk.exceptions import AirflowFailException
    from wiring import stages

    import lifecycle.ingest as ingest

    calls = []
    monkeypatch.setattr(ingest, "ingest_week", lambda *a, **k: calls.append(a))
    monkeypatch.setenv("MLOPS_CONFIG", str(fresh["config"]))

    class DagRun:
        run_after = datetime(2026, 2, 2, tzinfo=UTC)
        run_type = "manual"

    for params in ({"week": "../../etc"}, {"provider": "oracle"}, {"gate_margin": -3}):
        context = {"params": params, "dag_run": DagRun(), "logical_date": None, "run_id": "manual__x"}
        monkeypatch.setattr(stages, "get_current_context", lambda context=context: context)
        with pytest.raises(AirflowFailException, match="ParamError") as info:
            stages.run_stage(ingest.ingest_week)
        _record(f"task params {params}", "run_stage -> AirflowFailException", info.value)
    assert calls == []
    assert _files(fresh["root"]) == []


def test_unknown_conf_keys_are_refused_by_the_task(fresh, monkeypatch, dags):
    """A misspelt conf key would be merged into params and ignored: the task refuses it."""
    from airflow.sdk.exceptions import AirflowFailException
    from wiring import stages

    import lifecycle.ingest as ingest

    calls = []
    monkeypatch.setattr(ingest, "ingest_week", lambda *a, **k: calls.append(a))
    monkeypatch.setenv("MLOPS_CONFIG", str(fresh["config"]))
    dag, _ = dags["ingest_data"]

    class DagRun:
        run_after = datetime(2026, 2, 2, tzinfo=UTC)
        run_type = "manual"
        conf = {"week": "2026-W05", "gate_margn": 0.1}

    context = {
        "params": {**DagRun.conf},
        "dag_run": DagRun(),
        "dag": dag,
        "logical_date": None,
        "run_id": "m",
    }
    monkeypatch.setattr(stages, "get_current_context", lambda: context)
    with pytest.raises(AirflowFailException, match="unknown run parameter.*'gate_margn'") as info:
        stages.run_stage(ingest.ingest_week)
    assert "week" in str(info.value)  # it lists the Params the DAG takes
    _record("conf {'gate_margn': 0.1} (misspelt)", "run_stage -> AirflowFailException", info.value)
    DagRun.conf = {"week": "2026-W05"}  # the same run without the typo does the work
    context["params"] = {"week": "2026-W05"}
    stages.run_stage(ingest.ingest_week)
    assert len(calls) == 1


def test_model_name_with_sql_in_astro_toml(tmp_path):
    from core.config import load_settings

    for name in ("churn'; DROP TABLE predictions; --", "Churn", "../churn", ""):
        config = write_config(tmp_path / f"c{abs(hash(name))}", project={"model_name": name})
        with pytest.raises(ConfigError, match="model_name") as info:
            load_settings(config)
        _record(f"astro.toml model_name={name!r}"[:60], "load_settings -> ConfigError", info.value)


def test_provider_env_override_not_registered(tmp_path, monkeypatch):
    from core.config import load_settings

    monkeypatch.setenv("MLOPS_PROVIDER", "oracle")
    with pytest.raises(ConfigError, match="provider 'oracle'") as info:
        load_settings(write_config(tmp_path))
    _record("MLOPS_PROVIDER=oracle", "load_settings -> ConfigError", info.value)


# -- the providers' guards: SQL identifiers and object keys -----------------------------------


def test_warehouse_rejects_sql_in_names_and_keeps_the_table(tmp_path):
    from providers.local.warehouse import DuckDBWarehouse

    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    warehouse.ensure_table("predictions", {"week": "string", "p": "float"})
    rows = pd.DataFrame({"week": ["2026-W05", "2026-W06"], "p": [0.1, 0.2]})
    warehouse.replace_rows("predictions", {"week": "2026-W05"}, rows)

    hostile = [
        ("table name", lambda: warehouse.read_rows("predictions; DROP TABLE predictions")),
        ("table name in ensure_table", lambda: warehouse.ensure_table("t; DROP TABLE predictions", {})),
        (
            "column in ensure_table",
            lambda: warehouse.ensure_table("x", {"a INT); DROP TABLE predictions;--": "int"}),
        ),
        ("column type", lambda: warehouse.ensure_table("x", {"a": "INT); DROP TABLE predictions;--"})),
        ("where column", lambda: warehouse.delete_rows("predictions", {"week = week OR 1=1 --": "x"})),
        ("select column", lambda: warehouse.read_rows("predictions", columns=["*, (SELECT 1) AS x"])),
        (
            "frame column",
            lambda: warehouse.replace_rows(
                "predictions",
                {"week": "2026-W05"},
                pd.DataFrame({"p) SELECT 1; DROP TABLE predictions;--": [1]}),
            ),
        ),
    ]
    for case, call in hostile:
        with pytest.raises(ValueError) as info:
            call()
        _record(f"warehouse {case}", "DuckDBWarehouse -> ValueError", info.value)
        assert len(warehouse.read_rows("predictions")) == 2, case  # the table and rows are intact

    # SQL in a value is only a bound parameter: it matches nothing and drops nothing
    assert warehouse.read_rows("predictions", {"week": "x' OR '1'='1"}).empty
    assert warehouse.delete_rows("predictions", {"week": "x'; DROP TABLE predictions; --"}) == 0
    assert len(warehouse.read_rows("predictions")) == 2


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "raw/week=2026-W05/../../../../etc/passwd",
        "raw/./x",
        "raw//x",
        "raw/x\n",
        "raw\\..\\x",
        "",
        "~/x",
    ],
)
def test_object_keys_cannot_escape_the_store(tmp_path, key):
    from providers.local.storage import LocalObjectStore

    store = LocalObjectStore(tmp_path / "storage")
    for call in (
        lambda: store.put_bytes(key, b"x"),
        lambda: store.get_bytes(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
    ):
        with pytest.raises(ValueError, match="not a safe relative key") as info:
            call()
    _record(f"object key {key!r}", "check_key -> ValueError", info.value)
    if key.strip("/"):
        with pytest.raises(ValueError):
            store.list_keys(key)
    assert _files(tmp_path) == []
    assert (tmp_path.parent / "etc").exists() is False


# -- (4) a Connection's secret never reaches logs, reports, artifacts or the warehouse --------

SECRET_WEEK = "2026-W33"


def _delete_runs_at(dag_id: str, logical_date) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.logical_date == logical_date).delete()


@pytest.mark.timeout(600)
def test_connection_secret_never_written(tmp_path, airflow_db, caplog, capfd, monkeypatch):
    import logging

    from helpers import scheduled_logical_date

    secret = f"s3cr3t-{uuid.uuid4()}"
    connection = {
        "conn_type": "aws",
        "login": "AKIAHOSTILETEST",
        "password": secret,
        "extra": {"region_name": "eu-west-1", "aws_session_token": secret},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
    port = free_port()
    config = write_config(
        tmp_path,
        local={"endpoint_port": port},
        data={"rows_per_week": 600},
        validation={"min_rows": 100},
        model={"params": {"max_iter": 15}},
    )
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    from airflow.models.connection import Connection

    assert Connection.get_connection_from_secrets("aws_default").password == secret  # Airflow sees it

    caplog.set_level(logging.DEBUG)
    started = datetime.now().timestamp()
    _delete_runs_at("retrain_pipeline", scheduled_logical_date(SECRET_WEEK))
    server = EndpointServer(tmp_path / "mlops" / "endpoint" / "deployments", port).wait_ready()
    try:
        run = run_dag("retrain_pipeline", SECRET_WEEK)
    finally:
        server.stop()
    assert run_state(run) == "success", task_states(run)

    captured = capfd.readouterr()
    # the capture saw the run (so the scan below is not of empty text)
    seen = caplog.text + captured.out + captured.err
    assert SECRET_WEEK in seen, f"nothing of the run was captured: {len(caplog.text)=} {len(captured.out)=}"
    written = _files(tmp_path / "mlops")
    assert any(p.name == "warehouse.duckdb" for p in written)
    assert any(p.suffix == ".joblib" for p in written)
    task_logs = [
        p for p in _files(Path(os.environ["AIRFLOW_HOME"]) / "logs") if p.stat().st_mtime >= started - 1
    ]
    needles = [secret.encode(), secret.encode("utf-16-le"), uuid.UUID(secret[7:]).hex.encode()]
    leaks = [str(p) for p in [*written, *task_logs] if any(n in p.read_bytes() for n in needles)]
    for name, text in (("stdout", captured.out), ("stderr", captured.err), ("caplog", caplog.text)):
        if secret in text or secret[7:] in text:
            leaks.append(name)
    # the warehouse's contents, decoded (DuckDB may compress strings on disk)
    from core.config import load_settings
    from providers.local.warehouse import DuckDBWarehouse

    warehouse = DuckDBWarehouse(
        Path(load_settings(config).provider_sections["local"]["root"]) / "warehouse.duckdb"
    )
    with warehouse.connect() as con:
        for (table,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
            frame = con.execute(f'SELECT * FROM "{table}"').df()
            if secret in frame.to_csv():
                leaks.append(f"warehouse table {table}")
    assert leaks == [], f"the connection's secret leaked into: {leaks}"
    _record(
        "Connection password in AIRFLOW_CONN_AWS_DEFAULT",
        "not found",
        f"scanned {len(written)} files, {len(task_logs)} task logs, stdout/stderr/logging, warehouse tables",
    )


@pytest.fixture(scope="module", autouse=True)
def _table_printed():
    """The table of every case, where it was rejected and the message, after the module's tests
    (a report, not a test: shown with ``-s``)."""
    yield
    if len(TABLE) < 12:
        return  # part of the module ran
    width = max(len(case) for case, _, _ in TABLE)
    print(f"\n{'case':{width}} | where rejected | message")
    for case, where, message in TABLE:
        print(f"{case:{width}} | {where} | {message}")
