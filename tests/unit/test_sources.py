"""The kinds of ingest source on the local provider, through ``ingest_week``.

A file template on the provider's storage, one file of many weeks split by event time, and a
query on the warehouse; each one's errors name what is wrong.
"""

from __future__ import annotations

import dataclasses
import io

import pandas as pd
import pytest
from helpers import write_config

from core.config import load_settings
from core.errors import ParamError
from core.ml.dataset import parse_spec
from lifecycle.context import build_context
from lifecycle.ingest import ingest_week

W05, W06, W07 = "2026-W05", "2026-W06", "2026-W07"  # 26 Jan - 1 Feb, 2 - 8 Feb, 9 - 15 Feb 2026

SPEC = {
    "name": "sales",
    "label": "returned",
    "task": "binary",
    "positive_class": "yes",
    "id_column": "order_id",
    "event_time_column": "ordered_at",
    "features": {
        "amount": {"kind": "numeric", "min": 0},
        "channel": {"kind": "categorical", "values": ["web", "store"]},
    },
}


def sales() -> pd.DataFrame:
    """Orders over two weeks, with the times as a user's export writes them."""
    return pd.DataFrame(
        {
            "order_id": ["007", "008", "009", "010", "011", "012"],
            "ordered_at": [
                "2026-01-25T23:59:59Z",  # W04: Sunday before
                "2026-01-26T00:00:00Z",  # W05: Monday 00:00
                "2026-02-02T00:30:00+01:00",  # W05: Sunday 23:30 UTC
                "2026-02-01 12:00:00",  # W05: no offset -> UTC
                "2026-02-02T00:00:00Z",  # W06: Monday 00:00
                "2026-02-08T23:59:59Z",  # W06
            ],
            "amount": [10.0, 20.5, 30.0, 40.0, 50.0, 60.0],
            "channel": ["web", "store", "web", "web", "store", "web"],
            "returned": ["no", "yes", "no", "no", "yes", "no"],
        }
    )


@pytest.fixture
def context(tmp_path):
    """``context(week, **spec_changes)``: a local project in tmp_path, with the sales spec."""
    settings = load_settings(write_config(tmp_path / "project"))

    def make(week: str, **spec_changes):
        spec = parse_spec({**SPEC, **spec_changes})
        return build_context(
            week=week, logical_date=None, actor="test", settings=dataclasses.replace(settings, dataset=spec)
        )

    return make


def storage_root(ctx) -> str:
    return ctx.provider.storage.uri("k")[:-1]


def raw_frame(ctx, ingested) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(ctx.provider.storage.get_bytes(ingested.raw_key)))


def recorded_source(ctx) -> str:
    return ctx.provider.warehouse.read_rows("data_versions", {"week": ctx.week})["source"].iloc[0]


# --------------------------------------------------------------------------------------------
# a template with {week} on the provider's storage


def test_a_storage_uri_template_is_read_through_the_object_store(context):
    ctx = context(W05)
    data = sales().to_csv(index=False).encode()
    ctx.provider.storage.put_bytes(f"incoming/sales_{W05}.csv", data)
    source = storage_root(ctx) + "incoming/sales_{week}.csv"

    ingested = ingest_week(ctx, source)

    assert ingested.raw_key.endswith("/data.csv")
    assert ctx.provider.storage.get_bytes(ingested.raw_key) == data  # byte for byte
    assert recorded_source(ctx) == storage_root(ctx) + f"incoming/sales_{W05}.csv"
    assert ingest_week(ctx, source) == ingested


def test_a_missing_storage_object_names_its_uri(context):
    ctx = context(W06)
    source = storage_root(ctx) + "incoming/sales_{week}.parquet"
    with pytest.raises(ParamError, match="does not exist") as raised:
        ingest_week(ctx, source)
    assert storage_root(ctx) + f"incoming/sales_{W06}.parquet" in str(raised.value)


@pytest.mark.parametrize("source", ["s3://someone-else/sales_{week}.csv", "https://example.com/sales.csv"])
def test_a_uri_outside_the_storage_root_says_what_is_supported(context, source):
    ctx = context(W05)
    with pytest.raises(ParamError, match="local path, a file:// URI, or a URI under") as raised:
        ingest_week(ctx, source)
    assert storage_root(ctx) in str(raised.value)


def test_a_local_file_uri_template_is_stored_byte_for_byte(context, tmp_path):
    ctx = context(W05)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / f"sales_{W05}.csv").write_bytes(b"order_id,amount\n1,2\n")
    ingested = ingest_week(ctx, (tmp_path / "in").as_uri() + "/sales_{week}.csv")
    assert ctx.provider.storage.get_bytes(ingested.raw_key) == b"order_id,amount\n1,2\n"


# --------------------------------------------------------------------------------------------
# one file of many weeks, split by event time


