"""Test setup: an Airflow home of the tests' own, and settings pointing at temporary folders.

Airflow reads its configuration when it is first imported, so the environment is set here,
before any test module imports it. The metadata database is migrated once per checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import airflow_base_env

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
def scheduler_backfill(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path):
    """Airflow's components running a four-week backfill (see tests/airflow_services.py)."""
    from airflow_services import backfill_session

    yield from backfill_session(tmp_path_factory)


# --------------------------------------------------------------------------------------------
# AWS stand-ins (started only by the tests that ask for them; see tests/emulators.py)

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


@pytest.fixture(scope="session")
def postgres_cluster():
    """A PostgreSQL 15 cluster of the tests' own (the SQL stand-in for Redshift)."""
    import tempfile

    from emulators import PostgresCluster

    # not under pytest's temporary folder: that is private to root, and the cluster runs as postgres
    cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="mlops-pg-")))
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
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    server.client("s3").create_bucket(Bucket=AWS_BUCKET)
    try:
        yield server, stand_in, postgres_cluster
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --------------------------------------------------------------------------------------------
# Azure stand-ins (started only by the tests that ask for them)

AZURE_CONTAINER = "mlops-test"


@pytest.fixture(scope="session")
def azurite():
    """Azurite's Blob service on 127.0.0.1 (a free port), with the tests' container."""
    from emulators import Azurite

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
