"""Bad input: every way a week's raw file can be wrong is caught, reported and quarantined.

The stage functions run directly on the local provider (no Airflow, no endpoint). A clean first
week trains and promotes a production model; then each case writes a bad file for a week of its
own, ingests it and validates it. A case ends one of two ways:

* ``rows``: the batch is accepted, exactly the injected bad rows are quarantined (rows.parquet
  plus a report naming the failed expectation) and the validated data excludes them;
* ``batch``: validation raises :class:`DataValidationError` naming the problem, the whole raw
  file is copied to the quarantine with a report, nothing is validated, training refuses the
  week and production is unchanged.

Either way the raw bytes stay where ingest put them, unchanged (the last test checks all of them
by sha256 and prints a summary table).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import write_config

ROWS = 600
SEED = 11
CLEAN_WEEK = "2026-W18"
ACTOR = "test-bad-input"

Built = tuple[bytes, list[str]]  # the file's bytes and the customer ids of the injected bad rows


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def _parquet(frame: pd.DataFrame) -> bytes:
    from demo.sample_data import write_parquet_bytes

    return write_parquet_bytes(frame)


def _rows(frame: pd.DataFrame, n: int, start: int = 7, step: int = 37) -> pd.Index:
    """``n`` spread-out row labels of ``frame``."""
    return frame.index[[(start + i * step) % len(frame) for i in range(n)]]


def _ids(frame: pd.DataFrame, rows: pd.Index) -> list[str]:
    return [str(i) for i in frame.loc[rows, "customer_id"]]


# --- builders: a clean week's frame in, a bad file out ---------------------------------------


def missing_column(f: pd.DataFrame) -> Built:
    return _csv(f.drop(columns=["tenure_months"])), []


def extra_column(f: pd.DataFrame) -> Built:
    return _csv(f.assign(promo_code="none")), []


def renamed_column(f: pd.DataFrame) -> Built:
    return _csv(f.rename(columns={"tenure_months": "tenure_month"})), []


def wrong_dtype(f: pd.DataFrame) -> Built:
    return _parquet(f.assign(tenure_months=f["tenure_months"] > 12)), []  # bool, not a number


def text_in_numeric(f: pd.DataFrame) -> Built:
    f = f.astype({"monthly_charges": object})
    f.loc[_rows(f, 3), "monthly_charges"] = "about 50"
    return _csv(f), []


def all_null_column(f: pd.DataFrame) -> Built:
    return _csv(f.assign(region=None)), []


def nan_and_inf(f: pd.DataFrame) -> Built:
    nan_rows, inf_rows = _rows(f, 3, start=5), _rows(f, 3, start=300)
    f.loc[nan_rows, "monthly_charges"] = np.nan
    f.loc[inf_rows, "monthly_charges"] = np.inf
    f.loc[inf_rows[:1], "monthly_charges"] = -np.inf
    return _parquet(f), _ids(f, nan_rows.append(inf_rows))


def out_of_range(f: pd.DataFrame) -> Built:
    high, low = _rows(f, 3, start=3), _rows(f, 2, start=400)
    f.loc[high, "age"] = 150
    f.loc[low, "age"] = -3
    return _csv(f), _ids(f, high.append(low))


def unseen_category(f: pd.DataFrame) -> Built:
    rows = _rows(f, 4)
    f.loc[rows, "region"] = "atlantis"
    return _csv(f), _ids(f, rows)


def bad_label_value(f: pd.DataFrame) -> Built:
    rows = _rows(f, 3, start=100)
    f.loc[rows, "churned"] = 2
    return _csv(f), _ids(f, rows)


def duplicate_ids(f: pd.DataFrame) -> Built:
    f.loc[_rows(f, 3, start=1), "customer_id"] = f.loc[_rows(f, 3, start=2), "customer_id"].to_numpy()
    return _csv(f), []


def outside_week(f: pd.DataFrame) -> Built:
    before, after = _rows(f, 3, start=9), _rows(f, 2, start=500)
    f.loc[before, "event_time"] -= pd.Timedelta(days=10)
    f.loc[after, "event_time"] += pd.Timedelta(days=8)
    return _csv(f), _ids(f, before.append(after))


def unparseable_event_time(f: pd.DataFrame) -> Built:
    rows = _rows(f, 4, start=20)
    f = f.astype({"event_time": object})
    f.loc[rows, "event_time"] = ["not-a-date", "2026-13-45 25:61:00", "yesterday", "31/02/2026"]
    return _csv(f), _ids(f, rows)


def too_many_bad_rows(f: pd.DataFrame) -> Built:
    f.loc[_rows(f, 60, start=0, step=10), "age"] = 150  # 10% of the rows, the limit is 5%
    return _csv(f), []


def label_leak(f: pd.DataFrame) -> Built:
    return _csv(f.assign(late_payments_12m=f["churned"] * 12)), []  # same columns, leaked values


def empty_file(f: pd.DataFrame) -> Built:
    return b"", []


def header_only(f: pd.DataFrame) -> Built:
    return _csv(f.head(0)), []


def truncated_parquet(f: pd.DataFrame) -> Built:
    data = _parquet(f)
    return data[: len(data) // 2], []


def bad_quoting(f: pd.DataFrame) -> Built:
    lines = _csv(f).decode().splitlines(keepends=True)
    lines[10] = lines[10].replace("C", '"C', 1).replace(",", '"x,', 1)  # "C2026-..."x,
    return "".join(lines).encode(), []


def non_utf8(f: pd.DataFrame) -> Built:
    text = _csv(f.assign(region=f["region"].mask(f.index == 42, "s\u00fcd")))
    return text.replace("s\u00fcd".encode(), "s\u00fcd".encode("latin-1")), []


@dataclass(frozen=True)
class Case:
    """One bad input: how it is built and how validation must end."""

    name: str
    week: str
    extension: str
    build: Callable[[pd.DataFrame], Built]
    outcome: str  # "rows" or "batch"
    expectation: str  # the failed expectation (or check) that must be named
    message: str  # a substring the error message (batch) and the report must contain
    why: str


def _cases() -> list[Case]:
    specs = [
        ("missing_column", "csv", missing_column, "batch", "expect_table_columns_to_match_set",
         "missing columns: tenure_months", "the column set is the batch's contract"),
        ("extra_column", "csv", extra_column, "batch", "expect_table_columns_to_match_set",
         "extra columns: promo_code", "the column set is the batch's contract"),
        ("renamed_column", "csv", renamed_column, "batch", "expect_table_columns_to_match_set",
         "extra columns: tenure_month", "a typo is a missing plus an extra column"),
        ("wrong_dtype", "parquet", wrong_dtype, "batch", "expect_column_values_to_be_in_type_list",
         "tenure_months", "a column's dtype belongs to the whole column"),
        ("text_in_numeric", "csv", text_in_numeric, "batch", "expect_column_values_to_be_in_type_list",
         "3 non-numeric values, e.g. 'about 50'", "text makes the whole column non-numeric"),
        ("all_null_column", "csv", all_null_column, "batch",
         "expect_column_proportion_of_non_null_values_to_be_between", "region",
         "an empty column is a broken export, not bad rows"),
        ("nan_and_inf", "parquet", nan_and_inf, "rows", "expect_column_values_to_be_between",
         "monthly_charges", "a few NaN / inf values: those rows only"),
        ("out_of_range", "csv", out_of_range, "rows", "expect_column_values_to_be_between",
         "age", "values outside the schema's range: those rows only"),
        ("unseen_category", "csv", unseen_category, "rows", "expect_column_values_to_be_in_set",
         "atlantis", "an unknown category value: those rows only"),
        ("bad_label_value", "csv", bad_label_value, "rows", "expect_column_values_to_be_in_set",
         "churned", "a label that is neither 0 nor 1: those rows only"),
        ("duplicate_ids", "csv", duplicate_ids, "batch", "expect_column_values_to_be_unique",
         "customer_id", "which duplicate is right is unknowable: the whole extract is suspect"),
        ("outside_week", "csv", outside_week, "rows", "expect_column_values_to_be_between",
         "event_time", "rows dated outside the week: those rows only"),
        ("unparseable_event_time", "csv", unparseable_event_time, "rows",
         "expect_column_values_to_not_be_null", "could not be parsed as timestamps",
         "an unparseable timestamp becomes a missing one: those rows only"),
        ("too_many_bad_rows", "csv", too_many_bad_rows, "batch", "max_bad_row_fraction",
         "60 of 600 rows", "row-level failures above max_bad_row_fraction (5%) reject the batch"),
        ("label_leak", "csv", label_leak, "batch", "label_leak_check", "late_payments_12m",
         "a leaking feature would poison every model trained on the week"),
        ("empty_file", "csv", empty_file, "batch", "unreadable", "empty (0 bytes)",
         "nothing can be parsed"),
        ("header_only", "csv", header_only, "batch", "unreadable", "no data rows",
         "nothing can be parsed"),
        ("truncated_parquet", "parquet", truncated_parquet, "batch", "unreadable",
         "truncated or corrupt", "nothing can be parsed"),
        ("bad_quoting", "csv", bad_quoting, "batch", "unreadable", "bad quoting",
         "the file's structure is broken: no row can be trusted"),
        ("non_utf8", "csv", non_utf8, "batch", "unreadable", "not valid UTF-8",
         "the file's encoding is broken: no row can be trusted"),
    ]  # fmt: skip
    return [Case(name, f"2026-W{20 + i}", ext, build, outcome, expectation, message, why)
            for i, (name, ext, build, outcome, expectation, message, why) in enumerate(specs)]  # fmt: skip


CASES = _cases()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    """A project with one promoted production model, and every case's bad file written."""
    from demo.sample_data import generate_week
    from lifecycle.context import build_context
    from lifecycle.evaluate import evaluate_challenger
    from lifecycle.ingest import ingest_week
    from lifecycle.register import register_challenger
    from lifecycle.train import train_challenger
    from lifecycle.validate import validate_week_data

    folder = tmp_path_factory.mktemp("bad-input")
    data = folder / "data"
    data.mkdir()
    config = write_config(
        folder / "project", data={"rows_per_week": ROWS}, model={"params": {"max_iter": 20}}
    )
    previous = os.environ.get("MLOPS_CONFIG")
    os.environ["MLOPS_CONFIG"] = str(config)
    try:
        generate_week(CLEAN_WEEK, rows=ROWS, seed=SEED).to_csv(data / f"churn_{CLEAN_WEEK}.csv", index=False)
        ctx = build_context(week=CLEAN_WEEK, logical_date=None, actor=ACTOR)
        ingest_week(ctx, source=str(data / "churn_{week}.csv"))
        assert validate_week_data(ctx).n_bad_rows == 0
        train_challenger(ctx)
        evaluate_challenger(ctx)
        registered = register_challenger(ctx)
        assert registered.promoted, registered
        production = ctx.provider.registry.get_alias(ctx.model_name, "production")
        assert production is not None

        written = {}
        for case in CASES:
            raw, bad_ids = case.build(generate_week(case.week, rows=ROWS, seed=SEED))
            (data / f"churn_{case.week}.{case.extension}").write_bytes(raw)
            written[case.name] = {"sha256": hashlib.sha256(raw).hexdigest(), "bad_ids": bad_ids}
        yield {
            "folder": folder,
            "data": data,
            "production": production.version,
            "n_versions": len(ctx.provider.registry.list_versions(ctx.model_name)),
            "written": written,
            "summary": {},
        }
    finally:
        if previous is None:
            os.environ.pop("MLOPS_CONFIG", None)
        else:
            os.environ["MLOPS_CONFIG"] = previous


