"""Training on the local provider: the project's training script in a subprocess."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from core.config import PROJECT_ROOT
from core.errors import DeterministicError, MLOpsError
from providers.base import JobHandle, JobState, JobStatus, ObjectStore, TrainingJobResult, TrainingJobSpec
from providers.bundle import SUCCESS_MARKER
from providers.job_outputs import OutputLayout

log = logging.getLogger(__name__)
TRAIN_SCRIPT = PROJECT_ROOT / "core" / "ml" / "train.py"


class TrainingFailedError(MLOpsError):
    """The training process exited with an error (retryable: it may be a killed process)."""


class TrainingInputError(DeterministicError):
    """The training script refused its input (exit code 1): a retry would fail the same way."""


BAD_INPUT_EXIT_CODE = 1  # core/ml/train.py: bad data, labels, spec or estimator


class SubprocessTrainingJobs:
    """Runs core/ml/train.py in a child process, as a cloud job would run it in a container.

    The job's outputs go to ``{output_prefix}/`` in storage, the success marker last, so a job
    killed half-way leaves no marker and is simply run again; a finished job is reused.
    """

    def __init__(self, storage: ObjectStore, timeout_seconds: float = 3600) -> None:
        self.storage = storage
        self.timeout_seconds = timeout_seconds

    def submit(self, spec: TrainingJobSpec) -> JobHandle:
        """Run the job to its end in a child process (or find its output); return its handle."""
        layout = OutputLayout(self.storage, spec.output_prefix)
        if layout.finished():
            log.info("Training job %s already finished: reusing its output", spec.job_name)
            return self._handle(spec, reused=True)
        n_jobs = int(spec.hardware.get("n_jobs", 1))
        with tempfile.TemporaryDirectory(prefix=f"{spec.job_name}-") as tmp:
            work = Path(tmp)
            train = self.storage.get_file(spec.train_data_key, work / "train.parquet")
            validation = self.storage.get_file(spec.validation_data_key, work / "validation.parquet")
            model_dir = work / "model"
            spec_file = work / "dataset_spec.json"
            spec_file.write_text(spec.dataset_spec)
            command = [
                sys.executable, str(TRAIN_SCRIPT),
                "--train", str(train),
                "--validation", str(validation),
                "--model-dir", str(model_dir),
                "--dataset-spec", str(spec_file),
                "--hyperparameters", json.dumps(dict(spec.hyperparameters), sort_keys=True),
                "--n-jobs", str(n_jobs),
            ]  # fmt: skip
            env = {**os.environ, "OMP_NUM_THREADS": str(n_jobs), "PYTHONUNBUFFERED": "1"}
            log.info("Training job %s: starting %s", spec.job_name, " ".join(command[1:3]))
            self._stream(command, env, spec.job_name)
            layout.upload_from(model_dir)
            layout.seal({"job_name": spec.job_name})
        return self._handle(spec, reused=False)

    def status(self, handle: JobHandle) -> JobStatus:
        """Succeeded once the job's output has its marker (``submit`` runs the job to its end)."""
        if OutputLayout(self.storage, handle.details["output_prefix"]).finished():
            return JobStatus(JobState.SUCCEEDED)
        return JobStatus(
            JobState.FAILED,
            f"the job left no {SUCCESS_MARKER} marker under {handle.details['output_prefix']}",
        )

    def collect(self, spec: TrainingJobSpec, handle: JobHandle) -> TrainingJobResult:
        """The finished job's model and metrics (already in storage under ``spec.output_prefix``)."""
        layout = OutputLayout(self.storage, spec.output_prefix)
        return layout.result(spec, handle, {"backend": "subprocess", "script": "core/ml/train.py"})

    @staticmethod
    def _handle(spec: TrainingJobSpec, reused: bool) -> JobHandle:
        return JobHandle(
            kind="training",
            name=spec.job_name,
            details={"output_prefix": spec.output_prefix, "reused": reused},
        )

    def _stream(self, command: list[str], env: dict[str, str], job_name: str) -> None:
        """Run the command, copying its output into the task log line by line."""
        with subprocess.Popen(
            command, env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as process:
            errors = []
            try:
                assert process.stdout is not None
                for line in process.stdout:
                    log.info("[%s] %s", job_name, line.rstrip())
                    if line.startswith("[train] error:"):
                        errors.append(line.removeprefix("[train] error:").strip())
                code = process.wait(timeout=self.timeout_seconds)
            except BaseException:
                process.kill()
                raise
        if code == BAD_INPUT_EXIT_CODE and errors:
            raise TrainingInputError(f"training job {job_name} refused its input: {errors[-1]}")
        if code != 0:
            raise TrainingFailedError(f"training job {job_name} exited with code {code}; see the lines above")
