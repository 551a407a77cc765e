"""Providers: one package per backend behind the interfaces in :mod:`providers.base`.

:func:`get_provider` builds the one the settings name; :mod:`core.catalogue` lists them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.catalogue import load_package

if TYPE_CHECKING:
    from core.config import Settings
    from providers.base import Provider


def get_provider(settings: Settings) -> Provider:
    """Build the provider that ``settings.provider`` names (its package's ``build_provider``).

    Raises:
        ProviderNotAvailableError: the name is unknown, its package is not written yet, or a
            package it needs is not installed; the message says which and what to do.
    """
    provider: Provider = load_package(settings.provider).build_provider(settings)
    return provider
