"""The Python package of the GCP provider: the code bundle plus the Vertex AI entry modules.

Vertex AI's ``pythonPackageSpec`` installs a source distribution from GCS with pip and runs a
module of it. The package holds the project's code bundle (providers/bundle.py: ``core/ml``,
the feature function module), the dataset spec (as package data of ``mlops_spec``), the
training entry ``vertex_train`` and the serving entry ``vertex_serve`` (which the serving image,
providers/gcp/serving.Dockerfile, installs and runs). Its requirements pin scikit-learn, pandas,
pyarrow and joblib to the versions installed here, so the model the container pickles unpickles
in Airflow's workers (the prebuilt container's own scikit-learn may be older). The archive is
deterministic and keyed by its hash: the same code is uploaded once.
"""

from __future__ import annotations

import hashlib
from importlib import metadata

from core.config import PROJECT_ROOT
from core.ml.dataset import DatasetSpec
from providers.base import ObjectStore
from providers.bundle import SPEC_FILE, build_archive, bundle_files

NAME, VERSION = "mlops_bundle", "1.0"
ENTRY_MODULE = "vertex_train"
SERVING_MODULE = "vertex_serve"
PINNED = ("scikit-learn", "pandas", "pyarrow", "joblib")
SETUP = """from setuptools import find_packages, setup

setup(
    name="{name}",
    version="{version}",
    packages=find_packages(),
    py_modules={modules!r},
    package_data={{"mlops_spec": ["dataset_spec.json"]}},
    install_requires={requires!r},
)
"""


def requirements() -> list[str]:
    """The pinned requirements of the package (the versions installed here)."""
    return [f"{name}=={metadata.version(name)}" for name in PINNED]


def package_files(spec: DatasetSpec) -> dict[str, bytes]:
    """Every file of the source distribution (archive name -> bytes)."""
    files = bundle_files(spec)
    spec_json = files.pop(SPEC_FILE)
    files["mlops_spec/__init__.py"] = b'"""The dataset spec the model is trained under (package data)."""\n'
    files["mlops_spec/dataset_spec.json"] = spec_json
    for module in (ENTRY_MODULE, SERVING_MODULE):
        files[f"{module}.py"] = (PROJECT_ROOT / "providers" / "gcp" / f"{module}.py").read_bytes()
    setup = SETUP.format(
        name=NAME, version=VERSION, modules=[ENTRY_MODULE, SERVING_MODULE], requires=requirements()
    )
    files["setup.py"] = setup.encode()
    files["PKG-INFO"] = f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n".encode()
    return {f"{NAME}-{VERSION}/{name}": data for name, data in files.items()}


def upload_package(storage: ObjectStore, spec: DatasetSpec) -> str:
    """Upload the package if this version is not there yet; return its gs:// URI."""
    data = build_archive(package_files(spec))
    key = f"_vertex/code/{hashlib.sha256(data).hexdigest()[:16]}/{NAME}-{VERSION}.tar.gz"
    if not storage.exists(key):
        storage.put_bytes(key, data)
    return storage.uri(key)
