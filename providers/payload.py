"""The body an online endpoint is sent: ``{"rows": [...]}`` as JSON, the same for every cloud."""

from __future__ import annotations

from typing import Any


def rows_json(rows: list[dict[str, Any]]) -> bytes:
    """``{"rows": [...]}`` with numpy numbers as numbers and timestamps as ISO strings."""
    import pandas as pd

    records = pd.DataFrame.from_records(rows).to_json(orient="records", date_format="iso")
    return b'{"rows": ' + records.encode() + b"}"
