"""The MLOps pages in the Airflow UI: Models and Drift, a run's summary, and its run notes.

Airflow imports this file in every process that loads plugins, so it stays light: the FastAPI
app (apps/ui/app.py) imports pandas, DuckDB, MLflow and the provider only when a page is
asked for, and the listener (apps/ui/run_note.py) only when a run ends.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from apps.ui import run_note
from apps.ui.app import create_app
from apps.ui.param_errors import ReadableParamErrors

URL_PREFIX = "/mlops"


class MLOpsViewsPlugin(AirflowPlugin):
    """Models and Drift pages, a run-summary tab, the run-note listener, readable Param refusals."""

    name = "mlops_views"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "MLOps models and drift"}]
    # href: relative to the UI's base URL (no leading slash), so it works behind a proxy prefix
    external_views = [
        {"name": "Models", "href": "mlops/models", "url_route": "mlops-models", "destination": "nav",
         "category": "MLOps"},
        {"name": "Drift", "href": "mlops/drift", "url_route": "mlops-drift", "destination": "nav",
         "category": "MLOps"},
        {"name": "Run summary", "href": "mlops/runs/{DAG_ID}/{RUN_ID}", "url_route": "mlops-run-summary",
         "destination": "dag_run"},
    ]  # fmt: skip
    # a malformed week (or other Param) refused at trigger time in one sentence, not a schema dump
    fastapi_root_middlewares = [{"middleware": ReadableParamErrors, "name": "Readable Param errors"}]
    listeners = [run_note]
