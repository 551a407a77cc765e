"""A bad Param refused at trigger time in one readable sentence (apps/ui/param_errors.py).

The refusals are Airflow's own: the conf is validated against the serialized DAG's Params as the
api-server's trigger route does, and its 400 goes through the plugin's middleware.
"""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import Body  # module level: FastAPI resolves the route's string annotations here


@pytest.fixture(scope="module")
def client():
    import retrain_pipeline
    import rollback_model
    from airflow.exceptions import ParamValidationError
    from airflow.serialization.serialized_objects import DagSerialization
    from fastapi import FastAPI, HTTPException
    from fastapi.testclient import TestClient

    from apps.ui.param_errors import ReadableParamErrors

    serialize = DagSerialization
    dags = {
        module.__name__: serialize.from_dict(serialize.to_dict(getattr(module, module.__name__)()))
        for module in (retrain_pipeline, rollback_model)
    }
    app = FastAPI()

    @app.post("/api/v2/dags/{dag_id}/dagRuns")
    def trigger(dag_id: str, body: Annotated[dict, Body()]) -> dict:
        try:  # what Airflow's trigger route does with the conf
            dags[dag_id].params.deep_merge(body.get("conf")).validate()
        except (ParamValidationError, ValueError) as exc:
            raise HTTPException(400, str(exc)) from exc
        return {"state": "queued"}

    @app.post("/api/v2/other")
    def other() -> None:
        raise HTTPException(400, "Invalid input for param week: untouched outside the trigger route\n\nx")

    app.add_middleware(ReadableParamErrors)
    return TestClient(app)


def _refusal(client, dag_id: str, conf: dict) -> str:
    answer = client.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"conf": conf})
    assert answer.status_code == 400, answer.text
    assert int(answer.headers["content-length"]) == len(answer.content)
    return answer.json()["detail"]


def test_a_malformed_week_says_what_a_week_looks_like(client) -> None:
    detail = _refusal(client, "retrain_pipeline", {"week": "2026-5"})
    assert detail == (
        "Invalid value for week: '2026-5' must look like 2026-W05: a year, 'W' and the ISO week 01-53 "
        "with two digits (or leave it empty for the last complete week)."
    )
    assert "Failed validating" not in _refusal(client, "retrain_pipeline", {"week": "2026-W54"})


def test_other_rules_keep_jsonschemas_first_line_only(client) -> None:
    detail = _refusal(client, "retrain_pipeline", {"gate_margin": 7})
    assert detail == "Invalid value for gate_margin: 7 is greater than the maximum of 0.5."
    assert "must be a model version number" in _refusal(client, "rollback_model", {"version": "v3"})


def test_everything_else_passes_untouched(client) -> None:
    good = client.post("/api/v2/dags/retrain_pipeline/dagRuns", json={"conf": {"week": "2026-W05"}})
    assert good.json() == {"state": "queued"}
    other = client.post("/api/v2/other")
    assert other.json()["detail"].endswith("\n\nx")


def test_the_plugin_adds_the_middleware() -> None:
    from mlops_views import MLOpsViewsPlugin

    from apps.ui.param_errors import ReadableParamErrors

    assert [m["middleware"] for m in MLOpsViewsPlugin.fastapi_root_middlewares] == [ReadableParamErrors]
