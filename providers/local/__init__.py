"""The local provider (the embedded default): a folder, a subprocess, MLflow, FastAPI, DuckDB.

Everything lives under ``[local] root`` of astro.toml (``.mlops/`` by default):

    storage/      objects (raw, validated, quarantine, models, reports) and the alias ledger
                  (_registry/aliases/<model>/<alias>.json, providers/ledger.py)
    mlflow/       MLflow tracking + registry (SQLite)
    endpoint/     what the local endpoint serves; server.pid and server.log of the server a
                  deploy started (providers/local/server_process.py)
    warehouse.duckdb
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from providers.base import Provider

if TYPE_CHECKING:
    from core.config import Settings


def local_root(settings: Settings) -> Path:
    """Return the local provider's folder (relative paths are relative to astro.toml)."""
    root = Path(settings.provider_sections.get("local", {}).get("root", ".mlops"))
    return root if root.is_absolute() else (settings.config_path.parent / root).resolve()


def build_provider(settings: Settings) -> Provider:
    """Build the local provider from the ``[local]`` section of the settings."""
    from core.serving_metrics import access_log_level
    from providers.local.batch import ChunkedBatchScorer
    from providers.local.endpoint import LocalHttpEndpoint
    from providers.local.registry import MlflowModelRegistry
    from providers.local.server_process import from_settings
    from providers.local.storage import LocalObjectStore
    from providers.local.training import SubprocessTrainingJobs
    from providers.local.warehouse import DuckDBWarehouse

    section = settings.provider_sections.get("local", {})
    access_log_level(section)  # a bad value fails here, not in the server the deploy starts
    root = local_root(settings)
    storage = LocalObjectStore(root / "storage")
    registry = MlflowModelRegistry(root / "mlflow", storage)
    server = from_settings(settings)
    endpoint = LocalHttpEndpoint(
        server.folder,
        registry,
        storage,
        host=server.host,
        port=server.port,
        # off: a call that finds nothing answering fails (the server is yours to run)
        server=server if section.get("start_endpoint", True) else None,
    )
    return Provider(
        name="local",
        storage=storage,
        training=SubprocessTrainingJobs(storage),
        registry=registry,
        endpoint=endpoint,
        batch=ChunkedBatchScorer(storage, registry),
        warehouse=DuckDBWarehouse(root / "warehouse.duckdb"),
        details={"root": str(root), "endpoint_url": endpoint.url},
    )
