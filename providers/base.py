"""The provider contract: what every backend (local, aws, gcp, azure) offers the stages.

A provider is four capabilities bundled in :class:`Provider`:

- ``storage``: an :class:`ObjectStore` (a folder, S3, GCS, Blob Storage);
- ``training``: :class:`TrainingJobs` (a subprocess, SageMaker, Vertex AI, Azure ML);
- ``registry``, ``endpoint``, ``batch``: the ML platform (:class:`ModelRegistry`,
  :class:`OnlineEndpoint`, :class:`BatchScorer`);
- ``warehouse``: a :class:`Warehouse` (DuckDB, Redshift, BigQuery, Synapse).

Every write is idempotent: keys, job names and registry keys come from the run's week, so a
re-run overwrites or reuses instead of duplicating. Nothing here imports a cloud SDK.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from core.errors import MLOpsError

_KEY = re.compile(r"^[A-Za-z0-9_.=\-]+(/[A-Za-z0-9_.=\-]+)*\Z")  # \Z: no trailing newline
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}\Z")
LOGICAL_TYPES = ("string", "int", "float", "bool", "timestamp")
ANY_VERSION = object()  # set_alias: move the alias whatever it points at now


class PreconditionFailedError(MLOpsError):
    """A conditional write was refused: the object changed (or exists, or is gone) since it was read.

    Retryable: read the object again with ``get_with_version`` and decide again.
    """


def check_key(key: str) -> str:
    """Check an object key: relative, no ``..``, no empty parts, safe characters only.

    Raises:
        ValueError: the key could escape the store's root or is not portable across clouds.
    """
    if not isinstance(key, str) or not _KEY.match(key) or any(p in ("", ".", "..") for p in key.split("/")):
        raise ValueError(
            f"object key {key!r} is not a safe relative key like 'raw/week=2026-W05/data.parquet'"
        )
    return key


def check_identifier(name: str) -> str:
    """Check a table or column name before it is put into SQL.

    Raises:
        ValueError: the name is not lowercase letters, digits and underscores.
    """
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a valid table or column name (lowercase letters, digits, _)")
    return name


# --------------------------------------------------------------------------------------------
# storage


@runtime_checkable
class ObjectStore(Protocol):
    """A flat key -> bytes store. Writes are atomic: a reader never sees half an object."""

    def uri(self, key: str) -> str:
        """Return the store's address of ``key`` (``file://``, ``s3://``, ``gs://``, ...)."""

    def put_bytes(self, key: str, data: bytes) -> str:
        """Write (or overwrite) an object atomically; return its URI."""

    def get_bytes(self, key: str) -> bytes:
        """Read an object. Raises FileNotFoundError if it does not exist."""

    def put_file(self, key: str, path: Path) -> str:
        """Upload a local file atomically; return its URI."""

    def get_file(self, key: str, path: Path) -> Path:
        """Download an object to a local path; return the path."""

    def exists(self, key: str) -> bool:
        """Tell whether an object exists."""

    def list_keys(self, prefix: str = "") -> list[str]:
        """Return the keys under a prefix, sorted."""

    def delete(self, key: str) -> None:
        """Delete an object if it exists."""

    # conditional writes: the compare-and-set that the alias ledger (providers/ledger.py) and
    # any other read-modify-write of one object build on. A version is an opaque string the
    # store hands out (the local folder: the content's sha256; S3 and Blob: the ETag; GCS: the
    # generation); callers only compare it, pass it back, and never parse it. A store may
    # derive it from the content, so writing back the same bytes may give back the same
    # version: a document that must never repeat carries its own counter (the ledger: its
    # history).

    def get_with_version(self, key: str) -> tuple[bytes, str]:
        """Read an object and the version of exactly these bytes.

        Raises:
            FileNotFoundError: the object does not exist.
        """

    def put_if_match(self, key: str, data: bytes, expected_version: str | None) -> str:
        """Write an object only if it is still at ``expected_version``; return the new version.

        ``expected_version=None`` creates the object only if it does not exist. The check and
        the write are one atomic step, also against writers in other processes and machines.

        Raises:
            PreconditionFailedError: the object is at another version, was deleted, or (with
                None) exists already. Nothing was written.
        """


