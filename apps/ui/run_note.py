"""A retrain_pipeline run's Markdown summary in the Airflow UI: as the run's note, and as a page.

The pipeline's last task (``run_summary``) returns the summary as its XCom. A task cannot set
its own run's note in Airflow 3 (tasks have no database access, and the Task Execution API
has no note endpoint), so this listener, loaded by the plugin into the scheduler, copies the
XCom into the note when the run succeeds, inside the scheduler's own transaction. A note a
user already wrote is kept.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)
PIPELINE_DAG_ID = "retrain_pipeline"
SUMMARY_TASK_ID = "run_summary"
NOTE_LIMIT = 1000  # the dag_run_note.content column is a String(1000)


def _summary_query(dag_id: str, run_id: str) -> Any:
    from airflow.models.xcom import XComModel

    return XComModel.get_many(
        run_id=run_id, key="return_value", task_ids=SUMMARY_TASK_ID, dag_ids=dag_id
    ).limit(1)


def _text(row: Any) -> str | None:
    from airflow.models.xcom import XComModel

    if row is None:
        return None
    value = XComModel.deserialize_value(row)
    return value if isinstance(value, str) else None


def summary_of_run(dag_id: str, run_id: str) -> str | None:
    """Return the Markdown summary a run's ``run_summary`` task wrote, or None."""
    from airflow.utils.session import create_session

    with create_session() as session:
        return _text(session.scalars(_summary_query(dag_id, run_id)).first())


def note_text(summary: str) -> str:
    """The summary cut to what a run note holds."""
    if len(summary) <= NOTE_LIMIT:
        return summary
    return summary[: NOTE_LIMIT - 2].rstrip() + " …"


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    """Set a successful pipeline run's note to its summary (unless it has a note already)."""
    if dag_run.dag_id != PIPELINE_DAG_ID:
        return
    try:
        from sqlalchemy.orm import object_session

        session = object_session(dag_run)
        if session is None or dag_run.note:
            return
        summary = _text(session.scalars(_summary_query(dag_run.dag_id, dag_run.run_id)).first())
        if summary:
            dag_run.note = note_text(summary)
    except Exception:  # a note is a convenience: never fail the scheduler's loop over it
        log.exception("could not set the summary note of %s", dag_run.run_id)
