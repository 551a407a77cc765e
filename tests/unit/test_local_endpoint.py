import json
import os
import socket
import time
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
from helpers import EndpointServer, fit_model, free_port, predict_proba, seed_mlflow_db

from apps.serving.app import MAX_BODY_BYTES, MAX_ROWS_PER_REQUEST
from demo.sample_data import generate_week
from demo.spec import ID_COLUMN, RAW_FEATURES
from providers.base import Deployment, ModelVersion, OnlineEndpoint
from providers.jobs import deploy
from providers.local.endpoint import EndpointUnavailableError, LocalHttpEndpoint
from providers.local.registry import MlflowModelRegistry
from providers.local.storage import LocalObjectStore

MODEL = "churn"
ROOT_CONFIG = Path(__file__).resolve().parents[2] / "astro.toml"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("endpoint")


@pytest.fixture(scope="module")
def models(root) -> dict[str, object]:
    """Two different small models, A and B, in storage."""
    storage = LocalObjectStore(root / "storage")
    fitted = {}
    for name, seed, hps in (("a", 1, {"max_iter": 10}), ("b", 2, {"max_iter": 10, "learning_rate": 0.3})):
        model = fit_model(generate_week("2026-W05", 1000, seed=seed), hps)
        joblib.dump(model, root / f"{name}.joblib")
        storage.put_file(f"models/{name}/model.joblib", root / f"{name}.joblib")
        fitted[name] = model
    return fitted


@pytest.fixture(scope="module")
def versions(root, models, tmp_path_factory) -> dict[str, ModelVersion]:
    seed_mlflow_db(root / "mlflow", tmp_path_factory)
    registry = MlflowModelRegistry(root / "mlflow", LocalObjectStore(root / "storage"))
    return {
        name: registry.register(MODEL, f"models/{name}/model.joblib", f"key-{name}", {}, {}, {})
        for name in ("a", "b")
    }


@pytest.fixture(scope="module")
def server(root):
    server = EndpointServer(root / "endpoint" / "deployments", free_port())
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def endpoint(root, versions, server) -> LocalHttpEndpoint:
    registry = MlflowModelRegistry(root / "mlflow", LocalObjectStore(root / "storage"))
    return LocalHttpEndpoint(
        root / "endpoint", registry, registry.storage, host="127.0.0.1", port=server.port
    )


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    frame = generate_week("2026-W07", 25, seed=3)[[ID_COLUMN, *RAW_FEATURES]]
    return json.loads(frame.to_json(orient="records"))


@pytest.fixture
def deployed(endpoint, versions) -> Deployment:
    """Version A is deployed."""
    return deploy(endpoint, versions["a"])


def _expected(model, rows) -> list[float]:
    import pandas as pd

    return predict_proba(model, pd.DataFrame(rows)).tolist()


def test_is_an_online_endpoint(endpoint):
    assert isinstance(endpoint, OnlineEndpoint)


def test_deploy_and_hot_reload(endpoint, server, versions, models, rows):
    assert endpoint.current(MODEL) is None
    a, b = versions["a"], versions["b"]
    assert a.sha256 != b.sha256

    deployment = deploy(endpoint, a)
    assert deployment.version == a.version and deployment.model_name == MODEL
    assert deployment.url == f"{server.url}/models/{MODEL}/predict"
    assert endpoint.current(MODEL) == deployment
    answer = endpoint.invoke(MODEL, rows)
    assert answer["model_name"] == MODEL
    assert answer["model_version"] == a.version
    assert answer["predictions"] == pytest.approx(_expected(models["a"], rows), abs=1e-12)
    assert all(0 <= p <= 1 for p in answer["predictions"])

    # deploying the version already served changes nothing
    assert deploy(endpoint, a) == deployment

    pid = server.process.pid
    deployment_b = deploy(endpoint, b)
    assert deployment_b.version == b.version
    answer = endpoint.invoke(MODEL, rows)
    assert answer["model_version"] == b.version  # picked up on the next request, no restart
    assert answer["predictions"] == pytest.approx(_expected(models["b"], rows), abs=1e-12)
    assert not np.allclose(answer["predictions"], _expected(models["a"], rows))
    assert server.process.poll() is None and server.process.pid == pid

    info = httpx.get(f"{server.url}/models/{MODEL}", timeout=10).json()
    assert info["version"] == b.version and info["sha256"] == b.sha256

    # and back (a rollback)
    deploy(endpoint, a)
    assert endpoint.invoke(MODEL, rows)["model_version"] == a.version


