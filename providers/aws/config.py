"""The ``[aws]`` section of astro.toml and the ``aws`` hardware profiles, checked once."""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError
from providers.aws.names import is_valid, sagemaker_name
from providers.settings import HardwareProfile, ProviderSettings

if TYPE_CHECKING:
    pass

WAREHOUSE_KINDS = ("redshift_sql", "postgres", "redshift_data_api")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9_.=\-]+(/[A-Za-z0-9_.=\-]+)*$")
_INSTANCE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")


@dataclass(frozen=True)
class TrainingProfile(HardwareProfile, use="training", cloud="aws"):
    """``[hardware.training.aws]``: what a SageMaker training job runs on."""

    instance_type: str = "ml.m5.xlarge"
    instance_count: int = 1
    volume_size_gb: int = 30
    max_runtime_seconds: int = 3 * 3600
    use_spot: bool = False
    max_wait_seconds: int = 6 * 3600  # spot only: how long to wait for capacity plus training
    checkpoint_s3_uri: str = ""  # spot only, optional: where interrupted jobs resume from


@dataclass(frozen=True)
class InferenceProfile(HardwareProfile, use="inference", cloud="aws"):
    """``[hardware.inference.aws]``: what the endpoint and batch transform run on."""

    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    batch_instance_type: str = ""  # empty: instance_type
    batch_instance_count: int = 1


@dataclass(frozen=True)
class AwsSettings(ProviderSettings, cloud="aws"):
    """Everything the AWS provider reads from astro.toml (no credentials: those are Connections)."""

    conn_id: str = "aws_default"
    bucket: str = ""
    prefix: str = "mlops"
    region: str = ""  # empty: the connection's region_name
    role_arn: str = ""  # the SageMaker execution role (needed by training, models, transform)
    # the prebuilt scikit-learn container; 1.9 matches the lock (scikit-learn 1.9.x), so a model
    # trained in the container unpickles in the Airflow worker (evaluate) and back
    sklearn_version: str = "1.9-0"
    training_image: str = ""  # empty: the scikit-learn container of sklearn_version in region
    inference_image: str = ""
    endpoint_name: str = ""  # empty: mlops-<model name>
    poll_seconds: int = 30  # how often the deferred wait asks SageMaker about a job
    warehouse: str = "redshift_sql"  # redshift_sql | postgres | redshift_data_api
    warehouse_conn_id: str = "redshift_default"
    warehouse_schema: str = "public"
    redshift_database: str = "dev"  # Data API only
    redshift_cluster_identifier: str = ""  # Data API, provisioned
    redshift_workgroup_name: str = ""  # Data API, serverless
    redshift_db_user: str = ""  # Data API, provisioned with temporary credentials
    redshift_secret_arn: str = ""  # Data API, with a Secrets Manager secret
    model_name: str = "model"
    training: TrainingProfile = field(default_factory=TrainingProfile)
    inference: InferenceProfile = field(default_factory=InferenceProfile)

    def check(self) -> None:
        """Check values that types alone do not catch."""
        if not _BUCKET.match(self.bucket or ""):
            raise ConfigError(
                f"[aws] bucket = {self.bucket!r} is not an S3 bucket name: set it in astro.toml"
            )
        if not _PREFIX.match(self.prefix or ""):
            raise ConfigError(f"[aws] prefix = {self.prefix!r} must be a relative key prefix like 'mlops'")
        if self.endpoint_name and not is_valid(self.endpoint_name):
            raise ConfigError(
                f"[aws] endpoint_name = {self.endpoint_name!r} is not a SageMaker endpoint name: at most 63 "
                "letters, digits and hyphens, starting and ending with a letter or digit (or leave it empty)"
            )
        if self.warehouse not in WAREHOUSE_KINDS:
            raise ConfigError(f"[aws] warehouse = {self.warehouse!r} must be one of {list(WAREHOUSE_KINDS)}")
        for name, profile in (("training", self.training), ("inference", self.inference)):
            if not _INSTANCE.match(profile.instance_type):
                raise ConfigError(
                    f"[hardware.{name}.aws] instance_type = {profile.instance_type!r} is not a SageMaker "
                    "instance type like 'ml.m5.xlarge'"
                )
            if not 1 <= profile.instance_count <= 100:
                raise ConfigError(f"[hardware.{name}.aws] instance_count must be between 1 and 100")
        t = self.training
        if t.use_spot and t.max_wait_seconds < t.max_runtime_seconds:
            raise ConfigError(
                "[hardware.training.aws] max_wait_seconds must be >= max_runtime_seconds with use_spot "
                f"(got {t.max_wait_seconds} < {t.max_runtime_seconds})"
            )
        if t.checkpoint_s3_uri and not t.checkpoint_s3_uri.startswith("s3://"):
            raise ConfigError("[hardware.training.aws] checkpoint_s3_uri must start with s3://")
        if self.warehouse == "redshift_data_api" and not (
            self.redshift_cluster_identifier or self.redshift_workgroup_name
        ):
            raise ConfigError(
                "[aws] warehouse = 'redshift_data_api' needs redshift_cluster_identifier or "
                "redshift_workgroup_name"
            )

    def require_role(self) -> str:
        """Return the SageMaker execution role, or say how to set it."""
        if not self.role_arn.startswith("arn:"):
            raise ConfigError(
                "[aws] role_arn is not set: SageMaker jobs and models need an execution role ARN "
                "(arn:aws:iam::<account>:role/<name>) with access to the bucket"
            )
        return self.role_arn

    @property
    def endpoint(self) -> str:
        """The SageMaker endpoint name."""
        return self.endpoint_name or sagemaker_name(f"mlops-{self.model_name}")

    def image(self, scope: str, region: str) -> str:
        """The scikit-learn container image for ``scope`` (training or inference) in ``region``."""
        explicit = self.training_image if scope == "training" else self.inference_image
        return explicit or sklearn_image(self.sklearn_version, region, scope)


def sklearn_image(version: str, region: str, scope: str) -> str:
    """The prebuilt SageMaker scikit-learn container's URI.

    The registry accounts come from the ``sagemaker`` package's own table, read as a file:
    importing the package takes seconds.

    Raises:
        ConfigError: the version or region is unknown; set ``[aws] training_image`` /
            ``inference_image`` instead.
    """
    spec = importlib.util.find_spec("sagemaker")
    table: dict[str, Any] = {}
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "core" / "image_uri_config" / "sklearn.json"
        if path.is_file():
            table = json.loads(path.read_text())
            break
    versions = table.get(scope, {}).get("versions", {})
    entry = versions.get(version)
    account = (entry or {}).get("registries", {}).get(region)
    if not account:
        raise ConfigError(
            f"no SageMaker scikit-learn {scope} image for version {version!r} in region {region!r} "
            f"(known versions: {sorted(versions)}): set [aws] sklearn_version, or the image URI in "
            f"[aws] {scope}_image"
        )
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{domain}/{entry['repository']}:{version}-cpu-py3"
