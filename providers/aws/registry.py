"""The model registry on AWS: SageMaker Model Registry plus the alias ledger in S3.

One model package group per model; a version is a model package whose artifact is a
``model.tar.gz`` (holding ``model.joblib``) copied under ``_sagemaker/registry/`` at
registration, with the sha256 of ``model.joblib`` recorded in its metadata. The approval status
is the production gate: the version ``production`` points at is ``Approved``, every other one
``PendingManualApproval``, so SageMaker deployment tooling that deploys the approved package
agrees with the project.

SageMaker has no aliases, and only the latest approval change is visible there, so the alias
and its full history (who, when, why - what rollback reads) live in the alias ledger every
provider shares (providers/ledger.py: one object per alias in S3, moved by a conditional PUT on
its ETag through ``S3ObjectStore.put_if_match``), so two racing moves never both win and the
history stays linear. The approval statuses are a mirror, synced after the ledger moved.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from functools import cached_property, partial
from pathlib import Path
from typing import Any

from providers.artifacts import check_artifact_sha256
from providers.aws.config import AwsSettings
from providers.aws.hooks import error_code, region_of, sagemaker_hook
from providers.aws.names import sagemaker_name
from providers.aws.storage import S3ObjectStore, split_s3_uri
from providers.base import ModelVersion
from providers.ledger import (
    REGISTRATION_FILE,
    AliasLedger,
    AliasState,
    ClaimedRegistrations,
    LedgerAliases,
    Registration,
)

log = logging.getLogger(__name__)
ARTIFACT_FILE = "model.joblib"
APPROVED, NOT_APPROVED = "Approved", "PendingManualApproval"


def group_name(model_name: str) -> str:
    """The model package group of a model (SageMaker names allow no underscores)."""
    return sagemaker_name(model_name)


class SageMakerModelRegistry(ClaimedRegistrations, LedgerAliases):
    """Model versions in SageMaker Model Registry; aliases and their history in S3."""

    registry_root = "_sagemaker/registry"
    storage: S3ObjectStore

    def __init__(self, aws: AwsSettings, storage: S3ObjectStore) -> None:
        self.aws = aws
        self.storage = storage
        self._records: dict[str, dict[str, Any]] = {}
        self._group_arns: dict[str, str] = {}
        self._metadata: dict[str, dict[str, str]] = {}
        self.ledger = AliasLedger(storage)

    @cached_property
    def client(self) -> Any:
        """The SageMaker client of the connection (boto3 clients are thread-safe)."""
        return sagemaker_hook(self.aws.conn_id).conn

    # -- versions --------------------------------------------------------------------------

    def model_folder(self, model_name: str) -> str:
        """A model's registrations go under its package group's name."""
        return group_name(model_name)

    def _publish(self, registration: Registration) -> ModelVersion:
        """Copy the artifact (a model.tar.gz, as SageMaker wants) and create a model package."""
        model_name, registry_key = registration.model_name, registration.registry_key
        folder = registration.folder
        artifact_uri = self.storage.put_bytes(
            f"{folder}/model.tar.gz", _tar_gz({ARTIFACT_FILE: registration.data})
        )
        self._ensure_group(model_name)
        region = region_of(self.aws.conn_id, self.aws.region)
        self.client.create_model_package(
            ModelPackageGroupName=group_name(model_name),
            ModelPackageDescription=f"{model_name} trained by {registry_key}"[:1000],
            InferenceSpecification={
                "Containers": [{"Image": self.aws.image("inference", region), "ModelDataUrl": artifact_uri}],
                "SupportedContentTypes": ["application/json", "application/x-parquet"],
                "SupportedResponseMIMETypes": ["application/json", "text/csv"],
            },
            ModelApprovalStatus=NOT_APPROVED,
            CustomerMetadataProperties={
                "registry_key": registry_key,
                "sha256": registration.sha256,
                "registration": self.storage.uri(f"{folder}/{REGISTRATION_FILE}")[:256],
            },
        )
        version = self._find(model_name, registry_key)
        assert version is not None, "the model package just created is not listed"
        return version

    def get_version(self, model_name: str, version: str) -> ModelVersion:
        """Return one version (one DescribeModelPackage). Raises KeyError if it does not exist."""
        missing = KeyError(f"model {model_name!r} has no version {version!r}")
        if not str(version).isdigit():
            raise missing
        group_arn = self._group_arn(model_name)
        if group_arn is None:
            raise missing
        # arn:...:model-package-group/<group> -> arn:...:model-package/<group>/<version>
        arn = group_arn.replace(":model-package-group/", ":model-package/", 1) + f"/{int(version)}"
        try:
            return self._to_version(model_name, {"ModelPackageArn": arn})
        except Exception as exc:
            if error_code(exc) in ("ValidationException", "ResourceNotFound"):
                raise missing from None
            raise

    def _group_arn(self, model_name: str) -> str | None:
        if model_name not in self._group_arns:
            try:
                described = self.client.describe_model_package_group(
                    ModelPackageGroupName=group_name(model_name)
                )
            except Exception as exc:
                if error_code(exc) in ("ValidationException", "ResourceNotFound"):
                    return None
                raise
            self._group_arns[model_name] = described["ModelPackageGroupArn"]
        return self._group_arns[model_name]

    def list_versions(self, model_name: str) -> list[ModelVersion]:
        """Every version of the model, oldest first."""
        versions = [self._to_version(model_name, s) for s in self._packages(model_name)]
        return sorted(versions, key=lambda v: int(v.version))

    def _packages(self, model_name: str) -> list[dict[str, Any]]:
        summaries: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"ModelPackageGroupName": group_name(model_name), "MaxResults": 100}
        while True:
            try:
                page = self.client.list_model_packages(**kwargs)
            except Exception as exc:
                if error_code(exc) in ("ValidationException", "ResourceNotFound"):
                    return []
                raise
            summaries.extend(page.get("ModelPackageSummaryList", []))
            if not page.get("NextToken"):
                return summaries
            kwargs["NextToken"] = page["NextToken"]

    def _to_version(self, model_name: str, summary: dict[str, Any]) -> ModelVersion:
        package = self.client.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        meta = package.get("CustomerMetadataProperties", {}) or {}
        self._metadata[package["ModelPackageArn"]] = meta
        record: dict[str, Any] = self._records.get(meta.get("registration", ""), {})
        if meta.get("registration") and not record:
            try:
                bucket, key = split_s3_uri(meta["registration"])
                record = json.loads(self.storage.client.get_object(Bucket=bucket, Key=key)["Body"].read())
                self._records[meta["registration"]] = record  # written once, before the package
            except Exception as exc:  # the package stays usable without its lineage record
                log.warning("Cannot read the registration record of %s: %s", summary["ModelPackageArn"], exc)
        containers = package.get("InferenceSpecification", {}).get("Containers", [{}])
        created = package.get("CreationTime")
        return ModelVersion(
            model_name=model_name,
            version=str(package["ModelPackageVersion"]),
            artifact_uri=containers[0].get("ModelDataUrl", ""),
            sha256=meta.get("sha256", ""),
            registry_key=meta.get("registry_key", ""),
            metrics=record.get("metrics", {}),
            tags={
                **record.get("tags", {}),
                "approval_status": package.get("ModelApprovalStatus", ""),
                "model_package_arn": package["ModelPackageArn"],
            },  # fmt: skip
            created_at=created.isoformat() if hasattr(created, "isoformat") else str(created or ""),
        )

    def _find(self, model_name: str, registry_key: str) -> ModelVersion | None:
        for version in self.list_versions(model_name):
            if version.registry_key == registry_key:
                return version
        return None

    def _ensure_group(self, model_name: str) -> None:
        try:
            self.client.create_model_package_group(
                ModelPackageGroupName=group_name(model_name),
                ModelPackageGroupDescription=f"MLOps lifecycle model {model_name}",
            )
        except Exception as exc:
            if "already exists" not in str(exc).lower() and error_code(exc) != "ResourceInUse":
                raise

    # -- aliases ---------------------------------------------------------------------------

    def alias_mirror(self, model_name: str, alias: str) -> Callable[[AliasState], None] | None:
        """Production's mirror: the approval statuses (SageMaker has no aliases); others: the ledger alone."""
        return partial(self._sync_approvals, model_name) if alias == "production" else None

    def _sync_approvals(self, model_name: str, state: AliasState) -> None:
        """Approve the production version; every other approved version goes back to pending."""
        if state.current is None:
            return
        reason = state.history[-1].reason if state.history else ""
        for version in self.list_versions(model_name):
            status = version.tags.get("approval_status")
            wanted = APPROVED if version.version == state.current else NOT_APPROVED
            if status != wanted:
                self.client.update_model_package(
                    ModelPackageArn=version.tags["model_package_arn"],
                    ModelApprovalStatus=wanted,
                    # sent again: UpdateModelPackage keeps them, but moto 5.2 would drop them
                    CustomerMetadataProperties=self._metadata[version.tags["model_package_arn"]],
                    ApprovalDescription=(
                        f"production: {reason}" if wanted == APPROVED else f"replaced by v{state.current}"
                    )[:1000],  # fmt: skip
                )

    # -- artifacts -------------------------------------------------------------------------

    def fetch_artifact(self, version: ModelVersion, directory: Path) -> Path:
        """Download the version's model.tar.gz, unpack model.joblib and check its sha256."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        bucket, key = split_s3_uri(version.artifact_uri)
        with tempfile.TemporaryDirectory(dir=directory, prefix=".fetch-") as tmp:
            archive = Path(tmp) / "model.tar.gz"
            self.storage.client.download_file(bucket, key, str(archive))
            with tarfile.open(archive) as tar:
                tar.extractall(Path(tmp) / "out", filter="data")
            downloaded = Path(tmp) / "out" / ARTIFACT_FILE
            check_artifact_sha256(version, hashlib.sha256(downloaded.read_bytes()).hexdigest())
            target = directory / ARTIFACT_FILE
            downloaded.replace(target)
        return target


def _tar_gz(files: Mapping[str, bytes]) -> bytes:
    """A model.tar.gz as SageMaker expects it (files at the archive's root)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
