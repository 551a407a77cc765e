"""The FastAPI app of the Models and Drift pages, mounted into Airflow's api-server by the plugin.

Pages (HTML, shown in the Airflow UI's iframe) and their JSON twins:

    GET models                    every model version, the production alias history, gate decisions
    GET drift                     drift by feature and week, verdicts, retrains, report links
    GET drift/report/{week}       a week's HTML drift report, framed with navigation
    GET reports/drift/{week}      the report itself, read from the provider's storage
    GET runs/{dag_id}/{run_id}    the Markdown summary a retrain_pipeline run wrote (run_summary)
    GET api/models, api/drift     the same data as JSON

Every route needs a logged-in Airflow user allowed to read DAGs (the session cookie of the UI
or an ``Authorization: Bearer`` token). Settings are read per request (``MLOPS_CONFIG`` or
astro.toml); ``?provider=`` reads another provider. Only FastAPI is imported here: pandas,
DuckDB, MLflow and the provider load when a page is first asked for.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from core.catalogue import PROVIDER_NAMES

_PROVIDERS: dict[tuple[str, float, str], Any] = {}
_LOCK = threading.Lock()
PROVIDER_PATTERN = f"^({'|'.join(PROVIDER_NAMES)})$"  # the catalogue's names
WEEK_PATTERN = r"^\d{4}-W\d{2}$"


async def require_reader(request: Request) -> None:
    """Let only logged-in Airflow users who may read DAGs in (cookie or bearer token)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    user = await resolve_user_from_token(token or request.cookies.get(COOKIE_NAME_JWT_TOKEN))
    if not get_auth_manager().is_authorized_dag(method="GET", user=user):
        raise HTTPException(403, "your Airflow role may not read DAGs, so it may not read models or drift")


def _context(provider: str | None) -> tuple[Any, Any]:
    """The settings (with the provider override) and the provider, cached per settings file."""
    from core.config import load_settings
    from providers import get_provider

    settings = load_settings()
    if provider:
        settings = settings.with_overrides(provider=provider)
    key = (str(settings.config_path), settings.config_path.stat().st_mtime, settings.provider)
    with _LOCK:
        if key not in _PROVIDERS:
            _PROVIDERS.clear()  # the file changed or another provider was asked for
            _PROVIDERS[key] = get_provider(settings)
        return settings, _PROVIDERS[key]


