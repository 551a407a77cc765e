"""Training on AWS: a SageMaker training job running core/ml/train.py in script mode.

The job runs in the prebuilt scikit-learn container with the scripts of
``providers.aws.sourcedir``; the *training* hardware profile of astro.toml sets the instances
(and managed spot with its max wait and checkpoints). The job name is the stage's name for the
week's inputs, so a re-run finds the job instead of clashing with it. A failed or stopped job
cannot be restarted under its name: the retry submits ``<name>-a2`` (then ``-a3``).
"""

from __future__ import annotations

import json
import logging
import tarfile
import tempfile
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from core.ml.dataset import spec_from_json
from providers import job_outputs
from providers.aws.config import AwsSettings
from providers.aws.hooks import error_code, region_of, sagemaker_hook
from providers.aws.names import sagemaker_name
from providers.aws.sourcedir import TRAIN_PROGRAM, upload_sourcedir
from providers.aws.storage import S3ObjectStore, split_s3_uri
from providers.base import JobHandle, JobState, JobStatus, TrainingJobSpec
from providers.bundle import OUTPUT_FILES
from providers.job_outputs import Attempt, BucketTrainingJobs, OutputLayout

log = logging.getLogger(__name__)
RUNNING = ("InProgress", "Stopping")
ENDED_BADLY = ("Failed", "Stopped")


def attempt_name(job_name: str, attempt: int) -> str:
    """The SageMaker name of a job's attempt: the job's name, then ``-a2``, ``-a3`` (<= 63 characters)."""
    return sagemaker_name(job_name, "" if attempt == 1 else f"a{attempt}")


class TrainingFailedError(job_outputs.TrainingFailedError):
    """The SageMaker training job failed or was stopped (retryable: the retry is a new attempt)."""


