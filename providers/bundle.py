"""The code bundle: the training and inference code, the dataset spec and its feature function.

One list of files, used for two things: the archive a cloud container runs (each provider adds
its own entry scripts at the archive's root) and the code version recorded in a model's lineage.
Inside the archive the files keep their paths (``core/ml/train.py``), so the container
imports them as the project does; a user's feature function module goes in under its own dotted
path. The archive is deterministic (no timestamps): the same code gives the same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import tarfile
from collections.abc import Mapping
from pathlib import Path

from core.config import PROJECT_ROOT
from core.errors import ConfigError
from core.ml.dataset import DatasetSpec

# The project's code that trains and scores a model (everything it imports from the project).
CODE_FILES = (
    "core/__init__.py",
    "core/ml/__init__.py",
    "core/ml/dataset.py",
    "core/ml/features.py",
    "core/ml/forest.py",
    "core/ml/modeling.py",
    "core/ml/train.py",
)
SPEC_FILE = "dataset_spec.json"
# What core/ml/train.py writes into its model folder, copied to a job's output prefix in
# storage by every provider; the marker goes last, so a job killed half-way leaves none.
OUTPUT_FILES = ("model.joblib", "metrics.json", "feature_names.json")
SUCCESS_MARKER = "_SUCCESS"


def feature_module_files(spec: DatasetSpec) -> dict[str, bytes]:
    """The source of the spec's feature function module and its packages' ``__init__.py``.

    Only the module's own file travels: a feature function must import nothing but installed
    packages and the standard library (or modules of the project's bundle).

    Raises:
        ConfigError: the module cannot be found or is not a plain ``.py`` file.
    """
    if not spec.feature_function:
        return {}
    module_name = spec.feature_function.split(":")[0]
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.origin or not found.origin.endswith(".py"):
        raise ConfigError(
            f"[dataset] feature_function {spec.feature_function!r}: module {module_name!r} is not a .py file "
            "on the path; put it in the project (e.g. my_features.py at its root) so it can be shipped"
        )
    parts = module_name.split(".")
    files = {"/".join(parts) + ".py": Path(found.origin).read_bytes()}
    for depth in range(1, len(parts)):
        package = "/".join(parts[:depth])
        init = PROJECT_ROOT / package / "__init__.py"
        files[f"{package}/__init__.py"] = init.read_bytes() if init.is_file() else b""
    return files


def bundle_files(spec: DatasetSpec | None) -> dict[str, bytes]:
    """Every file of the bundle (archive name -> bytes), with the spec as ``dataset_spec.json``."""
    files = {name: (PROJECT_ROOT / name).read_bytes() for name in CODE_FILES}
    if spec is not None:
        files.update(feature_module_files(spec))
        files[SPEC_FILE] = spec.to_json().encode()
    return files


def code_version(spec: DatasetSpec) -> str:
    """A hash of the code and spec that shape a model: part of its lineage and job name."""
    digest = hashlib.sha256()
    for name, data in sorted(bundle_files(spec).items()):
        digest.update(name.encode())
        digest.update(hashlib.sha256(data).digest())
    return f"sha256:{digest.hexdigest()[:16]}"


def build_archive(files: Mapping[str, bytes]) -> bytes:
    """A gzipped tar of ``files`` (same bytes for the same files: no timestamps, sorted)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(files[name]))
    return buffer.getvalue()
