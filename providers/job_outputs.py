"""A training job's outputs in storage, and the training contract derived from a cloud's primitives.

Every provider ends a training job the same way: the files core/ml/train.py wrote
(``providers.bundle.OUTPUT_FILES``) are copied to the job's output prefix in storage, then the
success marker (``_SUCCESS``, a JSON record of the job) goes last, so a job killed half-way
leaves no marker and a finished one is found again. :class:`OutputLayout` is that folder;
:class:`BucketTrainingJobs` derives ``submit`` (reuse, input check, named attempts) and
``collect`` (the tail: outputs, marker, metrics, result) from four primitives a cloud writes:
find a job by name, start one, read its state, and bring a succeeded job's model folder in.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from core.errors import MLOpsError
from providers.base import JobHandle, JobStatus, ObjectStore, TrainingJobResult, TrainingJobSpec
from providers.bundle import OUTPUT_FILES, SUCCESS_MARKER

log = logging.getLogger(__name__)


class TrainingFailedError(MLOpsError):
    """The training job failed or was stopped (retryable: the retry is a new attempt)."""


@dataclass(frozen=True)
class OutputLayout:
    """The output prefix of one training job: ``model.joblib``, ``metrics.json``, ... and ``_SUCCESS``."""

    storage: ObjectStore
    prefix: str

    @property
    def marker_key(self) -> str:
        """The success marker's key (written last)."""
        return f"{self.prefix}/{SUCCESS_MARKER}"

    @property
    def model_key(self) -> str:
        """The model artifact's key."""
        return f"{self.prefix}/model.joblib"

    def finished(self) -> bool:
        """Tell whether the job's outputs are complete (the marker exists)."""
        return self.storage.exists(self.marker_key)

    def marker(self) -> dict[str, Any]:
        """The record the marker holds (the job's name and the service's facts)."""
        record: dict[str, Any] = json.loads(self.storage.get_bytes(self.marker_key))
        return record

    def missing_in(self, folder_key: str) -> list[str]:
        """The output files that the storage folder ``folder_key`` lacks."""
        return [name for name in OUTPUT_FILES if not self.storage.exists(f"{folder_key}/{name}")]

    def copy_from(self, folder_key: str) -> None:
        """Copy the output files from a storage folder (where the job wrote them) into the layout."""
        for name in OUTPUT_FILES:
            self.storage.put_bytes(f"{self.prefix}/{name}", self.storage.get_bytes(f"{folder_key}/{name}"))

    def upload_from(self, folder: Path) -> None:
        """Upload the output files from a local folder into the layout."""
        for name in OUTPUT_FILES:
            self.storage.put_file(f"{self.prefix}/{name}", folder / name)

    def seal(self, record: Mapping[str, Any]) -> None:
        """Write the success marker, after every output file."""
        self.storage.put_bytes(self.marker_key, json.dumps(dict(record), sort_keys=True).encode())

    def result(
        self, spec: TrainingJobSpec, handle: JobHandle, details: Mapping[str, Any]
    ) -> TrainingJobResult:
        """The finished job's result: its model key, the metrics train.py wrote, ``details``."""
        metrics = json.loads(self.storage.get_bytes(f"{self.prefix}/metrics.json"))
        return TrainingJobResult(
            job_name=spec.job_name,
            model_key=self.model_key,
            metrics=metrics,
            reused=bool(handle.details.get("reused")),
            details=dict(details),
        )


@dataclass(frozen=True)
class Attempt:
    """A job the service knows under an attempt's name.

    Attributes:
        state: the service's own word for where it is (``InProgress``, ``JOB_STATE_FAILED``).
        ended_badly: it failed or was stopped: the next attempt gets a new name.
        handle: the handle that finds it again (a reused job's).
    """

    state: str
    ended_badly: bool
    handle: JobHandle


