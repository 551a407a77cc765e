"""The whole loop on the AWS provider, against moto (+ the SageMaker stand-in) and PostgreSQL.

``retrain_pipeline`` runs with ``provider = "aws"`` in astro.toml - the only change - for three
weeks (covariate drift in the last), then the triggered drift retrain, a re-run of a week and
a rollback, each with ``dag.test()``. The tests assert on what the runs wrote to S3, the Model
Registry, the endpoint and the PostgreSQL tables, and on the exact SageMaker requests.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import logging
import os
import sys
import tarfile
import tempfile
import uuid
from pathlib import Path

import pytest
from emulators import REGION, ROLE_ARN, aws_sections
from helpers import clear_runs, record_deferred_waits, run_dag, run_state, task_states, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]
WEEKS = ["2026-W01", "2026-W02"]
DRIFT_WEEK = "2026-W02"
ROWS = 800
BUCKET = "mlops-test"
TRAIN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path, aws_env):
    """Run the pipeline for three weeks on the AWS provider; spy on the deferred waits."""
    server, stand_in, _ = aws_env
    # the connection the tasks resolve carries a secret of this run as its password (moto takes
    # any key); test_no_secret_anywhere looks for it in everything the runs wrote
    secret = f"mlops-secret-{uuid.uuid4().hex}"
    conn_var = "AIRFLOW_CONN_AWS_TEST"
    saved_conn = os.environ[conn_var]
    os.environ[conn_var] = json.dumps({**json.loads(saved_conn), "password": secret})
    folder = tmp_path_factory.mktemp("aws-loop")
    sections = aws_sections(BUCKET)
    sections["aws"]["prefix"] = f"e2e-{folder.name}"
    config = write_config(
        folder,
        data={"rows_per_week": ROWS, "covariate_drift_from_week": DRIFT_WEEK},
        model={"params": {"max_iter": 20}},
        # all of each week's 640 training rows: early stopping's 10% split made week 2's model
        # lose to week 1's, and the rollback below needs a production history of two versions
        training={"early_stopping": False},
        hardware={
            "training": {
                "aws": {
                    "instance_type": "ml.m5.large",
                    "instance_count": 1,
                    "use_spot": True,
                    "max_wait_seconds": 7200,
                    "max_runtime_seconds": 3600,
                    "checkpoint_s3_uri": f"s3://{BUCKET}/checkpoints",
                }
            }
        },
        **sections,
    )
    os.environ["MLOPS_CONFIG"] = str(config)
    clear_runs("retrain_pipeline", "rollback_model")
    patch = pytest.MonkeyPatch()
    deferred = record_deferred_waits(patch)
    start = len(stand_in.requests)
    checked = dict(server.rules.checked)
    try:
        from core.config import load_settings
        from lifecycle.context import StageContext

        output: list[str] = []
        runs = {week: _run_dag(output, "retrain_pipeline", week) for week in WEEKS}
        ctx = StageContext(settings=load_settings(config), week=WEEKS[-1], actor="test")
        yield {"runs": runs, "ctx": ctx, "stand_in": stand_in, "start": start, "deferred": deferred,
               "server": server, "secret": secret, "output": output, "checked": checked}  # fmt: skip
    finally:
        patch.undo()
        os.environ.pop("MLOPS_CONFIG", None)
        os.environ[conn_var] = saved_conn


def _run_dag(output: list[str], *args, **kwargs):
    """run_dag, with everything the run wrote added to ``output`` (see _captured)."""
    with _captured(output):
        return run_dag(*args, **kwargs)


class _Tee(io.TextIOBase):
    def __init__(self, stream, sink: list[str]) -> None:
        self.stream, self.sink = stream, sink

    def write(self, text: str) -> int:
        self.sink.append(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


@contextlib.contextmanager
def _captured(output: list[str]):
    """Everything a dag.test() run writes, still shown as usual.

    dag.test() runs the tasks in this process, so their task logs are log records and writes to
    this process's streams: every log record (formatted with its traceback), sys.stdout and
    sys.stderr, and file descriptors 1 and 2 (what child processes such as the SageMaker
    stand-in's container scripts write).
    """
    handler = logging.Handler(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    handler.emit = lambda record: output.append(handler.format(record) + "\n")  # type: ignore[method-assign]
    logging.getLogger().addHandler(handler)
    saved_streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Tee(sys.stdout, output), _Tee(sys.stderr, output)
    with tempfile.TemporaryFile() as file:
        sys.__stdout__.flush()
        sys.__stderr__.flush()
        saved_fds = {fd: os.dup(fd) for fd in (1, 2)}
        for fd in saved_fds:
            os.dup2(file.fileno(), fd)
        try:
            yield
        finally:
            sys.__stdout__.flush()
            sys.__stderr__.flush()
            for fd, saved in saved_fds.items():
                os.dup2(saved, fd)
                os.close(saved)
            sys.stdout, sys.stderr = saved_streams
            logging.getLogger().removeHandler(handler)
            file.seek(0)
            written = file.read()
            output.append(written.decode(errors="replace"))
            os.write(2, written)


def _requests(loop, action: str) -> list[dict]:
    return [r for name, r in loop["stand_in"].requests[loop["start"] :] if name == action]


def test_every_week_succeeds_on_aws(loop) -> None:
    assert loop["ctx"].provider.name == "aws"
    for week, run in loop["runs"].items():
        print(week, {ti.task_id: round(ti.duration or 0, 1) for ti in run.get_task_instances()})
        assert run_state(run) == "success", (week, task_states(run))


def test_training_jobs_were_submitted_as_configured_and_waited_on_by_the_trigger(loop) -> None:
    jobs = _requests(loop, "CreateTrainingJob")
    assert len(jobs) == len(WEEKS)
    names = [job["training_job_name"] for job in jobs]
    # every wait deferred: no worker slot held while SageMaker trains
    assert [name for kind, name in loop["deferred"] if kind == "training"] == names
    storage = loop["ctx"].provider.storage
    for week, job in zip(WEEKS, jobs, strict=True):
        assert job["training_job_name"].startswith(f"churn-{week.lower()}-")
        assert job["algorithm_specification"] == {"TrainingImage": TRAIN_IMAGE, "TrainingInputMode": "File"}
        assert job["role_arn"] == ROLE_ARN
        assert job["resource_config"] == {
            "InstanceType": "ml.m5.large",
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        }
        assert job["enable_managed_spot_training"] is True
        assert job["stopping_condition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
        assert job["checkpoint_config"]["S3Uri"] == f"s3://{BUCKET}/checkpoints/{job['training_job_name']}"
        hps = job["hyper_parameters"]
        assert json.loads(hps["sagemaker_program"]) == "train.py"
        assert json.loads(hps["sagemaker_submit_directory"]).startswith(storage.uri("_sagemaker/code"))
        assert json.loads(hps["sagemaker_region"]) == REGION
        assert {k: json.loads(v) for k, v in hps.items() if not k.startswith("sagemaker_")} == {
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "learning_rate": 0.1, "max_iter": 20, "max_leaf_nodes": 31, "early_stopping": False,
        }  # fmt: skip
        prefix = f"training/{job['training_job_name']}"
        assert [
            (c["ChannelName"], c["DataSource"]["S3DataSource"]["S3Uri"]) for c in job["input_data_config"]
        ] == [
            ("train", storage.uri(f"{prefix}/input/train.parquet")),
            ("validation", storage.uri(f"{prefix}/input/validation.parquet")),
        ]
        assert job["output_data_config"]["S3OutputPath"] == storage.uri(f"{prefix}/output/sagemaker")
        assert storage.exists(f"{prefix}/output/model.joblib")  # brought back from model.tar.gz


def test_every_request_of_the_provider_was_held_to_the_service_models(loop) -> None:
    """Every request the runs sent passed the services' own models (tests/service_rules.py; a
    refused one fails the test that sent it): the check saw each kind of call the loop makes."""
    rules = loop["server"].rules
    sent = {op: n - loop["checked"].get(op, 0) for op, n in rules.checked.items()}
    for operation in (
        "sagemaker.CreateTrainingJob", "sagemaker.DescribeTrainingJob", "sagemaker.CreateModelPackage",
        "sagemaker.CreateModel", "sagemaker.CreateEndpointConfig", "sagemaker.CreateEndpoint",
        "sagemaker.CreateTransformJob", "s3.PutObject", "s3.GetObject", "s3.ListObjectsV2",
    ):  # fmt: skip
        assert sent.get(operation, 0) > 0, (operation, sorted(sent))
    assert rules.refused == []
    assert rules.unmatched == []  # every request was one of its service's operations, so checked


def test_registry_approval_is_the_production_gate(loop) -> None:
    ctx = loop["ctx"]
    registry = ctx.provider.registry
    versions = registry.list_versions(ctx.model_name)
    assert len(versions) == len(WEEKS)
    production = registry.get_alias(ctx.model_name, "production")
    approved = [v.version for v in versions if v.tags["approval_status"] == "Approved"]
    assert approved == [production.version]
    group = loop["server"].client("sagemaker").list_model_packages(ModelPackageGroupName="churn")
    assert len(group["ModelPackageSummaryList"]) == len(WEEKS)
    assert (
        production.tags["code_version"].startswith("sha256:")
        and "ml.m5.large" in production.tags["hardware_profile"]
    )


def test_the_endpoint_serves_production_from_the_inference_profile(loop) -> None:
    ctx = loop["ctx"]
    production = ctx.provider.registry.get_alias(ctx.model_name, "production")
    assert ctx.provider.endpoint.current(ctx.model_name).version == production.version
    configs = _requests(loop, "CreateEndpointConfig")
    assert configs and all(
        c["production_variants"][0]["InstanceType"] == "ml.m5.large" for c in configs
    )  # [hardware.inference.aws] of astro.toml
    models = _requests(loop, "CreateModel")
    environment = models[0]["primary_container"]["Environment"]
    assert environment["SAGEMAKER_PROGRAM"] == "sagemaker_inference.py" and environment["MODEL_SHA256"]
    assert len(_requests(loop, "CreateEndpoint")) == 1  # by the first deploy, then updated in place
    moves = len(ctx.provider.registry.alias_history(ctx.model_name, "production"))
    assert len(_requests(loop, "UpdateEndpoint")) == moves - 1
    # each rollout (the endpoint Creating / Updating) was waited on in the triggerer
    rollouts = [name for kind, name in loop["deferred"] if kind == "rollout"]
    assert rollouts == [ctx.provider.endpoint.endpoint_name(ctx.model_name)] * moves


def test_batch_transform_predictions_in_the_warehouse(loop) -> None:
    ctx = loop["ctx"]
    warehouse = ctx.provider.warehouse
    transforms = _requests(loop, "CreateTransformJob")
    assert len(transforms) == len(WEEKS)
    # each transform job was waited on in the triggerer, not in a worker slot
    assert [name for kind, name in loop["deferred"] if kind == "batch"] == [
        t["transform_job_name"] for t in transforms
    ]
    for week in WEEKS:
        predictions = warehouse.read_rows("predictions", {"week": week})
        validated = warehouse.read_rows("validation_results", {"week": week})
        assert len(predictions) == int(validated["n_rows"].iloc[0]) == ROWS
        assert predictions["customer_id"].is_unique
        assert predictions["churn_probability"].between(0, 1).all()


def test_drift_detected_and_one_retrain_triggered(loop) -> None:
    summary = loop["ctx"].provider.warehouse.read_rows("drift_summary").set_index("week")
    assert sorted(summary.index) == WEEKS
    assert bool(summary.loc[DRIFT_WEEK, "drift_detected"])
    assert not summary.loc[WEEKS[:-1], "drift_detected"].astype(bool).any()
    assert task_states(loop["runs"][DRIFT_WEEK])["trigger_retrain"] == "success"


def test_rerun_reuses_the_training_job_and_duplicates_nothing(loop) -> None:
    ctx = loop["ctx"]
    warehouse, registry = ctx.provider.warehouse, ctx.provider.registry
    before = (
        len(registry.list_versions(ctx.model_name)),
        len(warehouse.read_rows("predictions")),
        len(_requests(loop, "CreateTrainingJob")),
        len(_requests(loop, "CreateTransformJob")),
    )
    run = _run_dag(loop["output"], "retrain_pipeline", "2026-W02")
    assert run_state(run) == "success", task_states(run)
    after = (
        len(registry.list_versions(ctx.model_name)),
        len(warehouse.read_rows("predictions")),
        len(_requests(loop, "CreateTrainingJob")),
        len(_requests(loop, "CreateTransformJob")),
    )
    assert after == before  # same job name -> reused, same transform job -> reused


def test_drift_retrain_then_rollback(loop) -> None:
    ctx = loop["ctx"]
    run = _run_dag(loop["output"], "retrain_pipeline", conf={"week": DRIFT_WEEK, "reason": "drift"})
    assert run_state(run) == "success", task_states(run)
    runs = ctx.provider.warehouse.read_rows("training_runs", {"week": DRIFT_WEEK})
    assert list(runs.loc[runs["reason"] == "drift", "train_weeks"]) == [f'["{DRIFT_WEEK}"]']
    registry, endpoint = ctx.provider.registry, ctx.provider.endpoint
    history = registry.alias_history(ctx.model_name, "production")
    current, previous = history[-1].version, history[-1].previous_version
    assert previous is not None
    run = _run_dag(loop["output"], "rollback_model", conf={"week": DRIFT_WEEK})
    assert run_state(run) == "success", task_states(run)
    assert registry.get_alias(ctx.model_name, "production").version == previous
    assert registry.get_version(ctx.model_name, previous).tags["approval_status"] == "Approved"
    assert registry.get_version(ctx.model_name, current).tags["approval_status"] == "PendingManualApproval"
    assert endpoint.current(ctx.model_name).version == previous


def _object_texts(key: str, data: bytes) -> list[tuple[str, bytes]]:
    """An object's bytes, and those of the files inside it when it is gzip or a tar."""
    found = [(key, data)]
    if data[:2] == b"\x1f\x8b":
        with contextlib.suppress(OSError, EOFError):
            found += _object_texts(f"{key}!gunzip", gzip.decompress(data))
    with contextlib.suppress(tarfile.TarError, EOFError, OSError):
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    extracted = tar.extractfile(member)
                    found += _object_texts(f"{key}!{member.name}", extracted.read() if extracted else b"")
    return found


