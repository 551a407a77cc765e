"""The provider contract as test suites, one per interface, written once for every backend.

A backend's test module subclasses each suite (``class TestLocalStorage(StorageContract)``) and
supplies its fixtures (the fsspec / universal-pathlib pattern):

- ``StorageContract``: ``store`` (an empty ObjectStore);
- ``WarehouseContract``: ``warehouse`` (tables are named per test, so one store serves all);
- ``TrainingContract``: ``training`` and ``training_store`` (the store its jobs read and write);
- ``RegistryContract``: ``registry``, ``registry_store``, ``tamper(version)`` (corrupts the
  registered copy of a version's artifact, as an attacker or a bad disk would) and
  ``native_alias(model, alias)`` (the version the registry's own marker names: the mirror of
  the alias ledger, e.g. the MLflow alias or the SageMaker package that is Approved);
- ``EndpointContract``: ``endpoint``, ``registry`` and ``registry_store``;
- ``BatchContract``: ``batch``, ``registry``, ``registry_store`` and ``tamper``.

The suites' names do not start with ``Test``, so pytest collects them only through a backend.
"""

from __future__ import annotations

import json
import math
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from core.errors import ArtifactIntegrityError, MLOpsError, ParamError
from demo.spec import DEMO_SPEC
from providers.base import (
    BatchScorer,
    JobHandle,
    JobState,
    ModelRegistry,
    ModelVersion,
    ObjectStore,
    OnlineEndpoint,
    PreconditionFailedError,
    TrainingJobs,
    TrainingJobSpec,
    Warehouse,
)
from providers.jobs import deploy, run_training, score, wait
from providers.ledger import AliasLedger
from providers.migrations import migrate_tables, recorded_versions, schema_hash

METRICS = {"validation_roc_auc": 0.81, "validation_log_loss": 0.42, "n_train": 1000.0}


def unique(prefix: str) -> str:
    """A name no other test uses (tests share one store per backend)."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------------------------
# storage


class StorageContract:
    """ObjectStore: atomic put/get, overwrite, string-prefix listing, delete, safe keys only,
    conditional writes (create-only, compare-and-set on the object's version)."""

    def test_is_an_object_store(self, store):
        assert isinstance(store, ObjectStore)

    def test_put_get_bytes(self, store):
        uri = store.put_bytes("raw/week=2026-W05/data.csv", b"a,b\n1,2\n")
        assert uri == store.uri("raw/week=2026-W05/data.csv")
        assert store.get_bytes("raw/week=2026-W05/data.csv") == b"a,b\n1,2\n"
        assert store.exists("raw/week=2026-W05/data.csv")

    def test_overwrite_is_idempotent(self, store):
        store.put_bytes("a/b.txt", b"one")
        store.put_bytes("a/b.txt", b"two")
        store.put_bytes("a/b.txt", b"two")
        assert store.get_bytes("a/b.txt") == b"two"
        assert store.list_keys("a/") == ["a/b.txt"]

    def test_put_get_file(self, store, tmp_path):
        source = tmp_path / "model.joblib"
        source.write_bytes(bytes(range(256)) * 1000)
        store.put_file("models/v1/model.joblib", source)
        target = store.get_file("models/v1/model.joblib", tmp_path / "out" / "copy.joblib")
        assert Path(target).read_bytes() == source.read_bytes()

    def test_missing_objects(self, store, tmp_path):
        assert not store.exists("nothing/here.bin")
        with pytest.raises(FileNotFoundError):
            store.get_bytes("nothing/here.bin")
        with pytest.raises(FileNotFoundError):
            store.get_file("nothing/here.bin", tmp_path / "x.bin")
        assert not (tmp_path / "x.bin").exists()
        store.delete("nothing/here.bin")  # deleting a missing object is fine

    def test_put_file_of_a_missing_source_writes_nothing(self, store, tmp_path):
        with pytest.raises(FileNotFoundError):
            store.put_file("ghost/model.joblib", tmp_path / "does-not-exist")
        assert not store.exists("ghost/model.joblib")

    def test_list_keys_by_string_prefix_sorted(self, store):
        for key in ("p/week=2026-W02/a", "p/week=2026-W01/b", "p/week=2026-W01/a", "p/weekly/x", "q/z"):
            store.put_bytes(key, b"x")
        assert store.list_keys("p/week=2026-W01/") == ["p/week=2026-W01/a", "p/week=2026-W01/b"]
        assert store.list_keys("p/week=") == ["p/week=2026-W01/a", "p/week=2026-W01/b", "p/week=2026-W02/a"]
        assert store.list_keys("p/week") == [
            "p/week=2026-W01/a", "p/week=2026-W01/b", "p/week=2026-W02/a", "p/weekly/x",
        ]  # fmt: skip
        assert store.list_keys("nothing/") == []
        assert set(store.list_keys()) >= {"p/weekly/x", "q/z"}

    def test_delete(self, store):
        store.put_bytes("d/one", b"1")
        store.put_bytes("d/two", b"2")
        store.delete("d/one")
        assert not store.exists("d/one")
        assert store.list_keys("d/") == ["d/two"]

    @pytest.mark.parametrize(
        "key", ["../escape", "/absolute", "a//b", "a/./b", "a/../b", "", "a b", "a\nb", "a/", "é"]
    )
    def test_unsafe_keys_are_refused(self, store, key):
        with pytest.raises(ValueError):
            store.put_bytes(key, b"x")
        with pytest.raises(ValueError):
            store.get_bytes(key)
        with pytest.raises(ValueError):
            store.put_if_match(key, b"x", None)

    # -- conditional writes (compare-and-set) ----------------------------------------------

    def test_get_with_version_of_a_missing_object_raises(self, store):
        with pytest.raises(FileNotFoundError):
            store.get_with_version("cas/missing.json")

    def test_create_only_refuses_an_existing_key(self, store):
        version = store.put_if_match("cas/new.json", b"first", None)
        assert store.get_with_version("cas/new.json") == (b"first", version)
        with pytest.raises(PreconditionFailedError):
            store.put_if_match("cas/new.json", b"second", None)
        store.put_bytes("cas/plain.json", b"written without a condition")
        with pytest.raises(PreconditionFailedError):
            store.put_if_match("cas/plain.json", b"second", None)
        assert store.get_bytes("cas/new.json") == b"first"
        assert store.get_bytes("cas/plain.json") == b"written without a condition"

    def test_a_stale_version_is_refused_and_the_right_one_moves_it(self, store):
        v1 = store.put_if_match("cas/doc.json", b"one", None)
        v2 = store.put_if_match("cas/doc.json", b"two", v1)
        assert v2 != v1 and store.get_with_version("cas/doc.json") == (b"two", v2)
        for stale in (v1, "not-a-version"):
            with pytest.raises(PreconditionFailedError):
                store.put_if_match("cas/doc.json", b"lost update", stale)
        assert store.get_with_version("cas/doc.json") == (b"two", v2)
        # a plain write is a change too: the version read before it is stale afterwards
        store.put_bytes("cas/doc.json", b"three")
        data, v3 = store.get_with_version("cas/doc.json")
        assert data == b"three" and v3 != v2
        with pytest.raises(PreconditionFailedError):
            store.put_if_match("cas/doc.json", b"lost update", v2)
        assert store.put_if_match("cas/doc.json", b"four", v3) == store.get_with_version("cas/doc.json")[1]
        assert store.get_bytes("cas/doc.json") == b"four"
        assert store.list_keys("cas/") == ["cas/doc.json"]  # no lock or version files listed

    def test_a_deleted_object_refuses_its_old_version(self, store):
        version = store.put_if_match("cas/gone.json", b"x", None)
        store.delete("cas/gone.json")
        with pytest.raises(PreconditionFailedError):
            store.put_if_match("cas/gone.json", b"y", version)
        assert not store.exists("cas/gone.json")
        assert store.put_if_match("cas/gone.json", b"z", None)  # created again
        assert store.get_bytes("cas/gone.json") == b"z"

    def test_concurrent_conditional_writers_one_wins_each_round(self, store):
        key, writers, rounds = "cas/race.json", 6, 5
        store.put_if_match(key, b"round 0", None)
        barrier = threading.Barrier(writers)
        wins: list[list[int]] = [[] for _ in range(rounds)]
        errors: list[BaseException] = []

        def write(index: int) -> None:
            try:
                for round_ in range(rounds):
                    barrier.wait(timeout=60)  # every writer reads the same version ...
                    _, version = store.get_with_version(key)
                    barrier.wait(timeout=60)  # ... before any of them writes
                    try:
                        store.put_if_match(key, f"round {round_ + 1} by {index}".encode(), version)
                        wins[round_].append(index)
                    except PreconditionFailedError:
                        pass
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                barrier.abort()

        threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors
        assert [len(w) for w in wins] == [1] * rounds, wins
        assert store.get_bytes(key) == f"round {rounds} by {wins[-1][0]}".encode()


# --------------------------------------------------------------------------------------------
# warehouse

SCHEMA = {"week": "string", "n": "int", "score": "float", "ok": "bool", "note": "string"}


def _rows(week: str, n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "week": [week] * n,
            "n": list(range(start, start + n)),
            "score": [i / 10 for i in range(start, start + n)],
            "ok": [i % 2 == 0 for i in range(start, start + n)],
            "note": [f"row {i}" for i in range(start, start + n)],
        }
    )


