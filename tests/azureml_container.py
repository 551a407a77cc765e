"""What an Azure ML compute node does with a command job, done on this machine for the stand-in.

The job's ``uri_file`` inputs are downloaded from the storage account (Azurite) into a job
folder, ``${{inputs.<name>}}`` and ``${{outputs.<name>}}`` in the command become those local
paths, and the command runs under bash with the job's environment variables. As in the curated
environment, the project itself is not importable: ``python`` on the command's PATH is this
interpreter with the project root taken off ``sys.path``, so ``core`` comes from the job's
own bundle. A ``uri_folder`` output's files are uploaded to the output's blob folder afterwards.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import threading
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
        # A uri_folder output is mounted read-write by default (ReadWriteMount): what the command
        # wrote is in the datastore whether it succeeded or not, so it is uploaded either way.
        for name, binding in (properties.get("outputs") or {}).items():
            container, prefix = _blob(service, binding["uri"])
            for path in sorted(Path(paths[("outputs", name)]).rglob("*")):
                if path.is_file():
                    relative = path.relative_to(paths[("outputs", name)]).as_posix()
                    container.upload_blob(
                        f"{prefix.rstrip('/')}/{relative}", path.read_bytes(), overwrite=True
                    )
        return result.returncode == 0, logs


# the inference server's part: init() once, then run() per request (one JSON line in, one out)
_WORKER = """
import json, sys, traceback
import azureml_score
try:
    azureml_score.init()
except Exception as exc:
    print(json.dumps({"ready": False, "error": f"init() failed: {exc}"}), flush=True)
    sys.exit(1)
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    try:
        print(json.dumps({"answer": azureml_score.run(line)}), flush=True)
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
"""


class ScoringWorker:
    """A deployment's scoring process: the code folder and the model downloaded, ``init()`` run.

    Like the managed inference server, it imports the deployment's ``scoring_script`` from its
    code folder (only that folder importable), with ``AZUREML_MODEL_DIR`` holding the registered
    model and the deployment's environment variables set.
    """

    def __init__(self, code_uri: str, model_uri: str, environment: dict[str, str], connection_string: str):
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(connection_string)
        self._tmp = tempfile.TemporaryDirectory(prefix="azureml-deployment-")
        work = Path(self._tmp.name)
        container, prefix = _blob(service, code_uri)
        code = work / "code"
        for blob in container.list_blobs(name_starts_with=prefix.rstrip("/") + "/"):
            target = code / blob.name[len(prefix.rstrip("/")) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(container.download_blob(blob.name).readall())
        container, name = _blob(service, model_uri)
        model_dir = work / "model"
        model_dir.mkdir()
        (model_dir / Path(name).name).write_bytes(container.download_blob(name).readall())
        (work / "worker.py").write_text(_WORKER)
        (work / "bin").mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SM_", "PYTHONPATH"))}
        env.update(environment)
        env.update({"AZUREML_MODEL_DIR": str(model_dir), "OMP_NUM_THREADS": "1"})
        python = _python_shim(work / "bin") / "python"
        self.process = subprocess.Popen(
            [str(python), str(work / "worker.py")], cwd=code, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.lock = threading.Lock()

    def ready(self) -> tuple[bool, str]:
        """Wait for ``init()``: (loaded, the reason when not)."""
        line = self.process.stdout.readline()
        if not line:
            return False, f"the scoring process exited: {self.process.stderr.read()[-2000:]}"
        status = json.loads(line)
        return bool(status.get("ready")), status.get("error", "")

    def score(self, body: str) -> tuple[int, Any]:
        """One request: (HTTP status, the answer or the error) as the inference server answers."""
        with self.lock:
            self.process.stdin.write(body.replace("\n", " ") + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        if not line:
            return 502, "the scoring process died"
        result = json.loads(line)
        return (200, result["answer"]) if "answer" in result else (500, result["error"])

    def stop(self) -> None:
        """Stop the process (SIGKILL after a grace period) and remove its files."""
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._tmp.cleanup()
