"""The stages' warehouse tables: migrated once per schema version, not before every read and write."""

import pandas as pd

from core.ml.dataset import parse_spec
from demo.spec import DEMO_SPEC
from lifecycle.tables import TABLES, ensure_tables, table_schema
from providers.local.warehouse import DuckDBWarehouse
from providers.migrations import SCHEMA_VERSIONS, recorded_versions, schema_hash


class CountingWarehouse(DuckDBWarehouse):
    """The real DuckDB warehouse, noting each table it was asked to create or extend."""

    def __init__(self, path) -> None:
        super().__init__(path)
        self.ensured: list[str] = []

    def ensure_table(self, table, schema) -> None:
        self.ensured.append(table)
        super().ensure_table(table, schema)


def test_tables_are_created_once_then_only_read_their_record(tmp_path):
    warehouse = CountingWarehouse(tmp_path / "warehouse.duckdb")
    ensure_tables(warehouse, spec=DEMO_SPEC)
    assert sorted(warehouse.ensured) == sorted([SCHEMA_VERSIONS, *TABLES])
    recorded = recorded_versions(warehouse)
    assert recorded == {name: schema_hash(table_schema(name, DEMO_SPEC)) for name in TABLES}

    warehouse.ensured.clear()
    for _ in range(3):
        ensure_tables(warehouse, spec=DEMO_SPEC)
        ensure_tables(warehouse, "predictions", "evaluations", spec=DEMO_SPEC)
    assert warehouse.ensured == []  # every recorded version matched: no CREATE, no ALTER
    # a new process (a new provider object) reads the same record
    fresh = CountingWarehouse(tmp_path / "warehouse.duckdb")
    ensure_tables(fresh, spec=DEMO_SPEC)
    assert fresh.ensured == []


def test_a_new_schema_version_migrates_that_table_only(tmp_path):
    warehouse = CountingWarehouse(tmp_path / "warehouse.duckdb")
    ensure_tables(warehouse, spec=DEMO_SPEC)
    warehouse.ensured.clear()
    houses = parse_spec(
        {"name": "houses", "label": "price", "task": "regression", "features": {"rooms": {"kind": "numeric"}}}
    )
    ensure_tables(warehouse, spec=houses)
    assert warehouse.ensured == [SCHEMA_VERSIONS, "predictions"]  # its prediction columns differ
    columns = set(warehouse.read_rows("predictions").columns)
    assert set(table_schema("predictions", houses)) <= columns  # added...
    assert set(table_schema("predictions", DEMO_SPEC)) <= columns  # ...none dropped
    assert recorded_versions(warehouse)["predictions"] == schema_hash(table_schema("predictions", houses))


def test_a_warehouse_made_before_the_record_is_migrated_in_place(tmp_path):
    warehouse = CountingWarehouse(tmp_path / "warehouse.duckdb")
    warehouse.ensure_table("data_versions", {"week": "string", "data_version": "string"})
    warehouse.replace_rows(
        "data_versions", {"week": "2026-W01"}, pd.DataFrame({"week": ["2026-W01"], "data_version": ["v1"]})
    )
    ensure_tables(warehouse, "data_versions", spec=DEMO_SPEC)
    kept = warehouse.read_rows("data_versions")
    assert kept["data_version"].tolist() == ["v1"] and "sha256" in kept.columns
