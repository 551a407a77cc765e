"""What an Azure ML compute node does with a command job, done on this machine for the stand-in.

The job's ``uri_file`` inputs are downloaded from the storage account (Azurite) into a job
folder, ``${{inputs.<name>}}`` and ``${{outputs.<name>}}`` in the command become those local
paths, and the command runs under bash with the job's environment variables. As in the curated
environment, the project itself is not importable: ``python`` on the command's PATH is this
interpreter with the project root taken off ``sys.path``, so ``include`` comes from the job's
own bundle. A ``uri_folder`` output's files are uploaded to the output's blob folder afterwards.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from helpers import ROOT

_BINDING = re.compile(r"\$\{\{(inputs|outputs)\.([A-Za-z0-9_]+)\}\}")


def _blob(service: Any, uri: str) -> tuple[Any, str]:
    """The container client and blob name of a blob URL of the account."""
    path = unquote(urlparse(uri).path).lstrip("/")
    _account, container, name = path.split("/", 2)
    return service.get_container_client(container), name


def _python_shim(folder: Path) -> Path:
    """A ``python`` that is this interpreter without the project on its path."""
    bootstrap = (
        "import runpy, sys; root = sys.argv.pop(1); "
        "sys.path[:] = [p for p in sys.path if p.rstrip('/') != root and p != '']; "
        "sys.path.insert(0, '.'); sys.argv.pop(0); "
        "module = sys.argv.pop(1) if sys.argv[0] == '-m' else None; "
        "sys.argv[0] = module or sys.argv[0]; "
        "runpy.run_module(module, run_name='__main__', alter_sys=True) if module "
        "else runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    shim = folder / "python"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "{bootstrap}" "{ROOT}" "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    return folder


def run_command_job(
    properties: dict[str, Any], connection_string: str, fails: bool = False
) -> tuple[bool, str]:
    """Run a command job's command with its inputs and outputs; return (succeeded, its logs)."""
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(connection_string)
    with tempfile.TemporaryDirectory(prefix="azureml-job-") as tmp:
        work = Path(tmp)
        paths: dict[tuple[str, str], str] = {}
        for name, binding in (properties.get("inputs") or {}).items():
            if binding["jobInputType"] == "literal":
                paths[("inputs", name)] = binding["value"]
                continue
            container, blob = _blob(service, binding["uri"])
            target = work / "inputs" / name / Path(blob).name
            target.parent.mkdir(parents=True)
            target.write_bytes(container.download_blob(blob).readall())
            paths[("inputs", name)] = str(target)
        for name in properties.get("outputs") or {}:
            folder = work / "outputs" / name
            folder.mkdir(parents=True)
            paths[("outputs", name)] = str(folder)
        command = _BINDING.sub(lambda m: paths[(m.group(1), m.group(2))], properties["command"])
        (work / "bin").mkdir()
        bin_dir = _python_shim(work / "bin")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SM_", "PYTHONPATH"))}
        env.update(properties.get("environmentVariables") or {})
        env.update({"PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", "OMP_NUM_THREADS": "1"})
        if fails:  # on cue: a hyperparameter the estimator refuses, so the script itself exits 1
            env["SM_HPS"] = '{"learning_rate": "not-a-number"}'
        run_dir = work / "run"
        run_dir.mkdir()
        result = subprocess.run(["bash", "-c", command], cwd=run_dir, env=env, capture_output=True,
                                text=True, timeout=600)  # fmt: skip
        logs = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        if result.returncode != 0:
            return False, logs
        for name, binding in (properties.get("outputs") or {}).items():
            container, prefix = _blob(service, binding["uri"])
            for path in sorted(Path(paths[("outputs", name)]).rglob("*")):
                if path.is_file():
                    relative = path.relative_to(paths[("outputs", name)]).as_posix()
                    container.upload_blob(
                        f"{prefix.rstrip('/')}/{relative}", path.read_bytes(), overwrite=True
                    )
        return True, logs