def test_deploy_keeps_the_verified_artifact_beside_the_record(endpoint, deployed, versions):
    record = json.loads((endpoint.deployments / f"{MODEL}.json").read_text())
    assert record["version"] == versions["a"].version
    assert record["sha256"] == versions["a"].sha256
    assert Path(record["artifact_path"]).is_relative_to(endpoint.models)
    assert [p.name for p in endpoint.deployments.iterdir()] == [f"{MODEL}.json"]  # no temp file left


def _post(server, payload=None, content=None) -> httpx.Response:
    url = f"{server.url}/models/{MODEL}/predict"
    if content is not None:
        return httpx.post(url, content=content, headers={"content-type": "application/json"}, timeout=30)
    return httpx.post(url, json=payload, timeout=30)


def _row(rows, **changes) -> dict:
    row = dict(rows[0])
    for key, value in changes.items():
        if value is _DROP:
            row.pop(key)
        else:
            row[key] = value
    return row


_DROP = object()


@pytest.mark.parametrize(
    "changes",
    [
        {"age": _DROP},  # a missing feature
        {"contract_type": _DROP},
        {"favourite_colour": "blue"},  # an unknown field
        {"age": "forty"},  # a string in a numeric field
        {"age": "42"},  # a numeric string is still a string: no silent coercion
        {"monthly_charges": True},
        {"monthly_charges": [1, 2]},
        {"monthly_charges": None},
        {"contract_type": "weekly"},  # a category never seen
        {"region": 3},
        {"age": 500},  # out of range
        {"satisfaction_score": -1},
        {ID_COLUMN: "x" * 65},
    ],
    ids=lambda c: ",".join(f"{k}={'<drop>' if v is _DROP else v!r}"[:40] for k, v in c.items()),
)
def test_invalid_rows_get_422(server, deployed, rows, changes):
    response = _post(server, {"rows": [rows[1], _row(rows, **changes)]})
    assert response.status_code == 422, response.text
    assert "detail" in response.json()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_inf_get_422(server, deployed, rows, literal):
    text = json.dumps({"rows": [_row(rows, monthly_charges=123.0)]}).replace("123.0", literal)
    assert literal in text
    response = _post(server, content=text)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "body",
    [
        "not json at all",
        "{}",
        '{"rows": []}',
        '{"rows": {}}',
        '{"rows": [1]}',
        "[]",
        '{"rows": [], "extra": 1}',
    ],
)
def test_malformed_bodies_get_422(server, deployed, body):
    response = _post(server, content=body)
    assert response.status_code == 422, response.text


