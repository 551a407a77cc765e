"""The MLOps pages in the Airflow UI: Models and Drift, a run's summary, and its run notes.

Airflow imports this file in every process that loads plugins, so it stays light: the FastAPI
app (include/ui/app.py) imports pandas, DuckDB, MLflow and the provider only when a page is
asked for, and the listener (include/ui/run_note.py) only when a run ends.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from include.ui import run_note
from include.ui.app import create_app

URL_PREFIX = "/mlops"


class MLOpsViewsPlugin(AirflowPlugin):
    """Models and Drift pages (nav), a run-summary tab (dag_run), and the run-note listener."""

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
    listeners = [run_note]
