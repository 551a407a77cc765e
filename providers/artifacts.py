"""What every model registry checks before it hands out a version's artifact: its sha256."""

from __future__ import annotations

from core.errors import ArtifactIntegrityError
from providers.base import ModelVersion


def check_artifact_sha256(version: ModelVersion, actual: str) -> None:
    """Refuse an artifact whose sha256 is not the one recorded when the version was registered.

    Args:
        version: the registered version (its ``sha256`` was recorded at registration).
        actual: the hex sha256 of the bytes the registry fetched.

    Raises:
        ArtifactIntegrityError: ``actual`` differs, or nothing was recorded; the message says
            to re-register the model.
    """
    if not version.sha256 or actual != version.sha256:
        raise ArtifactIntegrityError(
            f"artifact of {version.model_name} v{version.version} at {version.artifact_uri} has "
            f"sha256 {actual}, but {version.sha256 or 'nothing'} was recorded at registration; "
            "refusing to load it. Re-register the model from its training output."
        )
