"""Warehouse tables migrated once per schema version, on any Warehouse.

Creating a table (or adding the columns it lacks) costs a CREATE and a look at its columns per
table: on Redshift that is several round trips, and the stages used to do it before every read
and write. Instead each table's schema has a version, the hash of its columns and types, and
the warehouse records the version it was last migrated to in a small table of its own:

    _schema_versions (table_name, schema_hash, migrated_at)

:func:`migrate_tables` reads that record once and migrates only the tables whose recorded
version differs from the wanted one (a new table, a new column, a new dataset's prediction
columns); when every version matches it does nothing else. The record lives in the same
warehouse as the tables, so a fresh or wiped warehouse migrates again by itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime

import pandas as pd

from providers.base import Warehouse

SCHEMA_VERSIONS = "_schema_versions"
_VERSIONS_SCHEMA = {"table_name": "string", "schema_hash": "string", "migrated_at": "timestamp"}


def schema_hash(schema: Mapping[str, str]) -> str:
    """The version of a table's schema: a hash of its columns, in order, and their types."""
    text = json.dumps(list(schema.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def recorded_versions(warehouse: Warehouse) -> dict[str, str]:
    """The schema version each table was last migrated to (none before the first migration)."""
    rows = warehouse.read_rows(SCHEMA_VERSIONS, columns=["table_name", "schema_hash"])
    return {
        str(name): str(version) for name, version in zip(rows["table_name"], rows["schema_hash"], strict=True)
    }


def migrate_tables(warehouse: Warehouse, schemas: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Bring each table to its schema unless the warehouse records it there already.

    A table is created, or given the columns it lacks (columns are never dropped), then its
    new version is recorded. Safe to run concurrently: creating and recording are idempotent.

    Args:
        warehouse: the provider's warehouse.
        schemas: table name -> its columns and logical types.

    Returns:
        The tables migrated now (empty when every recorded version matched).
    """
    wanted = {name: schema_hash(schema) for name, schema in schemas.items()}
    recorded = recorded_versions(warehouse)
    stale = [name for name, version in wanted.items() if recorded.get(name) != version]
    if not stale:
        return []
    warehouse.ensure_table(SCHEMA_VERSIONS, _VERSIONS_SCHEMA)
    for name in stale:
        warehouse.ensure_table(name, schemas[name])
        record = pd.DataFrame(
            {"table_name": [name], "schema_hash": [wanted[name]], "migrated_at": [datetime.now(UTC)]}
        )
        warehouse.replace_rows(SCHEMA_VERSIONS, {"table_name": name}, record)
    return stale
