"""What the AWS provider sends to SageMaker and Redshift, beyond the shared contract.

moto records SageMaker requests without running them, so these tests assert on the exact
requests (image, instances, spot, channels, hyperparameters, names) and on the retry and
deferral paths; the Data API warehouse is checked on the SQL it sends (moto never finishes a
Data API statement and lacks BatchExecuteStatement).
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import UTC, datetime

import pandas as pd
import pytest
from emulators import REGION, ROLE_ARN, aws_sections, wait_for
from helpers import write_config

from contract.suites import training_inputs, training_spec
from contract.test_aws import BUCKET, aws_settings
from core.config import load_settings
from core.errors import ConfigError, ParamError
from providers.aws.config import AwsSettings, TrainingProfile, sklearn_image
from providers.aws.storage import S3ObjectStore
from providers.aws.training import SageMakerTrainingJobs, TrainingFailedError
from providers.aws.warehouse import RedshiftDataApiWarehouse, SqlWarehouse, sql_literal
from providers.base import JobState
from providers.jobs import ProviderJobTrigger, wait


@pytest.fixture
def jobs(aws_env):
    aws = aws_settings(f"specifics-{uuid.uuid4().hex[:6]}")
    storage = S3ObjectStore(aws.conn_id, aws.bucket, aws.prefix)
    return SageMakerTrainingJobs(aws, storage), storage, aws_env[1]


def _spec(storage, name=None):
    name = name or f"churn-2026-w05-{uuid.uuid4().hex[:10]}"
    return training_spec(name, *training_inputs(storage, f"training/{name}", weeks=1, rows=400))


def test_the_training_request_for_the_default_profile(jobs):
    training, storage, stand_in = jobs
    spec = _spec(storage)
    request = training.request(spec, spec.job_name)
    assert request["AlgorithmSpecification"] == {
        "TrainingImage": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3",
        "TrainingInputMode": "File",
    }
    assert request["ResourceConfig"] == {
        "InstanceType": "ml.m5.xlarge",
        "InstanceCount": 1,
        "VolumeSizeInGB": 30,
    }
    assert request["EnableManagedSpotTraining"] is False and "CheckpointConfig" not in request
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3 * 3600}
    assert request["RoleArn"] == ROLE_ARN
    assert [c["ContentType"] for c in request["InputDataConfig"]] == ["application/x-parquet"] * 2
    hps = request["HyperParameters"]
    assert {k: json.loads(v) for k, v in hps.items() if not k.startswith("sagemaker_")} == dict(
        spec.hyperparameters
    )
    # the code archive is content-addressed: the same scripts give the same key
    assert request["HyperParameters"]["sagemaker_submit_directory"] == training.request(spec, "x")[
        "HyperParameters"]["sagemaker_submit_directory"]  # fmt: skip


def test_a_rerun_finds_the_job_instead_of_starting_another(jobs):
    training, storage, stand_in = jobs
    spec = _spec(storage)
    first = training.submit(spec)
    assert (first.name, first.details["reused"]) == (spec.job_name, False)
    again = training.submit(spec)  # while it runs: found, not started twice
    assert again.name == spec.job_name and again.details["reused"]
    assert wait(training, again, timeout_seconds=300).state is JobState.SUCCEEDED
    result = training.collect(spec, again)
    assert result.metrics["validation_roc_auc"] > 0.5
    assert training.submit(spec).details["reused"]  # after collection: the output marker answers
    names = [r["training_job_name"] for r in stand_in.requests_of("CreateTrainingJob")]
    assert names.count(spec.job_name) == 1


def test_a_failed_job_raises_with_its_reason_and_the_retry_is_a_new_attempt(jobs):
    training, storage, stand_in = jobs
    spec = _spec(storage)
    stand_in.fail_training = spec.job_name  # its attempts fail too (fast: bad input to train.py)
    try:
        handle = training.submit(spec)
        status = wait(training, handle, timeout_seconds=300)
        assert status.state is JobState.FAILED and "AlgorithmError" in status.reason
        with pytest.raises(TrainingFailedError, match="AlgorithmError"):
            training.collect(spec, handle)
        retry = training.submit(spec)
        assert retry.name == f"{spec.job_name}-a2" and not retry.details["reused"]
        assert wait(training, retry, timeout_seconds=300).state is JobState.FAILED
    finally:
        stand_in.fail_training = None


def test_the_trigger_reports_the_end_of_the_job_and_serializes(jobs, tmp_path):
    """The one trigger of every provider, rebuilt from its serialized form as the triggerer does."""
    training, storage, stand_in = jobs
    spec = _spec(storage)
    stand_in.fail_training = spec.job_name  # a job that ends quickly; the event carries the reason
    try:
        handle = training.submit(spec)
    finally:
        stand_in.fail_training = None
    settings = load_settings(write_config(tmp_path, **aws_sections(BUCKET)))
    path, kwargs = ProviderJobTrigger.for_job(settings, handle).serialize()
    assert path == "providers.jobs.ProviderJobTrigger"
    rebuilt = ProviderJobTrigger(**json.loads(json.dumps(kwargs)))  # what the triggerer stores

    async def first_event():
        async for event in rebuilt.run():
            return event.payload

    payload = asyncio.run(asyncio.wait_for(first_event(), timeout=300))
    assert payload["handle"]["name"] == spec.job_name and payload["state"] == "failed"
    assert "AlgorithmError" in payload["reason"]


def test_a_missing_input_is_refused_before_submitting(jobs):
    training, storage, stand_in = jobs
    before = len(stand_in.requests_of("CreateTrainingJob"))
    spec = training_spec("churn-missing", "nowhere/train.parquet", "nowhere/validation.parquet")
    with pytest.raises(FileNotFoundError, match="validate_data"):
        training.submit(spec)
    assert len(stand_in.requests_of("CreateTrainingJob")) == before


# --------------------------------------------------------------------------------------------
# settings


def test_spot_needs_a_max_wait_at_least_the_max_runtime():
    with pytest.raises(ConfigError, match="max_wait_seconds"):
        AwsSettings(bucket="b-1", training=TrainingProfile(use_spot=True, max_wait_seconds=60)).check()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"bucket": "Not_A_Bucket"}, "bucket"),
        ({"warehouse": "oracle"}, "warehouse"),
        ({"warehouse": "redshift_data_api"}, "redshift_cluster_identifier"),
        ({"training": TrainingProfile(instance_type="m5.large")}, "instance_type"),
    ],
)
def test_bad_settings_say_what_to_fix(changes, message):
    with pytest.raises(ConfigError, match=message):
        AwsSettings(**{"bucket": "my-bucket", **changes}).check()


def test_a_missing_role_says_how_to_set_it():
    with pytest.raises(ConfigError, match="role_arn"):
        AwsSettings(bucket="my-bucket").require_role()


def test_images_come_from_the_sagemaker_table():
    assert sklearn_image("1.9-0", "eu-west-1", "inference").endswith(
        ".dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
    )
    with pytest.raises(ConfigError, match="training_image"):
        sklearn_image("0.1", REGION, "training")


# --------------------------------------------------------------------------------------------
# Redshift Data API (recorded by moto only)


def test_sql_literals_cannot_end_the_string():
    assert sql_literal("it's") == "'it''s'"
    assert sql_literal("a\\'; drop table x; --") == "'a\\\\''; drop table x; --'"
    assert sql_literal(None) == "NULL" and sql_literal(float("nan")) == "NULL"
    assert sql_literal(True) == "TRUE" and sql_literal(3) == "3" and sql_literal(0.5) == "0.5"


def test_a_partition_replacement_is_one_batch_delete_then_insert():
    aws = AwsSettings(bucket="my-bucket", warehouse="redshift_data_api", redshift_workgroup_name="wg")
    warehouse = RedshiftDataApiWarehouse(aws)
    rows = pd.DataFrame({"week": ["2026-W05"] * 3, "n": [1, 2, 3], "note": ["a", "b'c", None]})
    statements, count = warehouse.replace_statements(
        "predictions", {"week": "2026-W05"}, [rows, rows.head(1)]
    )
    assert count == 4
    assert statements == [
        "DELETE FROM public.predictions WHERE week = '2026-W05'",
        "INSERT INTO public.predictions (week, n, note) VALUES ('2026-W05', 1, 'a'), "
        "('2026-W05', 2, 'b''c'), ('2026-W05', 3, NULL)",
        "INSERT INTO public.predictions (week, n, note) VALUES ('2026-W05', 1, 'a')",
    ]


def test_data_api_statements_reach_the_service_through_the_hook(aws_env):
    server = aws_env[0]
    aws = AwsSettings(
        conn_id="aws_test", bucket="mlops-test", region=REGION, warehouse="redshift_data_api",
        redshift_cluster_identifier="analytics", redshift_db_user="mlops", redshift_database="dev",
    )  # fmt: skip
    warehouse = RedshiftDataApiWarehouse(aws)
    statement_id = warehouse.submit(["DELETE FROM public.predictions WHERE week = '2026-W05'"])
    described = server.client("redshift-data").describe_statement(Id=statement_id)
    assert described["QueryString"] == "DELETE FROM public.predictions WHERE week = '2026-W05'"
    assert described["ClusterIdentifier"] == "analytics" and described["Database"] == "dev"


# --------------------------------------------------------------------------------------------
# warehouse queries beyond PostgreSQL: the Data API request, redshift_connector's paramstyle

WEEK_PARAMS = {
    "week": "2026-W05",
    "week_start": datetime(2026, 1, 26, tzinfo=UTC),
    "week_end": datetime(2026, 2, 2, tzinfo=UTC),
}


def _moto_statement(query_string: str):
    """The statement moto's Redshift Data API backend (in this process) holds for a query."""
    from moto.redshiftdata.models import redshiftdata_backends

    for regions in redshiftdata_backends.values():
        for backend in regions.values():
            for statement in backend.statements.values():
                if statement.query_string == query_string:
                    return statement
    return None


