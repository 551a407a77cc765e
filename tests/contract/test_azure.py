"""The provider contract on the Azure provider, against its stand-ins.

Azurite executes Blob Storage for real (conditional writes included). The Synapse stand-in
(tests/synapse_standin.py) checks every statement strictly as T-SQL and runs it on DuckDB.
"""

from __future__ import annotations

import uuid

import pytest
from conftest import AZURE_CONTAINER

from contract.suites import StorageContract, WarehouseContract
from providers.azure.storage import BlobObjectStore
from providers.azure.warehouse import SynapseWarehouse


class TestAzureStorage(StorageContract):
    @pytest.fixture
    def store(self, azure_env) -> BlobObjectStore:
        return BlobObjectStore("wasb_test", AZURE_CONTAINER, f"storage-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def synapse():
    from synapse_standin import SynapseStandIn

    return SynapseStandIn()


class TestAzureWarehouse(WarehouseContract):
    @pytest.fixture(scope="class")
    def warehouse(self, synapse) -> SynapseWarehouse:
        return SynapseWarehouse("synapse_test", "dbo", connect=synapse.connect)
