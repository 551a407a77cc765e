"""
### batch_score

Scores every validated row of the week with the `production` model and replaces the week's
partition of the `predictions` table (the row key, the dataset spec's prediction columns, the
model version) in one transaction: a re-run leaves exactly one prediction per row.

A past week is scored with the model of its time: the version it was first scored with, or the
production version as of the week. Tick `rescore_with_production` to re-score it deliberately
with today's production model.
"""

from airflow.sdk import dag
from wiring.params import rescore_param, stage_dag_args
from wiring.stages import score_stage


@dag(
    schedule=None,
    **stage_dag_args("stage", "serving", rescore_with_production=rescore_param()),
    doc_md=__doc__,
)
def batch_score():
    score_stage()


batch_score()
