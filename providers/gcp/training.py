"""Training on GCP: a Vertex AI custom job running core/ml/train.py from the project's package.

The job installs the package of providers/gcp/package.py in Vertex AI's prebuilt scikit-learn
training container and runs its ``vertex_train`` module on the week's Parquet inputs in GCS,
with the *training* hardware profile (machine type, accelerators, Spot VMs, timeout). Vertex AI
names a job by a number it chooses, so the job carries the stage's name as its display name and
a label: a re-run lists the jobs of that name and reuses a running or succeeded one instead of
starting another. A failed or cancelled attempt stays; the retry is ``<name>-a2`` (then ``-a3``).
"""

from __future__ import annotations

import json
import logging
from functools import cached_property
from typing import Any

from core.errors import MLOpsError
from core.ml.dataset import spec_from_json
from providers.base import JobHandle, JobStatus, TrainingJobResult, TrainingJobSpec
from providers.bundle import OUTPUT_FILES, SUCCESS_MARKER
from providers.gcp.config import GcpSettings, TrainingProfile
from providers.gcp.package import ENTRY_MODULE, upload_package
from providers.gcp.registry import registry_label
from providers.gcp.storage import GcsObjectStore
from providers.gcp.vertex import (
    ENDED_BADLY,
    SUCCEEDED,
    job_status,
    jobs_named,
    location_path,
    state_name,
    vertex_client,
)

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3


class TrainingFailedError(MLOpsError):
    """The Vertex AI custom job failed or was cancelled (retryable: the retry is a new attempt)."""


def attempt_name(job_name: str, attempt: int) -> str:
    """The display name of a job's attempt: the job's name, then ``-a2``, ``-a3``."""
    return job_name if attempt == 1 else f"{job_name}-a{attempt}"


