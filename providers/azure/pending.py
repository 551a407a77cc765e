"""The Azure capability not written yet: the managed online endpoint.

Until it is, the provider still builds (storage, training, the registry, batch scoring and the
warehouse work), and the endpoint says exactly what is missing when a task reaches it, instead
of failing later with an AttributeError.
"""

from __future__ import annotations

from typing import Any, NoReturn

from include.errors import ProviderNotAvailableError


def _missing() -> NoReturn:
    raise ProviderNotAvailableError(
        "the Azure ML online endpoint is not written yet in this version of the project (issue 15); "
        "on provider 'azure' storage, training, the model registry, batch scoring and the Synapse "
        "warehouse work. Use provider 'local' or 'aws' for the whole loop."
    )


class PendingEndpoint:
    """The managed online endpoint (blue/green): not written yet."""

    def current(self, model_name: str) -> Any:
        """Raise ProviderNotAvailableError (see the module docstring)."""
        _missing()

    def start_rollout(self, version: Any) -> Any:
        """Raise ProviderNotAvailableError (see the module docstring)."""
        _missing()

    def status(self, handle: Any) -> Any:
        """Raise ProviderNotAvailableError (see the module docstring)."""
        _missing()

    def finish_rollout(self, version: Any, handle: Any) -> Any:
        """Raise ProviderNotAvailableError (see the module docstring)."""
        _missing()

    def invoke(self, model_name: str, rows: list[dict[str, Any]]) -> Any:
        """Raise ProviderNotAvailableError (see the module docstring)."""
        _missing()