def test_no_secret_anywhere(loop, airflow_db: Path) -> None:
    """The AWS connection's password appears in no task log, object, or warehouse table.

    Runs last: after every dag.test() run of this module (four pipeline runs and a rollback).
    """
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    secret = loop["secret"]
    leaks: list[str] = []

    # task logs: what the dag.test() runs wrote (log records, streams, child processes) and any
    # log file under AIRFLOW_HOME
    output = "".join(loop["output"])
    assert "deploy" in output and "score" in output, "the runs' output was not captured"
    if secret in output:
        at = output.index(secret)
        leaks.append(f"task output: ...{output[max(0, at - 200) : at + 50]!r}")
    for path in sorted(airflow_db.rglob("*")):
        if path.is_file() and secret.encode() in path.read_bytes():
            leaks.append(f"Airflow home: {path}")

    # every object in the bucket, under every prefix
    s3 = loop["server"].client("s3")
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for item in page.get("Contents", [])
    ]
    assert any(key.endswith("model.tar.gz") for key in keys) and len(keys) > 20, keys
    for key in keys:
        data = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        leaks += [
            f"s3://{BUCKET}/{name}" for name, text in _object_texts(key, data) if secret.encode() in text
        ]

    # every row of every table in the warehouse database, whatever its schema
    with contextlib.closing(PostgresHook(postgres_conn_id="warehouse_test").get_conn()) as conn:
        cursor = conn.cursor()
        cursor.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        tables = cursor.fetchall()
        assert {"predictions", "training_runs"} <= {name for _, name in tables}, tables
        for schema, name in tables:
            cursor.execute(
                f'SELECT count(*) FROM "{schema}"."{name}" t WHERE strpos(t::text, %s) > 0', (secret,)
            )
            if cursor.fetchone()[0]:
                leaks.append(f"warehouse table {schema}.{name}")
    assert not leaks, f"the connection's password leaked into: {leaks}"
