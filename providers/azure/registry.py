"""The model registry on Azure: Azure ML model versions plus the alias ledger in Blob Storage.

One Azure ML model per model name; each registration is a new version (``custom_model``)
whose URI is the registry's own copy of ``model.joblib`` in the container
(``_azureml/registry/<model>/<registry_key>/model.joblib``), with the sha256, the
registration key and the metrics in the version's tags and properties.

Version numbers are chosen here, not by the SDK's "latest + 1": two concurrent registrations
would both pick the same number. Each number is claimed first with a create-only blob
(``_azureml/registry/<model>/versions/<n>.json``), and the registration key is claimed the
same way, so a re-run or a racing run returns the existing version instead of a second one.

Azure ML keeps no alias history, so the ``production`` alias and its history live in the alias
ledger every provider shares (providers/ledger.py, compare-and-set on the ledger blob's ETag);
the version it names carries the tag ``production = "true"``, a mirror written after the ledger
moved (every other version's tag is removed).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from providers.artifacts import check_artifact_sha256
from providers.azure.storage import BlobObjectStore
from providers.azure.workspace import Workspace
from providers.base import ModelVersion
from providers.ledger import (
    AliasLedger,
    AliasState,
    ClaimedRegistrations,
    LedgerAliases,
    Registration,
    claim_registration,
)

log = logging.getLogger(__name__)
ARTIFACT_FILE = "model.joblib"
PRODUCTION_TAG = "production"  # the mirror of the ledger's production alias
_KEY_TAG, _SHA_TAG = "registry_key", "sha256"
_METRIC = "metric."  # version properties holding the run's metrics (properties are strings)


class AzureMLModelRegistry(ClaimedRegistrations, LedgerAliases):
    """Model versions in the Azure ML workspace; aliases and their history in Blob Storage."""

    registry_root = "_azureml/registry"
    storage: BlobObjectStore

    def __init__(self, workspace: Workspace, storage: BlobObjectStore) -> None:
        self.workspace = workspace
        self.storage = storage
        self.ledger = AliasLedger(storage)

    @property
    def models(self) -> Any:
        """MLClient's model operations."""
        return self.workspace.client.models

    # -- versions --------------------------------------------------------------------------

    def _publish(self, registration: Registration) -> ModelVersion:
        """Copy the artifact into the registry's folder and create the next model version."""
        model_name, registry_key = registration.model_name, registration.registry_key
        folder = registration.folder
        from azure.ai.ml.entities import Model

        uri = self.storage.put_bytes(f"{folder}/{ARTIFACT_FILE}", registration.data)
        number = self._claim_version(model_name, registry_key)
        try:
            self.models.create_or_update(
                Model(
                    name=model_name,
                    version=str(number),
                    path=uri,
                    type="custom_model",
                    description=f"{model_name} trained by {registry_key}",
                    tags={
                        **{k: str(v) for k, v in registration.tags.items()},
                        _KEY_TAG: registry_key,
                        _SHA_TAG: registration.sha256,
                    },
                    properties={
                        f"{_METRIC}{k}": repr(float(v))
                        for k, v in registration.metrics.items()
                        if v is not None
                    },
                )
            )
        except BaseException:
            # refused (quota, a bad request): free both claims, so that a retry registers again
            self.storage.delete(f"_azureml/registry/{model_name}/versions/{number}.json")
            self.storage.delete(f"{folder}/claim.json")
            raise
        return self.get_version(model_name, str(number))

    def _claim_version(self, model_name: str, registry_key: str) -> int:
        """The next free version number, claimed with a create-only blob."""
        listed = [int(v.version) for v in self.list_versions(model_name) if v.version.isdigit()]
        number = max(listed, default=0) + 1
        while not claim_registration(
            self.storage, f"_azureml/registry/{model_name}/versions/{number}.json", registry_key
        ):
            number += 1
        return number

    def get_version(self, model_name: str, version: str) -> ModelVersion:
        """Return one version. Raises KeyError if it does not exist."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self._to_version(self.models.get(name=model_name, version=str(version)))
        except ResourceNotFoundError:
            raise KeyError(f"model {model_name!r} has no version {version!r}") from None

    def list_versions(self, model_name: str) -> list[ModelVersion]:
        """Every version of the model, oldest first."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            versions = [self._to_version(m) for m in self.models.list(name=model_name)]
        except ResourceNotFoundError:
            return []
        return sorted(versions, key=lambda v: int(v.version) if v.version.isdigit() else 0)

    def _to_version(self, model: Any) -> ModelVersion:
        tags = dict(model.tags or {})
        properties = dict(model.properties or {})
        created = getattr(getattr(model, "creation_context", None), "created_at", None)
        return ModelVersion(
            model_name=model.name,
            version=str(model.version),
            artifact_uri=str(model.path),
            sha256=tags.get(_SHA_TAG, ""),
            registry_key=tags.get(_KEY_TAG, ""),
            metrics={k[len(_METRIC) :]: float(v) for k, v in properties.items() if k.startswith(_METRIC)},
            tags={k: v for k, v in tags.items() if k not in (_KEY_TAG, _SHA_TAG)},
            created_at=created.isoformat() if isinstance(created, datetime) else str(created or ""),
        )

    def _find(self, model_name: str, registry_key: str) -> ModelVersion | None:
        for version in self.list_versions(model_name):
            if version.registry_key == registry_key:
                return version
        return None

    # -- aliases ---------------------------------------------------------------------------

    def alias_mirror(self, model_name: str, alias: str) -> Callable[[AliasState], None] | None:
        """Production's mirror: a tag on the production version; others: the ledger alone."""
        return partial(self._sync_tags, model_name) if alias == PRODUCTION_TAG else None

    def _sync_tags(self, model_name: str, state: AliasState) -> None:
        """Tag the production version; remove the tag from every other version."""
        if state.current is None:
            return
        for model in self.models.list(name=model_name):
            tagged = (model.tags or {}).get(PRODUCTION_TAG) == "true"
            wanted = str(model.version) == state.current
            if tagged != wanted:
                tags = {k: v for k, v in (model.tags or {}).items() if k != PRODUCTION_TAG}
                model.tags = {**tags, PRODUCTION_TAG: "true"} if wanted else tags
                self.models.create_or_update(model)  # the same version: only its tags change

    # -- artifacts -------------------------------------------------------------------------

    def fetch_artifact(self, version: ModelVersion, directory: Path) -> Path:
        """Download the version's model.joblib and check its sha256 before it is kept."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory, prefix=".fetch-") as tmp:
            downloaded = self.storage.get_file(
                self.storage.key_of_uri(version.artifact_uri), Path(tmp) / ARTIFACT_FILE
            )
            check_artifact_sha256(version, hashlib.sha256(downloaded.read_bytes()).hexdigest())
            target = directory / ARTIFACT_FILE
            downloaded.replace(target)
        return target
