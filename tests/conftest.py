"""Test setup: an Airflow home of the tests' own, and settings pointing at temporary folders.

Airflow reads its configuration when it is first imported, so the environment is set here,
before any test module imports it. The metadata database is migrated once per checkout.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import airflow_base_env, environment, free_port


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A live test (marker ``live_<cloud>``) runs only when ``-m`` asks for its marker by name.

    Any other selection (``-m "not e2e"``, a path, ``-k``) leaves it out, so a developer with
    cloud credentials in the environment never starts billed jobs by accident.
    """
    expression = config.getoption("markexpr") or ""
    deselected = []
    for item in items:
        live = [m.name for m in item.iter_markers() if m.name.startswith("live_")]
        asked = any(re.search(rf"(?<!not )\b{name}\b", expression) for name in live)
        if live and not asked:
            deselected.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]


ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_HOME = ROOT / ".airflow-test"

# set explicitly (airflow_base_env): the Makefile exports a connection to the demo's database
os.environ.update({**airflow_base_env(AIRFLOW_HOME), "AIRFLOW__CORE__UNIT_TEST_MODE": "False"})
os.environ.pop("MLOPS_CONFIG", None)
os.environ.pop("MLOPS_PROVIDER", None)
for path in (str(ROOT), str(ROOT / "dags")):
    if path not in sys.path:
        sys.path.insert(0, path)


def migrate_airflow_db() -> None:
    """Create or upgrade the tests' Airflow metadata database (SQLite)."""
    AIRFLOW_HOME.mkdir(exist_ok=True)
    airflow = Path(sys.executable).parent / "airflow"
    result = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The tests' migrated Airflow database."""
    if not (AIRFLOW_HOME / ".migrated").exists():
        migrate_airflow_db()
        (AIRFLOW_HOME / ".migrated").write_text("ok")
    return AIRFLOW_HOME


@pytest.fixture(scope="session")
def scheduler_backfill(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path, postgres_cluster):
    """Airflow's components running a four-week backfill (see tests/airflow_services.py)."""
    from airflow_services import backfill_session

    yield from backfill_session(tmp_path_factory, postgres_cluster)


# --------------------------------------------------------------------------------------------
# PostgreSQL and the AWS stand-ins (started only by the tests that ask for them; see
# tests/emulators.py)

AWS_BUCKET = "mlops-test"


@pytest.fixture(scope="session")
def moto_server():
    """moto in server mode on 127.0.0.1 (a free port), with the SageMaker stand-in hooked in."""
    from emulators import MotoServer, SageMakerStandIn

    server = MotoServer()
    stand_in = SageMakerStandIn(server)
    try:
        yield server, stand_in
    finally:
        stand_in.join(timeout=60)
        stand_in.uninstall()
        server.stop()


@pytest.fixture(autouse=True)
def _requests_kept_service_rules(request: pytest.FixtureRequest):
    """A test that uses moto fails if moto refused one of its requests under the service's model
    (tests/service_rules.py), even if the code under test swallowed the 400. A test that sends
    invalid requests on purpose takes its refusals with ``rules.take_refused()``."""
    if "moto_server" not in request.fixturenames:
        yield
        return
    server, _ = request.getfixturevalue("moto_server")
    yield  # (a module fixture's refusals are reported by the first test that used it)
    refused = server.rules.take_refused()
    assert not refused, "requests the real service would refuse:\n" + "\n".join(
        f"{service} {operation}: {message}" for service, operation, message in refused
    )


@pytest.fixture(scope="session")
def postgres_cluster():
    """A PostgreSQL 15 cluster of the tests' own: the SQL stand-in for Redshift, and a database
    per real-scheduler Airflow (its metadata database)."""
    import tempfile

    from emulators import PostgresCluster

    # not under pytest's temporary folder: that is private to root, and the cluster runs as postgres
    # every Airflow component keeps a pool of connections (the api-server one per worker)
    cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="mlops-pg-")), max_connections=300)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def aws_env(moto_server, postgres_cluster):
    """Airflow connections ``aws_test`` (fake keys -> moto) and ``warehouse_test`` (PostgreSQL),
    and the bucket; yields ``(moto, stand_in, cluster)``."""
    server, stand_in = moto_server
    variables = {**server.connection_env("aws_test"), **postgres_cluster.connection_env("warehouse_test")}
    with environment(variables):
        server.client("s3").create_bucket(Bucket=AWS_BUCKET)
        yield server, stand_in, postgres_cluster