class WarehouseContract:
    """Warehouse: tables from logical types; partition replacement in one transaction."""

    @pytest.fixture
    def table(self, warehouse):
        name = unique("t")
        warehouse.ensure_table(name, SCHEMA)
        return name

    def test_is_a_warehouse(self, warehouse):
        assert isinstance(warehouse, Warehouse)

    def test_round_trip_of_every_type(self, warehouse, table):
        warehouse.replace_rows(table, {"week": "2026-W01"}, _rows("2026-W01", 3))
        read = warehouse.read_rows(table).sort_values("n").reset_index(drop=True)
        assert read["n"].tolist() == [0, 1, 2]
        assert read["score"].tolist() == pytest.approx([0.0, 0.1, 0.2])
        assert [bool(v) for v in read["ok"]] == [True, False, True]
        assert read["note"].tolist() == ["row 0", "row 1", "row 2"]

    def test_missing_values_are_null(self, warehouse, table):
        frame = pd.DataFrame({"week": ["w"], "n": [1], "score": [float("nan")], "ok": [None], "note": [None]})
        warehouse.replace_rows(table, {"week": "w"}, frame)
        row = warehouse.read_rows(table).iloc[0]
        assert row["score"] is None or math.isnan(row["score"])
        assert row["note"] is None or pd.isna(row["note"])

    def test_ensure_table_adds_missing_columns_and_keeps_rows(self, warehouse, table):
        warehouse.replace_rows(table, {"week": "2026-W01"}, _rows("2026-W01", 2))
        warehouse.ensure_table(table, {**SCHEMA, "extra": "float"})
        warehouse.ensure_table(table, {**SCHEMA, "extra": "float"})  # idempotent
        read = warehouse.read_rows(table)
        assert len(read) == 2 and "extra" in read.columns

    def test_ensure_table_refuses_bad_types_and_names(self, warehouse):
        with pytest.raises(ValueError):
            warehouse.ensure_table(unique("t"), {"a": "decimal"})
        with pytest.raises(ValueError):
            warehouse.ensure_table("Bad-Name", {"a": "int"})
        with pytest.raises(ValueError):
            warehouse.ensure_table(unique("t"), {"a; drop table x": "int"})

    def test_migrate_tables_once_per_schema_version(self, warehouse):
        first, second = unique("m"), unique("m")
        schemas = {first: SCHEMA, second: {"week": "string"}}
        assert sorted(migrate_tables(warehouse, schemas)) == sorted(schemas)
        assert migrate_tables(warehouse, schemas) == []  # recorded: nothing to do
        assert recorded_versions(warehouse)[first] == schema_hash(SCHEMA)
        changed = {**schemas, second: {"week": "string", "extra": "float"}}
        assert migrate_tables(warehouse, changed) == [second]
        warehouse.replace_rows(second, {"week": "w"}, pd.DataFrame({"week": ["w"], "extra": [1.5]}))
        assert warehouse.read_rows(second)["extra"].tolist() == [1.5]
        assert recorded_versions(warehouse)[second] == schema_hash(changed[second])

    def test_replace_rows_replaces_only_the_partition(self, warehouse, table):
        warehouse.replace_rows(table, {"week": "2026-W01"}, _rows("2026-W01", 3))
        warehouse.replace_rows(table, {"week": "2026-W02"}, _rows("2026-W02", 2))
        assert warehouse.replace_rows(table, {"week": "2026-W01"}, _rows("2026-W01", 1, start=10)) == 1
        read = warehouse.read_rows(table)
        assert sorted(read.loc[read["week"] == "2026-W01", "n"]) == [10]
        assert sorted(read.loc[read["week"] == "2026-W02", "n"]) == [0, 1]

    def test_replace_rows_twice_leaves_the_rows_once(self, warehouse, table):
        for _ in range(3):
            warehouse.replace_rows(table, {"week": "2026-W01"}, _rows("2026-W01", 4))
        assert len(warehouse.read_rows(table, {"week": "2026-W01"})) == 4

    def test_replace_rows_with_several_where_columns(self, warehouse, table):
        warehouse.replace_rows(table, {"week": "w", "note": "a"}, _rows("w", 2).assign(note="a"))
        warehouse.replace_rows(table, {"week": "w", "note": "b"}, _rows("w", 3).assign(note="b"))
        warehouse.replace_rows(table, {"week": "w", "note": "a"}, _rows("w", 1).assign(note="a"))
        read = warehouse.read_rows(table)
        assert (read["note"] == "a").sum() == 1 and (read["note"] == "b").sum() == 3

    def test_replace_rows_with_an_iterable_of_chunks(self, warehouse, table):
        chunks = (_rows("w", 1200, start=i * 1200) for i in range(3))
        assert warehouse.replace_rows(table, {"week": "w"}, chunks) == 3600
        assert sorted(warehouse.read_rows(table, columns=["n"])["n"]) == list(range(3600))

    def test_failing_chunk_generator_rolls_back(self, warehouse, table):
        warehouse.replace_rows(table, {"week": "w"}, _rows("w", 2))

        def chunks():
            yield _rows("w", 5, start=100)
            raise RuntimeError("the source broke half-way")

        with pytest.raises(RuntimeError):
            warehouse.replace_rows(table, {"week": "w"}, chunks())
        assert sorted(warehouse.read_rows(table)["n"]) == [0, 1]  # the old partition, untouched

    def test_read_rows_where_and_columns(self, warehouse, table):
        warehouse.replace_rows(table, {"week": "a"}, _rows("a", 3))
        warehouse.replace_rows(table, {"week": "b"}, _rows("b", 2))
        read = warehouse.read_rows(table, {"week": "b"}, columns=["n", "note"])
        assert list(read.columns) == ["n", "note"] and sorted(read["n"]) == [0, 1]

    def test_missing_table_reads_empty(self, warehouse):
        read = warehouse.read_rows(unique("missing"), columns=["a"])
        assert read.empty and list(read.columns) == ["a"]

    def test_delete_rows(self, warehouse, table):
        warehouse.replace_rows(table, {"week": "a"}, _rows("a", 3))
        warehouse.replace_rows(table, {"week": "b"}, _rows("b", 2))
        assert warehouse.delete_rows(table, {"week": "a"}) == 3
        assert warehouse.delete_rows(table, {"week": "a"}) == 0
        assert sorted(warehouse.read_rows(table)["week"]) == ["b", "b"]

    def test_values_with_sql_are_stored_verbatim(self, warehouse, table):
        nasty = "x'); DROP TABLE t; -- \\ \" %s {}"
        warehouse.replace_rows(table, {"week": nasty}, _rows(nasty, 1).assign(note=nasty))
        read = warehouse.read_rows(table, {"week": nasty})
        assert read["note"].tolist() == [nasty]

    @pytest.mark.parametrize("name", ["x; drop table y", "X", "1abc", "a-b", ""])
    def test_identifiers_with_sql_are_refused(self, warehouse, table, name):
        with pytest.raises(ValueError):
            warehouse.read_rows(name)
        with pytest.raises(ValueError):
            warehouse.replace_rows(table, {name: 1}, _rows("w", 1))

    # ---------------------------------------------------------------- query

    @pytest.fixture
    def timed_table(self, warehouse):
        """Rows around the week 2026-W05 (Monday 26 January to Sunday 1 February)."""
        name = unique("q")
        warehouse.ensure_table(name, {"n": "int", "note": "string", "ts": "timestamp"})
        times = ["2026-01-25 23:59:59", "2026-01-26 00:00:00", "2026-02-01 23:59:59", "2026-02-02 00:00:00"]
        frame = pd.DataFrame({"n": [1, 2, 3, 4], "note": ["a", "O'Brien", "100%", "d"]})
        warehouse.replace_rows(name, {"n": 0}, frame.assign(ts=pd.to_datetime(times, utc=True)))
        return name

    WEEK_PARAMS = {
        "week": "2026-W05",
        "week_start": datetime(2026, 1, 26, tzinfo=UTC),
        "week_end": datetime(2026, 2, 2, tzinfo=UTC),
    }

    def test_query_binds_the_week_timestamps(self, warehouse, timed_table):
        read = warehouse.query(
            f"SELECT n, :week AS week FROM {timed_table} "
            "WHERE :week_start <= ts AND ts < :week_end ORDER BY n",
            self.WEEK_PARAMS,
        )
        assert read["n"].tolist() == [2, 3] and read["week"].tolist() == ["2026-W05"] * 2

    def test_query_values_with_quotes_are_bound_not_formatted(self, warehouse, timed_table):
        params = {**self.WEEK_PARAMS, "week": "O'Brien"}
        read = warehouse.query(f"SELECT n FROM {timed_table} WHERE note = :week", params)
        assert read["n"].tolist() == [2]
        nasty = "x'); DROP TABLE t; -- \\ \" %s %(week)s :week_end"
        echoed = warehouse.query("SELECT :week AS v", {**params, "week": nasty})
        assert echoed["v"].tolist() == [nasty]
        assert len(warehouse.read_rows(timed_table)) == 4

    def test_query_leaves_literals_comments_casts_and_percent_alone(self, warehouse, timed_table):
        read = warehouse.query(
            f"SELECT n, 'it''s :week, 100%' AS lit, CAST(ts AS DATE)::VARCHAR AS day "
            f"FROM {timed_table} -- :not_a_placeholder\n"
            f"WHERE note LIKE '%\\%%' ESCAPE '\\' /* :nor_this */ AND n = :n;",
            {"n": 3},
        )
        assert read["lit"].tolist() == ["it's :week, 100%"] and read["day"].tolist() == ["2026-02-01"]

    @pytest.mark.parametrize(
        "sql",
        [
            "DELETE FROM {table}",
            "UPDATE {table} SET note = 'x'",
            "DROP TABLE {table}",
            "SELECT 1; DELETE FROM {table}",
            "WITH gone AS (DELETE FROM {table} RETURNING n) SELECT n FROM gone",
            "SELECT n INTO copy_of_it FROM {table}",
            "",
        ],
    )
    def test_query_refuses_anything_but_one_select(self, warehouse, timed_table, sql):
        with pytest.raises(ParamError):
            warehouse.query(sql.format(table=timed_table), self.WEEK_PARAMS)
        assert len(warehouse.read_rows(timed_table)) == 4

    def test_query_with_an_unknown_placeholder_lists_the_supported_ones(self, warehouse, timed_table):
        with pytest.raises(ParamError, match=":week, :week_end, :week_start") as raised:
            warehouse.query(f"SELECT n FROM {timed_table} WHERE ts < :week_stop", self.WEEK_PARAMS)
        assert ":week_stop" in str(raised.value)


