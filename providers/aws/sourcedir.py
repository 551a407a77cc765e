"""The code a SageMaker container runs (script mode): one deterministic ``sourcedir.tar.gz``.

The scikit-learn container downloads it from S3 (``sagemaker_submit_directory``), installs
``requirements.txt`` and runs ``train.py`` (training) or loads ``sagemaker_inference.py``
(endpoint, batch transform). Both are entry scripts at the archive's root over the project's
code bundle (``providers/bundle.py``: ``core/ml/...``, the dataset spec and its feature
function). The archive is keyed by the hash of its content, so the same code is uploaded once
and a changed script or spec gets a new key.
"""

from __future__ import annotations

import hashlib

from core.config import PROJECT_ROOT
from core.ml.dataset import DatasetSpec
from providers.base import ObjectStore
from providers.bundle import build_archive, bundle_files

# what the prebuilt container lacks for the project's scripts
REQUIREMENTS = "pyarrow>=14\n"
TRAIN_PROGRAM = "train.py"
INFERENCE_PROGRAM = "sagemaker_inference.py"
# The training entry: the container runs it from the archive's root, where ``core`` is.
TRAIN_ENTRY = b'''"""SageMaker training entry: the project's training script (core/ml/train.py)."""

import sys

from core.ml.train import main

sys.exit(main())
'''


def build_sourcedir(spec: DatasetSpec | None) -> bytes:
    """Return the gzipped tar of the bundle and the entry scripts (same bytes for the same code)."""
    files = bundle_files(spec)
    files[TRAIN_PROGRAM] = TRAIN_ENTRY
    files[INFERENCE_PROGRAM] = (PROJECT_ROOT / "providers" / "aws" / INFERENCE_PROGRAM).read_bytes()
    files["requirements.txt"] = REQUIREMENTS.encode()
    return build_archive(files)


def upload_sourcedir(storage: ObjectStore, spec: DatasetSpec | None) -> str:
    """Upload the scripts' archive if this version is not there yet; return its s3:// URI."""
    data = build_sourcedir(spec)
    key = f"_sagemaker/code/{hashlib.sha256(data).hexdigest()[:16]}/sourcedir.tar.gz"
    if not storage.exists(key):
        storage.put_bytes(key, data)
    return storage.uri(key)
