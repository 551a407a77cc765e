"""The stage task factories: each lifecycle stage defined once, used by its DAG and the pipeline.

A stage task builds the run's context from its Params (checking them before any work), makes
one call into ``lifecycle`` and returns a small reference dict through XCom (the stage's typed
result as JSON: :func:`to_xcom`). Each task imports its stage's functions by reference inside
the task, so parsing a DAG file loads nothing of ``lifecycle``'s stages, providers or heavy
libraries. Errors that a retry cannot fix (bad data, bad params, a failed check) fail the task
without retries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import Asset, BaseOperator, get_current_context, task

from core.routing import task_routing
from lifecycle.alerts.notifier import ServingAlertNotifier

if TYPE_CHECKING:
    from lifecycle.jobs import JobStage, Step

R = TypeVar("R")

RAW_DATA = Asset("mlops_raw_data")
VALIDATED_DATA = Asset("mlops_validated_data")
MODEL_REGISTRY = Asset("mlops_model_registry")
ONLINE_ENDPOINT = Asset("mlops_online_endpoint")
PREDICTIONS = Asset("mlops_predictions")
DRIFT_REPORTS = Asset("mlops_drift_reports")

OVERRIDES = ("provider", "gate_margin", "window_weeks", "feature_psi_threshold", "drifted_share_threshold")
RETRAIN_DAG_ID = "retrain_pipeline"


def run_stage(stage: Callable[..., R], **kwargs: Any) -> R:
    """Call ``stage(ctx, **kwargs)`` (a function of ``lifecycle``) for the running task.

    Raises:
        AirflowFailException: a deterministic error (no retry will help); its message says
            what was wrong and what to do.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from core.errors import DeterministicError
    from lifecycle.context import build_context, reject_unknown_conf

    context = get_current_context()
    params, dag_run = context["params"], context["dag_run"]
    try:
        dag = context.get("dag")
        reject_unknown_conf(getattr(dag_run, "conf", None), dag.params.keys() if dag else params.keys())
        ctx = build_context(
            week=params.get("week"),
            logical_date=context.get("logical_date") or dag_run.run_after,
            actor=context["run_id"],
            reason=params.get("reason") or _reason(dag_run.run_type),
            overrides={name: params.get(name) for name in OVERRIDES},
        )
        return stage(ctx, **kwargs)
    except DeterministicError as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def to_xcom(result: Any) -> dict[str, Any]:
    """A stage's typed result (a dataclass) as the JSON dict its task returns through XCom."""
    return dataclasses.asdict(result)


def _reason(run_type: Any) -> str:
    """The reason a run without a ``reason`` Param records, from its run type.

    Every run ``dag.test()`` or ``airflow dags test`` makes is a manual run to Airflow, and so
    are operator-triggered and asset-triggered runs here: a caller that knows better passes
    ``reason`` in the conf (the demo's weeks pass 'scheduled', monitor_drift's trigger 'drift').
    """
    value = getattr(run_type, "value", str(run_type))
    return {"scheduled": "scheduled", "backfill": "backfill"}.get(value, "manual")


def ingest_stage() -> Any:
    """ingest_data: store the week's raw data and record its version."""

    @task(
        task_id="ingest_data",
        multiple_outputs=True,
        outlets=[RAW_DATA],
        execution_timeout=timedelta(minutes=20),
    )
    def ingest_data() -> dict[str, Any]:
        from lifecycle.ingest import ingest_week

        source = get_current_context()["params"].get("source_uri")
        return to_xcom(run_stage(ingest_week, source=source))

    return ingest_data()


def validate_stage() -> Any:
    """validate_data: expectations; quarantine; a rejected batch stops the loop."""

    @task(
        task_id="validate_data",
        multiple_outputs=True,
        outlets=[VALIDATED_DATA],
        execution_timeout=timedelta(minutes=20),
    )
    def validate_data() -> dict[str, Any]:
        from lifecycle.validate import validate_week_data

        return to_xcom(run_stage(validate_week_data))

    return validate_data()


