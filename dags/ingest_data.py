"""
### ingest_data

Pulls one week of raw data and stores it immutably under a content-hashed **data version**
(`raw/week=<week>/version=<hash>/`), then records the version in the `data_versions` table.

- **Source**: the sample generator (default) or your own CSV/Parquet files: set the *Source*
  Param (or `[data] source` in astro.toml) to a path template such as `data/churn_{week}.csv`.
- **Re-runs**: the same bytes give the same version and write nothing new; changed bytes give a
  new version and the week points at it (the old version is kept).
"""

from datetime import datetime

from airflow.sdk import dag
from lifecycle.params import DEFAULT_ARGS, common_params, source_param
from lifecycle.stages import ingest_stage


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args=DEFAULT_ARGS,
    params=common_params(source_uri=source_param()),
    tags=["mlops", "stage", "data"],
    doc_md=__doc__,
)
def ingest_data():
    ingest_stage()


ingest_data()