def _report_failures(report: str) -> list[dict[str, str]]:
    """The (expectation, column, detail) rows of a validation report's tables."""
    found = []
    for line in report.splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            found.append({"expectation": cells[0].strip("`"), "column": cells[1], "detail": cells[-1]})
    return found


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case: Case, world) -> None:
    from core.errors import DataValidationError, ParamError
    from lifecycle.context import build_context
    from lifecycle.ingest import ingest_week
    from lifecycle.keys import quarantine_prefix, validated_key
    from lifecycle.train import train_challenger
    from lifecycle.validate import validate_week_data

    ctx = build_context(week=case.week, logical_date=None, actor=ACTOR)
    storage, warehouse = ctx.provider.storage, ctx.provider.warehouse
    raw_path = world["data"] / f"churn_{case.week}.{case.extension}"
    raw = raw_path.read_bytes()
    ingested = ingest_week(ctx, source=str(world["data"] / f"churn_{{week}}.{case.extension}"))
    assert storage.get_bytes(ingested.raw_key) == raw
    quarantine = quarantine_prefix(case.week, ingested.data_version)

    if case.outcome == "batch":
        with pytest.raises(DataValidationError) as caught:
            validate_week_data(ctx)
        message = str(caught.value)
        assert case.expectation in message, message
        assert case.message in message, message
        assert "rejected and quarantined whole" in message
        result = warehouse.read_rows("validation_results", {"week": case.week}).iloc[0]
        assert not result["passed"]
        assert case.expectation in json.loads(result["failed_expectations"])
        assert result["quarantine_key"] == quarantine
        # the raw data is kept where ingest put it, and a copy is quarantined whole with a report
        assert storage.get_bytes(ingested.raw_key) == raw
        assert storage.get_bytes(f"{quarantine}/data.{case.extension}") == raw
        report = storage.get_bytes(f"{quarantine}/report.md").decode()
        assert "REJECTED" in report and case.message in report, report
        assert f"`{case.expectation}`" in report, report  # the same name as in the error and the table
        assert not storage.exists(f"{quarantine}/rows.parquet")
        # nothing downstream runs: nothing validated, training refuses the week
        assert not storage.exists(validated_key(case.week))
        with pytest.raises(ParamError, match="no validated data"):
            train_challenger(ctx)
        n_bad, level = int(result["n_bad_rows"]), "whole batch"
    else:
        bad_ids = world["written"][case.name]["bad_ids"]
        outcome = validate_week_data(ctx)
        assert outcome.n_rows == ROWS
        assert outcome.n_bad_rows == len(bad_ids) > 0
        result = warehouse.read_rows("validation_results", {"week": case.week}).iloc[0]
        assert result["passed"]
        assert case.expectation in json.loads(result["failed_expectations"])
        assert result["quarantine_key"] == quarantine
        quarantined = pd.read_parquet(storage.path(f"{quarantine}/rows.parquet"))
        assert sorted(quarantined["customer_id"].astype(str)) == sorted(bad_ids)
        report = storage.get_bytes(f"{quarantine}/report.md").decode()
        assert f"{len(bad_ids)} rows quarantined" in report, report
        assert case.expectation in report and case.message in report, report
        validated = pd.read_parquet(storage.path(validated_key(case.week)))
        assert len(validated) == ROWS - len(bad_ids)
        assert not set(validated["customer_id"].astype(str)) & set(bad_ids)
        assert not storage.exists(f"{quarantine}/data.{case.extension}")
        assert storage.get_bytes(ingested.raw_key) == raw
        n_bad, level = len(bad_ids), "row-level quarantine"

    # production is untouched either way
    registry = ctx.provider.registry
    assert registry.get_alias(ctx.model_name, "production").version == world["production"]
    assert len(registry.list_versions(ctx.model_name)) == world["n_versions"]
    world["summary"][case.name] = {
        "case": case.name,
        "week": case.week,
        "file": case.extension,
        "outcome": level,
        "n_bad_rows": n_bad,
        "failed_expectations": json.loads(result["failed_expectations"]),
        "reason": "; ".join(
            f"{f['expectation']}({f['column']}): {f['detail']}" for f in _report_failures(report)
        ),
        "why": case.why,
    }


