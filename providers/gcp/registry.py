"""The model registry on GCP: Vertex AI Model Registry plus the alias ledger in GCS.

One Vertex AI model per model name (its ID is the name); a registration uploads a new version
of it (``parentModel``), so Vertex AI numbers the versions 1, 2, 3... as the contract does. The
version's ``artifactUri`` is a folder in the bucket (``_vertex/registry/<model>/<registry key>/``)
holding the copied ``model.joblib`` and ``registration.json`` (metrics, params, tags), so
retraining never changes a registered artifact. The version's labels carry the registry key
(what makes a registration idempotent) and the sha256 of ``model.joblib`` (checked before
every load); a label value holds at most 64 characters, exactly a sha256 in hex.

Vertex AI keeps a version alias's current target but not who moved it, when or why, so the
aliases and their history live in the alias ledger every provider shares (providers/ledger.py:
one object per alias, moved by a conditional upload on its generation). The Vertex AI version
aliases are a mirror, written after the ledger moved: the alias is taken off the version that
holds it and put on the ledger's version (Vertex AI lets one version hold an alias at a time).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from functools import cached_property, partial
from pathlib import Path
from typing import Any

from core.ml.dataset import DatasetSpec
from providers.artifacts import check_artifact_sha256
from providers.base import ModelVersion
from providers.gcp.config import GcpSettings
from providers.gcp.package import upload_package
from providers.gcp.storage import GcsObjectStore, split_gs_uri
from providers.gcp.vertex import location_path, vertex_client
from providers.ledger import (
    REGISTRATION_FILE,
    AliasLedger,
    AliasState,
    ClaimedRegistrations,
    LedgerAliases,
    Registration,
    RegistryConflictError,
)

log = logging.getLogger(__name__)
ARTIFACT_FILE = "model.joblib"
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{1,64}$")
_VERTEX_ALIAS = re.compile(r"^[a-z][a-zA-Z0-9-]{0,126}[a-z0-9-]$")


def _status(error: Any) -> str:
    """The google.rpc status word of an HTTP error answer (``FAILED_PRECONDITION``...)."""
    try:
        return str(error.response.json()["error"]["status"])
    except Exception:
        return ""


def registry_label(registry_key: str) -> str:
    """The label value of a registry key: the key itself when it fits a label, else its hash."""
    if _LABEL_VALUE.match(registry_key):
        return registry_key
    return "h-" + hashlib.sha256(registry_key.encode()).hexdigest()[:60]


class VertexModelRegistry(ClaimedRegistrations, LedgerAliases):
    """Model versions in Vertex AI Model Registry; aliases and their history in GCS."""

    registry_root = "_vertex/registry"
    storage: GcsObjectStore

    def __init__(
        self, gcp: GcpSettings, project: str, storage: GcsObjectStore, spec: DatasetSpec | None = None
    ) -> None:
        self.gcp = gcp
        self.project = project
        self.storage = storage
        self.spec = spec  # its feature function ships in the serving package
        self.ledger = AliasLedger(storage)
        self._records: dict[str, dict[str, Any]] = {}

    @cached_property
    def client(self) -> Any:
        """The ModelServiceClient (REST, the Connection's credentials)."""
        return vertex_client("model", self.gcp)

    def model_resource(self, model_name: str) -> str:
        """``projects/<p>/locations/<r>/models/<model_name>``."""
        if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,62}", model_name or ""):
            raise ValueError(
                f"model name {model_name!r} cannot be a Vertex AI model ID: up to 63 lowercase letters, "
                "digits, '_' and '-', not starting with a digit or '-'"
            )
        return f"{location_path(self.gcp, self.project)}/models/{model_name}"

    # -- versions --------------------------------------------------------------------------

    def _publish(self, registration: Registration) -> ModelVersion:
        """Copy the artifact into the registry's folder and upload a version of the model."""
        model_name, registry_key = registration.model_name, registration.registry_key
        folder = registration.folder
        self.storage.put_bytes(f"{folder}/{ARTIFACT_FILE}", registration.data)
        self._upload(model_name, registry_key, registration.sha256, self.storage.uri(folder))
        version = self._find(model_name, registry_key)
        assert version is not None, "the model version just uploaded is not listed"
        return version

    def _upload(self, model_name: str, registry_key: str, sha256: str, artifact_uri: str) -> None:
        """Upload a version (the model's first: create the model with its ID)."""
        from google.api_core.exceptions import AlreadyExists, NotFound

        model = {
            "display_name": model_name,
            "version_description": f"{model_name} trained by {registry_key}"[:1000],
            "artifact_uri": artifact_uri,
            "container_spec": self.container_spec(sha256),
            "labels": {"registry_key": registry_label(registry_key), "sha256": sha256, "managed_by": "mlops"},
        }
        parent = location_path(self.gcp, self.project)
        name = self.model_resource(model_name)
        for _ in range(3):  # model missing -> create it; created meanwhile by another run -> a version
            try:
                if self._exists(name):
                    request = {"parent": parent, "model": model, "parent_model": name}
                else:
                    request = {"parent": parent, "model": model, "model_id": model_name}
                self.client.upload_model(request=request).result(timeout=600)
                return
            except (AlreadyExists, NotFound):
                continue
        raise RegistryConflictError(f"model {name} kept appearing and disappearing while uploading; retry")

    def container_spec(self, sha256: str) -> dict[str, Any]:
        """How Vertex AI serves the version: the serving image (providers/gcp/vertex_serve.py).

        ``MODEL_SHA256`` is checked by the server before it unpickles the artifact;
        ``MLOPS_PACKAGE`` names the package the serving image is built from.
        """
        env = [{"name": "MODEL_SHA256", "value": sha256}]
        if self.spec is not None:
            env.append({"name": "MLOPS_PACKAGE", "value": upload_package(self.storage, self.spec)})
        return {
            "image_uri": self.gcp.image("prediction"),
            "env": env,
            "ports": [{"container_port": 8080}],
            "predict_route": "/predict",
            "health_route": "/health",
        }

    def _exists(self, name: str) -> bool:
        from google.api_core.exceptions import NotFound

        try:
            self.client.get_model(name=name)
            return True
        except NotFound:
            return False

    def get_version(self, model_name: str, version: str) -> ModelVersion:
        """Return one version (``models/<name>@<version>``). Raises KeyError if it does not exist."""
        from google.api_core.exceptions import NotFound

        if not str(version).isdigit():  # never resolve an alias here: versions are numbers
            raise KeyError(f"model {model_name!r} has no version {version!r}")
        try:
            return self._to_version(
                self.client.get_model(name=f"{self.model_resource(model_name)}@{version}")
            )
        except NotFound:
            raise KeyError(f"model {model_name!r} has no version {version!r}") from None

    def list_versions(self, model_name: str) -> list[ModelVersion]:
        """Every version of the model, oldest first."""
        from google.api_core.exceptions import NotFound

        try:
            models = list(self.client.list_model_versions(name=self.model_resource(model_name)))
        except NotFound:
            return []
        return sorted((self._to_version(m) for m in models), key=lambda v: int(v.version))

    def _find(self, model_name: str, registry_key: str) -> ModelVersion | None:
        label = registry_label(registry_key)
        for version in self.list_versions(model_name):
            if version.tags.get("registry_label") == label and version.registry_key == registry_key:
                return version
        return None

    def _to_version(self, model: Any) -> ModelVersion:
        labels = dict(model.labels)
        record = self._record(model.artifact_uri)
        created = model.version_create_time
        return ModelVersion(
            model_name=model.name.rsplit("/", 1)[-1].split("@")[0],
            version=str(model.version_id),
            artifact_uri=model.artifact_uri,
            sha256=labels.get("sha256", ""),
            registry_key=record.get("registry_key", ""),
            metrics=record.get("metrics", {}),
            tags={
                **record.get("tags", {}),
                "registry_label": labels.get("registry_key", ""),
                "vertex_model": f"{model.name.split('@')[0]}@{model.version_id}",
            },
            created_at=created.isoformat() if hasattr(created, "isoformat") else str(created or ""),
        )

    def _record(self, artifact_uri: str) -> dict[str, Any]:
        """The registration record in the version's artifact folder (written once, before the upload)."""
        if artifact_uri not in self._records:
            try:
                bucket, folder = split_gs_uri(artifact_uri.rstrip("/"))
                blob = self.storage.client.bucket(bucket).blob(f"{folder}/{REGISTRATION_FILE}")
                self._records[artifact_uri] = json.loads(blob.download_as_bytes())
            except Exception as exc:  # the version stays usable without its lineage record
                log.warning("Cannot read the registration record under %s: %s", artifact_uri, exc)
                return {}
        return self._records[artifact_uri]

    # -- aliases ---------------------------------------------------------------------------

    def alias_mirror(self, model_name: str, alias: str) -> Callable[[AliasState], None] | None:
        """The mirror: a Vertex AI version alias; a name Vertex AI refuses as one: the ledger alone."""
        return partial(self._sync_alias, model_name, alias) if _VERTEX_ALIAS.match(alias) else None

    def _sync_alias(self, model_name: str, alias: str, state: AliasState) -> None:
        """Put the Vertex AI version alias on the ledger's version (off the one that holds it)."""
        from google.api_core.exceptions import BadRequest, Conflict, NotFound

        if state.current is None:
            return
        name = self.model_resource(model_name)
        for _ in range(self.ledger.attempts):
            holder = self._alias_holder(name, alias)
            if holder == state.current:
                return
            try:
                if holder is not None:
                    self.client.merge_version_aliases(name=f"{name}@{holder}", version_aliases=[f"-{alias}"])
                self.client.merge_version_aliases(name=f"{name}@{state.current}", version_aliases=[alias])
                return
            except (BadRequest, Conflict, NotFound) as exc:
                # another mirror moved the alias meanwhile (the alias is held elsewhere: FAILED_
                # PRECONDITION, which is HTTP 400 too): look again; any other refusal is an error
                if isinstance(exc, BadRequest) and _status(exc) != "FAILED_PRECONDITION":
                    raise
        raise RegistryConflictError(
            f"the Vertex AI alias {alias!r} of {name} kept moving: run the task again"
        )

    def _alias_holder(self, name: str, alias: str) -> str | None:
        """The version that holds a Vertex AI version alias, or None."""
        from google.api_core.exceptions import NotFound

        try:
            return str(self.client.get_model(name=f"{name}@{alias}").version_id)
        except NotFound:
            return None

    # -- artifacts -------------------------------------------------------------------------

    def fetch_artifact(self, version: ModelVersion, directory: Path) -> Path:
        """Download the version's model.joblib and check its sha256 before anyone loads it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        bucket, folder = split_gs_uri(version.artifact_uri.rstrip("/"))
        data = self.storage.client.bucket(bucket).blob(f"{folder}/{ARTIFACT_FILE}").download_as_bytes()
        check_artifact_sha256(version, hashlib.sha256(data).hexdigest())
        target = directory / ARTIFACT_FILE
        partial = directory / f".{ARTIFACT_FILE}.partial"
        partial.write_bytes(data)
        partial.replace(target)
        return target