# --------------------------------------------------------------------------------------------
# compute: training jobs


@dataclass(frozen=True)
class TrainingJobSpec:
    """One training job.

    ``job_name`` is derived from the week and the inputs, so a re-run of the same week with the
    same inputs finds the finished job instead of starting another.
    """

    job_name: str
    train_data_key: str  # a Parquet object in storage (training rows, features + label)
    validation_data_key: str  # a Parquet object in storage (in-window holdout rows)
    output_prefix: str  # the model artifact is written under this storage prefix
    hyperparameters: Mapping[str, Any]  # the estimator's import path ("estimator") and parameters
    hardware: Mapping[str, Any]
    dataset_spec: str = ""  # the dataset spec as JSON (DatasetSpec.to_json): shipped with the code


@dataclass(frozen=True)
class TrainingJobResult:
    """What a finished training job produced."""

    job_name: str
    model_key: str  # the artifact (model.joblib) in storage
    metrics: Mapping[str, float]
    reused: bool  # True when the job had already finished and was not run again
    details: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# the job model: every long wait (training, batch scoring, endpoint rollout) is
# submit -> status -> collect; Airflow's triggerer polls ``status`` (providers/jobs.py)


class JobState(StrEnum):
    """Where a long-running job is: the only words of a cloud's job states the stages see."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class JobHandle:
    """A submitted job, as the provider that submitted it can find it again.

    It travels through Airflow's triggerer and back into the resumed task, so everything in it
    is JSON-safe: ``details`` holds the provider's own words (an ARN, an output prefix, an
    endpoint name) that the stages never read.
    """

    kind: str  # "training" | "batch" | "rollout"
    name: str  # the job's name in the service: stable per week and inputs
    details: Mapping[str, Any] = field(default_factory=dict)
    poll_seconds: float = 30  # how often the triggerer asks for the status

    def to_dict(self) -> dict[str, Any]:
        """The handle as JSON-safe values (for a trigger's arguments and XComs)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "details": dict(self.details),
            "poll_seconds": self.poll_seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobHandle:
        """The handle that :meth:`to_dict` wrote."""
        return cls(
            kind=str(data["kind"]),
            name=str(data["name"]),
            details=dict(data.get("details") or {}),
            poll_seconds=float(data.get("poll_seconds", 30)),
        )


@dataclass(frozen=True)
class JobStatus:
    """A job's state; ``reason`` is the service's own words when it failed."""

    state: JobState
    reason: str = ""

    @property
    def ended(self) -> bool:
        """True once the job succeeded or failed."""
        return self.state is not JobState.RUNNING


@runtime_checkable
class TrainingJobs(Protocol):
    """Runs the project's one training script (core/ml/train.py) on the provider's compute.

    A cloud submits a job and returns at once; the task then waits in Airflow's triggerer. The
    local provider trains in ``submit`` itself and returns a handle that has succeeded already.
    """

    def submit(self, spec: TrainingJobSpec) -> JobHandle:
        """Start the job named ``spec.job_name``, or find it (running or ended) on a re-run."""

    def status(self, handle: JobHandle) -> JobStatus:
        """Where the job is now (called from the triggerer: no side effects)."""

    def collect(self, spec: TrainingJobSpec, handle: JobHandle) -> TrainingJobResult:
        """Bring the ended job's artifact and metrics into storage under ``spec.output_prefix``.

        Raises:
            MLOpsError: the job failed or was stopped; the message carries the service's reason.
        """


# --------------------------------------------------------------------------------------------
# ML platform: registry, endpoint, batch scoring


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version."""

    model_name: str
    version: str
    artifact_uri: str  # where the registry stored the artifact
    sha256: str  # of model.joblib, checked before every load
    registry_key: str  # idempotency key: the same key never makes a second version
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    created_at: str = ""


@dataclass(frozen=True)
class AliasChange:
    """One entry of an alias's history: who or what moved it, when and why."""

    model_name: str
    alias: str
    version: str
    previous_version: str | None
    reason: str
    actor: str
    changed_at: str
    code: str = ""  # why, for programs (the UI): e.g. lifecycle.history.ProductionMove; "" before codes


@runtime_checkable
class ModelRegistry(Protocol):
    """Model versions, the ``production`` alias and its history (for rollback)."""

    def register(
        self,
        model_name: str,
        model_key: str,
        registry_key: str,
        metrics: Mapping[str, float],
        params: Mapping[str, Any],
        tags: Mapping[str, str],
    ) -> ModelVersion:
        """Register the artifact at ``model_key`` (in storage) with its run record.

        Idempotent: a second call with the same ``registry_key`` returns the existing version.
        """

    def get_version(self, model_name: str, version: str) -> ModelVersion:
        """Return one version. Raises KeyError if it does not exist."""

    def list_versions(self, model_name: str) -> list[ModelVersion]:
        """Return every version of a model, oldest first."""

    def get_alias(self, model_name: str, alias: str) -> ModelVersion | None:
        """Return the version an alias points to, or None."""

    def set_alias(
        self,
        model_name: str,
        alias: str,
        version: str,
        reason: str,
        actor: str,
        expected_current: str | None | object = ANY_VERSION,
        code: str = "",
    ) -> AliasChange | None:
        """Point an alias at a version and append the change to its history, atomically.

        Args:
            model_name: the registered model.
            alias: the alias, e.g. ``production``.
            version: the version to point it at.
            reason: why (shown in the history: gate passed, rollback, ...).
            actor: who or what moved it (a DAG run id, a user).
            expected_current: move only if the alias points at this version now (None: points
                nowhere); the default moves it whatever it points at. This compare-and-set keeps
                concurrent or stale runs from undoing a newer move.
            code: why, as a code programs read (the prose ``reason`` is for people).

        Returns:
            The change, or None (nothing recorded) when the alias already points at ``version``
            or does not point at ``expected_current``.
        """

    def alias_history(self, model_name: str, alias: str) -> list[AliasChange]:
        """Return the alias's changes, oldest first."""

    def fetch_artifact(self, version: ModelVersion, directory: Path) -> Path:
        """Download the version's model.joblib into ``directory`` and check its sha256.

        Raises:
            ArtifactIntegrityError: the bytes do not match the sha256 recorded at registration.
        """


@dataclass(frozen=True)
class Deployment:
    """What an online endpoint serves."""

    endpoint_name: str
    model_name: str
    version: str
    url: str
    deployed_at: str


@dataclass(frozen=True)
class ServingReport:
    """How an endpoint served a model during ``[start, end)``: traffic, errors, latency, cost.

    ``requests`` counts every answered prediction request, errors included. Latency quantiles
    are in milliseconds (None without traffic); the local endpoint's are exact to within one
    bucket of its histogram, a cloud's are its monitoring service's own. ``cost_usd`` is an
    estimate (instance hours x the cloud's list price, ``providers/<cloud>/prices.py``; None
    when no price is known); ``cost_basis`` says how it was computed and ``source`` where the
    figures came from.
    """

    model_name: str
    start: datetime
    end: datetime
    requests: int
    errors_4xx: int
    errors_5xx: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    instance_hours: float
    cost_usd: float | None
    cost_basis: str
    source: str

    @property
    def error_rate_4xx(self) -> float:
        """Share of requests answered 4xx (the caller's fault: bad rows, unknown model)."""
        return self.errors_4xx / self.requests if self.requests else 0.0

    @property
    def error_rate_5xx(self) -> float:
        """Share of requests answered 5xx (the endpoint's fault)."""
        return self.errors_5xx / self.requests if self.requests else 0.0


@runtime_checkable
class OnlineEndpoint(Protocol):
    """A real-time endpoint serving one model version."""

    def current(self, model_name: str) -> Deployment | None:
        """Return what the endpoint serves now, or None if nothing is deployed."""

    def start_rollout(self, version: ModelVersion) -> JobHandle:
        """Start serving ``version`` beside what is served now; idempotent for the version served.

        Raises:
            ArtifactIntegrityError: the version's bytes do not match its sha256 (nothing changed).
        """

    def status(self, handle: JobHandle) -> JobStatus:
        """Where the rollout is now (called from the triggerer: no side effects)."""

    def finish_rollout(self, version: ModelVersion, handle: JobHandle) -> Deployment:
        """Complete the ended rollout: the endpoint serves ``version`` (traffic moved to it).

        Raises:
            MLOpsError: the rollout failed; what was served before is still served.
        """

    def invoke(self, model_name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Send rows to the endpoint; return its answer (``model_version``, ``predictions``)."""

    def serving_report(self, model_name: str, start: datetime, end: datetime) -> ServingReport:
        """How the endpoint served ``model_name`` in ``[start, end)`` (UTC, whole hours).

        Read from the endpoint's own record (local) or the cloud's monitoring (CloudWatch, Cloud
        Monitoring, Azure Monitor): no request is sent to the endpoint, so the report is for the
        window asked whatever day it is read. A model never served in the window (no metrics)
        gets a report of zero requests, not an error.

        Raises:
            MLOpsError: the monitoring service refused or failed; the message names it.
        """


@runtime_checkable
class BatchScorer(Protocol):
    """Scores a week's rows with a model version."""

    def submit(self, version: ModelVersion, input_key: str) -> JobHandle:
        """Start scoring a Parquet input (or find the job of this version and input content).

        Raises:
            FileNotFoundError: there is no such input.
            ArtifactIntegrityError: the version's bytes do not match its sha256.
        """

    def status(self, handle: JobHandle) -> JobStatus:
        """Where the scoring job is now (called from the triggerer: no side effects)."""

    def results(self, version: ModelVersion, handle: JobHandle) -> Iterator[pd.DataFrame]:
        """Yield the ended job's prediction chunks, in the input's row order.

        Each chunk has the version's dataset spec's key column (as text) and its prediction
        columns (``DatasetSpec.prediction_columns``).

        Raises:
            MLOpsError: the job failed; the message carries the service's reason.
        """


# --------------------------------------------------------------------------------------------
# warehouse


@runtime_checkable
class Warehouse(Protocol):
    """Tables of records. Writes replace a partition in one transaction: never duplicate rows."""

    def ensure_table(self, table: str, schema: Mapping[str, str]) -> None:
        """Create the table if missing. ``schema`` maps column -> logical type (LOGICAL_TYPES)."""

    def replace_rows(
        self, table: str, where: Mapping[str, Any], rows: pd.DataFrame | Iterable[pd.DataFrame]
    ) -> int:
        """Delete the rows matching every ``where`` equality and insert ``rows``, atomically.

        ``rows`` is a frame or an iterable of frames (streamed chunks). Returns rows inserted.
        """

    def read_rows(
        self, table: str, where: Mapping[str, Any] | None = None, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Return the rows matching every ``where`` equality (all rows if None)."""

    def delete_rows(self, table: str, where: Mapping[str, Any]) -> int:
        """Delete the rows matching every ``where`` equality; return how many."""

    def query(self, sql: str, params: Mapping[str, Any]) -> pd.DataFrame:
        """Run one read-only SELECT (or WITH) statement and return its result.

        ``:name`` placeholders (outside literals and comments) take ``params[name]``, bound by
        the driver: never formatted into the SQL. Timestamps compare in UTC.

        Raises:
            ParamError: the SQL is not one SELECT/WITH statement, or uses a placeholder that
                ``params`` lacks (the message lists the supported ones).
        """


# --------------------------------------------------------------------------------------------


@dataclass
class Provider:
    """One backend's four capabilities, for one run."""

    name: str
    storage: ObjectStore
    training: TrainingJobs
    registry: ModelRegistry
    endpoint: OnlineEndpoint
    batch: BatchScorer
    warehouse: Warehouse
    details: dict[str, Any] = field(default_factory=dict)