# --------------------------------------------------------------------------------------------
# GCP stand-ins (started only by the tests that ask for them; see tests/emulators.py and
# tests/vertex_standin.py)


@pytest.fixture(scope="session")
def gcp_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The GCP stand-ins' logs."""
    return tmp_path_factory.mktemp("gcp-servers")


@pytest.fixture(scope="session")
def gcs_server(gcp_folder):
    """fake-gcs-server, a child process (stopped by its pid)."""
    from emulators import fake_gcs_server

    server = fake_gcs_server(gcp_folder)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def bigquery_server(gcp_folder):
    """bqemulator, a child process from its own virtualenv (stopped by its pid)."""
    from emulators import bigquery_emulator

    server = bigquery_emulator(gcp_folder)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def vertex_standin():
    """The Vertex AI REST stand-in, a server thread of this process (tests/vertex_standin.py)."""
    from vertex_standin import VertexStandIn

    stand_in = VertexStandIn(free_port())
    try:
        yield stand_in
    finally:
        stand_in.stop()


@pytest.fixture(scope="session")
def monitoring_standin():
    """The Cloud Monitoring REST stand-in, a server thread of this process (tests/monitoring_standin.py)."""
    from monitoring_standin import CloudMonitoringStandIn

    stand_in = CloudMonitoringStandIn(free_port())
    try:
        yield stand_in
    finally:
        stand_in.stop()


@pytest.fixture(scope="session")
def gcp_env(gcs_server, bigquery_server, vertex_standin):
    """The Airflow connection ``gcp_test`` (anonymous) and the clients pointed at the stand-ins,
    and the bucket; yields ``(gcs, bigquery, vertex)``."""
    from emulators import GCP_BUCKET, GCP_PROJECT, gcp_connection_env

    gcs, bigquery, vertex = gcs_server, bigquery_server, vertex_standin
    variables = {**gcp_connection_env("gcp_test"), "STORAGE_EMULATOR_HOST": gcs.url,
                 "BIGQUERY_EMULATOR_HOST": bigquery.url}  # fmt: skip
    with environment(variables):
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        GCSHook(gcp_conn_id="gcp_test").create_bucket(bucket_name=GCP_BUCKET, project_id=GCP_PROJECT)
        yield gcs, bigquery, vertex


# --------------------------------------------------------------------------------------------
# Azure stand-ins (started only by the tests that ask for them)


@pytest.fixture(scope="session")
def azurite():
    """Azurite's Blob service on 127.0.0.1 (a free port), with the tests' container."""
    from emulators import AZURE_CONTAINER, Azurite

    server = Azurite()
    try:
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(server.connection_string).create_container(AZURE_CONTAINER)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def azure_env(azurite):
    """The Airflow connection ``wasb_test`` (Azurite); yields the emulator."""
    variables = azurite.connection_env("wasb_test")
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield azurite
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --------------------------------------------------------------------------------------------
# Where serving alerts land (tests/alert_standins.py): started only by the tests that ask


@pytest.fixture(scope="session")
def smtp_inbox():
    """A real SMTP server (aiosmtpd) on 127.0.0.1, emptied before each test that asks for it."""
    from alert_standins import SmtpInbox

    inbox = SmtpInbox()
    try:
        yield inbox
    finally:
        inbox.stop()


@pytest.fixture(scope="session")
def slack_webhook():
    """A Slack Incoming Webhook stand-in on 127.0.0.1 that judges requests by Slack's rules."""
    from alert_standins import SlackWebhook

    webhook = SlackWebhook()
    try:
        yield webhook
    finally:
        webhook.stop()