class VertexTrainingJobs:
    """Submits, waits for (deferred, by the task) and collects Vertex AI custom jobs."""

    def __init__(self, gcp: GcpSettings, project: str, storage: GcsObjectStore) -> None:
        self.gcp = gcp
        self.project = project
        self.storage = storage

    @cached_property
    def client(self) -> Any:
        """The JobServiceClient (REST, the Connection's credentials)."""
        return vertex_client("job", self.gcp)

    # -- the contract ----------------------------------------------------------------------

    def submit(self, spec: TrainingJobSpec) -> JobHandle:
        """Start the week's job, or find it (running or succeeded) from an earlier try.

        Raises:
            FileNotFoundError: the job's input is not in GCS.
            ConfigError: the training hardware profile is invalid.
            TrainingFailedError: every attempt failed.
        """
        marker_key = f"{spec.output_prefix}/{SUCCESS_MARKER}"
        if self.storage.exists(marker_key):
            marker = json.loads(self.storage.get_bytes(marker_key))
            return self._handle(marker["job"], marker.get("display_name", spec.job_name), reused=True)
        for key in (spec.train_data_key, spec.validation_data_key):
            if not self.storage.exists(key):
                raise FileNotFoundError(
                    f"training input {self.storage.uri(key)} does not exist: run validate_data first"
                )
        profile = TrainingProfile.from_mapping(spec.hardware)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            display_name = attempt_name(spec.job_name, attempt)
            jobs = jobs_named(
                self.client.list_custom_jobs, location_path(self.gcp, self.project), display_name
            )
            alive = [job for job in jobs if state_name(job) not in ENDED_BADLY]
            if alive:
                log.info("Vertex AI job %s (%s) exists: reusing it", alive[0].name, state_name(alive[0]))
                return self._handle(alive[0].name, display_name, reused=True)
            if jobs:
                log.warning("Vertex AI job %s ended %s: the next attempt gets a new name", display_name,
                            state_name(jobs[0]))  # fmt: skip
                continue
            job = self.client.create_custom_job(
                parent=location_path(self.gcp, self.project),
                custom_job=self.request(spec, display_name, profile),
            )
            log.info("Started Vertex AI custom job %s (%s) on %s%s", job.name, display_name,
                     profile.machine_type, " (Spot VMs)" if profile.spot else "")  # fmt: skip
            return self._handle(job.name, display_name, reused=False)
        raise TrainingFailedError(
            f"training job {spec.job_name} failed {MAX_ATTEMPTS} times; see the errors of the Vertex AI "
            f"custom jobs {attempt_name(spec.job_name, 1)}, {attempt_name(spec.job_name, 2)} ... and fix it"
        )

    def status(self, handle: JobHandle) -> JobStatus:
        """The custom job's state in the job model's words (its error message if it failed)."""
        return job_status(self.client.get_custom_job(name=handle.details["job"]))

    def collect(self, spec: TrainingJobSpec, handle: JobHandle) -> TrainingJobResult:
        """Copy the job's model folder into ``spec.output_prefix`` (the marker last).

        Raises:
            TrainingFailedError: the job did not succeed, or wrote no model folder.
        """
        marker_key = f"{spec.output_prefix}/{SUCCESS_MARKER}"
        if not self.storage.exists(marker_key):
            job = self.client.get_custom_job(name=handle.details["job"])
            if state_name(job) != SUCCEEDED:
                raise TrainingFailedError(
                    f"Vertex AI custom job {job.name} ({handle.name}) ended {state_name(job)}: "
                    f"{job.error.message or 'no reason given'}; the task's retry starts a new attempt"
                )
            model_dir = f"{spec.output_prefix}/vertex/model"
            missing = [name for name in OUTPUT_FILES if not self.storage.exists(f"{model_dir}/{name}")]
            if missing:
                raise TrainingFailedError(
                    f"{self.storage.uri(model_dir)} lacks {missing}: was it written by core/ml/train.py?"
                )
            for name in OUTPUT_FILES:
                self.storage.put_bytes(
                    f"{spec.output_prefix}/{name}", self.storage.get_bytes(f"{model_dir}/{name}")
                )
            machine = job.job_spec.worker_pool_specs[0].machine_spec
            marker = {
                "job": job.name,
                "display_name": job.display_name,
                "machine_type": machine.machine_type,
                "spot": getattr(job.job_spec.scheduling.strategy, "name", "") == "SPOT",
                "started": job.start_time.isoformat() if job.start_time else "",
                "ended": job.end_time.isoformat() if job.end_time else "",
            }
            self.storage.put_bytes(marker_key, json.dumps(marker, sort_keys=True).encode())
        marker = json.loads(self.storage.get_bytes(marker_key))
        metrics = json.loads(self.storage.get_bytes(f"{spec.output_prefix}/metrics.json"))
        return TrainingJobResult(
            job_name=spec.job_name,
            model_key=f"{spec.output_prefix}/model.joblib",
            metrics=metrics,
            reused=bool(handle.details.get("reused")),
            details={"backend": "vertex_ai", **marker},
        )

    def _handle(self, job: str, display_name: str, reused: bool) -> JobHandle:
        return JobHandle(
            kind="training", name=display_name, details={"job": job, "reused": reused},
            poll_seconds=self.gcp.poll_seconds,
        )  # fmt: skip

    # -- Vertex AI -------------------------------------------------------------------------

    def request(self, spec: TrainingJobSpec, display_name: str, profile: TrainingProfile) -> dict[str, Any]:
        """The CustomJob of ``spec``: the package's entry module in the prebuilt training container."""
        package = upload_package(self.storage, spec_from_json(spec.dataset_spec))
        machine: dict[str, Any] = {"machine_type": profile.machine_type}
        if profile.accelerator_type:
            machine.update(
                accelerator_type=profile.accelerator_type, accelerator_count=profile.accelerator_count
            )
        job_spec: dict[str, Any] = {
            "worker_pool_specs": [{
                "machine_spec": machine,
                "replica_count": 1,
                "python_package_spec": {
                    "executor_image_uri": self.gcp.image("training"),
                    "package_uris": [package],
                    "python_module": ENTRY_MODULE,
                    "args": [
                        "--train", self.storage.uri(spec.train_data_key),
                        "--validation", self.storage.uri(spec.validation_data_key),
                        "--hyperparameters", json.dumps(dict(spec.hyperparameters), sort_keys=True),
                    ],
                },
            }],
            # Vertex AI sets AIP_MODEL_DIR to <this>/model
            "base_output_directory": {"output_uri_prefix": self.storage.uri(f"{spec.output_prefix}/vertex")},
            "scheduling": {
                "timeout": f"{profile.max_run_seconds}s", "strategy": "SPOT" if profile.spot else "STANDARD",
            },
        }  # fmt: skip
        if self.gcp.service_account:
            job_spec["service_account"] = self.gcp.service_account
        return {
            "display_name": display_name,
            "job_spec": job_spec,
            "labels": {"mlops_job": registry_label(spec.job_name), "managed_by": "mlops"},
        }
