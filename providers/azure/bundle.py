"""The code Azure ML runs: the project's code bundle plus the Azure scoring script at its root.

One deterministic ``bundle.tar.gz`` (``providers/bundle.py``: ``core/ml/...``, the dataset
spec and its feature function) with ``azureml_score.py`` beside ``core``; it is uploaded once
per content under ``_azureml/code/<hash>/``. A command job unpacks it and runs
``python -m core.ml.train`` (training) or ``python azureml_score.py`` (batch scoring); an
online deployment uses the same files as its code configuration.
"""

from __future__ import annotations

import hashlib

from core.config import PROJECT_ROOT
from core.ml.dataset import spec_from_json
from providers.base import ObjectStore
from providers.bundle import build_archive, bundle_files

SCORING_SCRIPT = "azureml_score.py"


def bundle_bytes(dataset_spec: str) -> tuple[str, bytes]:
    """The bundle's files as a gzipped tar, and the first 16 hex characters of its sha256."""
    files = bundle_files(spec_from_json(dataset_spec) if dataset_spec else None)
    files[SCORING_SCRIPT] = _scoring_script()
    data = build_archive(files)
    return hashlib.sha256(data).hexdigest()[:16], data


def upload_bundle(storage: ObjectStore, dataset_spec: str) -> str:
    """Upload the bundle if this content is not there yet; return its URL in storage."""
    digest, data = bundle_bytes(dataset_spec)
    key = f"_azureml/code/{digest}/bundle.tar.gz"
    if not storage.exists(key):
        storage.put_bytes(key, data)
    return storage.uri(key)


def upload_bundle_folder(storage: ObjectStore, dataset_spec: str) -> tuple[str, str]:
    """Upload the bundle's files one by one (an online deployment's code is a folder).

    Returns:
        The content's digest and the folder's URL (ending in ``/``).
    """
    digest, _ = bundle_bytes(dataset_spec)
    folder = f"_azureml/code/{digest}/files"
    if not storage.exists(f"{folder}/{SCORING_SCRIPT}"):  # the scoring script last: it marks the folder whole
        files = bundle_files(spec_from_json(dataset_spec) if dataset_spec else None)
        for name, data in sorted(files.items()):
            storage.put_bytes(f"{folder}/{name}", data)
        storage.put_bytes(f"{folder}/{SCORING_SCRIPT}", _scoring_script())
    return digest, storage.uri(folder) + "/"


def _scoring_script() -> bytes:
    return (PROJECT_ROOT / "providers" / "azure" / SCORING_SCRIPT).read_bytes()
