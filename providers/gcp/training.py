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
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from core.ml.dataset import spec_from_json
from providers import job_outputs
from providers.base import JobHandle, JobStatus, TrainingJobSpec
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
from providers.job_outputs import Attempt, BucketTrainingJobs, OutputLayout

log = logging.getLogger(__name__)


class TrainingFailedError(job_outputs.TrainingFailedError):
    """The Vertex AI custom job failed or was cancelled (retryable: the retry is a new attempt)."""


def attempt_name(job_name: str, attempt: int) -> str:
    """The display name of a job's attempt: the job's name, then ``-a2``, ``-a3``."""
    return job_name if attempt == 1 else f"{job_name}-a{attempt}"


class VertexTrainingJobs(BucketTrainingJobs):
    """Submits, waits for (deferred, by the task) and collects Vertex AI custom jobs."""

    backend = "vertex_ai"
    service = "Vertex AI job"
    console = "the Vertex AI custom jobs"
    failed_error = TrainingFailedError

    def __init__(self, gcp: GcpSettings, project: str, storage: GcsObjectStore) -> None:
        self.gcp = gcp
        self.project = project
        self.storage = storage

    @cached_property
    def client(self) -> Any:
        """The JobServiceClient (REST, the Connection's credentials)."""
        return vertex_client("job", self.gcp)

    # -- the primitives of BucketTrainingJobs ----------------------------------------------

    def _attempt_name(self, job_name: str, attempt: int) -> str:
        return attempt_name(job_name, attempt)

    def _find(self, spec: TrainingJobSpec, name: str) -> Attempt | None:
        """A job of the display name ``name`` that is alive (or, if all ended badly, one of those)."""
        jobs = jobs_named(self.client.list_custom_jobs, location_path(self.gcp, self.project), name)
        alive = [job for job in jobs if state_name(job) not in ENDED_BADLY]
        job = alive[0] if alive else jobs[0] if jobs else None
        if job is None:
            return None
        return Attempt(state_name(job), not alive, self._handle(job.name, name, reused=True))

    def _start(self, spec: TrainingJobSpec, name: str) -> JobHandle:
        """Create the custom job on the training hardware profile (checked when the provider was built)."""
        profile = self.gcp.training
        job = self.client.create_custom_job(
            parent=location_path(self.gcp, self.project), custom_job=self.request(spec, name, profile)
        )
        log.info("Started Vertex AI custom job %s (%s) on %s%s", job.name, name,
                 profile.machine_type, " (Spot VMs)" if profile.spot else "")  # fmt: skip
        return self._handle(job.name, name, reused=False)

    def _reused(self, spec: TrainingJobSpec, marker: Mapping[str, Any]) -> JobHandle:
        return self._handle(marker["job"], marker.get("display_name", spec.job_name), reused=True)

    def status(self, handle: JobHandle) -> JobStatus:
        """The custom job's state in the job model's words (its error message if it failed)."""
        return job_status(self.client.get_custom_job(name=handle.details["job"]))

    def _bring_outputs(
        self, spec: TrainingJobSpec, handle: JobHandle, layout: OutputLayout
    ) -> dict[str, Any]:
        """Copy the job's model folder (``AIP_MODEL_DIR``) into the output prefix."""
        job = self.client.get_custom_job(name=handle.details["job"])
        if state_name(job) != SUCCEEDED:
            raise TrainingFailedError(
                f"Vertex AI custom job {job.name} ({handle.name}) ended {state_name(job)}: "
                f"{job.error.message or 'no reason given'}; the task's retry starts a new attempt"
            )
        model_dir = f"{spec.output_prefix}/vertex/model"
        missing = layout.missing_in(model_dir)
        if missing:
            raise TrainingFailedError(
                f"{self.storage.uri(model_dir)} lacks {missing}: was it written by core/ml/train.py?"
            )
        layout.copy_from(model_dir)
        machine = job.job_spec.worker_pool_specs[0].machine_spec
        return {
            "job": job.name,
            "display_name": job.display_name,
            "machine_type": machine.machine_type,
            "spot": getattr(job.job_spec.scheduling.strategy, "name", "") == "SPOT",
            "started": job.start_time.isoformat() if job.start_time else "",
            "ended": job.end_time.isoformat() if job.end_time else "",
        }

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
