"""What the Azure provider sends, beyond the shared contract: its settings, the exact T-SQL of
each warehouse operation (the Synapse stand-in parses and runs it; no TDS server runs here).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest
from synapse_standin import SynapseStandIn, TsqlError, to_duckdb

from core.config import Settings
from core.errors import ConfigError, ParamError
from providers.azure.config import AzureSettings
from providers.azure.warehouse import SynapseWarehouse

# --------------------------------------------------------------------------------------------
# settings

AZURE = {
    "conn_id": "wasb_test",
    "container": "mlops-test",
    "subscription_id": "00000000-0000-0000-0000-000000000000",
    "resource_group": "mlops-rg",
    "workspace": "mlops-ws",
}


def _settings(section: dict, hardware: dict | None = None) -> AzureSettings:
    return AzureSettings.from_settings(
        Settings(
            provider="azure",
            model_name="churn",
            provider_sections={"azure": section},
            hardware=hardware or {},
        )  # fmt: skip
    )


def test_settings_from_astro_toml_sections():
    azure = _settings(AZURE, {"training": {"azure": {"compute": "gpu", "low_priority": True}}})
    assert azure.container == "mlops-test" and azure.training.compute == "gpu" and azure.training.low_priority
    assert azure.require_workspace() == ("00000000-0000-0000-0000-000000000000", "mlops-rg", "mlops-ws")
    assert azure.endpoint == "mlops-churn" and azure.warehouse_schema == "dbo"


@pytest.mark.parametrize(
    ("changes", "hardware", "message"),
    [
        ({"container": "Bad_Name"}, None, "[azure] container = 'Bad_Name'"),
        ({"prefix": "/abs"}, None, "[azure] prefix"),
        ({"bucket": "x"}, None, "unknown key(s) ['bucket'] in [azure]"),
        ({"poll_seconds": "30"}, None, "[azure] poll_seconds = '30' should be of type int"),
        ({"endpoint_name": "9bad"}, None, "[azure] endpoint_name"),
        ({"ml_conn_id": ""}, None, "[azure] ml_conn_id is empty"),
        (
            {},
            {"training": {"azure": {"instance_type": "ml.m5.large"}}},
            "[hardware.training.azure] instance_type",
        ),
        ({}, {"inference": {"azure": {"instance_count": 0}}}, "[hardware.inference.azure] instance_count"),
        ({}, {"training": {"azure": {"low_priority": "yes"}}}, "low_priority = 'yes' should be of type bool"),
    ],
)
def test_bad_settings_say_what_to_fix(changes, hardware, message):
    with pytest.raises(ConfigError) as info:
        _settings({**AZURE, **changes}, hardware)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("key", "bad"), [("subscription_id", "my-sub"), ("resource_group", ""), ("workspace", "a b")]
)
def test_the_workspace_keys_are_checked_when_azure_ml_is_used(key, bad):
    azure = _settings({**AZURE, key: bad})  # storage and the warehouse need none of them
    with pytest.raises(ConfigError, match=rf"\[azure\] {key} = "):
        azure.require_workspace()


# --------------------------------------------------------------------------------------------
# Synapse: the exact T-SQL


@pytest.fixture
def synapse() -> tuple[SynapseWarehouse, SynapseStandIn]:
    stand_in = SynapseStandIn()
    return SynapseWarehouse("synapse_test", "dbo", connect=stand_in.connect), stand_in


def test_the_strict_check_refuses_what_is_not_plain_t_sql():
    for sql in (
        "IF OBJECT_ID(N'dbo.t', N'U') IS NULL CREATE TABLE dbo.t (a INT)",  # an If block
        "RENAME OBJECT dbo.a TO b",  # a raw Command
        "SELECT a FROM dbo.t WHERE (",  # a syntax error
    ):
        with pytest.raises(TsqlError):
            to_duckdb(sql)
    assert to_duckdb("SELECT TOP 5 a FROM dbo.t") == ["SELECT a FROM dbo.t LIMIT 5"]


def test_a_partition_replacement_is_one_transaction_of_delete_and_insert_selects(synapse):
    warehouse, stand_in = synapse
    warehouse.ensure_table(
        "scores", {"week": "string", "n": "int", "p": "float", "ok": "bool", "at": "timestamp"}
    )
    at = [datetime(2026, 1, 26, 1, tzinfo=UTC), None]
    frame = pd.DataFrame({"week": ["2026-W05"] * 2, "n": [1, 2], "p": [0.25, float("nan")],
                          "ok": [True, False], "at": at})  # fmt: skip
    stand_in.statements.clear()
    assert warehouse.replace_rows("scores", {"week": "2026-W05"}, frame) == 2
    assert stand_in.statements == [
        "DELETE FROM dbo.scores WHERE week = N'2026-W05'",
        "INSERT INTO dbo.scores (week, n, p, ok, at) "
        "SELECT N'2026-W05', 1, 0.25, 1, '2026-01-26 01:00:00.000' "
        "UNION ALL SELECT N'2026-W05', 2, NULL, 0, NULL",
    ]


def test_the_table_is_created_from_the_catalogue_and_columns_are_added(synapse):
    warehouse, stand_in = synapse
    warehouse.ensure_table("t", {"week": "string", "n": "int"})
    warehouse.ensure_table("t", {"week": "string", "n": "int", "x": "float"})
    catalogue = (
        "SELECT column_name FROM INFORMATION_SCHEMA.COLUMNS "
        "WHERE table_schema = N'dbo' AND table_name = N't' ORDER BY ordinal_position"
    )
    assert stand_in.statements == [
        catalogue,
        "CREATE TABLE dbo.t (week NVARCHAR(4000), n BIGINT)",
        catalogue,
        "ALTER TABLE dbo.t ADD x FLOAT",
    ]


def test_a_failure_inside_the_replacement_keeps_the_old_partition(synapse):
    warehouse, stand_in = synapse
    warehouse.ensure_table("t", {"week": "string", "n": "int"})
    warehouse.replace_rows("t", {"week": "w"}, pd.DataFrame({"week": ["w"] * 3, "n": [1, 2, 3]}))
    rows = pd.DataFrame({"week": ["w"] * 450, "n": range(450)})  # three INSERT batches
    stand_in.fail_on = "SELECT N'w', 200"  # the second batch fails, after the DELETE
    with pytest.raises(RuntimeError, match="failed on cue"):
        warehouse.replace_rows("t", {"week": "w"}, rows)
    assert sorted(warehouse.read_rows("t")["n"]) == [1, 2, 3]
    assert warehouse.replace_rows("t", {"week": "w"}, rows) == 450
    assert len(warehouse.read_rows("t")) == 450


def test_query_binds_the_week_through_the_driver_in_utc(synapse):
    warehouse, stand_in = synapse
    warehouse.ensure_table("events", {"id": "string", "at": "timestamp"})
    start = datetime(2026, 1, 26, tzinfo=UTC)
    frame = pd.DataFrame(
        {"id": ["a", "b", "c"], "at": [start - timedelta(seconds=1), start, start + timedelta(days=7)]}
    )
    warehouse.replace_rows("events", {"id": "none"}, frame)
    stand_in.statements.clear()
    east = timezone(timedelta(hours=2))
    got = warehouse.query(
        "SELECT id FROM events WHERE at >= :week_start AND at < :week_end -- ':week' in a comment",
        {"week": "2026-W05", "week_start": start.astimezone(east), "week_end": start + timedelta(days=7)},
    )
    assert got["id"].tolist() == ["b"]
    assert stand_in.statements == [
        "SELECT id FROM events WHERE at >= '2026-01-26 00:00:00.000' AND at < '2026-02-02 00:00:00.000' "
        "-- ':week' in a comment"
    ]


@pytest.mark.parametrize("sql", ["SELECT '%s' AS x", "SELECT id FROM t WHERE note = '%(week)s'"])
def test_query_refuses_text_the_driver_would_take_for_a_placeholder(synapse, sql):
    warehouse, stand_in = synapse
    with pytest.raises(ParamError, match="pymssql"):
        warehouse.query(sql, {"week": "2026-W05"})
    assert stand_in.statements == []


def test_values_cannot_escape_their_literal(synapse):
    warehouse, _ = synapse
    table = f"t_{uuid.uuid4().hex[:6]}"
    warehouse.ensure_table(table, {"note": "string"})
    hostile = "x'); DROP TABLE dbo.t; --"
    warehouse.replace_rows(table, {"note": hostile}, pd.DataFrame({"note": [hostile, "é ü"]}))
    assert sorted(warehouse.read_rows(table)["note"]) == sorted([hostile, "é ü"])


# --------------------------------------------------------------------------------------------
# Azure ML: the credential, the stand-in's schema check, failures on cue


@pytest.mark.parametrize(
    ("login", "password", "extra", "kind", "arguments"),
    [
        ("app", "secret", {"tenant_id": "t"}, "ClientSecretCredential",
         {"tenant_id": "t", "client_id": "app", "client_secret": "secret"}),
        (None, None, {"workload_identity_tenant_id": "t", "managed_identity_client_id": "c"},
         "WorkloadIdentityCredential", {"tenant_id": "t", "client_id": "c"}),
        (None, None, {"managed_identity_client_id": "c"}, "ManagedIdentityCredential", {"client_id": "c"}),
        (None, None, {}, "ManagedIdentityCredential", {}),
    ],
)  # fmt: skip
def test_the_credential_comes_from_the_connections_fields(login, password, extra, kind, arguments):
    from providers.azure.credentials import credential_kind

    assert credential_kind(login, password, extra) == (kind, arguments)


def test_a_half_set_connection_says_what_to_set():
    from providers.azure.credentials import credential_kind

    with pytest.raises(ConfigError, match="tenant_id"):
        credential_kind("app", "secret", {})
    with pytest.raises(ConfigError, match="managed_identity_client_id"):
        credential_kind(None, None, {"workload_identity_tenant_id": "t"})


def test_the_credential_is_built_from_the_airflow_connection(monkeypatch):
    import json

    from azure.identity import ClientSecretCredential

    from providers.azure.credentials import credential_from_connection

    conn = {"conn_type": "azure", "login": "app", "password": "s3cret", "extra": {"tenant_id": "tenant"}}
    monkeypatch.setenv("AIRFLOW_CONN_AZURE_ML_SPECIFICS", json.dumps(conn))
    assert isinstance(credential_from_connection("azure_ml_specifics"), ClientSecretCredential)
    with pytest.raises(ConfigError, match="no Airflow Connection 'azure_ml_nowhere'"):
        credential_from_connection("azure_ml_nowhere")


def _put(stand_in, body):
    from azure.core.rest import HttpRequest

    path = (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
        "Microsoft.MachineLearningServices/workspaces/ws/models/m/versions/1"
    )
    request = HttpRequest(
        "PUT", f"https://management.azure.com{path}?api-version=2025-12-01", json=body,
        headers={"Authorization": "Bearer t"},
    )  # fmt: skip
    return stand_in.handle(request)


def test_the_stand_in_refuses_bodies_that_break_the_published_schema():
    from azureml_standin import AzureMLStandIn

    stand_in = AzureMLStandIn()
    assert _put(stand_in, {"properties": {"modelUri": "https://a/b", "tags": {"k": "v"}}}).status_code == 201
    for bad, reason in (
        ({}, "'properties' is a required property"),
        ({"properties": {"modelUri": 5}}, "modelUri: 5 is not of type"),
        ({"properties": {"modelUrl": "https://a/b"}}, "'modelUrl' was unexpected"),  # a misspelt key
        ({"properties": {"tags": {"k": 1}}}, "tags/k: 1 is not of type"),
        ({"properties": {"flavors": {"sklearn": {"data": {"v": 1}}}}}, "flavors/sklearn"),
    ):
        response = _put(stand_in, bad)
        assert response.status_code == 400, bad
        assert reason in response.json()["error"]["message"], response.json()
    assert len(stand_in.invalid) == 5
    # a registered version's URI is immutable, as on the service
    assert _put(stand_in, {"properties": {"modelUri": "https://a/other"}}).status_code == 409


def test_a_refused_registration_raises_the_services_reason_and_a_retry_registers_once(azure_env):
    from azureml_standin import AzureMLStandIn, StaticTokenCredential

    from contract.suites import store_model
    from contract.test_azure import azure_settings
    from providers.azure.registry import AzureMLModelRegistry
    from providers.azure.storage import BlobObjectStore
    from providers.azure.workspace import Workspace

    stand_in = AzureMLStandIn()
    azure = azure_settings(f"specifics-{uuid.uuid4().hex[:6]}")
    storage = BlobObjectStore(azure.conn_id, azure.container, azure.prefix)
    registry = AzureMLModelRegistry(
        Workspace(azure, StaticTokenCredential(), transport=stand_in.transport()), storage
    )
    key = store_model(storage, "training/model.joblib", 1)
    stand_in.fail_next(
        "PUT", "/models/churn/versions/", 400, "QuotaExceeded", "model quota of the workspace reached"
    )
    with pytest.raises(Exception, match="model quota of the workspace reached"):
        registry.register("churn", key, "churn-2026-W05-aaaa", {"roc_auc": 0.8}, {}, {})
    version = registry.register("churn", key, "churn-2026-W05-aaaa", {"roc_auc": 0.8}, {}, {})
    again = registry.register("churn", key, "churn-2026-W05-aaaa", {"roc_auc": 0.8}, {}, {})
    assert version.version == again.version == "1" and version.metrics == {"roc_auc": 0.8}
    puts = stand_in.requests_of("PUT", "/models/churn/versions/")
    assert len(puts) == 2 and puts[-1][2]["properties"]["modelType"] == "custom_model"
    assert stand_in.invalid == []
