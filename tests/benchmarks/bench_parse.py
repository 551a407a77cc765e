"""1. DAG parse time: dags/ against as many trivial one-task DAG files, both parsed by DagBag.

Each repetition parses each folder in a fresh interpreter (module caches would otherwise make
the second parse free). The figure is the median DagBag time of dags/ over the median time of
the trivial folder; every file's own parse time (DagBag's per-file stats) is reported too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.common import ROOT, Figure, median, ratio, run_child

TRIVIAL = '''"""A trivial DAG: one task."""

from datetime import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["trivial"])
def trivial_{n}():
    @task
    def only():
        return 1

    only()


trivial_{n}()
'''
RATIO_TARGET = 1.5
FILE_TARGET_SECONDS = 0.5


def run(repeat: int = 5, dag_folder: Path = ROOT / "dags") -> list[Figure]:
    """Parse dags/ and the trivial folder ``repeat`` times each, interleaved."""
    first = run_child("parse", str(dag_folder))
    if first.output["import_errors"]:
        raise RuntimeError(f"dags/ has import errors: {first.output['import_errors']}")
    n_files = len(first.output["dag_files"])
    with tempfile.TemporaryDirectory(prefix="trivial-dags-") as tmp:
        for n in range(n_files):
            (Path(tmp) / f"trivial_{n}.py").write_text(TRIVIAL.format(n=n))
        project, trivial, per_file = [first.output["seconds"]], [], {}
        for name, seconds in first.output["files"].items():
            per_file.setdefault(name, []).append(seconds)
        for i in range(repeat):
            # interleaved, so a burst of load from other work hits both sides alike; the first
            # parse of dags/ above is one of its repetitions
            theirs = run_child("parse", tmp).output
            if theirs["dags"] != n_files:
                raise RuntimeError(f"the trivial folder parsed into {theirs['dags']} DAGs, not {n_files}")
            trivial.append(theirs["seconds"])
            if i == repeat - 1:
                break
            ours = run_child("parse", str(dag_folder)).output
            project.append(ours["seconds"])
            for name, seconds in ours["files"].items():
                per_file.setdefault(name, []).append(seconds)
    ours_s, theirs_s = median(project), median(trivial)
    files = {name: median(values) for name, values in sorted(per_file.items())}
    slowest = max(files, key=files.get)
    return [
        Figure(
            "dag_parse",
            "DagBag parse of dags/",
            ours_s,
            "s",
            f"DagBag parse of {n_files} trivial one-task DAG files",
            theirs_s,
            ratio(ours_s, theirs_s),
            f"ratio <= {RATIO_TARGET}",
            ratio(ours_s, theirs_s) <= RATIO_TARGET,
            {"dag_files": n_files, "repeat": repeat, "project_runs": project, "trivial_runs": trivial},
        ),
        Figure(
            "dag_parse",
            f"slowest file ({slowest})",
            files[slowest],
            "s",
            "mean per-file time of the trivial folder",
            theirs_s / n_files,
            ratio(files[slowest], theirs_s / n_files),
            f"value <= {FILE_TARGET_SECONDS} s",
            files[slowest] <= FILE_TARGET_SECONDS,
            {"per_file_seconds": files},
        ),
    ]
