"""The endpoint at start: it loads the deployed models before any request, and its scoring
thread runs the model on the threads it was given, whatever runtime the model load brought in.

Each check runs the app in a fresh interpreter: in this one scikit-learn (and its OpenMP
runtime) is loaded long before, which hides what a server that starts empty does.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import fit_model, predict_proba, write_deployment

from demo.sample_data import generate_week
from demo.spec import ID_COLUMN, RAW_FEATURES

ROOT = Path(__file__).resolve().parents[2]

SERVER = textwrap.dedent(
    """
    import gc, json, sys, time
    from pathlib import Path

    from fastapi.testclient import TestClient

    from apps.serving.app import create_app
    from demo.spec import DEMO_SPEC

    deployments, rows = Path(sys.argv[1]), json.loads(sys.argv[2])
    assert "sklearn" not in sys.modules  # a server starts without it: the model load brings it
    app = create_app(deployments, threads=1, spec=DEMO_SPEC, measure=False, freeze_gc=True)

    def thread_limits():
        from threadpoolctl import threadpool_info

        return sorted({(lib["internal_api"], lib["num_threads"]) for lib in threadpool_info()})

    async def in_scoring_thread():
        return await app.state.batcher.run_in_worker(thread_limits)

    with TestClient(app) as client:
        deadline = time.monotonic() + 120
        while not app.state.warm_up.done() and time.monotonic() < deadline:
            time.sleep(0.05)
        loaded_at_start = "sklearn.ensemble" in sys.modules
        frozen = gc.get_freeze_count()
        answer = client.post("/models/churn/predict", json={"rows": rows}).json()
        limits = client.portal.call(in_scoring_thread)
    print(json.dumps({"loaded_at_start": loaded_at_start, "frozen": frozen, "answer": answer,
                      "limits": limits}))
    """
)


@pytest.fixture(scope="module")
def started(tmp_path_factory):
    """A fresh server process's view: what it loaded at start, its thread limits, an answer."""
    root = tmp_path_factory.mktemp("serving-start")
    model = fit_model(generate_week("2026-W05", 600, seed=1), {"max_iter": 20})
    deployments = write_deployment(root, model, "3")
    rows = generate_week("2026-W07", 3, seed=3)[[ID_COLUMN, *RAW_FEATURES]].to_json(orient="records")
    done = subprocess.run(
        [sys.executable, "-c", SERVER, str(deployments), rows],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), model, json.loads(rows)


def test_the_deployed_models_are_loaded_before_the_first_request(started):
    view, model, rows = started
    assert view["loaded_at_start"]
    assert view["frozen"] > 0  # what the load left alive is out of the collector's sight
    import pandas as pd

    assert view["answer"]["model_version"] == "3"
    assert view["answer"]["predictions"] == predict_proba(model, pd.DataFrame(rows)).tolist()


def test_the_scoring_thread_runs_one_thread_of_every_runtime_the_model_brought(started):
    view, _, _ = started
    runtimes = {api for api, _ in view["limits"]}
    assert "openmp" in runtimes  # scikit-learn's, loaded with the model after the thread started
    assert all(threads == 1 for _, threads in view["limits"]), view["limits"]
