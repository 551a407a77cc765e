"""Batch scoring on AWS: a SageMaker batch transform job over the week's Parquet file.

The job runs the version's SageMaker model (the same container and inference script as the
endpoint) on ``input_key`` and writes CSV with the spec's key and prediction columns to S3; the scorer
streams that back in chunks, and the batch stage writes them into the warehouse. The job name
derives from the version and the input's ETag, so a re-run reuses the finished job.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tempfile
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from include.errors import MLOpsError
from include.ml.dataset import DatasetSpec
from providers.aws.config import AwsSettings
from providers.aws.endpoint import SageMakerEndpoint
from providers.aws.hooks import error_code, sagemaker_hook
from providers.aws.names import sagemaker_name
from providers.aws.storage import S3ObjectStore
from providers.base import JobHandle, JobState, JobStatus, ModelVersion

log = logging.getLogger(__name__)
RUNNING = ("InProgress", "Stopping")
MAX_ATTEMPTS = 3


class TransformFailedError(MLOpsError):
    """The batch transform job failed (retryable)."""


class SageMakerBatchScorer:
    """Scores a Parquet object with a SageMaker batch transform job."""

    def __init__(
        self,
        aws: AwsSettings,
        storage: S3ObjectStore,
        endpoint: SageMakerEndpoint,
        spec: DatasetSpec,
        chunk_rows: int = 100_000,
    ) -> None:
        self.aws = aws
        self.spec = spec
        self.storage = storage
        self.endpoint = endpoint
        self.chunk_rows = chunk_rows

    @cached_property
    def client(self) -> Any:
        """The SageMaker client of the connection (boto3 clients are thread-safe)."""
        return sagemaker_hook(self.aws.conn_id).conn

    def job_name(self, version: ModelVersion, input_key: str) -> str:
        """The transform job of (version, input content)."""
        head = self.storage.client.head_object(
            Bucket=self.storage.bucket, Key=self.storage.object_key(input_key)
        )
        digest = hashlib.sha256(f"{input_key}:{head['ETag']}".encode()).hexdigest()[:10]
        return sagemaker_name(self.endpoint.sagemaker_model_name(version), digest)

    def request(self, version: ModelVersion, input_key: str, job_name: str, model: str) -> dict[str, Any]:
        """The CreateTransformJob request."""
        profile = self.aws.inference
        return {
            "TransformJobName": job_name,
            "ModelName": model,
            "MaxPayloadInMB": 100,
            "BatchStrategy": "SingleRecord",  # one whole Parquet file per request
            "TransformInput": {
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": self.storage.uri(input_key)}
                },
                "ContentType": "application/x-parquet",
                "SplitType": "None",
            },
            "TransformOutput": {
                "S3OutputPath": self.storage.uri(f"_sagemaker/transform/{job_name}"),
                "Accept": "text/csv",
                "AssembleWith": "None",
            },
            "TransformResources": {
                "InstanceType": profile.batch_instance_type or profile.instance_type,
                "InstanceCount": profile.batch_instance_count,
            },
            "Tags": [
                {"Key": "mlops:model", "Value": version.model_name},
                {"Key": "mlops:version", "Value": version.version},
            ],  # fmt: skip
        }

    def submit(self, version: ModelVersion, input_key: str) -> JobHandle:
        """Start the transform job of (version, input content), or find it from an earlier try.

        A failed or stopped job keeps its name: the retry runs the next attempt's name.
        """
        if not self.storage.exists(input_key):
            raise FileNotFoundError(f"no object {input_key!r} to score in {self.storage.uri(input_key)}")
        with tempfile.TemporaryDirectory(prefix="batch-check-") as tmp:
            self.endpoint.registry.fetch_artifact(version, Path(tmp))  # refuse a tampered artifact first
        base = self.job_name(version, input_key)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            job_name = base if attempt == 1 else sagemaker_name(base, f"a{attempt}")
            status = self._status(job_name)
            if status not in ("Failed", "Stopped"):
                break
        else:
            raise TransformFailedError(
                f"batch transform {base} failed {MAX_ATTEMPTS} times; see the failure reasons in the "
                "SageMaker console and fix the cause"
            )
        if status is None:
            model = self.endpoint.ensure_model(version)
            log.info("Starting batch transform %s with %s", job_name, model)
            self.client.create_transform_job(**self.request(version, input_key, job_name, model))
        else:
            log.info("Batch transform %s exists (%s): reusing it", job_name, status)
        output_key = f"_sagemaker/transform/{job_name}/{input_key.rsplit('/', 1)[-1]}.out"
        return JobHandle(
            kind="batch",
            name=job_name,
            details={"output_key": output_key},
            poll_seconds=self.aws.poll_seconds,
        )

    def status(self, handle: JobHandle) -> JobStatus:
        """DescribeTransformJob in the job model's words (its FailureReason if it failed)."""
        job = self.client.describe_transform_job(TransformJobName=handle.name)
        status = job["TransformJobStatus"]
        if status in RUNNING:
            return JobStatus(JobState.RUNNING, status)
        if status == "Completed":
            return JobStatus(JobState.SUCCEEDED)
        return JobStatus(JobState.FAILED, f"{status}: {job.get('FailureReason') or 'no reason given'}")

    def results(self, version: ModelVersion, handle: JobHandle) -> Iterator[pd.DataFrame]:
        """Stream the completed job's CSV output back in chunks.

        Raises:
            TransformFailedError: the job did not complete.
        """
        status = self.status(handle)
        if status.state is not JobState.SUCCEEDED:
            raise TransformFailedError(f"batch transform {handle.name} ended {status.reason}")
        body = self.storage.get_bytes(handle.details["output_key"])
        types = {
            name: "float64" if kind == "float" else "str"
            for name, kind in self.spec.prediction_columns().items()
        }
        text = {self.spec.key_column: str, **{c: str for c, t in types.items() if t == "str"}}
        for chunk in pd.read_csv(
            io.BytesIO(body), chunksize=self.chunk_rows, dtype=text, keep_default_na=False
        ):
            yield chunk.reset_index(drop=True).astype(types)

    def _status(self, job_name: str) -> str | None:
        try:
            return self.client.describe_transform_job(TransformJobName=job_name)["TransformJobStatus"]
        except Exception as exc:
            if error_code(exc) in ("ValidationException", "ResourceNotFound"):
                return None
            raise