def test_more_than_the_row_limit_gets_422(server, deployed, rows):
    many = (rows * (MAX_ROWS_PER_REQUEST // len(rows) + 2))[: MAX_ROWS_PER_REQUEST + 1]
    assert _post(server, {"rows": many}).status_code == 422
    answer = _post(server, {"rows": many[:MAX_ROWS_PER_REQUEST]})
    assert answer.status_code == 200
    assert len(answer.json()["predictions"]) == MAX_ROWS_PER_REQUEST


def test_an_oversized_body_gets_413(server, deployed, rows):
    body = json.dumps({"rows": rows * (MAX_BODY_BYTES // len(json.dumps(rows)) + 1)})
    assert len(body) > MAX_BODY_BYTES
    response = _post(server, content=body)
    assert response.status_code == 413, response.text
    assert f"{MAX_ROWS_PER_REQUEST} rows" in response.json()["detail"]


def test_an_oversized_chunked_body_gets_413(server, deployed):
    def chunks():  # no Content-Length: the body is counted as it arrives
        yield b'{"rows": ['
        for _ in range(64):
            yield b" " * 32 * 1024

    response = httpx.post(f"{server.url}/models/{MODEL}/predict", content=chunks(), timeout=30)
    assert response.status_code == 413, response.text


def test_a_bad_content_length_gets_413(server, deployed):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            f"POST /models/{MODEL}/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n"
            "Content-Type: application/json\r\nConnection: close\r\n\r\n{}".encode()
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 413")


def test_a_stale_temp_file_of_a_killed_deploy_is_removed(endpoint, deployed, versions):
    orphan = endpoint.deployments / f".{MODEL}.json.killed.tmp"
    orphan.write_text("{half a record")
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    fresh = endpoint.deployments / f".{MODEL}.json.live.tmp"  # a write in progress: kept
    fresh.write_text("{")
    deploy(endpoint, versions["b"])
    deploy(endpoint, versions["a"])
    assert not orphan.exists() and fresh.exists()
    fresh.unlink()
    assert endpoint.current(MODEL).version == deployed.version


def test_rows_without_customer_id_are_fine(server, deployed, rows):
    response = _post(server, {"rows": [_row(rows, **{ID_COLUMN: _DROP})]})
    assert response.status_code == 200, response.text


def test_server_still_answers_after_bad_requests(endpoint, deployed, rows):
    assert endpoint.invoke(MODEL, rows[:3])["model_version"] == deployed.version


def test_unknown_model_is_404(server, deployed, rows):
    assert httpx.get(f"{server.url}/models/unknown", timeout=10).status_code == 404
    response = httpx.post(f"{server.url}/models/unknown/predict", json={"rows": rows[:1]}, timeout=10)
    assert response.status_code == 404
    assert "unknown" in response.json()["detail"]


def test_invoke_of_an_unknown_model_raises(endpoint, deployed, rows):
    with pytest.raises(EndpointUnavailableError, match="404"):
        endpoint.invoke("unknown", rows[:1])


def test_invoke_when_the_server_is_down(root, versions, rows):
    registry = MlflowModelRegistry(root / "mlflow", LocalObjectStore(root / "storage"))
    down = LocalHttpEndpoint(
        root / "endpoint", registry, registry.storage, host="127.0.0.1", port=free_port()
    )
    with pytest.raises(EndpointUnavailableError) as info:
        down.invoke(MODEL, rows[:1])
    message = str(info.value)
    assert "make serve" in message
    assert down.url in message


# --------------------------------------------------------------------------------------------
# the server a call starts when nothing answers (providers/local/server_process.py)


@pytest.fixture
def auto_server(tmp_path):
    """An endpoint process of a folder of its own on a free port; stopped by pid afterwards."""
    from providers.local.server_process import EndpointProcess

    process = EndpointProcess(tmp_path / "endpoint", "127.0.0.1", free_port(), ROOT_CONFIG)
    try:
        yield process
    finally:
        pid = process.pid()
        process.stop(grace=5)
        assert pid is None or not _running(pid)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_invoke_starts_the_server_when_nothing_answers(root, versions, rows, auto_server):
    registry = MlflowModelRegistry(root / "mlflow", LocalObjectStore(root / "storage"))
    endpoint = LocalHttpEndpoint(
        auto_server.folder, registry, registry.storage, "127.0.0.1", auto_server.port, server=auto_server
    )
    deploy(endpoint, versions["a"])
    assert auto_server.pid() is None and not auto_server.answers()

    answer = endpoint.invoke(MODEL, rows[:3])

    assert str(answer["model_version"]) == versions["a"].version
    pid = auto_server.pid()
    assert pid is not None and _running(pid)
    assert auto_server.pid_file.read_text().strip() == str(pid)
    assert auto_server.log_file.is_file()
    # its own session: a signal to the starting task's process group does not reach it
    assert os.getsid(pid) == pid
    # reused, not started twice
    assert auto_server.start() == pid
    assert endpoint.invoke(MODEL, rows[:1])["model_version"] == answer["model_version"]
    assert auto_server.pid() == pid
    # another data folder's settings on the same port: refused, never served the wrong models
    from providers.local.server_process import EndpointProcess, EndpointStartError

    other = EndpointProcess(auto_server.folder.parent / "other", "127.0.0.1", auto_server.port, ROOT_CONFIG)
    with pytest.raises(EndpointStartError, match="another data folder"):
        other.start()

    assert auto_server.stop(grace=5) == pid
    assert not _running(pid) and not auto_server.pid_file.exists()
    # stopped by the documented command: the next call starts it again
    assert str(endpoint.invoke(MODEL, rows[:1])["model_version"]) == versions["a"].version
    assert auto_server.pid() not in (None, pid)


def test_a_stale_pid_file_is_not_trusted(auto_server):
    auto_server.folder.mkdir(parents=True)
    auto_server.pid_file.write_text(f"{os.getpid()}\n")  # alive, but not a server of this folder
    assert auto_server.pid() is None
    assert auto_server.stop() is None  # and never signalled
    assert not auto_server.pid_file.exists()


def test_a_server_that_cannot_start_says_why(auto_server):
    from providers.local.server_process import EndpointStartError

    with socket.socket() as taken:  # the port is taken by something that never answers HTTP
        taken.bind(("127.0.0.1", auto_server.port))
        taken.listen()
        with pytest.raises(EndpointStartError) as info:
            auto_server.start(timeout=60)
    message = str(info.value)
    assert f"port {auto_server.port} taken?" in message
    assert "endpoint_port" in message
    assert "address already in use" in message.lower()  # the end of the server's own log
    assert auto_server.pid() is None and not auto_server.pid_file.exists()
