"""Batch scoring on Azure: an Azure ML command job running the bundle's scoring script.

The job reads the week's Parquet file and the version's registered ``model.joblib`` (both blob
URLs: inputs Azure ML downloads), checks the model's sha256, and writes ``predictions.csv``
(the spec's key column and prediction columns, in the input's order) to its output folder,
``_azureml/batch/<job>/``; the scorer streams that back in chunks, and the batch stage writes
them to the warehouse. The job name derives from the version and the input's content, so a re-run
reuses the finished job; a failed job's retry is ``<name>-a2``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from core.errors import MLOpsError
from core.ml.dataset import DatasetSpec
from providers.azure.bundle import SCORING_SCRIPT, upload_bundle
from providers.azure.config import AzureSettings
from providers.azure.registry import AzureMLModelRegistry
from providers.azure.storage import BlobObjectStore
from providers.azure.training import ENDED_BADLY, existing_status, job_name, job_status
from providers.azure.workspace import Workspace
from providers.base import JobHandle, JobState, JobStatus, ModelVersion

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
COMMAND = (
    "mkdir -p bundle && tar -xzf ${{inputs.code}} -C bundle && cd bundle && python "
    + SCORING_SCRIPT
    + " --model ${{inputs.model}} --input ${{inputs.data}} --output ${{outputs.predictions}}"
)


class BatchScoringFailedError(MLOpsError):
    """The scoring job failed (retryable: the retry is a new attempt)."""


class AzureMLBatchScorer:
    """Scores a Parquet object with an Azure ML command job."""

    def __init__(
        self,
        azure: AzureSettings,
        workspace: Workspace,
        storage: BlobObjectStore,
        registry: AzureMLModelRegistry,
        spec: DatasetSpec,
        chunk_rows: int = 100_000,
    ) -> None:
        self.azure = azure
        self.workspace = workspace
        self.storage = storage
        self.registry = registry
        self.spec = spec
        self.chunk_rows = chunk_rows

    @property
    def jobs(self) -> Any:
        """MLClient's job operations."""
        return self.workspace.client.jobs

    def base_name(self, version: ModelVersion, input_key: str) -> str:
        """The scoring job of (version, input content)."""
        # the content, not the ETag: a re-run rewrites the same bytes under a new ETag
        content = hashlib.sha256(self.storage.get_bytes(input_key)).hexdigest()
        digest = hashlib.sha256(f"{input_key}:{content}".encode()).hexdigest()[:10]
        return job_name(f"score-{version.model_name}-v{version.version}-{digest}")

    def submit(self, version: ModelVersion, input_key: str) -> JobHandle:
        """Start the scoring job of (version, input content), or find it from an earlier try.

        Raises:
            FileNotFoundError: there is no such input.
            ArtifactIntegrityError: the version's bytes do not match its sha256.
            BatchScoringFailedError: every attempt failed.
        """
        if not self.storage.exists(input_key):
            raise FileNotFoundError(f"no object {input_key!r} to score in {self.storage.uri(input_key)}")
        with tempfile.TemporaryDirectory(prefix="batch-check-") as tmp:
            self.registry.fetch_artifact(version, Path(tmp))  # refuse a tampered artifact before any job
        base = self.base_name(version, input_key)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            name = job_name(base, attempt)
            status = existing_status(self.jobs, name)
            if status is None:
                log.info(
                    "Starting Azure ML scoring job %s (%s v%s)", name, version.model_name, version.version
                )
                self.jobs.create_or_update(self.command_job(version, input_key, name))
                break
            if status not in ENDED_BADLY:
                log.info("Scoring job %s exists (%s): reusing it", name, status)
                break
        else:
            raise BatchScoringFailedError(
                f"scoring job {base} failed {MAX_ATTEMPTS} times; see its logs in Azure ML studio and fix "
                "the cause"
            )
        return JobHandle(
            kind="batch",
            name=name,
            details={"output_key": f"_azureml/batch/{name}/predictions.csv"},
            poll_seconds=self.azure.poll_seconds,
        )

    def command_job(self, version: ModelVersion, input_key: str, name: str) -> Any:
        """The azure-ai-ml command job scoring ``input_key`` with ``version``."""
        from azure.ai.ml import Input, Output, command

        profile = self.azure.inference
        return command(
            name=name,
            display_name=f"score {version.model_name} v{version.version}",
            experiment_name=f"mlops-{self.azure.model_name}-scoring".replace("_", "-"),
            command=COMMAND,
            inputs={
                "code": Input(type="uri_file", path=upload_bundle(self.storage, self.spec.to_json())),
                "model": Input(type="uri_file", path=version.artifact_uri),
                "data": Input(type="uri_file", path=self.storage.uri(input_key)),
            },
            outputs={
                "predictions": Output(
                    type="uri_folder", path=self.storage.uri(f"_azureml/batch/{name}") + "/"
                )
            },
            environment=self.azure.environment,
            environment_variables={"MODEL_SHA256": version.sha256, "MODEL_VERSION": version.version},
            compute=self.azure.training.compute,
            instance_type=profile.instance_type,
            instance_count=1,
            tags={"mlops_model": version.model_name, "mlops_version": version.version},
        )

    def status(self, handle: JobHandle) -> JobStatus:
        """The job's Azure ML status in the job model's words."""
        return job_status(self.jobs, handle.name)

    def results(self, version: ModelVersion, handle: JobHandle) -> Iterator[pd.DataFrame]:
        """Stream the completed job's predictions back in chunks.

        Raises:
            BatchScoringFailedError: the job did not complete.
        """
        status = self.status(handle)
        if status.state is not JobState.SUCCEEDED:
            raise BatchScoringFailedError(f"scoring job {handle.name} ended {status.reason}")
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