class SageMakerTrainingJobs(BucketTrainingJobs):
    """Submits, waits for (deferred, by the task) and collects SageMaker training jobs."""

    backend = "sagemaker"
    service = "SageMaker training job"
    console = "the SageMaker console"
    failed_error = TrainingFailedError
    storage: S3ObjectStore

    def __init__(self, aws: AwsSettings, storage: S3ObjectStore) -> None:
        self.aws = aws
        self.storage = storage

    @cached_property
    def hook(self) -> Any:
        """The SageMakerHook of the connection."""
        return sagemaker_hook(self.aws.conn_id)

    # -- the primitives of BucketTrainingJobs ----------------------------------------------

    def _attempt_name(self, job_name: str, attempt: int) -> str:
        return attempt_name(job_name, attempt)

    def _find(self, spec: TrainingJobSpec, name: str) -> Attempt | None:
        status = self._job_status(name)
        if status is None:
            return None
        return Attempt(status, status in ENDED_BADLY, self._handle(name, reused=True))

    def _start(self, spec: TrainingJobSpec, name: str) -> JobHandle:
        request = self.request(spec, name)
        log.info(
            "Starting SageMaker training job %s on %s x%d%s",
            name,
            request["ResourceConfig"]["InstanceType"],
            request["ResourceConfig"]["InstanceCount"],
            " (managed spot)" if request["EnableManagedSpotTraining"] else "",
        )
        self.hook.create_training_job(request, wait_for_completion=False, print_log=False)
        return self._handle(name, reused=False)

    def _reused(self, spec: TrainingJobSpec, marker: Mapping[str, Any]) -> JobHandle:
        return self._handle(marker.get("job_name", spec.job_name), reused=True)

    def status(self, handle: JobHandle) -> JobStatus:
        """DescribeTrainingJob's status in the job model's words (its FailureReason if it failed)."""
        job = self.hook.describe_training_job(handle.name)
        status = job["TrainingJobStatus"]
        if status in RUNNING:
            return JobStatus(JobState.RUNNING, f"{status} ({job.get('SecondaryStatus', '')})")
        if status == "Completed":
            return JobStatus(JobState.SUCCEEDED)
        return JobStatus(JobState.FAILED, f"{status}: {job.get('FailureReason') or 'no reason given'}")

    def _bring_outputs(
        self, spec: TrainingJobSpec, handle: JobHandle, layout: OutputLayout
    ) -> dict[str, Any]:
        """Unpack the job's model.tar.gz into the output prefix."""
        job = self.hook.describe_training_job(handle.name)
        status = job["TrainingJobStatus"]
        if status != "Completed":
            raise TrainingFailedError(
                f"SageMaker training job {handle.name} ended {status}: "
                f"{job.get('FailureReason', 'no reason given')}; the task's retry starts a new attempt"
            )
        artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
        with tempfile.TemporaryDirectory(prefix=f"{handle.name}-") as tmp:
            layout.upload_from(self._unpack(artifact, Path(tmp)))
        return {
            "job_name": handle.name,
            "job_arn": job.get("TrainingJobArn"),
            "artifact": artifact,
            "billable_seconds": job.get("BillableTimeInSeconds"),
            "instance_type": job.get("ResourceConfig", {}).get("InstanceType"),
            "spot": bool(job.get("EnableManagedSpotTraining")),
        }

    def _handle(self, name: str, reused: bool) -> JobHandle:
        return JobHandle(
            kind="training", name=name, details={"reused": reused}, poll_seconds=self.aws.poll_seconds
        )

    # -- SageMaker -------------------------------------------------------------------------

    def request(self, spec: TrainingJobSpec, job_name: str) -> dict[str, Any]:
        """The CreateTrainingJob request for ``spec`` (script mode in the scikit-learn container)."""
        profile = self.aws.training
        region = region_of(self.aws.conn_id, self.aws.region)
        sourcedir = upload_sourcedir(self.storage, spec_from_json(spec.dataset_spec))
        # Script mode: the framework container reads sagemaker_program / sagemaker_submit_directory
        # and passes the rest to train.py as --name value (values JSON-encoded, as the SDK does).
        hyperparameters = {name: json.dumps(value) for name, value in sorted(spec.hyperparameters.items())}
        hyperparameters.update(
            {
                "sagemaker_program": json.dumps(TRAIN_PROGRAM),
                "sagemaker_submit_directory": json.dumps(sourcedir),
                "sagemaker_region": json.dumps(region),
                "sagemaker_container_log_level": "20",
            }
        )
        stopping: dict[str, int] = {"MaxRuntimeInSeconds": profile.max_runtime_seconds}
        request: dict[str, Any] = {
            "TrainingJobName": job_name,
            "AlgorithmSpecification": {
                "TrainingImage": self.aws.image("training", region),
                "TrainingInputMode": "File",
            },
            "RoleArn": self.aws.require_role(),
            "HyperParameters": hyperparameters,
            "InputDataConfig": [
                self._channel("train", spec.train_data_key),
                self._channel("validation", spec.validation_data_key),
            ],
            "OutputDataConfig": {"S3OutputPath": self.storage.uri(f"{spec.output_prefix}/sagemaker")},
            "ResourceConfig": {
                "InstanceType": profile.instance_type,
                "InstanceCount": profile.instance_count,
                "VolumeSizeInGB": profile.volume_size_gb,
            },
            "StoppingCondition": stopping,
            "EnableManagedSpotTraining": profile.use_spot,
            "Tags": [{"Key": "mlops:job", "Value": spec.job_name}],
        }
        if profile.use_spot:
            stopping["MaxWaitTimeInSeconds"] = profile.max_wait_seconds
            if profile.checkpoint_s3_uri:
                request["CheckpointConfig"] = {
                    "S3Uri": f"{profile.checkpoint_s3_uri.rstrip('/')}/{spec.job_name}",
                    "LocalPath": "/opt/ml/checkpoints",
                }
        return request

    def _channel(self, name: str, key: str) -> dict[str, Any]:
        return {
            "ChannelName": name,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": self.storage.uri(key),
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "ContentType": "application/x-parquet",
            "InputMode": "File",
        }

    def _job_status(self, job_name: str) -> str | None:
        """The job's SageMaker status, or None if there is no job of that name."""
        try:
            return self.hook.describe_training_job(job_name)["TrainingJobStatus"]
        except Exception as exc:
            if error_code(exc) in ("ValidationException", "ResourceNotFound"):
                return None
            raise

    def _unpack(self, artifact_uri: str, folder: Path) -> Path:
        bucket, key = split_s3_uri(artifact_uri)
        archive = folder / "model.tar.gz"
        self.storage.client.download_file(bucket, key, str(archive))
        out = folder / "model"
        with tarfile.open(archive) as tar:
            tar.extractall(out, filter="data")
        missing = [name for name in OUTPUT_FILES if not (out / name).is_file()]
        if missing:
            raise TrainingFailedError(f"{artifact_uri} lacks {missing}: was it written by core/ml/train.py?")
        return out