def create_app(require_auth: bool = True) -> FastAPI:
    """Build the app.

    Args:
        require_auth: check the Airflow user (False only for tests that run the app alone).
    """
    dependencies = [Depends(require_reader)] if require_auth else []
    app = FastAPI(
        title="MLOps models and drift",
        description="The operator's view of the MLOps loop: model versions, gate decisions, drift.",
        dependencies=dependencies,
    )

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if request.url.path.rsplit("/", 2)[-2:-1] == ["api"] or "application/json" in request.headers.get(
            "accept", ""
        ):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        hint = "Log in to Airflow first." if exc.status_code == 401 else ""
        return HTMLResponse(
            f"<!doctype html><title>{exc.status_code}</title><p>{exc.status_code}: {_escape(exc.detail)}. "
            f'{hint} <a href="/" target="_top">Airflow home</a></p>',
            status_code=exc.status_code,
        )

    @app.get("/models", response_class=HTMLResponse, summary="The Models page")
    def models(provider: str | None = Query(None, pattern=PROVIDER_PATTERN)) -> str:
        from apps.ui.data import models_view
        from apps.ui.pages import error_page, models_page

        try:
            settings, backend = _context(provider)
            view = models_view(backend, settings.model_name)
        except Exception as exc:  # shown on the page: a wrong provider must not be a blank 500
            return error_page("Models", "models", provider or "configured", _message(exc))
        return models_page(view, backend.name, settings.gate_metric, _source(settings))

    @app.get("/drift", response_class=HTMLResponse, summary="The Drift page")
    def drift(provider: str | None = Query(None, pattern=PROVIDER_PATTERN)) -> str:
        from apps.ui.data import drift_view
        from apps.ui.pages import drift_page, error_page

        try:
            settings, backend = _context(provider)
            view = drift_view(backend)
        except Exception as exc:
            return error_page("Drift", "drift", provider or "configured", _message(exc))
        d = settings.drift
        thresholds = {
            "feature_psi_threshold": d.feature_psi_threshold,
            "drifted_share_threshold": d.drifted_share_threshold,
            "prediction_psi_threshold": d.prediction_psi_threshold,
            "max_p99_ms": settings.monitoring.max_p99_ms,
            "max_error_rate": settings.monitoring.max_error_rate,
        }
        return drift_page(view, backend.name, thresholds, _source(settings))

    @app.get("/drift/report/{week}", response_class=HTMLResponse, summary="A week's drift report, framed")
    def drift_report_page(week: str, provider: str | None = Query(None, pattern=PROVIDER_PATTERN)) -> str:
        from apps.ui.pages import report_frame

        week = _week(week)
        with _unavailable(provider):
            _, backend = _context(provider)
        weeks = sorted(backend.warehouse.read_rows("drift_summary", columns=["week"])["week"])
        return report_frame(week, weeks, backend.name)

    @app.get("/reports/drift/{week}", summary="A week's HTML drift report, from storage")
    def drift_report(week: str, provider: str | None = Query(None, pattern=PROVIDER_PATTERN)) -> Response:
        from lifecycle.keys import drift_report_key

        week = _week(week)
        with _unavailable(provider):
            _, backend = _context(provider)
        try:
            html = backend.storage.get_bytes(drift_report_key(week))
        except FileNotFoundError:
            raise HTTPException(404, f"week {week} has no drift report: run monitor_drift for it") from None
        # the report is data: no scripts, nothing fetched from elsewhere
        headers = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:"}
        return Response(html, media_type="text/html; charset=utf-8", headers=headers)

    @app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse, summary="A run's summary")
    def run_summary(dag_id: str, run_id: str) -> str:
        from apps.ui.pages import summary_page
        from apps.ui.run_note import summary_of_run

        text = summary_of_run(dag_id, run_id)
        if text is None:
            text = (
                f"Run `{run_id}` of `{dag_id}` has no summary: only `retrain_pipeline` writes one, "
                "in its last task (run_summary), when the run gets that far."
            )
        return summary_page(dag_id, run_id, text)

    @app.get("/api/models", summary="The Models page's data as JSON")
    def models_json(provider: str | None = Query(None, pattern=PROVIDER_PATTERN)) -> Response:
        from apps.ui.data import models_view
        from apps.ui.pages import to_json

        with _unavailable(provider):
            settings, backend = _context(provider)
            view = models_view(backend, settings.model_name)
        return Response(to_json(view), media_type="application/json")

    @app.get("/api/drift", summary="The Drift page's data as JSON")
    def drift_json(provider: str | None = Query(None, pattern=PROVIDER_PATTERN)) -> Response:
        from apps.ui.data import drift_view
        from apps.ui.pages import to_json

        with _unavailable(provider):
            _, backend = _context(provider)
            view = drift_view(backend)
        return Response(to_json(view), media_type="application/json")

    return app


def _source(settings: Any) -> dict[str, str | None]:
    """The settings file the pages read, and the demo's when it exists and is another file."""
    import demo

    config = settings.config_path.resolve()
    other = demo.DEMO_CONFIG.is_file() and demo.DEMO_CONFIG.resolve() != config
    return {"config": str(config), "demo_config": str(demo.DEMO_CONFIG) if other else None}


def _week(value: str) -> str:
    import re

    from core.errors import ParamError
    from core.weeks import parse_week

    if not re.fullmatch(WEEK_PATTERN, value):
        raise HTTPException(400, f"{value!r} is not an ISO week like 2026-W05")
    try:
        return parse_week(value)
    except ParamError as exc:
        raise HTTPException(400, str(exc)) from None


@contextlib.contextmanager
def _unavailable(provider: str | None) -> Iterator[None]:
    """Answer 503 with what to fix when the settings or the provider cannot be read.

    A bare 500 said nothing; the HTML pages show the same message on the page.
    """
    try:
        yield
    except HTTPException:
        raise
    except Exception as exc:
        raise HTTPException(
            503,
            f"cannot read the {provider or 'configured'} provider: {_message(exc)}",
        ) from None


def _message(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def _escape(value: Any) -> str:
    from html import escape

    return escape(str(value))
