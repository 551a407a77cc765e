"""A comparable snapshot of everything the loop writes on the local provider, and its diff.

Used by the re-run tests: a re-run, a repeated backfill or a retried task must leave the
snapshot unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any


def _canonical(value: Any) -> Any:
    """A plain, comparable, sortable value (NaN and NA become None; numpy scalars unwrapped)."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
    except ImportError:  # pragma: no cover
        pass
    return value


def _rows(frame: Any) -> list[tuple]:
    rows = [tuple(_canonical(v) for v in row) for row in frame.itertuples(index=False, name=None)]
    return sorted(rows, key=repr)


def snapshot(ctx: Any, root: Path) -> dict[str, Any]:
    """Everything the stages write on the local provider under ``root``, in a comparable form.

    Nothing under storage/ is excluded. MLflow's own bookkeeping under mlflow/ (run rows,
    timestamps, the SQLite file) is not an artifact: the registry is compared through its API
    instead (versions with their lineage, and the alias history).
    """
    storage_root = root / "storage"
    files = {
        path.relative_to(storage_root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(storage_root.rglob("*"))
        if path.is_file()
    }
    tables = {}
    with ctx.provider.warehouse.connect() as con:  # one connection: opening DuckDB costs ~10 ms
        names = sorted(
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        )
        for name in names:
            frame = con.execute(f"SELECT * FROM {name}").df()
            tables[name] = {"columns": list(frame.columns), "rows": _rows(frame)}
    registry = ctx.provider.registry
    versions = [
        {
            "version": v.version,
            "registry_key": v.registry_key,
            "sha256": v.sha256,
            "artifact_uri": v.artifact_uri,
            "metrics": dict(sorted(v.metrics.items())),
            "tags": dict(sorted(v.tags.items())),
            "created_at": v.created_at,
        }
        for v in registry.list_versions(ctx.model_name)
    ]
    history = [dataclasses.astuple(change) for change in registry.alias_history(ctx.model_name, "production")]
    production = registry.get_alias(ctx.model_name, "production")
    record_path = root / "endpoint" / "deployments" / f"{ctx.model_name}.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else None
    return {
        "storage": files,
        "tables": tables,
        "versions": versions,
        "alias_history": history,
        "production": production.version if production else None,
        "deployment": record,
    }


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Human-readable differences between two snapshots (empty when equal)."""
    found = []
    old, new = before["storage"], after["storage"]
    for key in sorted(set(old) | set(new)):
        if key not in new:
            found.append(f"storage: {key} removed")
        elif key not in old:
            found.append(f"storage: {key} added")
        elif old[key] != new[key]:
            found.append(f"storage: {key} rewritten with different bytes")
    for name in sorted(set(before["tables"]) | set(after["tables"])):
        a = before["tables"].get(name, {"columns": [], "rows": []})
        b = after["tables"].get(name, {"columns": [], "rows": []})
        if a == b:
            continue
        if a["columns"] != b["columns"]:
            found.append(f"table {name}: columns {a['columns']} -> {b['columns']}")
            continue
        removed = [r for r in a["rows"] if r not in b["rows"]]
        added = [r for r in b["rows"] if r not in a["rows"]]
        found.append(
            f"table {name}: {len(a['rows'])} -> {len(b['rows'])} rows; "
            f"removed {_show(a['columns'], removed)}; added {_show(b['columns'], added)}"
        )
    for part in ("versions", "alias_history", "production", "deployment"):
        if before[part] != after[part]:
            found.append(f"{part}: {_short(before[part])} -> {_short(after[part])}")
    return found


def _show(columns: list[str], rows: list[tuple]) -> str:
    if not rows:
        return "nothing"
    shown = [{c: v for c, v in zip(columns, row, strict=True)} for row in rows[:2]]
    return _short(shown) + (f" (+{len(rows) - 2} more)" if len(rows) > 2 else "")


def _short(value: Any, limit: int = 600) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