# --------------------------------------------------------------------------------------------
# training


def training_inputs(store, prefix: str, weeks: int = 2, rows: int = 600) -> tuple[str, str]:
    """Write a small training and validation Parquet into ``store``; return their keys."""
    from demo.sample_data import generate_week, write_parquet_bytes

    data = pd.concat(
        [generate_week(f"2026-W0{i + 1}", rows, seed=i) for i in range(weeks)], ignore_index=True
    )
    train_key, validation_key = f"{prefix}/input/train.parquet", f"{prefix}/input/validation.parquet"
    store.put_bytes(train_key, write_parquet_bytes(data.iloc[: len(data) * 4 // 5]))
    store.put_bytes(validation_key, write_parquet_bytes(data.iloc[len(data) * 4 // 5 :]))
    return train_key, validation_key


def training_spec(
    name: str, train_key: str, validation_key: str, hardware: dict | None = None
) -> TrainingJobSpec:
    """A job spec with few boosting rounds (fast)."""
    return TrainingJobSpec(
        job_name=name,
        train_data_key=train_key,
        validation_data_key=validation_key,
        output_prefix=f"training/{name}/output",
        hyperparameters={"learning_rate": 0.1, "max_iter": 20, "max_leaf_nodes": 15},
        hardware=hardware or {},
        dataset_spec=DEMO_SPEC.to_json(),
    )


class TrainingContract:
    """TrainingJobs: runs core/ml/train.py; outputs under output_prefix; a re-run reuses."""

    @pytest.fixture(scope="class")
    @classmethod
    def finished(cls, training, training_store):
        name = f"contract-{uuid.uuid4().hex[:8]}"
        spec = training_spec(name, *training_inputs(training_store, f"training/{name}"))
        return spec, run_training(training, spec)

    def test_is_training_jobs(self, training):
        assert isinstance(training, TrainingJobs)

    def test_run_writes_the_outputs_and_returns_the_metrics(self, training_store, finished):
        spec, result = finished
        assert result.job_name == spec.job_name and not result.reused
        assert result.model_key == f"{spec.output_prefix}/model.joblib"
        for name in ("model.joblib", "metrics.json", "feature_names.json"):
            assert training_store.exists(f"{spec.output_prefix}/{name}")
        stored = json.loads(training_store.get_bytes(f"{spec.output_prefix}/metrics.json"))
        assert result.metrics["validation_roc_auc"] == stored["validation_roc_auc"]
        assert 0.5 < result.metrics["validation_roc_auc"] <= 1.0

    def test_the_model_scores(self, training_store, finished, tmp_path):
        import joblib
        from helpers import predict_proba

        from demo.sample_data import generate_week

        _, result = finished
        model = joblib.load(training_store.get_file(result.model_key, tmp_path / "model.joblib"))
        proba = predict_proba(model, generate_week("2026-W09", 50, seed=9))
        assert proba.shape == (50,) and ((proba >= 0) & (proba <= 1)).all()

    def test_a_second_run_reuses_the_finished_job(self, training, training_store, finished):
        spec, first = finished
        before = training_store.get_bytes(first.model_key)
        again = run_training(training, spec)
        assert again.reused and again.metrics == first.metrics
        assert training_store.get_bytes(again.model_key) == before

    def test_a_missing_input_raises_before_starting(self, training):
        spec = training_spec(
            f"contract-missing-{uuid.uuid4().hex[:6]}", "nowhere/train.parquet", "nowhere/v.parquet"
        )
        with pytest.raises(FileNotFoundError):
            run_training(training, spec)

    # -- the job model: what travels through the triggerer is enough to finish

    def test_a_handle_through_json_is_enough_to_collect(self, training, finished):
        spec, first = finished
        handle = training.submit(spec)  # the finished job is found, not started again
        assert handle.kind == "training"
        travelled = JobHandle.from_dict(json.loads(json.dumps(handle.to_dict())))
        assert travelled == handle
        assert training.status(travelled).state is JobState.SUCCEEDED
        again = training.collect(spec, travelled)
        assert (again.model_key, again.metrics) == (first.model_key, first.metrics)

    def test_a_failed_job_reports_the_reason_the_script_gave(self, training, training_store):
        """Training rows without the label: the script refuses them, and the reason reaches the task."""
        from demo.sample_data import generate_week, write_parquet_bytes

        name = f"contract-nolabel-{uuid.uuid4().hex[:6]}"
        rows = generate_week("2026-W03", 200, seed=3).drop(columns=[DEMO_SPEC.label])
        keys = (f"training/{name}/input/train.parquet", f"training/{name}/input/validation.parquet")
        for key in keys:
            training_store.put_bytes(key, write_parquet_bytes(rows))
        spec = training_spec(name, *keys)
        reason = f"no label column '{DEMO_SPEC.label}'"
        try:
            handle = training.submit(spec)  # a backend that trains in submit raises here
        except MLOpsError as exc:
            assert reason in str(exc)
        else:
            status = wait(training, handle, timeout_seconds=300)
            assert status.state is JobState.FAILED and reason in status.reason, status
            with pytest.raises(MLOpsError):
                training.collect(spec, handle)
        assert not training_store.exists(f"{spec.output_prefix}/_SUCCESS")


# --------------------------------------------------------------------------------------------
# registry


def store_model(store, key: str, seed: int) -> str:
    """Fit a tiny model and put its joblib file into ``store`` at ``key``."""
    import io

    import joblib
    from helpers import fit_model

    from demo.sample_data import generate_week

    buffer = io.BytesIO()
    joblib.dump(fit_model(generate_week("2026-W05", 600, seed=seed), {"max_iter": 10}), buffer)
    store.put_bytes(key, buffer.getvalue())
    return key


class _Models:
    @pytest.fixture(scope="class")
    @classmethod
    def artifacts(cls, registry_store) -> dict[int, str]:
        return {
            seed: store_model(registry_store, f"contract-models/seed={seed}/model.joblib", seed)
            for seed in (1, 2)
        }

    @staticmethod
    def register(registry, model: str, key: str, artifacts: dict[int, str], seed: int = 1) -> ModelVersion:
        return registry.register(
            model,
            artifacts[seed],
            registry_key=key,
            metrics=METRICS,
            params={"learning_rate": 0.1, "max_iter": 10},
            tags={"week": "2026-W05", "trained_by": "contract"},
        )


class RegistryContract(_Models):
    """ModelRegistry: idempotent register, aliases with history and compare-and-set, sha256 checks."""

    def test_is_a_model_registry(self, registry):
        assert isinstance(registry, ModelRegistry)

    def test_register_records_the_version(self, registry, registry_store, artifacts):
        import hashlib

        model = unique("reg")
        version = self.register(registry, model, "job-a", artifacts)
        assert version.model_name == model and version.version == "1"
        assert version.registry_key == "job-a"
        assert version.sha256 == hashlib.sha256(registry_store.get_bytes(artifacts[1])).hexdigest()
        assert version.metrics["validation_roc_auc"] == pytest.approx(0.81)
        assert version.tags["week"] == "2026-W05"
        assert registry.get_version(model, "1") == version

    def test_register_again_with_the_same_key_returns_the_same_version(self, registry, artifacts):
        model = unique("reg")
        first = self.register(registry, model, "job-a", artifacts)
        again = self.register(registry, model, "job-a", artifacts, seed=2)
        assert again.version == first.version and again.sha256 == first.sha256
        assert len(registry.list_versions(model)) == 1

    def test_list_versions_oldest_first(self, registry, artifacts):
        model = unique("reg")
        for key in ("a", "b", "c"):
            self.register(registry, model, key, artifacts)
        assert [v.version for v in registry.list_versions(model)] == ["1", "2", "3"]
        assert [v.registry_key for v in registry.list_versions(model)] == ["a", "b", "c"]
        assert registry.list_versions(unique("none")) == []

    def test_get_version_of_a_missing_version_raises_key_error(self, registry, artifacts):
        model = unique("reg")
        self.register(registry, model, "a", artifacts)
        with pytest.raises(KeyError):
            registry.get_version(model, "7")
        with pytest.raises(KeyError):
            registry.get_version(unique("none"), "1")

    def test_set_alias_and_its_history(self, registry, artifacts):
        model = unique("reg")
        for key in ("a", "b"):
            self.register(registry, model, key, artifacts)
        assert registry.get_alias(model, "production") is None
        first = registry.set_alias(model, "production", "1", "first model", "run-1")
        assert first.previous_version is None and first.version == "1"
        second = registry.set_alias(model, "production", "2", "gate passed", "run-2")
        assert second.previous_version == "1"
        back = registry.set_alias(model, "production", "1", "manual rollback", "alice")
        assert registry.get_alias(model, "production").version == "1"
        history = registry.alias_history(model, "production")
        assert [(h.version, h.previous_version, h.reason, h.actor) for h in history] == [
            ("1", None, "first model", "run-1"), ("2", "1", "gate passed", "run-2"),
            ("1", "2", "manual rollback", "alice"),
        ]  # fmt: skip
        assert history[-1] == back and all(h.changed_at for h in history)

    def test_set_alias_to_the_current_version_records_nothing(self, registry, artifacts):
        model = unique("reg")
        self.register(registry, model, "a", artifacts)
        assert registry.set_alias(model, "production", "1", "first", "run-1") is not None
        assert registry.set_alias(model, "production", "1", "again", "run-2") is None
        assert len(registry.alias_history(model, "production")) == 1

    def test_set_alias_to_a_missing_version_moves_nothing(self, registry, artifacts):
        model = unique("reg")
        self.register(registry, model, "a", artifacts)
        with pytest.raises(KeyError):
            registry.set_alias(model, "production", "5", "typo", "bob")
        assert registry.alias_history(model, "production") == []

    def test_expected_current_compare_and_set(self, registry, artifacts):
        model = unique("reg")
        for key in ("a", "b", "c"):
            self.register(registry, model, key, artifacts)
        assert registry.set_alias(model, "production", "1", "stale", "x", expected_current="3") is None
        assert registry.set_alias(model, "production", "1", "first", "run-1", expected_current=None)
        assert registry.set_alias(model, "production", "2", "stale", "old", expected_current=None) is None
        assert registry.set_alias(model, "production", "3", "stale", "old", expected_current="2") is None
        change = registry.set_alias(model, "production", "2", "gate passed", "run-2", expected_current="1")
        assert change.previous_version == "1"
        assert [h.version for h in registry.alias_history(model, "production")] == ["1", "2"]

    def test_concurrent_compare_and_set_lets_exactly_one_win(self, registry, artifacts):
        model = unique("reg")
        for key in ("a", "b", "c", "d", "e"):
            self.register(registry, model, key, artifacts)
        registry.set_alias(model, "production", "1", "first", "setup")
        barrier = threading.Barrier(4)
        results: dict[int, object] = {}

        def promote(index: int) -> None:
            barrier.wait(timeout=30)
            results[index] = registry.set_alias(
                model, "production", str(index + 2), "gate passed", f"run-{index}", expected_current="1"
            )

        threads = [threading.Thread(target=promote, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        winners = [r for r in results.values() if r is not None]
        assert len(results) == 4 and len(winners) == 1
        history = registry.alias_history(model, "production")
        assert [h.version for h in history] == ["1", winners[0].version]

    # -- the alias ledger (providers/ledger.py) under every registry ------------------------

    def test_aliases_live_in_the_shared_ledger(self, registry, registry_store, artifacts, native_alias):
        model = unique("reg")
        for key in ("a", "b"):
            self.register(registry, model, key, artifacts)
        registry.set_alias(model, "production", "1", "first", "run-1")
        registry.set_alias(model, "production", "2", "gate passed", "run-2")
        ledger = AliasLedger(registry_store)  # a fresh reader of the provider's storage
        assert ledger.history(model, "production") == registry.alias_history(model, "production")
        assert ledger.current(model, "production") == "2" == registry.get_alias(model, "production").version
        assert native_alias(model, "production") == "2"  # the registry's own marker, mirrored

    def test_a_stale_expected_current_writes_nothing(self, registry, registry_store, artifacts):
        model = unique("reg")
        for key in ("a", "b", "c"):
            self.register(registry, model, key, artifacts)
        registry.set_alias(model, "production", "1", "first", "run-1")
        ledger = AliasLedger(registry_store)
        before = ledger.read(model, "production")
        assert registry.set_alias(model, "production", "3", "stale", "old", expected_current="2") is None
        assert registry.set_alias(model, "production", "2", "stale", "old", expected_current=None) is None
        assert ledger.read(model, "production") == before  # the same object version: not rewritten

    def test_concurrent_moves_keep_one_linear_history(self, registry, artifacts, native_alias):
        model = unique("reg")
        for key in ("a", "b", "c", "d"):
            self.register(registry, model, key, artifacts)
        writers, steps = 5, 3
        barrier = threading.Barrier(writers)
        errors: list[BaseException] = []

        def move(index: int) -> None:
            try:
                barrier.wait(timeout=60)
                for step in range(steps):
                    version = str((index + step) % 4 + 1)
                    registry.set_alias(model, "production", version, f"step {step}", f"writer-{index}")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=move, args=(i,)) for i in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not errors, errors
        history = registry.alias_history(model, "production")
        assert history and history[0].previous_version is None
        for before, after in zip(history, history[1:], strict=False):
            assert after.previous_version == before.version != after.version  # linear
        assert registry.get_alias(model, "production").version == history[-1].version
        assert native_alias(model, "production") == history[-1].version  # the last mirror won

    def test_concurrent_compare_and_set_rounds_one_winner_each(self, registry, artifacts):
        model = unique("reg")
        writers, rounds = 4, 3
        for index in range(writers):
            self.register(registry, model, f"k{index}", artifacts)
        registry.set_alias(model, "production", "1", "first", "setup")
        barrier = threading.Barrier(writers)
        wins: list[list[int]] = [[] for _ in range(rounds)]
        errors: list[BaseException] = []

        def promote(index: int) -> None:
            try:
                for round_ in range(rounds):
                    barrier.wait(timeout=60)  # every writer sees the same production ...
                    current = registry.get_alias(model, "production").version
                    barrier.wait(timeout=60)  # ... before any of them moves it
                    target = str(index + 1) if str(index + 1) != current else str((index + 1) % writers + 1)
                    change = registry.set_alias(
                        model,
                        "production",
                        target,
                        f"round {round_}",
                        f"run-{index}",
                        expected_current=current,
                    )
                    if change is not None:
                        wins[round_].append(index)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                barrier.abort()

        threads = [threading.Thread(target=promote, args=(i,)) for i in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not errors, errors
        assert [len(w) for w in wins] == [1] * rounds, wins
        history = registry.alias_history(model, "production")
        assert len(history) == rounds + 1
        assert [h.actor for h in history[1:]] == [f"run-{w[0]}" for w in wins]
        for before, after in zip(history, history[1:], strict=False):
            assert after.previous_version == before.version

    def test_fetch_artifact_checks_the_sha(self, registry, registry_store, artifacts, tmp_path):
        import hashlib

        model = unique("reg")
        version = self.register(registry, model, "a", artifacts, seed=2)
        path = registry.fetch_artifact(version, tmp_path / "deploy")
        assert path == tmp_path / "deploy" / "model.joblib"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == version.sha256
        # the registry keeps its own copy: changing the training output afterwards changes nothing
        original = registry_store.get_bytes(artifacts[2])
        registry_store.put_bytes(artifacts[2], b"overwritten later")
        try:
            again = registry.fetch_artifact(version, tmp_path / "again")
            assert hashlib.sha256(again.read_bytes()).hexdigest() == version.sha256
        finally:
            registry_store.put_bytes(artifacts[2], original)

    def test_tampered_artifact_is_refused(self, registry, artifacts, tamper, tmp_path):
        model = unique("reg")
        version = self.register(registry, model, "a", artifacts)
        tamper(version)
        with pytest.raises(ArtifactIntegrityError) as info:
            registry.fetch_artifact(version, tmp_path / "out")
        assert version.sha256 in str(info.value)
        assert not (tmp_path / "out" / "model.joblib").exists()

    def test_version_without_a_recorded_sha_is_refused(self, registry, artifacts, tmp_path):
        version = self.register(registry, unique("reg"), "a", artifacts)
        unsigned = ModelVersion(**{**version.__dict__, "sha256": ""})
        with pytest.raises(ArtifactIntegrityError, match="nothing was recorded"):
            registry.fetch_artifact(unsigned, tmp_path / "out")


# --------------------------------------------------------------------------------------------
# endpoint and batch


def smoke_rows(n: int = 5) -> list[dict]:
    """Raw rows as a client sends them."""
    from demo.sample_data import generate_week
    from demo.spec import ID_COLUMN, RAW_FEATURES

    frame = generate_week("2026-W07", n, seed=7)
    return json.loads(frame[[ID_COLUMN, *RAW_FEATURES]].to_json(orient="records", date_format="iso"))


def expected_scores(registry, version: ModelVersion, rows: list[dict], folder: Path) -> list[float]:
    """What the version predicts for the rows, computed here from its verified artifact."""
    from helpers import predict_proba

    from core.ml.scoring.artifacts import load_model

    model = load_model(registry.fetch_artifact(version, folder), version.sha256)
    return predict_proba(model, pd.DataFrame(rows)).tolist()


class EndpointContract(_Models):
    """OnlineEndpoint: serves one version, moves in place, is idempotent, answers predictions."""

    @pytest.fixture(scope="class")
    @classmethod
    def versions(cls, registry, artifacts) -> list[ModelVersion]:
        model = unique("ep")
        return [
            cls.register(registry, model, key, artifacts, seed=seed) for key, seed in (("a", 1), ("b", 2))
        ]

    def test_is_an_online_endpoint(self, endpoint):
        assert isinstance(endpoint, OnlineEndpoint)

    def test_nothing_deployed(self, endpoint):
        assert endpoint.current(unique("ep")) is None

    def test_deploy_invoke_and_move_in_place(self, endpoint, registry, versions, tmp_path):
        rows = smoke_rows()
        first = deploy(endpoint, versions[0])
        assert first.version == "1" and endpoint.current(versions[0].model_name).version == "1"
        answer = endpoint.invoke(versions[0].model_name, rows)
        assert str(answer["model_version"]) == "1"
        assert answer["predictions"] == pytest.approx(
            expected_scores(registry, versions[0], rows, tmp_path / "1")
        )
        second = deploy(endpoint, versions[1])
        assert second.version == "2" and second.endpoint_name == first.endpoint_name
        answer = endpoint.invoke(versions[1].model_name, rows)
        assert str(answer["model_version"]) == "2"
        assert answer["predictions"] == pytest.approx(
            expected_scores(registry, versions[1], rows, tmp_path / "2")
        )
        # back to the first (what a rollback does)
        assert deploy(endpoint, versions[0]).version == "1"
        assert str(endpoint.invoke(versions[0].model_name, rows)["model_version"]) == "1"

    def test_deploy_of_the_served_version_is_idempotent(self, endpoint, versions):
        deploy(endpoint, versions[1])
        again = deploy(endpoint, versions[1])
        assert again.version == "2" and endpoint.current(versions[1].model_name).version == "2"

    def test_a_tampered_version_is_not_deployed(self, endpoint, registry, artifacts, tamper, versions):
        deploy(endpoint, versions[0])
        bad = self.register(registry, versions[0].model_name, unique("bad"), artifacts)
        tamper(bad)
        with pytest.raises(ArtifactIntegrityError):
            deploy(endpoint, bad)
        assert endpoint.current(versions[0].model_name).version == "1"  # still the old one

    def test_a_rollout_handle_through_json_is_enough_to_finish(self, endpoint, versions):
        deploy(endpoint, versions[0])
        handle = endpoint.start_rollout(versions[1])
        assert handle.kind == "rollout"
        travelled = JobHandle.from_dict(json.loads(json.dumps(handle.to_dict())))
        assert wait(endpoint, travelled, timeout_seconds=300).state is JobState.SUCCEEDED
        assert endpoint.finish_rollout(versions[1], travelled).version == "2"
        assert endpoint.current(versions[1].model_name).version == "2"


class BatchContract(_Models):
    """BatchScorer: every input row scored exactly once, with the version's own predictions."""

    @pytest.fixture(scope="class")
    @classmethod
    def scored_input(cls, registry_store) -> tuple[str, pd.DataFrame]:
        from demo.sample_data import generate_week, write_parquet_bytes

        frame = generate_week("2026-W08", 700, seed=8)
        key = f"validated/contract-{uuid.uuid4().hex[:6]}/data.parquet"
        registry_store.put_bytes(key, write_parquet_bytes(frame))
        return key, frame

    def test_is_a_batch_scorer(self, batch):
        assert isinstance(batch, BatchScorer)

    def test_scores_every_row_once_with_the_versions_predictions(
        self, batch, registry, artifacts, scored_input, tmp_path
    ):
        from demo.spec import ID_COLUMN, RAW_FEATURES

        key, frame = scored_input
        version = self.register(registry, unique("batch"), "a", artifacts)
        out = pd.concat(list(score(batch, version, key)), ignore_index=True)
        assert list(out.columns) == ["customer_id", "churn_probability", "churn_class"]
        assert set(out["churn_class"]) <= {"0", "1"}
        assert sorted(out["customer_id"].astype(str)) == sorted(frame[ID_COLUMN].astype(str))
        rows = frame[[ID_COLUMN, *RAW_FEATURES]]
        expected = dict(
            zip(frame[ID_COLUMN].astype(str), expected_scores(registry, version, rows, tmp_path), strict=True)
        )
        got = dict(zip(out["customer_id"].astype(str), out["churn_probability"], strict=True))
        assert got == pytest.approx(expected)

    def test_a_job_handle_through_json_is_enough_for_the_results(
        self, batch, registry, artifacts, scored_input
    ):
        key, frame = scored_input
        version = self.register(registry, unique("batch"), "a", artifacts)
        handle = batch.submit(version, key)
        assert handle.kind == "batch"
        travelled = JobHandle.from_dict(json.loads(json.dumps(handle.to_dict())))
        assert wait(batch, travelled, timeout_seconds=300).state is JobState.SUCCEEDED
        assert sum(len(chunk) for chunk in batch.results(version, travelled)) == len(frame)
        # the same version and input find the same job (a re-run reuses it)
        assert batch.submit(version, key).name == handle.name

    def test_a_tampered_artifact_is_refused_before_scoring(
        self, batch, registry, artifacts, tamper, scored_input
    ):
        version = self.register(registry, unique("batch"), "a", artifacts)
        tamper(version)
        with pytest.raises(ArtifactIntegrityError):
            list(score(batch, version, scored_input[0]))

    def test_a_missing_input_raises(self, batch, registry, artifacts):
        version = self.register(registry, unique("batch"), "a", artifacts)
        with pytest.raises(FileNotFoundError):
            list(score(batch, version, "validated/nowhere/data.parquet"))


# --------------------------------------------------------------------------------------------
# serving report (operations)

#: the traffic every backend's ``serving_traffic`` fixture makes its platform record: answered
#: predictions, requests the caller got wrong, requests the endpoint failed
TRAFFIC = {"ok": 20, "4xx": 3, "5xx": 2}


class ServingReportContract:
    """OnlineEndpoint.serving_report: a window's requests, 4xx and 5xx apart, latency and cost.

    A backend supplies ``serving_traffic``: a class fixture that makes its platform record
    ``TRAFFIC`` for a fresh model the way it really would (local: requests to a running server,
    which is then stopped; AWS: the datapoints SageMaker puts into CloudWatch) and returns
    ``(endpoint, model_name, start, end)``, the window holding that traffic.

    Every backend subclasses it: local, AWS (moto's CloudWatch), GCP (the Cloud Monitoring
    stand-in, tests/monitoring_standin.py) and Azure (the Azure Monitor stand-in,
    tests/azure_monitor_standin.py).
    """

    def test_is_an_online_endpoint(self, serving_traffic):
        assert isinstance(serving_traffic[0], OnlineEndpoint)

    def test_counts_requests_and_errors_apart(self, serving_traffic):
        endpoint, model, start, end = serving_traffic
        report = endpoint.serving_report(model, start, end)
        total = sum(TRAFFIC.values())
        assert (report.model_name, report.start, report.end) == (model, start, end)
        assert (report.requests, report.errors_4xx, report.errors_5xx) == (
            total,
            TRAFFIC["4xx"],
            TRAFFIC["5xx"],
        )
        assert report.error_rate_4xx == pytest.approx(TRAFFIC["4xx"] / total)
        assert report.error_rate_5xx == pytest.approx(TRAFFIC["5xx"] / total)

    def test_latency_quantiles_are_ordered_and_plausible(self, serving_traffic):
        endpoint, model, start, end = serving_traffic
        report = endpoint.serving_report(model, start, end)
        assert 0 < report.latency_p50_ms <= report.latency_p95_ms <= report.latency_p99_ms < 60_000

    def test_estimates_the_cost_and_says_how(self, serving_traffic):
        endpoint, model, start, end = serving_traffic
        report = endpoint.serving_report(model, start, end)
        assert report.cost_usd is not None and report.cost_usd >= 0 and report.instance_hours >= 0
        assert report.cost_basis and report.source

    def test_a_window_without_the_traffic_reports_none(self, serving_traffic):
        from datetime import timedelta

        endpoint, model, _, end = serving_traffic
        report = endpoint.serving_report(model, end, end + timedelta(days=7))
        assert (report.requests, report.errors_4xx, report.errors_5xx) == (0, 0, 0)
        assert report.latency_p99_ms is None and report.error_rate_5xx == 0.0

    def test_a_model_never_served_reports_none(self, serving_traffic):
        endpoint, _, start, end = serving_traffic
        report = endpoint.serving_report(unique("never"), start, end)
        assert report.requests == 0 and report.latency_p50_ms is None
