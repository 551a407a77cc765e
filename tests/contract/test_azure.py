"""The provider contract on the Azure provider, against its stand-ins.

Azurite executes Blob Storage for real (conditional writes included).
"""

from __future__ import annotations

import uuid

import pytest
from conftest import AZURE_CONTAINER

from contract.suites import StorageContract
from providers.azure.storage import BlobObjectStore


class TestAzureStorage(StorageContract):
    @pytest.fixture
    def store(self, azure_env) -> BlobObjectStore:
        return BlobObjectStore("wasb_test", AZURE_CONTAINER, f"storage-{uuid.uuid4().hex[:8]}")
