"""train_model: train a challenger on the window of validated weeks, on the provider's compute."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from core.errors import ConfigError, MLOpsError
from lifecycle.context import StageContext
from lifecycle.datasets import holdout_mask, read_validated, training_window
from lifecycle.jobs import JobStage, Step, after, done, ended_job, run_inline
from lifecycle.keys import training_prefix

if TYPE_CHECKING:
    from providers.base import TrainingJobResult, TrainingJobSpec

log = logging.getLogger(__name__)


class TrainingJobFailedError(MLOpsError):
    """The provider's training job failed or was stopped (retryable: the retry is a new attempt)."""


@dataclass(frozen=True)
class TrainingOutcome:
    """A finished training job: the challenger, where its model is, and its lineage.

    Its fields are train_model's XCom keys (``train_model["job_name"]`` downstream).
    """

    job_name: str
    model_key: str
    model_sha256: str
    metrics: dict[str, float]
    train_weeks: list[str]
    data_versions: dict[str, str]  # week -> data version of the training window
    code_version: str
    hardware: dict[str, Any]
    hyperparameters: dict[str, Any]


def code_version(ctx: StageContext) -> str:
    """Return a hash of the code bundle and dataset spec that shape a model."""
    from providers.bundle import code_version as bundle_version

    return bundle_version(ctx.settings.dataset)


def model_hyperparameters(ctx: StageContext) -> dict[str, Any]:
    """The estimator's import path and parameters, checked before any job is submitted.

    Early stopping (``[training] early_stopping``) is written into the parameters of an
    estimator that has it (see ``core.ml.modeling.early_stopping_params``), so the job runs
    with, and the lineage records, exactly what was trained.

    Raises:
        ConfigError: the estimator cannot be imported, takes no such parameter or does not
            fit the dataset's task.
    """
    from core.ml.modeling import ModelConfigError, early_stopping_params, make_estimator

    settings = ctx.settings
    try:
        estimator = make_estimator(settings.estimator, settings.model.params, settings.dataset.task)
    except ModelConfigError as exc:
        raise ConfigError(f"{exc} (in {settings.config_path})") from None
    params = early_stopping_params(estimator, settings.model.params, settings.training.early_stopping)
    return {"estimator": settings.estimator, **params}


def train_challenger(ctx: StageContext) -> TrainingOutcome:
    """Build the training data, run the training job to completion and record its lineage.

    The job name is a hash of everything that determines the model (data versions of the
    window, hyperparameters, code version), so a re-run finds the finished job. The train_model
    task runs the same steps but defers while a cloud job runs (:func:`start_training`).

    Returns:
        The job name, the model's storage key and sha256, metrics and lineage.
    """
    return run_inline(ctx, start_training(ctx))


def start_training(ctx: StageContext) -> Step[TrainingOutcome]:
    """Prepare the week's inputs and submit (or find) its training job.

    Returns:
        The result (as :func:`train_challenger`) when the job has ended already, else a wait
        that continues with :func:`finish_training`.
    """
    window = training_window(ctx)
    spec = prepare_training(ctx, window)
    training = ctx.provider.training
    handle = training.submit(spec)
    return after(ctx, training, handle, TRAIN, "finish", spec=asdict(spec), window=window)


def finish_training(
    ctx: StageContext, event: dict[str, Any], spec: dict[str, Any], window: dict[str, str]
) -> Step[TrainingOutcome]:
    """Collect the ended job and record its lineage (the spec and window travel from the start).

    Raises:
        TrainingJobFailedError: the job failed or was stopped; the task's retry submits the next
            attempt.
    """
    from providers.base import JobState, TrainingJobSpec

    handle, status = ended_job(event)
    if status.state is JobState.FAILED:
        raise TrainingJobFailedError(
            f"training job {handle.name} failed: {status.reason or 'no reason given'}; "
            "the task's retry submits a new attempt"
        )
    job = TrainingJobSpec(**spec)
    return done(record_training(ctx, job, ctx.provider.training.collect(job, handle), window))


