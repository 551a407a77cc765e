"""The code a SageMaker container runs (script mode): one deterministic ``sourcedir.tar.gz``.

The scikit-learn container downloads it from S3 (``sagemaker_submit_directory``), installs
``requirements.txt`` and runs ``train.py`` (training) or loads ``sagemaker_inference.py``
(endpoint, batch transform). The archive is keyed by the hash of its content, so the same code
is uploaded once and a changed script gets a new key.
"""

from __future__ import annotations

import hashlib
import io
import tarfile

from include.config import PROJECT_ROOT
from providers.base import ObjectStore

FILES = {
    "train.py": "include/ml/train.py",
    "features.py": "include/ml/features.py",
    "schema.py": "include/ml/schema.py",
    "sagemaker_inference.py": "include/serving/sagemaker_inference.py",
}
# what the prebuilt container lacks for the project's scripts
REQUIREMENTS = "pyarrow>=14\n"
TRAIN_PROGRAM = "train.py"
INFERENCE_PROGRAM = "sagemaker_inference.py"


def build_sourcedir() -> bytes:
    """Return the gzipped tar of the scripts (same bytes for the same code: no timestamps)."""
    buffer = io.BytesIO()
    contents = {name: (PROJECT_ROOT / path).read_bytes() for name, path in FILES.items()}
    contents["requirements.txt"] = REQUIREMENTS.encode()
    import gzip

    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name in sorted(contents):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(contents[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(contents[name]))
    return buffer.getvalue()


def upload_sourcedir(storage: ObjectStore) -> str:
    """Upload the scripts' archive if this version is not there yet; return its s3:// URI."""
    data = build_sourcedir()
    key = f"_sagemaker/code/{hashlib.sha256(data).hexdigest()[:16]}/sourcedir.tar.gz"
    if not storage.exists(key):
        storage.put_bytes(key, data)
    return storage.uri(key)
