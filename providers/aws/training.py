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
from functools import cached_property
from pathlib import Path
from typing import Any

from core.errors import MLOpsError
from core.ml.dataset import spec_from_json
from providers.aws.config import AwsSettings
from providers.aws.hooks import error_code, region_of, sagemaker_hook
from providers.aws.names import sagemaker_name
from providers.aws.sourcedir import TRAIN_PROGRAM, upload_sourcedir
from providers.aws.storage import S3ObjectStore, split_s3_uri
from providers.base import JobHandle, JobState, JobStatus, TrainingJobResult, TrainingJobSpec
from providers.bundle import OUTPUT_FILES, SUCCESS_MARKER

log = logging.getLogger(__name__)
RUNNING = ("InProgress", "Stopping")
ENDED_BADLY = ("Failed", "Stopped")
MAX_ATTEMPTS = 3


def attempt_name(job_name: str, attempt: int) -> str:
    """The SageMaker name of a job's attempt: the job's name, then ``-a2``, ``-a3`` (<= 63 characters)."""
    return sagemaker_name(job_name, "" if attempt == 1 else f"a{attempt}")


class TrainingFailedError(MLOpsError):
    """The SageMaker training job failed or was stopped (retryable: the retry is a new attempt)."""


class SageMakerTrainingJobs:
    """Submits, waits for (deferred, by the task) and collects SageMaker training jobs."""

    def __init__(self, aws: AwsSettings, storage: S3ObjectStore) -> None:
        self.aws = aws
        self.storage = storage

    @cached_property
    def hook(self) -> Any:
        """The SageMakerHook of the connection."""
        return sagemaker_hook(self.aws.conn_id)

    # -- the contract ----------------------------------------------------------------------

    def submit(self, spec: TrainingJobSpec) -> JobHandle:
        """Start the week's job, or find it (running or completed) from an earlier try.

        A failed or stopped attempt keeps its name, so the next one is ``<name>-a2``.

        Raises:
            FileNotFoundError: the job's input is not in S3.
            TrainingFailedError: every attempt failed.
        """
        marker_key = f"{spec.output_prefix}/{SUCCESS_MARKER}"
        if self.storage.exists(marker_key):
            marker = json.loads(self.storage.get_bytes(marker_key))
            return self._handle(marker.get("job_name", spec.job_name), reused=True)
        for key in (spec.train_data_key, spec.validation_data_key):
            if not self.storage.exists(key):
                raise FileNotFoundError(
                    f"training input {self.storage.uri(key)} does not exist: run validate_data first"
                )
        for attempt in range(1, MAX_ATTEMPTS + 1):
            name = attempt_name(spec.job_name, attempt)
            status = self._job_status(name)
            if status is None:
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
            if status in ENDED_BADLY:
                log.warning("Training job %s ended %s: the next attempt gets a new name", name, status)
                continue
            log.info("Training job %s exists (%s): reusing it", name, status)
            return self._handle(name, reused=True)
        raise TrainingFailedError(
            f"training job {spec.job_name} failed {MAX_ATTEMPTS} times; see the failure reasons of "
            f"{attempt_name(spec.job_name, 1)}, {attempt_name(spec.job_name, 2)} ... in the SageMaker "
            "console and fix the cause"
        )

    def status(self, handle: JobHandle) -> JobStatus:
        """DescribeTrainingJob's status in the job model's words (its FailureReason if it failed)."""
        job = self.hook.describe_training_job(handle.name)
        status = job["TrainingJobStatus"]
        if status in RUNNING:
            return JobStatus(JobState.RUNNING, f"{status} ({job.get('SecondaryStatus', '')})")
        if status == "Completed":
            return JobStatus(JobState.SUCCEEDED)
        return JobStatus(JobState.FAILED, f"{status}: {job.get('FailureReason') or 'no reason given'}")

    def collect(self, spec: TrainingJobSpec, handle: JobHandle) -> TrainingJobResult:
        """Unpack the job's model.tar.gz into ``spec.output_prefix`` (the marker last)."""
        marker_key = f"{spec.output_prefix}/{SUCCESS_MARKER}"
        if not self.storage.exists(marker_key):
            job = self.hook.describe_training_job(handle.name)
            status = job["TrainingJobStatus"]
            if status != "Completed":
                raise TrainingFailedError(
                    f"SageMaker training job {handle.name} ended {status}: "
                    f"{job.get('FailureReason', 'no reason given')}; the task's retry starts a new attempt"
                )
            artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
            with tempfile.TemporaryDirectory(prefix=f"{handle.name}-") as tmp:
                folder = self._unpack(artifact, Path(tmp))
                for name in OUTPUT_FILES:
                    self.storage.put_file(f"{spec.output_prefix}/{name}", folder / name)
            marker = {
                "job_name": handle.name,
                "job_arn": job.get("TrainingJobArn"),
                "artifact": artifact,
                "billable_seconds": job.get("BillableTimeInSeconds"),
                "instance_type": job.get("ResourceConfig", {}).get("InstanceType"),
                "spot": bool(job.get("EnableManagedSpotTraining")),
            }
            self.storage.put_bytes(marker_key, json.dumps(marker, sort_keys=True).encode())
        marker = json.loads(self.storage.get_bytes(marker_key))
        metrics = json.loads(self.storage.get_bytes(f"{spec.output_prefix}/metrics.json"))
        return TrainingJobResult(
            job_name=spec.job_name,
            model_key=f"{spec.output_prefix}/model.joblib",
            metrics=metrics,
            reused=bool(handle.details.get("reused")),
            details={"backend": "sagemaker", **marker},
        )

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