class JobStageOperator(BaseOperator):
    """A stage that waits for provider jobs (train, deploy, score), deferring while they run.

    As Airflow's SageMakerTrainingOperator (``execute`` submits, ``execute_complete``
    continues): ``execute`` calls the stage's ``start``, which submits a job. When the job has
    not ended, the task defers on the step's :class:`providers.jobs.ProviderJobTrigger`: the
    triggerer polls the provider, no worker slot is held while a cloud works, and ``resume``
    continues at the named step of the stage that the trigger's event carries (a continuation
    may wait again: a failed rollout's roll back). The local provider's jobs end inside
    ``submit``, so the task finishes without deferring.

    Args:
        stage: a function returning the :class:`lifecycle.jobs.JobStage` (it imports the stage
            when the task runs, never when the DAG file is parsed).
        push_keys: also push each key of the result as its own XCom, as a TaskFlow task with
            ``multiple_outputs`` does (``train_model["job_name"]`` downstream).
        params_as_kwargs: Params passed to the start function as keyword arguments of the
            same name, converted by the given type (a Param the DAG lacks reads as None).
        start_kwargs: more keyword arguments of the start function; templated, so an upstream
            task's XCom (``registered["production_version"]``) is resolved when the task runs.
    """

    template_fields = ("start_kwargs",)

    def __init__(
        self,
        *,
        stage: Callable[[], JobStage[Any]],
        push_keys: bool = False,
        params_as_kwargs: dict[str, type] | None = None,
        start_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.stage = stage
        self.push_keys = push_keys
        self.params_as_kwargs = params_as_kwargs or {}
        self.start_kwargs = start_kwargs or {}

    def execute(self, context: Any) -> Any:
        """Start the stage: submit its job; defer while the job runs."""
        params = context["params"]
        from_params = {name: kind(params.get(name)) for name, kind in self.params_as_kwargs.items()}
        return self._continue(context, run_stage(self.stage().start, **from_params, **self.start_kwargs))

    def resume(self, context: Any, event: dict[str, Any], **_: Any) -> Any:
        """Continue the stage at the step the ended job's event names (no second prepare or submit).

        Raises:
            AirflowFailException: the event resumes another stage than this task's.
        """
        from airflow.sdk.exceptions import AirflowFailException

        from lifecycle.stages import resume

        name = self.stage().name
        if (event.get("resume") or {}).get("stage") != name:
            raise AirflowFailException(f"task of stage {name} resumed with another stage's event: {event!r}")
        return self._continue(context, run_stage(resume, event=event))

    def _continue(self, context: Any, step: Step[Any]) -> Any:
        from lifecycle.jobs import Wait

        if isinstance(step, Wait):
            from providers.jobs import ProviderJobTrigger

            trigger = ProviderJobTrigger(**step.trigger)
            self.log.info(
                "Waiting for %s job %s in the triggerer (no worker slot held)",
                trigger.handle["kind"], trigger.handle["name"],
            )  # fmt: skip
            self.defer(trigger=trigger, method_name="resume")
        result = to_xcom(step.result)
        if self.push_keys:
            for key, value in result.items():
                context["ti"].xcom_push(key=key, value=value)
        return result


class TriggerRetrainOperator(BaseOperator):
    """Trigger one drift retrain of a week: run ``drift_retrain__<week>`` of retrain_pipeline.

    A second trigger for the same week finds the run and is skipped, so re-running monitoring
    never starts a second retrain. This does what the standard provider's TriggerDagRunOperator
    does on Airflow 3 (raise the Task SDK's DagRunTriggerException; the task runner asks the API
    server to create the run) without importing its module, which loads Airflow's ORM for
    Airflow 2 compatibility: ~45 ms of every parse of a DAG file using it, most of the gap
    between dags/ and trivial DAG files in the parse benchmark (tests/benchmarks/bench_parse.py).
    """

    template_fields = ("week",)
    ui_color = "#ffefeb"

    def __init__(self, *, week: str, trigger_dag_id: str = RETRAIN_DAG_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.week = week
        self.trigger_dag_id = trigger_dag_id

    def execute(self, context: Any) -> None:
        """Ask for the week's retrain run (the task runner creates it, or skips this task)."""
        from datetime import UTC, datetime

        from airflow.sdk.exceptions import DagRunTriggerException

        now = datetime.now(UTC)
        run_id = f"drift_retrain__{self.week}"
        self.log.info("Triggering %s run %s (week %s, reason drift)", self.trigger_dag_id, run_id, self.week)
        raise DagRunTriggerException(
            trigger_dag_id=self.trigger_dag_id,
            dag_run_id=run_id,
            conf={"week": self.week, "reason": "drift"},
            logical_date=now,
            run_after=now,
            reset_dag_run=False,
            skip_when_already_exists=True,
            wait_for_completion=False,
            allowed_states=["success"],
            failed_states=["failed"],
            poke_interval=60,
            deferrable=False,
        )


def _train() -> JobStage[Any]:
    from lifecycle.train import TRAIN

    return TRAIN


def _deploy() -> JobStage[Any]:
    from lifecycle.deploy import DEPLOY

    return DEPLOY


def _score() -> JobStage[Any]:
    from lifecycle.score import SCORE

    return SCORE


def train_stage() -> Any:
    """train_model: train a challenger on the window of validated weeks (the wait defers).

    It runs on the training queue and through the training pool of astro.toml's [airflow].
    """
    routing = task_routing()
    return JobStageOperator(
        task_id="train_model",
        stage=_train,
        push_keys=True,
        queue=routing.training_queue,
        pool=routing.training_pool,
        execution_timeout=timedelta(hours=3),
    ).output


def evaluate_stage(job_name: Any = None) -> Any:
    """evaluate_model: challenger vs champion on the week's holdout.

    Args:
        job_name: the challenger (an XCom of train_model); None reads the job_name Param.
    """

    @task(task_id="evaluate_model", multiple_outputs=True, execution_timeout=timedelta(minutes=30))
    def evaluate_model(job_name: str | None) -> dict[str, Any]:
        job_name = job_name or get_current_context()["params"].get("job_name")
        from lifecycle.evaluate import evaluate_challenger

        return to_xcom(run_stage(evaluate_challenger, job_name=job_name))

    return evaluate_model(job_name)


def register_stage(job_name: Any = None) -> Any:
    """register_model: register the challenger; promote it if the gate passed.

    Args:
        job_name: the challenger (an XCom of train_model); None reads the job_name Param.
    """

    @task(
        task_id="register_model",
        multiple_outputs=True,
        outlets=[MODEL_REGISTRY],
        execution_timeout=timedelta(minutes=30),
    )
    def register_model(job_name: str | None) -> dict[str, Any]:
        job_name = job_name or get_current_context()["params"].get("job_name")
        from lifecycle.register import register_challenger

        return to_xcom(run_stage(register_challenger, job_name=job_name))

    return register_model(job_name)


def rollback_stage() -> Any:
    """rollback_model: point production back at an earlier version."""

    @task(
        task_id="rollback_production",
        multiple_outputs=True,
        outlets=[MODEL_REGISTRY],
        execution_timeout=timedelta(minutes=10),
    )
    def rollback_production() -> dict[str, Any]:
        from lifecycle.register import rollback_production

        version = get_current_context()["params"].get("version")
        return to_xcom(run_stage(rollback_production, to_version=version))

    return rollback_production()


def deploy_stage(production_version: Any = None) -> Any:
    """deploy_model: serve production on the endpoint; smoke test; roll back on failure.

    Args:
        production_version: the version the run's register (or rollback) step left in
            production (an XCom); None: whatever production is.
    """
    return JobStageOperator(
        task_id="deploy_model",
        stage=_deploy,
        start_kwargs={"production_version": production_version} if production_version is not None else None,
        push_keys=True,
        outlets=[ONLINE_ENDPOINT],
        execution_timeout=timedelta(hours=1),
    ).output


def score_stage(production_version: Any = None) -> Any:
    """batch_score: the week's predictions into the warehouse.

    Args:
        production_version: the version the run deployed (an XCom); None: whatever production is.
    """
    # only batch_score's own DAG has the Param; the pipeline keeps the model of the week's time
    return JobStageOperator(
        task_id="batch_score",
        stage=_score,
        params_as_kwargs={"rescore_with_production": bool},
        start_kwargs={"production_version": production_version} if production_version is not None else None,
        outlets=[PREDICTIONS],
        execution_timeout=timedelta(hours=2),
    ).output


def monitor_stage() -> Any:
    """monitor_drift: drift statistics and report; trigger one retrain of the week on drift.

    The week's serving health is recorded by the same task; a breach fails ``serving_alert``.
    """

    @task(
        task_id="monitor_drift",
        multiple_outputs=True,
        outlets=[DRIFT_REPORTS],
        execution_timeout=timedelta(minutes=30),
    )
    def monitor_drift() -> dict[str, Any]:
        from lifecycle.monitor import monitor_week

        return to_xcom(run_stage(monitor_week))

    @task.short_circuit(task_id="drift_needs_retrain")
    def drift_needs_retrain(verdict: dict[str, Any]) -> bool:
        return bool(verdict["should_trigger_retrain"])

    # operations are not drift: an unhealthy week fails this leaf task without retries, its
    # notifier tells astro.toml's [alerts] channels, and it never reaches the retrain branch
    @task(
        task_id="serving_alert",
        execution_timeout=timedelta(minutes=5),
        on_failure_callback=[ServingAlertNotifier()],
    )
    def serving_alert(verdict: dict[str, Any]) -> None:
        from lifecycle.operations import ServingWatch, alert_on_serving

        run_stage(alert_on_serving, serving=ServingWatch.from_xcom(verdict), week=verdict.get("week"))

    verdict: Any = monitor_drift()  # an XComArg: the short circuit reads it when it runs
    serving_alert(verdict)
    trigger = TriggerRetrainOperator(
        task_id="trigger_retrain", week="{{ ti.xcom_pull(task_ids='monitor_drift')['week'] }}"
    )
    drift_needs_retrain(verdict) >> trigger
    return verdict


def summary_stage() -> Any:
    """run_summary: a short Markdown summary of the run's week (shown as the run's note)."""

    @task(task_id="run_summary", execution_timeout=timedelta(minutes=10))
    def run_summary() -> str:
        import logging

        from lifecycle.summary import run_summary

        summary = run_stage(run_summary)
        logging.getLogger(__name__).info("Summary of this run:\n%s", summary)
        return summary

    return run_summary()