def prepare_training(ctx: StageContext, window: dict[str, str]) -> TrainingJobSpec:
    """Write the job's training and validation inputs (once per job name); return its spec.

    Args:
        ctx: the run's context.
        window: the training window (week -> data version), from :func:`training_window`.
    """
    from demo.sample_data import write_parquet_bytes
    from providers.base import TrainingJobSpec

    training = ctx.settings.training
    spec = ctx.settings.dataset
    hyperparameters = model_hyperparameters(ctx)
    code = code_version(ctx)
    fingerprint = json.dumps({"data": window, "hp": hyperparameters, "code": code}, sort_keys=True)
    job_name = _job_name(ctx.model_name, ctx.week, fingerprint)
    prefix = training_prefix(job_name)
    storage = ctx.provider.storage

    train_key, validation_key = f"{prefix}/input/train.parquet", f"{prefix}/input/validation.parquet"
    if not (storage.exists(train_key) and storage.exists(validation_key)):
        frames = [read_validated(ctx, week) for week in window]
        data = pd.concat(frames, ignore_index=True)
        held_out = holdout_mask(data[spec.key_column], training.holdout_fraction)
        storage.put_bytes(train_key, write_parquet_bytes(data[~held_out].reset_index(drop=True)))
        storage.put_bytes(validation_key, write_parquet_bytes(data[held_out].reset_index(drop=True)))
        log.info(
            "Job %s: %d training rows and %d validation rows from weeks %s",
            job_name, int((~held_out).sum()), int(held_out.sum()), ", ".join(window),
        )  # fmt: skip
    return TrainingJobSpec(
        job_name=job_name,
        train_data_key=train_key,
        validation_data_key=validation_key,
        output_prefix=f"{prefix}/output",
        hyperparameters=hyperparameters,
        hardware=ctx.settings.hardware_profile("training"),
        dataset_spec=spec.to_json(),
    )


def record_training(
    ctx: StageContext, spec: TrainingJobSpec, result: TrainingJobResult, window: dict[str, str]
) -> TrainingOutcome:
    """Record the finished job's lineage in ``training_runs``; return the task's summary."""
    storage = ctx.provider.storage
    job_name, hyperparameters, hardware = spec.job_name, dict(spec.hyperparameters), dict(spec.hardware)
    code = code_version(ctx)
    model_sha256 = hashlib.sha256(storage.get_bytes(result.model_key)).hexdigest()
    metrics = {k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float)}
    record = {
        "week": ctx.week,
        "job_name": job_name,
        "train_weeks": json.dumps(list(window)),
        "data_versions": json.dumps(window, sort_keys=True),
        "code_version": code,
        "hardware": json.dumps(hardware, sort_keys=True),
        "hyperparameters": json.dumps(hyperparameters, sort_keys=True),
        "metrics": json.dumps(metrics, sort_keys=True),
        "model_key": result.model_key,
        "model_sha256": model_sha256,
        "reason": ctx.reason,
        "dataset_spec": ctx.settings.dataset.to_json(),
    }
    ctx.warehouse.replace_rows("training_runs", {"job_name": job_name}, pd.DataFrame([record]))
    log.info("Job %s finished (reused: %s): %s", job_name, result.reused, metrics)
    return TrainingOutcome(
        job_name=job_name,
        model_key=result.model_key,
        model_sha256=model_sha256,
        metrics=metrics,
        train_weeks=list(window),
        data_versions=window,
        code_version=code,
        hardware=hardware,
        hyperparameters=hyperparameters,
    )


def _job_name(model_name: str, week: str, fingerprint: str) -> str:
    """``<model>-<week>-<hash>``: at most 63 lowercase letters, digits and hyphens, never ending in one.

    That is what a SageMaker job name and the job_name Param accept: a model name longer than 43
    characters is cut and followed by a hash of it, so two long names sharing a head still differ.
    """
    model = model_name.replace("_", "-")
    if len(model) > 43:
        model = f"{model[:34].rstrip('-')}-{_short_hash(model_name)[:8]}"
    return f"{model}-{week.lower()}-{_short_hash(fingerprint)}"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


#: train_model as a job stage: submit (or find) the job; ``finish`` collects and records it
TRAIN: JobStage[TrainingOutcome] = JobStage("train", start=start_training, steps={"finish": finish_training})
