"""
### ingest_data

Pulls one week of raw data and stores it immutably under a content-hashed **data version**
(`raw/week=<week>/version=<hash>/`), then records the version in the `data_versions` table.

- **Source**: the *Source* Param (or `[data] source` in astro.toml) is one of
  - `sample`: the demo's generator (the default);
  - a CSV/Parquet file template with `{week}`, such as `data/sales_{week}.csv`: a local path,
    a `file://` URI or a URI under the provider's storage (`s3://<bucket>/<prefix>/...`);
  - one CSV/Parquet file of many weeks (no `{week}`): the week's rows by
    `[dataset] event_time_column`, stored as Parquet;
  - `query:SELECT ... WHERE :week_start <= ts AND ts < :week_end` on the provider's warehouse
    (`:week`, `:week_start`, `:week_end` are bound by the driver); the result is stored as Parquet.
- **Re-runs**: the same bytes give the same version and write nothing new; changed bytes give a
  new version and the week points at it (the old version is kept).
"""

from airflow.sdk import dag
from wiring.params import source_param, stage_dag_args
from wiring.stages import ingest_stage


@dag(schedule=None, **stage_dag_args("stage", "data", source_uri=source_param()), doc_md=__doc__)
def ingest_data():
    ingest_stage()


ingest_data()
