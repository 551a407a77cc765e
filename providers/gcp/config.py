"""The ``[gcp]`` section of astro.toml, checked once: typed settings of the GCP provider.

Credentials are never here: they come from the Airflow Connection named by ``conn_id`` (type
``google_cloud_platform``: a key file or JSON, workload identity, or anonymous for emulators).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from core.errors import ConfigError
from providers.settings import HardwareProfile, ProviderSettings

# https://cloud.google.com/storage/docs/buckets#naming (names without dots: at most 63)
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9_.\-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9_.=\-]+(/[A-Za-z0-9_.=\-]+)*$")
_PROJECT = re.compile(r"^[a-z][a-z0-9\-]{4,28}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
_DATASET = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
# Vertex AI display names take any text up to 128 characters; endpoint names here stay simple
_DISPLAY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,127}$")
_API_ENDPOINT = re.compile(r"^(https?://)?[A-Za-z0-9.\-]+(:[0-9]{1,5})?$")
_SKLEARN_VERSION = re.compile(r"^[0-9]+\.[0-9]+$")


@dataclass(frozen=True)
class GcpSettings(ProviderSettings, cloud="gcp"):
    """Everything the GCP provider reads from astro.toml's ``[gcp]`` (no credentials).

    Attributes:
        conn_id: the Airflow Connection (``google_cloud_platform``) with the credentials.
        project: the project of the bucket, dataset and Vertex AI resources (empty: the
            connection's ``project``).
        region: the Vertex AI location (``europe-west1``).
        bucket: the GCS bucket of the provider's objects.
        prefix: the folder of the provider's objects in the bucket.
        dataset: the BigQuery dataset of the warehouse's tables (created when missing).
        bigquery_location: the dataset's location (empty: ``region``).
        vertex_api_endpoint: the Vertex AI API's host (empty: ``<region>-aiplatform.googleapis.com``;
            a Private Service Connect endpoint, or a local stand-in in the tests).
        monitoring_api_endpoint: the Cloud Monitoring API's host (empty:
            ``monitoring.googleapis.com``; a local stand-in in the tests).
        endpoint_name: the Vertex AI endpoint's display name (empty: ``mlops-<model_name>``).
        sklearn_version: the prebuilt scikit-learn containers' version (``1.6``).
        training_image: the training container's URI (empty: the prebuilt scikit-learn one).
        serving_image: the serving container's URI (empty: the prebuilt scikit-learn one).
        service_account: the service account jobs and deployed models run as (empty: Vertex
            AI's default).
        poll_seconds: how often a deferred wait asks Vertex AI about a job.
        model_name: ``[project] model_name`` (the Vertex AI model's ID).
        training: ``[hardware.training.gcp]``.
        inference: ``[hardware.inference.gcp]``.
    """

    conn_id: str = "google_cloud_default"
    project: str = ""
    region: str = "europe-west1"
    bucket: str = ""
    prefix: str = "mlops"
    dataset: str = "mlops"
    bigquery_location: str = ""
    vertex_api_endpoint: str = ""
    monitoring_api_endpoint: str = ""
    endpoint_name: str = ""
    sklearn_version: str = "1.6"
    training_image: str = ""
    serving_image: str = ""
    service_account: str = ""
    poll_seconds: int = 30
    model_name: str = "model"
    training: TrainingProfile = field(default_factory=lambda: TrainingProfile())
    inference: InferenceProfile = field(default_factory=lambda: InferenceProfile())

    def check(self) -> None:
        """Check values that types alone do not catch.

        Raises:
            ConfigError: naming the ``[gcp]`` key and what a valid value looks like.
        """
        checks = [
            ("bucket", _BUCKET.match(self.bucket), "a GCS bucket name like 'my-mlops-bucket'"),
            ("prefix", _PREFIX.match(self.prefix), "a relative object prefix like 'mlops'"),
            ("region", _REGION.match(self.region), "a Vertex AI region like 'europe-west1'"),
            ("project", not self.project or _PROJECT.match(self.project),
             "a project ID like 'my-project-123', or empty for the connection's project"),
            ("dataset", _DATASET.match(self.dataset), "a BigQuery dataset ID (letters, digits, _)"),
            ("bigquery_location", not self.bigquery_location or re.match(r"^[A-Za-z0-9\-]+$",
             self.bigquery_location), "a BigQuery location like 'EU' or 'europe-west1', or empty"),
            ("vertex_api_endpoint", not self.vertex_api_endpoint or _API_ENDPOINT.match(
             self.vertex_api_endpoint), "a host[:port] or http(s)://host[:port], or empty"),
            ("monitoring_api_endpoint", not self.monitoring_api_endpoint or _API_ENDPOINT.match(
             self.monitoring_api_endpoint), "a host[:port] or http(s)://host[:port], or empty"),
            ("endpoint_name", not self.endpoint_name or _DISPLAY_NAME.match(self.endpoint_name),
             "letters, digits, '_' and '-' (at most 128), or empty for mlops-<model_name>"),
            ("sklearn_version", _SKLEARN_VERSION.match(self.sklearn_version),
             "a scikit-learn version of the prebuilt containers like '1.6'"),
            ("poll_seconds", 1 <= self.poll_seconds <= 3600, "a number of seconds between 1 and 3600"),
        ]  # fmt: skip
        for key, ok, expected in checks:
            if not ok:
                raise ConfigError(f"[gcp] {key} = {getattr(self, key)!r} is not valid: set it to {expected}")

    @property
    def endpoint_display_name(self) -> str:
        """The Vertex AI endpoint's display name."""
        return self.endpoint_name or f"mlops-{self.model_name}".replace("_", "-")

    @property
    def location(self) -> str:
        """The BigQuery dataset's location."""
        return self.bigquery_location or self.region

    def image(self, scope: str) -> str:
        """The container of ``scope`` (``training`` or ``prediction``): set, or the prebuilt one."""
        explicit = self.training_image if scope == "training" else self.serving_image
        return explicit or prebuilt_sklearn_image(scope, self.sklearn_version, self.region)


def prebuilt_sklearn_image(scope: str, version: str, region: str) -> str:
    """Vertex AI's prebuilt scikit-learn container for ``scope`` (training or prediction).

    The images live in the multi-region registry nearest the region (us, europe, asia).
    """
    if scope not in ("training", "prediction"):
        raise ValueError(f"scope must be 'training' or 'prediction', not {scope!r}")
    area = region.split("-", 1)[0]
    registry = area if area in ("us", "europe", "asia") else "us"
    return f"{registry}-docker.pkg.dev/vertex-ai/{scope}/sklearn-cpu.{version.replace('.', '-')}:latest"


_MACHINE = re.compile(r"^[a-z][a-z0-9]*-[a-z0-9\-]+$")
_ACCELERATOR = re.compile(r"^(NVIDIA_[A-Z0-9_]+|TPU_[A-Z0-9_]+)$")


@dataclass(frozen=True)
class TrainingProfile(HardwareProfile, use="training", cloud="gcp"):
    """``[hardware.training.gcp]``: the machine a Vertex AI custom job runs on.

    Attributes:
        machine_type: a Compute Engine machine type (``n1-standard-4``).
        accelerator_type: a Vertex AI accelerator (``NVIDIA_TESLA_T4``), or empty for none.
        accelerator_count: how many of them (0 without an accelerator).
        spot: run on Spot VMs (cheaper, may be preempted: the job is retried by Vertex AI).
        max_run_seconds: the job's timeout.
    """

    machine_type: str = "n1-standard-4"
    accelerator_type: str = ""
    accelerator_count: int = 0
    spot: bool = False
    max_run_seconds: int = 24 * 3600

    def check(self) -> None:
        """Check values that types alone do not catch.

        Raises:
            ConfigError: naming the profile's key and what a valid value looks like.
        """
        where = self.where()
        if not _MACHINE.match(self.machine_type):
            raise ConfigError(f"{where} machine_type = {self.machine_type!r} is not a machine type like "
                              "'n1-standard-4'")  # fmt: skip
        if self.accelerator_type and not _ACCELERATOR.match(self.accelerator_type):
            raise ConfigError(f"{where} accelerator_type = {self.accelerator_type!r} is not a Vertex AI "
                              "accelerator like 'NVIDIA_TESLA_T4' (or leave it empty)")  # fmt: skip
        if bool(self.accelerator_type) != (self.accelerator_count > 0):
            raise ConfigError(f"{where} accelerator_type and accelerator_count go together (a type and a "
                              "count of 1 or more, or neither)")  # fmt: skip
        if not 60 <= self.max_run_seconds <= 30 * 24 * 3600:
            raise ConfigError(f"{where} max_run_seconds must be between 60 and {30 * 24 * 3600}")


@dataclass(frozen=True)
class InferenceProfile(HardwareProfile, use="inference", cloud="gcp"):
    """``[hardware.inference.gcp]``: the machine of the endpoint's and batch prediction's replicas."""

    machine_type: str = "n1-standard-2"

    def check(self) -> None:
        """Check the machine type.

        Raises:
            ConfigError: the machine type is not valid.
        """
        if not _MACHINE.match(self.machine_type):
            raise ConfigError(
                f"[hardware.inference.gcp] machine_type = {self.machine_type!r} is not a machine type "
                "like 'n1-standard-2'"
            )
