"""The Azure capabilities not written yet: training, the online endpoint and batch scoring.

They wait for the shared job model (submit / status / collect through one trigger), which is
being rebuilt. Until then the provider still builds (storage, registry and warehouse work), and
each of these says exactly what is missing when a task reaches it, instead of failing later
with an AttributeError.
"""

from __future__ import annotations

from typing import Any, NoReturn

from include.errors import ProviderNotAvailableError


def _missing(what: str) -> NoReturn:
    raise ProviderNotAvailableError(
        f"Azure ML {what} is not written yet in this version of the project (issue 15, phase 2: it "
        "runs on the shared job model); on provider 'azure' only storage, the model registry and "
        "the Synapse warehouse work. Use provider 'local' or 'aws' for the whole loop."
    )


class PendingTraining:
    """Training as an Azure ML command job: not written yet."""

    def run(self, spec: Any) -> Any:
        """Raise ProviderNotAvailableError (see the module docstring)."""
        _missing("training (a command job)")


class PendingEndpoint:
    """The managed online endpoint (blue/green): not written yet."""

    def current(self, model_name: str) -> Any:
        """Raise ProviderNotAvailableError (see the module docstring)."""
        _missing("online endpoint")

    def deploy(self, version: Any) -> Any:
        """Raise ProviderNotAvailableError (see the module docstring)."""
        _missing("online endpoint")

    def invoke(self, model_name: str, rows: list[dict[str, Any]]) -> Any:
        """Raise ProviderNotAvailableError (see the module docstring)."""
        _missing("online endpoint")


class PendingBatch:
    """Batch scoring on Azure ML: not written yet."""

    def score(self, version: Any, input_key: str) -> Any:
        """Raise ProviderNotAvailableError (see the module docstring)."""
        _missing("batch scoring")
