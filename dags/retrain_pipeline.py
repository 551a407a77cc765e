"""
### retrain_pipeline

The weekly loop, one DAG run per week (Mondays 06:00 UTC; it processes the ISO week that just
ended). Unpausing it starts nothing by itself: the first scheduled run is the next Monday.

    ingest_data -> validate_data -> train_model -> evaluate_model -> register_model
      -> deploy_model -> batch_score -> monitor_drift -> run_summary
                                                    -> (on drift) trigger_retrain

run_summary writes a short Markdown summary of what changed this week; it becomes the run's
note (and the run's "Run summary" tab) in the Airflow UI.

A rejected batch stops the run at validate_data; a challenger that fails the gate is
registered but production stays. When monitor_drift detects drift it triggers this DAG once
more for the same week with reason `drift`: that run trains only on data from the drift on.

Backfill past weeks from the CLI (the DAG must be unpaused, with a scheduler running):

    airflow backfill create --dag-id retrain_pipeline --from-date 2026-01-05 --to-date 2026-01-27

(four runs, Mondays 2026-01-05..01-26 at 06:00, processing 2026-W01..W04).
"""

from datetime import timedelta

from airflow.sdk import CronTriggerTimetable, dag
from wiring.params import (
    DEFAULT_ARGS,
    common_params,
    drift_params,
    gate_margin_param,
    reason_param,
    source_param,
    window_weeks_param,
)
from wiring.stages import (
    deploy_stage,
    evaluate_stage,
    ingest_stage,
    monitor_stage,
    register_stage,
    score_stage,
    summary_stage,
    train_stage,
    validate_stage,
)


@dag(
    # No start_date, run_immediately=False: unpausing (the trigger form's "Unpause on trigger"
    # included) arms the schedule for the next Monday instead of starting a run for the last one,
    # which would run before a triggered run (max_active_runs=1) and process the same week.
    schedule=CronTriggerTimetable("0 6 * * 1", timezone="UTC", run_immediately=timedelta(0)),
    catchup=False,
    max_active_runs=1,  # each week builds on the model and data of the weeks before it
    default_args=DEFAULT_ARGS,
    params=common_params(
        source_uri=source_param(),
        window_weeks=window_weeks_param(),
        gate_margin=gate_margin_param(),
        reason=reason_param(),
        **drift_params(),
    ),
    tags=["mlops", "pipeline"],
    doc_md=__doc__,
)
def retrain_pipeline():
    ingested = ingest_stage()
    validated = validate_stage()
    trained = train_stage()
    ingested >> validated >> trained
    evaluated = evaluate_stage(job_name=trained["job_name"])
    registered = register_stage(job_name=trained["job_name"])
    evaluated >> registered
    # the version register left in production travels on: deploy and score use that one
    deployed = deploy_stage(production_version=registered["production_version"])
    scored = score_stage(production_version=deployed["version"])
    registered >> deployed >> scored >> monitor_stage() >> summary_stage()


retrain_pipeline()