def test_a_multi_week_csv_is_split_by_event_time(context, tmp_path):
    path = tmp_path / "sales.csv"
    sales().to_csv(path, index=False)

    first, second = ingest_week(context(W05), str(path)), ingest_week(context(W06), str(path))

    assert first.data_version != second.data_version
    assert first.raw_key.endswith("/data.parquet")
    week5 = raw_frame(context(W05), first)
    assert week5["order_id"].tolist() == ["008", "009", "010"]  # ids stay text, in the file's order
    assert list(week5.columns) == list(sales().columns)  # every column kept
    assert week5["ordered_at"].tolist() == sales()["ordered_at"].iloc[1:4].tolist()  # as written
    assert raw_frame(context(W06), second)["order_id"].tolist() == ["011", "012"]
    assert recorded_source(context(W05)) == f"{path} (ordered_at in {W05})"
    # the same file gives the same bytes, so the same version: nothing new is stored
    assert ingest_week(context(W05), str(path)) == first


def test_a_multi_week_parquet_on_the_storage_with_a_timestamp_column(context):
    ctx = context(W06)
    frame = sales().assign(ordered_at=pd.to_datetime(sales()["ordered_at"], utc=True, format="ISO8601"))
    frame["ordered_at"] = frame["ordered_at"].dt.tz_localize(None)  # naive: read as UTC
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    ctx.provider.storage.put_bytes("incoming/all_sales.parquet", buffer.getvalue())

    ingested = ingest_week(ctx, storage_root(ctx) + "incoming/all_sales.parquet")

    assert raw_frame(ctx, ingested)["order_id"].tolist() == ["011", "012"]


def test_a_source_without_week_needs_an_event_time_column(context, tmp_path):
    path = tmp_path / "sales.csv"
    sales().to_csv(path, index=False)
    with pytest.raises(ParamError, match=r"a source without \{week\} needs \[dataset\] event_time_column"):
        ingest_week(context(W05, event_time_column=None), str(path))


def test_a_week_without_rows_names_the_week_and_the_files_time_range(context, tmp_path):
    path = tmp_path / "sales.csv"
    sales().to_csv(path, index=False)
    with pytest.raises(ParamError, match=W07) as raised:
        ingest_week(context(W07), str(path))
    message = str(raised.value)
    assert "2026-01-25 23:59" in message and "2026-02-08 23:59" in message and str(path) in message


def test_a_file_without_the_event_time_column_is_refused(context, tmp_path):
    path = tmp_path / "sales.csv"
    sales().drop(columns="ordered_at").to_csv(path, index=False)
    with pytest.raises(ParamError, match="no column 'ordered_at'"):
        ingest_week(context(W05), str(path))


def test_a_missing_multi_week_file_is_named(context, tmp_path):
    with pytest.raises(ParamError, match="does not exist") as raised:
        ingest_week(context(W05), str(tmp_path / "nowhere.parquet"))
    assert "nowhere.parquet" in str(raised.value)


# --------------------------------------------------------------------------------------------
# a query on the warehouse

QUERY = (
    "query:SELECT order_id, amount, ordered_at, :week AS iso_week FROM orders "
    "WHERE :week_start <= ordered_at AND ordered_at < :week_end"
)


def load_orders(ctx, frame: pd.DataFrame) -> None:
    warehouse = ctx.provider.warehouse
    warehouse.ensure_table("orders", {"order_id": "string", "amount": "float", "ordered_at": "timestamp"})
    rows = frame[["order_id", "amount"]].assign(
        ordered_at=pd.to_datetime(frame["ordered_at"], utc=True, format="ISO8601")
    )
    warehouse.delete_rows("orders", {})
    warehouse.replace_rows("orders", {"order_id": "none"}, rows)


def test_a_query_source_binds_the_week(context):
    ctx = context(W05)
    load_orders(ctx, sales())

    first, second = ingest_week(ctx, QUERY), ingest_week(context(W06), QUERY)

    assert first.data_version != second.data_version
    week5 = raw_frame(ctx, first).sort_values("order_id")
    assert week5["order_id"].tolist() == ["008", "009", "010"]
    assert set(week5["iso_week"]) == {W05}
    assert raw_frame(ctx, second)["order_id"].sort_values().tolist() == ["011", "012"]
    assert recorded_source(ctx) == QUERY
    # the same rows, inserted in another order, give the same version
    load_orders(ctx, sales().iloc[::-1])
    assert ingest_week(ctx, QUERY) == first


def test_a_query_without_rows_names_the_week(context):
    ctx = context(W07)
    load_orders(ctx, sales())
    with pytest.raises(ParamError, match=f"no rows for week {W07}"):
        ingest_week(ctx, QUERY)


@pytest.mark.parametrize(
    "sql, message",
    [
        ("DELETE FROM orders WHERE ordered_at < :week_end", "SELECT"),
        ("SELECT * FROM orders; DROP TABLE orders", "one statement"),
        ("SELECT * FROM orders WHERE ordered_at >= :since", ":week, :week_end, :week_start"),
    ],
)
def test_a_query_that_is_not_one_select_with_known_placeholders_is_refused(context, sql, message):
    ctx = context(W05)
    load_orders(ctx, sales())
    with pytest.raises(ParamError, match=message):
        ingest_week(ctx, f"query:{sql}")
    assert len(ctx.provider.warehouse.read_rows("orders")) == 6
