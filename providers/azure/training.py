"""Training on Azure: an Azure ML command job running core/ml/train.py from the code bundle.

The job runs in the curated scikit-learn environment of ``[azure] environment`` on the compute
cluster of the *training* hardware profile (VM size, instance count, low priority as the
``Spot`` job tier, the run time limit). Its inputs are blob URLs (Azure ML downloads or mounts
them): the code bundle (``providers/bundle.py``, uploaded once per content under
``_azureml/code/``), and the week's train and validation Parquet files. Its command unpacks the
bundle and runs the project's training script with only the bundle importable; the model folder
is the job's ``model`` output, a blob folder under the run's output prefix. The hyperparameters
travel in ``SM_HPS``, the JSON variable train.py reads when no flag carries them.

The job name is the stage's name for the week's inputs, so a re-run finds the job. A failed or
canceled job keeps its name: the retry submits ``<name>-a2`` (then ``-a3``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from providers import job_outputs
from providers.azure.bundle import upload_bundle
from providers.azure.config import AzureSettings
from providers.azure.storage import BlobObjectStore
from providers.azure.workspace import Workspace, word
from providers.base import JobHandle, JobState, JobStatus, TrainingJobSpec
from providers.job_outputs import Attempt, BucketTrainingJobs, OutputLayout

log = logging.getLogger(__name__)
SUCCEEDED = ("Completed",)
ENDED_BADLY = ("Failed", "Canceled", "NotResponding")
OUTPUT_FOLDER = "azureml"  # the job's model output, under the run's output prefix
# https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command: letters, digits, - and _
_NOT_ALLOWED = re.compile(r"[^a-zA-Z0-9_-]")
STDERR_FILE = "train-stderr.txt"  # the script's stderr, kept beside the model: a failure's reason
# The script's stderr goes to a file in the output folder (and, on failure, its tail to the
# job's log): the job resource carries only a status, so the task reads the reason from there.
COMMAND = (
    "mkdir -p bundle ${{outputs.model}} && tar -xzf ${{inputs.code}} -C bundle && cd bundle && "
    "python -m core.ml.train --train ${{inputs.train}} --validation ${{inputs.validation}} "
    f"--model-dir ${{{{outputs.model}}}} 2> ${{{{outputs.model}}}}/{STDERR_FILE} "
    f"|| {{ code=$?; tail -c 4000 ${{{{outputs.model}}}}/{STDERR_FILE} >&2; exit $code; }}"
)


def status_of(job: Any) -> str:
    """The job's status as the service spells it (``Completed``)."""
    return word(job.status)


class TrainingFailedError(job_outputs.TrainingFailedError):
    """The Azure ML job failed or was canceled (retryable: the retry is a new attempt)."""


def job_name(name: str, attempt: int = 1) -> str:
    """The Azure ML name of a job's attempt (letters, digits, ``-``, ``_``; at most 255 characters)."""
    base = _NOT_ALLOWED.sub("-", name).strip("-_") or "job"
    suffix = "" if attempt == 1 else f"-a{attempt}"
    return base[: 255 - len(suffix)] + suffix


