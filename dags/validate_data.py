"""
### validate_data

Runs the Great Expectations suite on the week's current data version.

- **Row-level** failures (a null, an out-of-range value, an unseen category, a row dated
  outside the week) quarantine those rows only, if they are at most
  `[validation] max_bad_row_fraction` of the batch.
- **Batch-level** failures (missing or extra columns, wrong types, duplicate ids, too few
  rows, an unreadable file, a column that leaks the label) quarantine the whole batch and fail
  the run without retries, so nothing is trained on it.

Each run writes a Markdown report (`reports/validation/week=<week>/version=<data version>/report.md`)
naming every failed expectation, and a row in `validation_results` (the week's current data
version). Run `ingest_data` for the week first.
"""

from airflow.sdk import dag
from wiring.params import stage_dag_args
from wiring.stages import validate_stage


@dag(schedule=None, **stage_dag_args("stage", "data"), doc_md=__doc__)
def validate_data():
    validate_stage()


validate_data()
