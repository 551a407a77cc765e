"""Start bqemulator for the GCP tests, with two mends; a script run by its own virtualenv's Python.

``tests/emulators.py`` (``bigquery_emulator``) runs it as
``.venv-bqemulator/bin/python tests/bqemulator_start.py start --rest-host ... --ephemeral``;
the arguments are bqemulator's own. It imports nothing of the project.

The mends, both on the emulator's side so that the provider holds only what real BigQuery needs:

- offline start: bqemulator loads DuckDB's spatial extension from the network when it starts;
  without it only GEOGRAPHY is missing, which the warehouse does not use;
- ``ALTER TABLE ... ADD COLUMN``: bqemulator adds the column in DuckDB but leaves the table's
  catalogue schema (what ``tables.get`` answers, and what a load job is checked against) as it
  was, where BigQuery lists the added column at once. After each statement that succeeded, the
  single-statement and the script paths both end by reconciling the catalogue with
  ``sync_dropped_object``; the mend makes that step also list the columns an ALTER TABLE added.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# this folder holds the project's test modules, none of which the emulator should import
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def sync_altered_table(bq_sql: str, project_id: str, ctx: Any) -> None:
    """List in the catalogue the columns that an ``ALTER TABLE ... ADD COLUMN`` added in DuckDB.

    The columns the catalogue lists already keep their entries; the added ones are read from
    DuckDB the way bqemulator reads a table that ``CREATE TABLE`` made.
    """
    import sqlglot
    from bqemulator.catalog import ddl_sync
    from bqemulator.catalog.models import TableSchema
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(bq_sql, read="bigquery")
    except Exception:  # noqa: BLE001 - not an ALTER TABLE this mend reads (the statement already ran)
        return
    if not isinstance(tree, exp.Alter) or (tree.args.get("kind") or "").upper() != "TABLE":
        return
    if not isinstance(tree.this, exp.Table):
        return
    if not any(isinstance(action, exp.ColumnDef) for action in tree.args.get("actions") or ()):
        return
    project, dataset, table = ddl_sync._split_target(tree.this, project_id)
    meta = ctx.catalog.get_table(project, dataset, table) if dataset and table else None
    if meta is None:
        return
    listed = {field.name for field in meta.schema_.fields}
    introspected = ddl_sync._introspect_schema(project, dataset, table, ctx).fields
    added = tuple(field for field in introspected if field.name not in listed)
    if added:
        schema = TableSchema(fields=(*meta.schema_.fields, *added))
        ctx.catalog.update_table(
            meta.model_copy(update={"schema_": schema, "last_modified_time": ctx.clock.now()})
        )


def _mend() -> None:
    from bqemulator.jobs import executor
    from bqemulator.scripting import interpreter
    from bqemulator.storage.engine import DuckDBEngine

    DuckDBEngine._load_spatial = lambda self: None
    for module in (executor, interpreter):
        reconcile = module.sync_dropped_object

        def reconcile_and_alter(bq_sql: str, project_id: str, ctx: Any, _reconcile: Any = reconcile) -> None:
            _reconcile(bq_sql, project_id, ctx)
            sync_altered_table(bq_sql, project_id, ctx)

        module.sync_dropped_object = reconcile_and_alter


if __name__ == "__main__":
    _mend()
    from bqemulator.cli import main

    sys.argv = ["bqemulator", *sys.argv[1:]]
    sys.exit(main())
