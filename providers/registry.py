"""Load a provider by name, importing its package only when it is asked for.

A new backend is one package with a ``build_provider(settings)`` function and one line in
``PROVIDERS`` (the fsspec pattern: a lazily imported dotted path and an install hint).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from include.errors import ProviderNotAvailableError

if TYPE_CHECKING:
    from include.config import Settings
    from providers.base import Provider

# name -> (module with build_provider(settings), what to install if it fails to import)
PROVIDERS: dict[str, tuple[str, str]] = {
    "local": ("providers.local", "pip install duckdb mlflow fastapi uvicorn scikit-learn"),
    "aws": ("providers.aws", "pip install apache-airflow-providers-amazon sagemaker"),
    "gcp": ("providers.gcp", "pip install apache-airflow-providers-google google-cloud-aiplatform"),
    "azure": ("providers.azure", "pip install apache-airflow-providers-microsoft-azure azure-ai-ml"),
}


def get_provider(settings: Settings) -> Provider:
    """Build the provider that ``settings.provider`` names.

    Raises:
        ProviderNotAvailableError: the name is unknown, its package is not written yet, or a
            package it needs is not installed; the message says which and what to do.
    """
    name = settings.provider
    if name not in PROVIDERS:
        raise ProviderNotAvailableError(
            f"unknown provider {name!r}: set [project] provider in astro.toml (or the provider "
            f"Param) to one of {sorted(PROVIDERS)}"
        )
    module_name, install_hint = PROVIDERS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name or module_name.startswith(f"{exc.name}."):
            raise ProviderNotAvailableError(
                f"provider {name!r} is not implemented in this version of the project "
                f"(no module {module_name}); use one of: "
                f"{sorted(n for n, (m, _) in PROVIDERS.items() if _importable(m))}"
            ) from None
        raise ProviderNotAvailableError(
            f"provider {name!r} needs the package {exc.name!r}, which is not installed: {install_hint}"
        ) from exc
    return module.build_provider(settings)


def _importable(module_name: str) -> bool:
    return importlib.util.find_spec(module_name) is not None
