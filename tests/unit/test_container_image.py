"""The Dockerfile, checked as far as it can be without docker (none on the development machine).

Its base is the official Airflow image of the lock's Airflow version on the lock's Python; it
installs the lock itself (so its pins are requirements.txt's); and it copies everything the DAGs
import, with the settings, into the folder its environment points Airflow and Python at.
"""

from __future__ import annotations

import re

from helpers import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of each line, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_base_image_is_the_locks_airflow_on_the_locks_python() -> None:
    [airflow_pin] = re.findall(r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    [python] = re.findall(r"requirements\.in --python-version (\S+)", (ROOT / "Makefile").read_text())
    froms = [args for name, args in _instructions() if name == "FROM"]
    assert froms == [f"apache/airflow:{airflow_pin}-python{python}"]


def test_it_installs_the_lock_and_copies_what_the_dags_import() -> None:
    instructions = _instructions()
    env = {}
    for name, args in instructions:
        if name == "ENV":
            env.update(re.findall(r"(\w+)=(\S+)", args))
    project = env["PROJECT"]
    copies = {}
    for name, args in instructions:
        if name == "COPY":
            source, target = args.split()[-2:]
            assert (ROOT / source).exists(), source
            copies[source] = target.replace("${PROJECT}", project)
    assert copies == {
        name: f"{project}/{name}"
        for name in (
            "requirements.txt",
            "astro.toml",
            "core",
            "demo",
            "providers",
            "lifecycle",
            "apps",
            "plugins",
            "dags",
        )
    }
    runs = [args for name, args in instructions if name == "RUN"]
    assert runs == ["pip install --no-cache-dir -r ${PROJECT}/requirements.txt"]
    assert env["PYTHONPATH"] == "${PROJECT}"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "${PROJECT}/dags"
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == "${PROJECT}/plugins"
    # the build context holds what is copied and nothing else (no .venv, no .mlops)
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line[:1] not in "#"]
    assert {line[1:] for line in ignored if line.startswith("!")} == set(copies)
    assert ignored[0] == "*"
