"""
### batch_score

Scores every validated row of the week with the `production` model and replaces the week's
partition of the `predictions` table (customer, probability, model version) in one
transaction: a re-run leaves exactly one prediction per row.
"""

from datetime import datetime

from airflow.sdk import dag
from lifecycle.params import DEFAULT_ARGS, common_params
from lifecycle.stages import score_stage


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args=DEFAULT_ARGS,
    params=common_params(),
    tags=["mlops", "stage", "serving"],
    doc_md=__doc__,
)
def batch_score():
    score_stage()


batch_score()