def test_warehouse_query_over_the_data_api_sends_the_statement_and_its_parameters(aws_env):
    server = aws_env[0]
    aws = AwsSettings(
        conn_id="aws_test", bucket="mlops-test", region=REGION, warehouse="redshift_data_api",
        redshift_cluster_identifier="analytics", redshift_db_user="mlops", redshift_database="dev",
    )  # fmt: skip
    warehouse = RedshiftDataApiWarehouse(aws, timeout_seconds=60)
    marker = uuid.uuid4().hex
    sql = (
        f"SELECT * FROM sales WHERE week = :week AND :week_start <= ts AND ts < :week_end "
        f"AND note <> 'O''Brien :week' AND ts::date IS NOT NULL -- {marker}"
    )
    outcome: dict = {}

    def run_query() -> None:
        try:
            outcome["frame"] = warehouse.query(sql, {**WEEK_PARAMS, "unused": "not sent"})
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome["error"] = exc

    worker = threading.Thread(target=run_query, daemon=True)
    worker.start()
    wait_for(lambda: _moto_statement(sql) is not None or "error" in outcome)
    assert "error" not in outcome, outcome
    statement = _moto_statement(sql)
    described = server.client("redshift-data").describe_statement(Id=statement.id)
    assert described["QueryString"] == sql  # the placeholders as the Data API spells them
    assert described["QueryParameters"] == [
        {"name": "week", "value": "2026-W05"},
        {"name": "week_start", "value": "2026-01-26 00:00:00+00:00"},
        {"name": "week_end", "value": "2026-02-02 00:00:00+00:00"},
    ]
    assert described["ClusterIdentifier"] == "analytics" and described["DbUser"] == "mlops"
    # moto never finishes a statement: finish it, and the query reads moto's canned result
    statement.has_result_set = True
    statement.status = "FINISHED"
    worker.join(timeout=30)
    assert not worker.is_alive() and "error" not in outcome, outcome
    assert list(outcome["frame"].columns) == ["Number", "Street", "City"]
    assert outcome["frame"]["Number"].tolist() == [10, 50, 100]


