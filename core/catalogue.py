"""The catalogue of providers: every backend's name, package, label and install hint, in one place.

The settings check (``core.config``), the DAGs' provider Param, the UI's provider selector
and :func:`providers.get_provider` all read this list, so a new backend is one package with a
``build_provider(settings)`` function and one entry here (the fsspec pattern: a lazily imported
dotted path and an install hint).

It lives in the core, under the providers, as fsspec's registry of implementations does: the
settings check needs the names, and it names each package by a dotted path, so nothing here
imports a provider until one is built. This module is imported while DAG files are parsed
(``dags/wiring/params.py``): it imports
nothing but the standard library, and a provider's package only when that provider is built.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class ProviderEntry:
    """One backend of the catalogue.

    Attributes:
        name: the value of ``[project] provider`` and of the provider Param; also the name of
            its astro.toml section (``[aws]``) and hardware profiles (``[hardware.training.aws]``).
        module: the package with ``build_provider(settings) -> Provider``, imported on demand.
        label: what the Param drop-down and the UI show next to the name.
        install_hint: what to install when the package needs something that is missing.
        settings_class: ``"module:Class"`` of its typed settings (``Class.from_settings``), or
            empty when the provider reads its section itself.
    """

    name: str
    module: str
    label: str
    install_hint: str
    settings_class: str = ""

    def implemented(self) -> bool:
        """Tell whether the provider's package exists in this version of the project."""
        try:
            return importlib.util.find_spec(self.module) is not None
        except ModuleNotFoundError:  # a parent package is missing
            return False

    def load_settings_class(self) -> type | None:
        """Import and return the provider's settings class (None when it has none)."""
        if not self.settings_class:
            return None
        module_name, _, class_name = self.settings_class.partition(":")
        settings: type = getattr(importlib.import_module(module_name), class_name)  # the entry names a class
        return settings


CATALOGUE: tuple[ProviderEntry, ...] = (
    ProviderEntry(
        name="local",
        module="providers.local",
        label="local: a folder, a subprocess, MLflow, DuckDB",
        install_hint="pip install duckdb mlflow fastapi uvicorn scikit-learn",
    ),
    ProviderEntry(
        name="aws",
        module="providers.aws",
        label="aws: S3, SageMaker, Redshift",
        install_hint="pip install apache-airflow-providers-amazon sagemaker",
        settings_class="providers.aws.config:AwsSettings",
    ),
    ProviderEntry(
        name="gcp",
        module="providers.gcp",
        label="gcp: GCS, Vertex AI, BigQuery",
        install_hint="pip install apache-airflow-providers-google google-cloud-aiplatform",
        settings_class="providers.gcp.config:GcpSettings",
    ),
    ProviderEntry(
        name="azure",
        module="providers.azure",
        label="azure: Blob Storage, Azure ML, Synapse",
        install_hint=(
            "pip install apache-airflow-providers-microsoft-azure apache-airflow-providers-microsoft-mssql "
            "azure-ai-ml"
        ),
        settings_class="providers.azure.config:AzureSettings",
    ),
)

# name -> entry, in the catalogue's order (the order of the drop-downs)
PROVIDERS: dict[str, ProviderEntry] = {entry.name: entry for entry in CATALOGUE}
PROVIDER_NAMES: tuple[str, ...] = tuple(PROVIDERS)


def implemented_names() -> list[str]:
    """The names whose package exists in this version of the project."""
    return [entry.name for entry in PROVIDERS.values() if entry.implemented()]


def load_package(name: str) -> ModuleType:
    """Import the package of the provider called ``name`` (its ``build_provider`` builds it).

    Raises:
        ProviderNotAvailableError: the name is unknown, its package is not written yet, or a
            package it needs is not installed; the message says which and what to do.
    """
    from core.errors import ProviderNotAvailableError

    if name not in PROVIDERS:
        raise ProviderNotAvailableError(
            f"unknown provider {name!r}: set [project] provider in astro.toml (or the provider "
            f"Param) to one of {sorted(PROVIDERS)}"
        )
    entry = PROVIDERS[name]
    try:
        return importlib.import_module(entry.module)
    except ModuleNotFoundError as exc:
        if exc.name == entry.module or entry.module.startswith(f"{exc.name}."):
            raise ProviderNotAvailableError(
                f"provider {name!r} is not implemented in this version of the project "
                f"(no module {entry.module}); use one of: {sorted(implemented_names())}"
            ) from None
        raise ProviderNotAvailableError(
            f"provider {name!r} needs the package {exc.name!r}, which is not installed: {entry.install_hint}"
        ) from exc