class AzureMLTrainingJobs(BucketTrainingJobs):
    """Submits, watches (from the triggerer) and collects Azure ML command jobs."""

    backend = "azureml"
    service = "Azure ML job"
    console = "Azure ML studio"
    failed_error = TrainingFailedError

    def __init__(self, azure: AzureSettings, workspace: Workspace, storage: BlobObjectStore) -> None:
        self.azure = azure
        self.workspace = workspace
        self.storage = storage

    @property
    def jobs(self) -> Any:
        """MLClient's job operations."""
        return self.workspace.client.jobs

    # -- the primitives of BucketTrainingJobs ----------------------------------------------

    def _attempt_name(self, name: str, attempt: int) -> str:
        return job_name(name, attempt)

    def _find(self, spec: TrainingJobSpec, name: str) -> Attempt | None:
        status = existing_status(self.jobs, name)
        if status is None:
            return None
        return Attempt(status, status in ENDED_BADLY, self._handle(name, spec, reused=True))

    def _start(self, spec: TrainingJobSpec, name: str) -> JobHandle:
        job = self.command_job(spec, name)
        log.info("Starting Azure ML command job %s on %s (%s x%d%s)", name, job.compute,
                 self.azure.training.instance_type, self.azure.training.instance_count,
                 ", low priority" if self.azure.training.low_priority else "")  # fmt: skip
        self.jobs.create_or_update(job)
        return self._handle(name, spec, reused=False)

    def _reused(self, spec: TrainingJobSpec, marker: Mapping[str, Any]) -> JobHandle:
        return self._handle(marker.get("job_name", job_name(spec.job_name)), spec, reused=True)

    def status(self, handle: JobHandle) -> JobStatus:
        """The job's Azure ML status in the job model's words; a failure with the script's reason."""
        status = job_status(self.jobs, handle.name)
        if status.state is JobState.FAILED:
            reason = self.script_error(handle.details.get("output_prefix", ""))
            if reason:
                return JobStatus(JobState.FAILED, f"{reason} ({status.reason})")
        return status

    def script_error(self, output_prefix: str) -> str:
        """The training script's own reason for failing (its last ``[train] error:`` line), or ""."""
        key = f"{output_prefix}/{OUTPUT_FOLDER}/{STDERR_FILE}"
        if not output_prefix or not self.storage.exists(key):
            return ""
        lines = self.storage.get_bytes(key).decode("utf-8", "replace").splitlines()
        errors = [line for line in lines if line.startswith("[train] error:")]
        return (errors or lines or [""])[-1].strip()

    def _bring_outputs(
        self, spec: TrainingJobSpec, handle: JobHandle, layout: OutputLayout
    ) -> dict[str, Any]:
        """Copy the job's model output folder into the output prefix."""
        job = self.jobs.get(handle.name)
        if status_of(job) not in SUCCEEDED:
            reason = self.script_error(spec.output_prefix)
            raise TrainingFailedError(
                f"Azure ML job {handle.name} ended {failure(job)}{': ' + reason if reason else ''}; "
                "the task's retry starts a new attempt"
            )
        folder = f"{spec.output_prefix}/{OUTPUT_FOLDER}"
        missing = layout.missing_in(folder)
        if missing:
            raise TrainingFailedError(
                f"Azure ML job {handle.name} completed but its model output {self.storage.uri(folder)} "
                f"lacks {missing}: was it written by core/ml/train.py?"
            )
        layout.copy_from(folder)
        return {
            "job_name": handle.name,
            "job_id": getattr(job, "id", None),
            "studio_url": getattr(job, "studio_url", None),
            "compute": self.azure.training.compute,
            "instance_type": self.azure.training.instance_type,
            "low_priority": self.azure.training.low_priority,
        }

    # -- Azure ML --------------------------------------------------------------------------

    def command_job(self, spec: TrainingJobSpec, name: str) -> Any:
        """The azure-ai-ml command job of ``spec`` (what ``jobs.create_or_update`` sends)."""
        from azure.ai.ml import Input, Output, command
        from azure.ai.ml.entities import QueueSettings

        profile = self.azure.training
        job = command(
            name=name,
            display_name=spec.job_name,
            experiment_name=f"mlops-{self.azure.model_name}".replace("_", "-"),
            command=COMMAND,
            inputs={
                "code": Input(type="uri_file", path=upload_bundle(self.storage, spec.dataset_spec)),
                "train": Input(type="uri_file", path=self.storage.uri(spec.train_data_key)),
                "validation": Input(type="uri_file", path=self.storage.uri(spec.validation_data_key)),
            },
            outputs={
                "model": Output(
                    type="uri_folder", path=self.storage.uri(f"{spec.output_prefix}/{OUTPUT_FOLDER}") + "/"
                )
            },
            environment=self.azure.environment,
            # train.py reads the hyperparameters from SM_HPS when no flag carries them (a JSON
            # object in an environment variable needs no shell quoting in the command)
            environment_variables={"SM_HPS": json.dumps(dict(spec.hyperparameters), sort_keys=True)},
            compute=profile.compute,
            instance_type=profile.instance_type,
            instance_count=profile.instance_count,
            timeout=profile.max_run_seconds,
            tags={"mlops_job": spec.job_name},
        )
        if profile.low_priority:
            job.queue_settings = QueueSettings(job_tier="spot")
        return job

    def _handle(self, name: str, spec: TrainingJobSpec, reused: bool) -> JobHandle:
        return JobHandle(
            kind="training",
            name=name,
            details={"reused": reused, "output_prefix": spec.output_prefix},
            poll_seconds=self.azure.poll_seconds,
        )


def existing_status(jobs: Any, name: str) -> str | None:
    """The Azure ML status of the job ``name``, or None if there is no job of that name."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return status_of(jobs.get(name))
    except ResourceNotFoundError:
        return None


def job_status(jobs: Any, name: str) -> JobStatus:
    """The Azure ML status of the job ``name`` in the job model's words."""
    job = jobs.get(name)
    if status_of(job) in SUCCEEDED:
        return JobStatus(JobState.SUCCEEDED)
    if status_of(job) in ENDED_BADLY:
        return JobStatus(JobState.FAILED, failure(job))
    return JobStatus(JobState.RUNNING, status_of(job))


def failure(job: Any) -> str:
    """What the job resource says about its end (the logs themselves are in Azure ML studio)."""
    where = getattr(job, "studio_url", None) or "Azure ML studio"
    return f"{status_of(job)}; its logs: {where}"
