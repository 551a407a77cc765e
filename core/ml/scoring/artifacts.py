"""Loading a registered model safely.

``load_model`` checks the artifact's sha256 against the one recorded at registration *before*
unpickling it: unpickling runs arbitrary code, so a swapped or corrupted file must never reach
``joblib.load``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import joblib

from core.errors import ArtifactIntegrityError
from core.ml.modeling import TrainedModel

_HASH_BLOCK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB blocks (models can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def load_model(path: str | Path, expected_sha256: str) -> TrainedModel:
    """Load a joblib model after checking its sha256.

    Args:
        path: the ``model.joblib`` file.
        expected_sha256: the hex digest recorded when the model was registered.

    Returns:
        The unpickled :class:`TrainedModel`.

    Raises:
        ArtifactIntegrityError: the file's sha256 differs from ``expected_sha256`` (nothing was
            unpickled), no expected hash was given, or the file holds something else than a
            model of this project (e.g. one trained before models carried their dataset spec).
    """
    expected = (expected_sha256 or "").strip().lower()
    if not expected:
        raise ArtifactIntegrityError(f"refusing to load {path}: no expected sha256 was given")
    actual = file_sha256(path)
    if actual != expected:
        raise ArtifactIntegrityError(
            f"refusing to load {path}: its sha256 is {actual} but the registry expects {expected}; "
            "the file was changed or corrupted after registration - re-register or restore it"
        )
    model = joblib.load(path)
    if not isinstance(model, TrainedModel):
        raise ArtifactIntegrityError(
            f"{path} holds a {type(model).__name__}, not a model trained with its dataset spec (a model "
            "registered by an older version of this project): retrain it (trigger train_model)"
        )
    return model