def test_warehouse_query_over_the_data_api_refuses_a_write_before_sending_it():
    aws = AwsSettings(bucket="my-bucket", warehouse="redshift_data_api", redshift_workgroup_name="wg")
    warehouse = RedshiftDataApiWarehouse(aws)
    with pytest.raises(ParamError, match="SELECT"):
        warehouse.query_request("DELETE FROM sales WHERE week = :week", WEEK_PARAMS)
    with pytest.raises(ParamError, match=":week, :week_end, :week_start"):
        warehouse.query_request("SELECT * FROM sales WHERE week = :wek", WEEK_PARAMS)


class _RecordingCursor:
    """A DB-API cursor that records what it is asked to execute."""

    def __init__(self) -> None:
        self.paramstyle = "format"
        self.executed: list[tuple[str, object, str]] = []
        self.description = [("n",), ("note",)]

    def execute(self, sql, params=None) -> None:
        self.executed.append((sql, params, self.paramstyle))

    def fetchall(self):
        return [(1, "O'Brien")]

    def close(self) -> None:
        pass


class _RecordingConnection:
    def __init__(self) -> None:
        self.cursor_ = _RecordingCursor()
        self.autocommit = True

    def cursor(self):
        return self.cursor_

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_warehouse_query_over_redshift_sql_uses_the_drivers_named_style(monkeypatch):
    from redshift_connector.core import convert_paramstyle

    connection = _RecordingConnection()
    warehouse = SqlWarehouse("redshift_default", "redshift_sql")
    monkeypatch.setattr(warehouse, "hook", lambda: type("Hook", (), {"get_conn": lambda self: connection})())
    sql = "SELECT n, note FROM sales WHERE note LIKE '100%' AND ts >= :week_start AND ts < :week_end"
    frame = warehouse.query(sql, WEEK_PARAMS)
    assert frame.to_dict("records") == [{"n": 1, "note": "O'Brien"}]
    (setting, _, _), (sent, values, style) = connection.cursor_.executed
    assert setting == "SET TIME ZONE 'UTC'"
    assert style == "named" and sent == sql and values == {
        "week_start": WEEK_PARAMS["week_start"], "week_end": WEEK_PARAMS["week_end"],
    }  # fmt: skip
    # what redshift_connector itself makes of it: positional $n, the '%' inside quotes untouched
    statement, make_args = convert_paramstyle("named", sent)
    assert statement == "SELECT n, note FROM sales WHERE note LIKE '100%' AND ts >= $1 AND ts < $2"
    assert list(make_args(values)) == [WEEK_PARAMS["week_start"], WEEK_PARAMS["week_end"]]
