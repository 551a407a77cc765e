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
import math
import tempfile
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from core.errors import MLOpsError
from core.ml.dataset import DatasetSpec
from providers.aws.config import AwsSettings
from providers.aws.endpoint import SageMakerEndpoint
from providers.aws.hooks import error_code, sagemaker_hook
from providers.aws.names import sagemaker_name
from providers.aws.storage import S3ObjectStore
from providers.base import JobHandle, JobState, JobStatus, ModelVersion

log = logging.getLogger(__name__)
RUNNING = ("InProgress", "Stopping")
MAX_ATTEMPTS = 3
PART_FILL = 0.8  # a part of a cut input fills at most this share of MaxPayloadInMB


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
        self.max_payload_mb = 100  # the transform's MaxPayloadInMB: a larger input is cut into parts

    @cached_property
    def client(self) -> Any:
        """The SageMaker client of the connection (boto3 clients are thread-safe)."""
        return sagemaker_hook(self.aws.conn_id).conn

    def job_name(self, version: ModelVersion, input_key: str) -> str:
        """The transform job of (version, input content)."""
        head = self.storage.client.head_object(
            Bucket=self.storage.bucket, Key=self.storage.object_name(input_key)
        )
        digest = hashlib.sha256(f"{input_key}:{head['ETag']}".encode()).hexdigest()[:10]
        return sagemaker_name(self.endpoint.sagemaker_model_name(version), digest)

    def request(self, version: ModelVersion, input_prefix: str, job_name: str, model: str) -> dict[str, Any]:
        """The CreateTransformJob request over every Parquet file under ``input_prefix``."""
        profile = self.aws.inference
        return {
            "TransformJobName": job_name,
            "ModelName": model,
            "MaxPayloadInMB": self.max_payload_mb,
            "BatchStrategy": "SingleRecord",  # one whole Parquet file per request
            "TransformInput": {
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": self.storage.uri(input_prefix)}
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
        input_prefix, parts = self._parts(input_key, base)
        if status is None:
            model = self.endpoint.ensure_model(version)
            log.info("Starting batch transform %s with %s over %d file(s)", job_name, model, len(parts))
            self.client.create_transform_job(**self.request(version, input_prefix, job_name, model))
        else:
            log.info("Batch transform %s exists (%s): reusing it", job_name, status)
        output_keys = [f"_sagemaker/transform/{job_name}/{part.rsplit('/', 1)[-1]}.out" for part in parts]
        return JobHandle(
            kind="batch",
            name=job_name,
            details={"output_keys": output_keys},
            poll_seconds=self.aws.poll_seconds,
        )

    def _parts(self, input_key: str, base: str) -> tuple[str, list[str]]:
        """The transform's input prefix and its files, in row order: the input itself when it fits.

        With ``SplitType=None`` a whole file is one request, and a request over
        ``MaxPayloadInMB`` fails the job: a larger week is cut into Parquet parts of at most
        ``PART_FILL`` of the limit, written once under a prefix named by the job (the marker
        last, so a re-run finds them complete or writes them again).
        """
        limit = self.max_payload_mb * 1024 * 1024
        size = self.storage.client.head_object(
            Bucket=self.storage.bucket, Key=self.storage.object_name(input_key)
        )["ContentLength"]
        if size <= limit:
            return input_key, [input_key]
        prefix = f"_sagemaker/transform-input/{base}"
        if self.storage.exists(f"{prefix}/_COMPLETE"):
            parts = sorted(key for key in self.storage.list_keys(f"{prefix}/") if key.endswith(".parquet"))
            return f"{prefix}/part-", parts
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(pa.BufferReader(self.storage.get_bytes(input_key)))
        n_parts = max(2, math.ceil(size / (limit * PART_FILL)))
        while True:
            rows = math.ceil(table.num_rows / n_parts)
            bodies = []
            for start in range(0, table.num_rows, rows):
                sink = pa.BufferOutputStream()
                pq.write_table(table.slice(start, rows), sink)
                bodies.append(sink.getvalue().to_pybytes())
            if max(len(body) for body in bodies) <= limit * PART_FILL or rows == 1:
                break
            n_parts *= 2
        parts = [f"{prefix}/part-{i:05d}.parquet" for i in range(len(bodies))]
        for key, body in zip(parts, bodies, strict=True):
            self.storage.put_bytes(key, body)
        self.storage.put_bytes(f"{prefix}/_COMPLETE", str(len(parts)).encode())
        log.info("Input %s (%d bytes) cut into %d parts under %s", input_key, size, len(parts), prefix)
        return f"{prefix}/part-", parts

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
        types = {
            name: "float64" if kind == "float" else "str"
            for name, kind in self.spec.prediction_columns().items()
        }
        text = {self.spec.key_column: str, **{c: str for c, t in types.items() if t == "str"}}
        for output_key in handle.details["output_keys"]:  # the parts in row order
            body = self.storage.get_bytes(output_key)
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