def test_every_bad_input_was_quarantined_or_rejected(world) -> None:
    from lifecycle.context import build_context

    ctx = build_context(week=CLEAN_WEEK, logical_date=None, actor=ACTOR)
    storage, warehouse = ctx.provider.storage, ctx.provider.warehouse
    versions = warehouse.read_rows("data_versions").set_index("week")
    results = warehouse.read_rows("validation_results").set_index("week")
    summary = world["summary"]
    missing = [case.name for case in CASES if case.name not in summary]
    assert not missing, f"cases that did not finish: {missing}"
    for case in CASES:
        # nothing lost: the raw object is still there, byte for byte what was written
        raw_key = versions.loc[case.week, "raw_key"]
        assert storage.exists(raw_key), case.name
        stored = hashlib.sha256(storage.get_bytes(raw_key)).hexdigest()
        assert stored == world["written"][case.name]["sha256"] == versions.loc[case.week, "sha256"], case.name
        # and it was either quarantined row by row or rejected whole
        result = results.loc[case.week]
        assert result["quarantine_key"], case.name
        assert bool(result["passed"]) == (case.outcome == "rows"), case.name
        assert storage.exists(f"{result['quarantine_key']}/report.md"), case.name

    rows = [summary[case.name] for case in CASES]
    out = Path(world["folder"]) / "bad_input_summary.json"
    out.write_text(json.dumps(rows, indent=2))
    header = f"{'case':<24} {'outcome':<22} {'bad rows':>8}  failed expectation(s) -> reason"
    print(f"\n{header}\n{'-' * len(header)}")
    for row in rows:
        print(f"{row['case']:<24} {row['outcome']:<22} {row['n_bad_rows']:>8}  "
              f"{', '.join(row['failed_expectations'])} -> {row['reason'][:160]}")  # fmt: skip
    print(f"(written to {out})")
    assert sum(row["outcome"] == "row-level quarantine" for row in rows) == sum(
        case.outcome == "rows" for case in CASES
    )
