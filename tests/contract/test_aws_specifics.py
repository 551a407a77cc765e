"""What the AWS provider sends to SageMaker and Redshift, beyond the shared contract.

moto records SageMaker requests without running them, so these tests assert on the exact
requests (image, instances, spot, channels, hyperparameters, names) and on the retry and
deferral paths; the Data API warehouse is checked on the SQL it sends (moto never finishes a
Data API statement and lacks BatchExecuteStatement).
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pandas as pd
import pytest
from emulators import REGION, ROLE_ARN

from contract.suites import training_inputs, training_spec
from contract.test_aws import aws_settings
from include.errors import ConfigError
from providers.aws.config import AwsSettings, TrainingProfile, sklearn_image
from providers.aws.storage import S3ObjectStore
from providers.aws.training import SageMakerTrainingJobs, TrainingFailedError
from providers.aws.triggers import SageMakerJobTrigger
from providers.aws.warehouse import RedshiftDataApiWarehouse, sql_literal


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
    assert (first.job_name, first.reused) == (spec.job_name, False)
    again = training.submit(spec)  # while it runs: found, not started twice
    assert again.job_name == spec.job_name and again.reused
    training.wait(spec.job_name, timeout_seconds=300)
    result = training.collect(spec, again)
    assert result.metrics["validation_roc_auc"] > 0.5
    assert training.submit(spec).reused  # after collection: the output marker answers
    names = [r["training_job_name"] for r in stand_in.requests_of("CreateTrainingJob")]
    assert names.count(spec.job_name) == 1


def test_a_failed_job_raises_with_its_reason_and_the_retry_is_a_new_attempt(jobs):
    training, storage, stand_in = jobs
    spec = _spec(storage)
    stand_in.fail_training = spec.job_name  # its attempts fail too (fast: bad input to train.py)
    try:
        submission = training.submit(spec)
        assert training.wait(submission.job_name, timeout_seconds=300) == "Failed"
        with pytest.raises(TrainingFailedError, match="AlgorithmError"):
            training.collect(spec, submission)
        retry = training.submit(spec)
        assert retry.job_name == f"{spec.job_name}-a2" and not retry.reused
        assert training.wait(retry.job_name, timeout_seconds=300) == "Failed"
    finally:
        stand_in.fail_training = None


def test_the_trigger_reports_the_end_of_the_job_and_serializes(jobs):
    training, storage, stand_in = jobs
    spec = _spec(storage)
    stand_in.fail_training = spec.job_name  # a job that ends quickly; the event carries the reason
    try:
        submission = training.submit(spec)
    finally:
        stand_in.fail_training = None
    trigger = training.trigger(submission)
    path, kwargs = trigger.serialize()
    assert path == "providers.aws.triggers.SageMakerJobTrigger"
    rebuilt = SageMakerJobTrigger(**kwargs)

    async def first_event():
        async for event in rebuilt.run():
            return event.payload

    payload = asyncio.run(asyncio.wait_for(first_event(), timeout=300))
    assert payload["job_name"] == spec.job_name and payload["status"] == "Failed"
    assert "AlgorithmError" in payload["failure_reason"]


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
