"""Batch scoring on GCP: a Vertex AI batch prediction job over the week's rows.

Vertex AI batch prediction reads JSON Lines (not Parquet), so ``submit`` writes the week's rows
as instances (the raw columns a client would send, plus the row's position) next to the job's
output folder, then starts the job with the version's model and the *inference* machine type.
The serving container (providers/gcp/vertex_serve.py) answers each instance; the job writes
``{"instance", "prediction"}`` lines, which ``results`` puts back in the input's order.

The job's display name derives from the version and the input's content (its hash), so a
re-run finds the job instead of starting another; a failed job's retry is ``-a2``, ``-a3``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tempfile
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from core.errors import MLOpsError
from core.ml.dataset import DatasetSpec
from core.ml.features import request_records
from providers.base import JobHandle, JobStatus, ModelVersion
from providers.gcp.config import GcpSettings
from providers.gcp.registry import VertexModelRegistry
from providers.gcp.storage import GcsObjectStore, split_gs_uri
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
ROW = "_mlops_row"  # the instance's position in the input, to restore the order


class BatchPredictionFailedError(MLOpsError):
    """The batch prediction job failed (retryable: the retry is a new attempt)."""


class VertexBatchScorer:
    """Scores a Parquet object with a Vertex AI batch prediction job."""

    def __init__(
        self,
        gcp: GcpSettings,
        project: str,
        storage: GcsObjectStore,
        registry: VertexModelRegistry,
        spec: DatasetSpec,
        machine_type: str,
        chunk_rows: int = 100_000,
    ) -> None:
        self.gcp = gcp
        self.project = project
        self.storage = storage
        self.registry = registry
        self.spec = spec
        self.machine_type = machine_type
        self.chunk_rows = chunk_rows

    @cached_property
    def client(self) -> Any:
        """The JobServiceClient (REST, the Connection's credentials)."""
        return vertex_client("job", self.gcp)

    @staticmethod
    def job_name(version: ModelVersion, input_key: str, data: bytes) -> str:
        """The display name of (version, input content).

        The content's own hash, not the object's generation: a re-run that writes the same
        validated rows again makes a new generation of the same bytes.
        """
        digest = hashlib.sha256(input_key.encode() + b"\0" + data).hexdigest()[:10]
        return f"{version.model_name}-v{version.version}-{digest}".replace("_", "-")

    def submit(self, version: ModelVersion, input_key: str) -> JobHandle:
        """Start the job of (version, input content), or find it from an earlier try.

        Raises:
            FileNotFoundError: there is no such input.
            ArtifactIntegrityError: the version's bytes do not match its sha256.
            BatchPredictionFailedError: every attempt failed.
        """
        if not self.storage.exists(input_key):
            raise FileNotFoundError(f"no object {input_key!r} to score in {self.storage.uri(input_key)}")
        with tempfile.TemporaryDirectory(prefix="batch-check-") as tmp:
            self.registry.fetch_artifact(version, Path(tmp))  # refuse a tampered artifact first
        data = self.storage.get_bytes(input_key)
        base = self.job_name(version, input_key, data)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            display_name = base if attempt == 1 else f"{base}-a{attempt}"
            jobs = jobs_named(
                self.client.list_batch_prediction_jobs, location_path(self.gcp, self.project), display_name
            )
            alive = [job for job in jobs if state_name(job) not in ENDED_BADLY]
            if alive:
                log.info("Batch prediction %s (%s) exists: reusing it", display_name, state_name(alive[0]))
                return self._handle(alive[0].name, display_name)
            if not jobs:
                break
        else:
            raise BatchPredictionFailedError(
                f"batch prediction {base} failed {MAX_ATTEMPTS} times; see its jobs' errors in Vertex AI"
            )
        folder = f"_vertex/batch/{display_name}"
        self.storage.put_bytes(f"{folder}/instances.jsonl", self._instances(data))
        job = self.client.create_batch_prediction_job(
            parent=location_path(self.gcp, self.project),
            batch_prediction_job={
                "display_name": display_name,
                "model": f"{self.registry.model_resource(version.model_name)}@{version.version}",
                "input_config": {
                    "instances_format": "jsonl",
                    "gcs_source": {"uris": [self.storage.uri(f"{folder}/instances.jsonl")]},
                },
                "output_config": {
                    "predictions_format": "jsonl",
                    "gcs_destination": {"output_uri_prefix": self.storage.uri(f"{folder}/output")},
                },
                "dedicated_resources": {
                    "machine_spec": {"machine_type": self.machine_type},
                    "starting_replica_count": 1,
                    "max_replica_count": 1,
                },
                "labels": {"managed_by": "mlops"},
            },
        )
        log.info("Started batch prediction %s (%s) with %s v%s", job.name, display_name, version.model_name,
                 version.version)  # fmt: skip
        return self._handle(job.name, display_name)

    def _instances(self, data: bytes) -> bytes:
        """The input's rows as JSON Lines instances (the key, the features, the position)."""
        frame = pd.read_parquet(io.BytesIO(data))
        key = self.spec.key_column
        records = request_records(frame, self.spec)
        keys = frame[key].astype(str).tolist() if key in frame.columns else [None] * len(frame)
        lines = (json.dumps({**record, key: keys[i], ROW: i}) for i, record in enumerate(records))
        return ("\n".join(lines) + "\n").encode()

    def _handle(self, job: str, display_name: str) -> JobHandle:
        return JobHandle(
            kind="batch", name=display_name, details={"job": job}, poll_seconds=self.gcp.poll_seconds
        )

    def status(self, handle: JobHandle) -> JobStatus:
        """The job's state in the job model's words (its error message if it failed)."""
        return job_status(self.client.get_batch_prediction_job(name=handle.details["job"]))

    def results(self, version: ModelVersion, handle: JobHandle) -> Iterator[pd.DataFrame]:
        """The job's predictions in the input's order, in chunks of the key and prediction columns.

        Raises:
            BatchPredictionFailedError: the job did not succeed.
        """
        job = self.client.get_batch_prediction_job(name=handle.details["job"])
        if state_name(job) != SUCCEEDED:
            raise BatchPredictionFailedError(
                f"batch prediction {handle.name} ended {state_name(job)}: {job.error.message or 'no reason'}"
            )
        bucket, folder = split_gs_uri(job.output_info.gcs_output_directory.rstrip("/") + "/")
        key, columns = self.spec.key_column, list(self.spec.prediction_columns())
        rows: list[tuple[int, dict[str, Any]]] = []
        for blob in self.storage.client.list_blobs(bucket, prefix=folder):
            if not blob.name.rsplit("/", 1)[-1].startswith("prediction.results"):
                continue
            for line in blob.download_as_text().splitlines():
                if line.strip():
                    answer = json.loads(line)
                    instance, prediction = answer["instance"], answer["prediction"]
                    rows.append(
                        (instance[ROW], {key: instance.get(key), **{c: prediction[c] for c in columns}})
                    )
        rows.sort(key=lambda item: item[0])
        types = {
            name: "float64" if kind == "float" else "str"
            for name, kind in self.spec.prediction_columns().items()
        }
        for start in range(0, len(rows), self.chunk_rows):
            chunk = pd.DataFrame.from_records([row for _, row in rows[start : start + self.chunk_rows]])
            yield chunk.astype({key: "str", **types})
