"""The catalogue of providers: every backend's name, package, label and install hint, in one place.

The settings check (``core.config``), the DAGs' provider Param, the UI's provider selector
and price look-ups, and :func:`providers.get_provider` all read this list, so a new backend is
one package with a ``build_provider(settings)`` function and one entry (the fsspec pattern: a
lazily imported dotted path and an install hint). A backend that lives out of this tree, in
its own installed distribution, adds its entry through the entry point group
``mlops.providers`` (:data:`ENTRY_POINT_GROUP`): each entry point names a :class:`ProviderEntry`
object, and those entries follow the built-in ones (docs/adding-a-cloud.md).

It lives in the core, under the providers, as fsspec's registry of implementations does: the
settings check needs the names, and it names each package by a dotted path, so nothing here
imports a provider until one is built. This module is imported while DAG files are parsed
(``dags/wiring/params.py``): it imports
nothing but the standard library, and a provider's package only when that provider is built.
The entry points are read once, on import, only when some installed distribution declares the
group (a look at each distribution's ``entry_points.txt`` first, so a tree without plug-ins
does not pay for ``importlib.metadata``); an entry point's module is imported then, so it
should hold the entry alone.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "mlops.providers"


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
        prices: ``"module:NAME"`` of its list prices (machine type -> USD per instance-hour),
            or empty when it runs on no priced machines.
    """

    name: str
    module: str
    label: str
    install_hint: str
    settings_class: str = ""
    prices: str = ""

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

    def load_prices(self) -> Mapping[str, float]:
        """Import and return the provider's list prices (empty when it has none or is not installed)."""
        if not self.prices or not self.implemented():
            return {}
        module_name, _, name = self.prices.partition(":")
        table: Mapping[str, float] = getattr(importlib.import_module(module_name), name)
        return table


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
        prices="providers.aws.prices:HOURLY_USD",
    ),
    ProviderEntry(
        name="gcp",
        module="providers.gcp",
        label="gcp: GCS, Vertex AI, BigQuery",
        install_hint="pip install apache-airflow-providers-google google-cloud-aiplatform",
        settings_class="providers.gcp.config:GcpSettings",
        prices="providers.gcp.prices:HOURLY_USD",
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
        prices="providers.azure.prices:HOURLY_USD",
    ),
)
BUILT_IN = CATALOGUE  # the entries of this tree; CATALOGUE adds the installed plug-ins'


def _declares_group() -> bool:
    """Tell whether an installed distribution declares :data:`ENTRY_POINT_GROUP` (a text search).

    Reading every distribution's metadata costs ~0.1 s on a full Airflow install; a plain look
    into the ``entry_points.txt`` files costs a fifth of that, so the metadata is read only when
    the group is there.
    """
    needle = f"[{ENTRY_POINT_GROUP}]".encode()
    for folder in sys.path:
        try:
            names = os.listdir(folder or ".")
        except OSError:  # a zip file or a missing folder: importlib.metadata reads those
            if folder and os.path.isfile(folder):
                return True
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info")):
                try:
                    with open(os.path.join(folder or ".", name, "entry_points.txt"), "rb") as file:
                        if needle in file.read():
                            return True
                except OSError:
                    continue
    return False


def discovered_entries(builtin: tuple[ProviderEntry, ...] = BUILT_IN) -> tuple[ProviderEntry, ...]:
    """The :class:`ProviderEntry` objects installed distributions declare in ``mlops.providers``.

    An entry point that cannot be loaded, is not a ``ProviderEntry``, or reuses a name already
    taken (a built-in one or an earlier plug-in's) is left out with a warning in the log: a
    broken plug-in must not stop every DAG from parsing.
    """
    if not _declares_group():
        return ()
    from importlib.metadata import entry_points

    taken = {entry.name for entry in builtin}
    found: list[ProviderEntry] = []
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        try:
            entry = point.load()
        except Exception as exc:  # any error of a third party's module: report it, go on
            log.warning("provider entry point %s = %s cannot be loaded: %s", point.name, point.value, exc)
            continue
        if not isinstance(entry, ProviderEntry):
            log.warning("provider entry point %s = %s is not a ProviderEntry", point.name, point.value)
            continue
        if entry.name in taken:
            log.warning("provider entry point %s: the name %r is taken; left out", point.name, entry.name)
            continue
        taken.add(entry.name)
        found.append(entry)
    return tuple(found)


CATALOGUE = BUILT_IN + discovered_entries()

# name -> entry, in the catalogue's order (the order of the drop-downs)
PROVIDERS: dict[str, ProviderEntry] = {entry.name: entry for entry in CATALOGUE}
PROVIDER_NAMES: tuple[str, ...] = tuple(PROVIDERS)


def list_price(machine: str) -> float | None:
    """The list price per instance-hour of ``machine`` in the catalogue's price tables, or None.

    Machine type names do not collide across clouds (``ml.m5.large``, ``n1-standard-4``,
    ``Standard_DS3_v2``), so the first table that knows the name answers.
    """
    for entry in CATALOGUE:
        price = entry.load_prices().get(machine)
        if price is not None:
            return float(price)
    return None


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