class BucketTrainingJobs:
    """The :class:`~providers.base.TrainingJobs` contract of a cloud whose jobs write to its bucket.

    A cloud's subclass sets :attr:`storage`, :attr:`backend`, :attr:`service` and :attr:`console` and writes
    :meth:`_attempt_name`, :meth:`_find`, :meth:`_start`, :meth:`_reused`, :meth:`_bring_outputs`
    and ``status``; ``submit`` and ``collect`` come from here.
    """

    storage: ObjectStore
    backend: ClassVar[str]  # the result's details["backend"]: "sagemaker", "vertex_ai", ...
    service: ClassVar[str]  # what the log calls a job: "SageMaker training job"
    console: ClassVar[str]  # where a failed attempt's reason is read, for the final message
    max_attempts: ClassVar[int] = 3
    failed_error: ClassVar[type[MLOpsError]] = TrainingFailedError

    # -- the primitives a cloud writes -----------------------------------------------------

    def _attempt_name(self, job_name: str, attempt: int) -> str:
        """The service's name of a job's attempt: the job's name, then ``-a2``, ``-a3``."""
        raise NotImplementedError

    def _find(self, spec: TrainingJobSpec, name: str) -> Attempt | None:
        """The job the service knows under ``name``, or None."""
        raise NotImplementedError

    def _start(self, spec: TrainingJobSpec, name: str) -> JobHandle:
        """Start the job ``name`` of ``spec`` and return at once."""
        raise NotImplementedError

    def _reused(self, spec: TrainingJobSpec, marker: Mapping[str, Any]) -> JobHandle:
        """The handle of a job whose outputs are complete (``marker`` is its record)."""
        raise NotImplementedError

    def _bring_outputs(
        self, spec: TrainingJobSpec, handle: JobHandle, layout: OutputLayout
    ) -> dict[str, Any]:
        """Put the ended job's output files into ``layout``; return the marker's record.

        Raises:
            MLOpsError: the job did not succeed (with the service's reason), or wrote no model.
        """
        raise NotImplementedError

    def status(self, handle: JobHandle) -> JobStatus:
        """Where the job is now (called from the triggerer: no side effects)."""
        raise NotImplementedError

    # -- derived: the contract -------------------------------------------------------------

    def submit(self, spec: TrainingJobSpec) -> JobHandle:
        """Start the week's job, or find it (running or completed) from an earlier try.

        A failed or stopped attempt keeps its name, so the next one is ``<name>-a2``.

        Raises:
            FileNotFoundError: the job's input is not in storage.
            MLOpsError: every attempt failed (the cloud's ``failed_error``).
        """
        layout = OutputLayout(self.storage, spec.output_prefix)
        if layout.finished():
            return self._reused(spec, layout.marker())
        for key in (spec.train_data_key, spec.validation_data_key):
            if not self.storage.exists(key):
                raise FileNotFoundError(
                    f"training input {self.storage.uri(key)} does not exist: run validate_data first"
                )
        for attempt in range(1, self.max_attempts + 1):
            name = self._attempt_name(spec.job_name, attempt)
            found = self._find(spec, name)
            if found is None:
                return self._start(spec, name)
            if found.ended_badly:
                log.warning(
                    "%s %s ended %s: the next attempt gets a new name", self.service, name, found.state
                )
                continue
            log.info("%s %s exists (%s): reusing it", self.service, name, found.state)
            return found.handle
        names = ", ".join(self._attempt_name(spec.job_name, attempt) for attempt in (1, 2))
        raise self.failed_error(
            f"training job {spec.job_name} failed {self.max_attempts} times; see the failure reasons of "
            f"{names} ... in {self.console} and fix the cause"
        )

    def collect(self, spec: TrainingJobSpec, handle: JobHandle) -> TrainingJobResult:
        """Bring the ended job's outputs into ``spec.output_prefix`` (the marker last) and read them.

        Raises:
            MLOpsError: the job did not succeed; the message carries the service's reason.
        """
        layout = OutputLayout(self.storage, spec.output_prefix)
        if not layout.finished():
            layout.seal(self._bring_outputs(spec, handle, layout))
        return layout.result(spec, handle, {"backend": self.backend, **layout.marker()})
