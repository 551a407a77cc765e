"""
### ingest_data

Pulls one week of raw data and stores it immutably under a content-hashed **data version**
(`raw/week=<week>/version=<hash>/`), then records the version in the `data_versions` table.

- **Source**: the sample generator (default) or your own CSV/Parquet files: set the *Source*
  Param (or `[data] source` in astro.toml) to a path template such as `data/churn_{week}.csv`.
- **Re-runs**: the same bytes give the same version and write nothing new; changed bytes give a
  new version and the week points at it (the old version is kept).
"""

from airflow.sdk import dag
from lifecycle.params import source_param, stage_dag_args
from lifecycle.stages import ingest_stage


@dag(**stage_dag_args("stage", "data", source_uri=source_param()), doc_md=__doc__)
def ingest_data():
    ingest_stage()


ingest_data()
