"""The online endpoint under hostile traffic, and artifacts that were tampered with.

A real endpoint server (a child process on a free port) serves one registered model. It is
fuzzed from its own OpenAPI schema (schemathesis) and with hypothesis-generated rows: every
answer is a 200 for a valid request or a 4xx with a JSON ``detail``, never a 5xx, and the server
still answers afterwards. Then the artifact checks: a tampered artifact is refused by deploy,
by batch scoring and by the server itself.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import httpx
import joblib
import pytest
import schemathesis
from helpers import EndpointServer, fit_model, free_port, seed_mlflow_db
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from apps.serving.app import MAX_ROWS_PER_REQUEST, create_app, request_model
from core.errors import ArtifactIntegrityError
from demo.sample_data import generate_week
from demo.spec import CATEGORIES, DEMO_SPEC, ID_COLUMN, NUMERIC_RANGES, RAW_FEATURES
from providers.jobs import deploy, score
from providers.local.batch import ChunkedBatchScorer
from providers.local.endpoint import LocalHttpEndpoint
from providers.local.registry import MlflowModelRegistry
from providers.local.storage import LocalObjectStore

PredictRequest = request_model(DEMO_SPEC)

pytestmark = pytest.mark.timeout(240)
MODEL = "churn"
TIMEOUT = httpx.Timeout(20.0)
STATUSES: Counter = Counter()  # (source, status) -> count, printed by the last test


# -- a real server with one deployed model ---------------------------------------------------


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def registry(root, tmp_path_factory) -> MlflowModelRegistry:
    storage = LocalObjectStore(root / "storage")
    seed_mlflow_db(root / "mlflow", tmp_path_factory)
    return MlflowModelRegistry(root / "mlflow", storage)


def _register(root: Path, registry: MlflowModelRegistry, name: str, seed: int):
    model = fit_model(generate_week("2026-W05", 600, seed=seed), {"max_iter": 5})
    joblib.dump(model, root / f"{name}.joblib")
    registry.storage.put_file(f"models/{name}/model.joblib", root / f"{name}.joblib")
    return registry.register(MODEL, f"models/{name}/model.joblib", f"key-{name}", {}, {}, {})


@pytest.fixture(scope="module")
def version(root, registry):
    return _register(root, registry, "a", seed=1)


@pytest.fixture(scope="module")
def server(root):
    server = EndpointServer(root / "endpoint" / "deployments", free_port())
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def endpoint(root, registry, server) -> LocalHttpEndpoint:
    return LocalHttpEndpoint(
        root / "endpoint", registry, registry.storage, host="127.0.0.1", port=server.port
    )


@pytest.fixture(scope="module")
def deployed(endpoint, version):
    return deploy(endpoint, version)


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    frame = generate_week("2026-W07", 20, seed=3)[[ID_COLUMN, *RAW_FEATURES]]
    return json.loads(frame.to_json(orient="records"))


def _post(server, payload=None, content: bytes | str | None = None) -> httpx.Response:
    url = f"{server.url}/models/{MODEL}/predict"
    if content is not None:
        return httpx.post(url, content=content, headers={"content-type": "application/json"}, timeout=TIMEOUT)
    return httpx.post(url, json=payload, timeout=TIMEOUT)


def _assert_client_error_or_ok(response: httpx.Response, source: str) -> None:
    STATUSES[(source, response.status_code)] += 1
    assert response.status_code < 500, f"{source}: {response.status_code} {response.text[:500]}"
    if response.status_code >= 400:
        body = response.json()
        assert body.get("detail"), response.text[:500]


# -- (a) schemathesis, from the server's own OpenAPI schema ----------------------------------


# schemathesis.pytest.from_fixture (a schema loaded from the running server in a fixture) fails
# under pytest 9 ("'Function' object has no attribute '_nodeid'"), so the schema is the app's
# own, built in-process at import; test_served_schema_is_the_fuzzed_one checks that the running
# server publishes exactly this schema at /openapi.json, and every case is sent to that server.
_APP_SCHEMA = create_app(Path("/nonexistent-deployments"), spec=DEMO_SPEC).openapi()
schema = schemathesis.openapi.from_dict(_APP_SCHEMA)


def test_served_schema_is_the_fuzzed_one(server):
    served = httpx.get(f"{server.url}/openapi.json", timeout=TIMEOUT).json()
    assert served == json.loads(json.dumps(_APP_SCHEMA))
    loaded = schemathesis.openapi.from_url(f"{server.url}/openapi.json", wait_for_schema=30)
    assert {(op.method.upper(), op.path) for op in _operations(loaded)} == {
        (op.method.upper(), op.path) for op in _operations(schema)
    }


def _operations(loaded) -> list:
    return [result.ok() for result in loaded.get_all_operations()]


@schema.parametrize()
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_schemathesis_no_server_errors(case, server, deployed):
    """Positive and negative cases (schemathesis' default modes), each held to the request model.

    A predict body is sent as JSON; the request model (the oracle) says whether it is valid:
    a valid one, POSTed as JSON, must get a 200 with one prediction per row, an invalid one a 4xx with a
    ``detail``. Never a 5xx, on any operation.
    """
    predict = case.path.endswith("/predict")
    if predict:
        # the schema cannot know the deployed model's name; GET /models/{model_name} keeps
        # random names (404s)
        case.path_parameters = {"model_name": MODEL}
    response = case.call(base_url=server.url, timeout=20)
    STATUSES[(f"schemathesis {case.method} {case.path}", response.status_code)] += 1
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:500]}"
    if response.status_code >= 400:
        assert response.json().get("detail"), response.text[:500]
    if predict:
        # the oracle judges what was sent: negative cases also change the method or media type
        sent = response.request
        if _sent_is_valid(sent.method, sent.headers.get("content-type"), sent.body):
            assert response.status_code == 200, f"valid request {sent.body!r}: {response.text[:500]}"
            assert len(response.json()["predictions"]) == len(json.loads(sent.body)["rows"])
        else:
            assert 400 <= response.status_code < 500, (
                f"invalid request {sent.method} {sent.headers.get('content-type')} {sent.body!r}: "
                f"{response.status_code} {response.text[:300]}"
            )
    case.validate_response(
        response,
        checks=[schemathesis.checks.not_a_server_error],
    )


# -- (b) hypothesis: random rows, checked against the request model as the oracle -------------

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
_json = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def _numeric(name: str) -> st.SearchStrategy:
    low, high = NUMERIC_RANGES[name]
    return st.floats(min_value=low, max_value=high) | st.integers(min_value=int(low), max_value=int(high))


def _good_value(name: str) -> st.SearchStrategy:
    if name in NUMERIC_RANGES:
        return _numeric(name)
    if name in CATEGORIES:
        return st.sampled_from(list(CATEGORIES[name]))
    return st.text(max_size=64) | st.none()


_FIELDS = [ID_COLUMN, *NUMERIC_RANGES, *CATEGORIES]


@st.composite
def _rows(draw) -> dict:
    """A valid row, then 0-2 changes: a value swapped for random JSON, a key dropped or added."""
    row = {name: draw(_good_value(name)) for name in _FIELDS}
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        name = draw(st.sampled_from(_FIELDS))
        action = draw(st.sampled_from(["bad", "drop", "extra"]))
        if action == "bad":
            row[name] = draw(_json)
        elif action == "drop":
            row.pop(name, None)
        else:
            row[draw(st.text(min_size=1, max_size=12))] = draw(_json)
    return row


_bodies = st.one_of(
    st.builds(lambda rows: {"rows": rows}, st.lists(_rows(), min_size=1, max_size=3)),
    st.dictionaries(st.sampled_from(["rows", "extra", "model"]), _json, max_size=3),
    _json,
)


def _sent_is_valid(method: str, content_type: str | None, body: bytes | str | None) -> bool:
    """Whether the request model accepts a request as sent: a POST of a JSON body that it validates.

    FastAPI reads the body as JSON when the content type is absent, ``application/json`` or
    ``application/*+json``; any other body is not an object of rows.
    """
    media = (content_type or "application/json").split(";")[0].strip().lower()
    if method.upper() != "POST" or not (
        media == "application/json" or (media.startswith("application/") and media.endswith("+json"))
    ):
        return False
    if body is None:
        return False
    try:
        PredictRequest.model_validate_json(body)
    except ValidationError:
        return False
    return True


def _is_valid(body) -> bool:
    try:
        PredictRequest.model_validate_json(json.dumps(body, allow_nan=False))
    except (ValidationError, ValueError, TypeError):
        return False
    return True


def test_hypothesis_fuzz_rows(server, deployed):
    valid = Counter()

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    @given(_bodies)
    def fuzz(body):
        response = _post(server, body)
        _assert_client_error_or_ok(response, "hypothesis")
        expected_ok = _is_valid(body)
        valid[expected_ok] += 1
        if expected_ok:
            assert response.status_code == 200, response.text[:500]
            assert len(response.json()["predictions"]) == len(body["rows"])
        else:
            assert response.status_code == 422, response.text[:500]

    fuzz()
    print(f"\nhypothesis bodies: {sum(valid.values())} ({valid[True]} valid, {valid[False]} invalid)")
    assert valid[True] > 0 and valid[False] > 0


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe\x00garbage",
        b'{"rows": [' + b"[" * 5000 + b"]" * 5000 + b"]}",  # deeply nested
        b'{"rows": [{"age": 1e400}]}',
        b'{"rows": "' + b"x" * 100_000 + b'"}',
        b"",
    ],
    ids=["binary", "nested", "huge-number", "long-string", "empty"],
)
def test_raw_malformed_bodies(server, deployed, content):
    response = _post(server, content=content)
    _assert_client_error_or_ok(response, "raw")
    assert 400 <= response.status_code < 500, response.text[:500]


def test_oversized_body_gets_4xx(server, deployed, rows):
    big_row = dict(rows[0], **{ID_COLUMN: "x" * (5 * 1024 * 1024)})
    response = _post(server, content=json.dumps({"rows": [big_row]}))
    _assert_client_error_or_ok(response, "oversized")
    assert 400 <= response.status_code < 500

    many = (rows * (MAX_ROWS_PER_REQUEST // len(rows) + 2))[: MAX_ROWS_PER_REQUEST + 1]
    response = _post(server, {"rows": many})
    _assert_client_error_or_ok(response, "1001 rows")
    assert response.status_code in (413, 422)


def test_wrong_content_type_and_method(server, deployed, rows):
    url = f"{server.url}/models/{MODEL}/predict"
    response = httpx.post(url, content="rows=1", headers={"content-type": "text/plain"}, timeout=TIMEOUT)
    _assert_client_error_or_ok(response, "text/plain")
    assert 400 <= response.status_code < 500, response.text[:500]
    response = httpx.get(url, timeout=TIMEOUT)
    assert response.status_code == 405


def test_server_still_serves_after_the_fuzz(server, endpoint, deployed, rows):
    assert server.process.poll() is None
    assert httpx.get(f"{server.url}/health", timeout=TIMEOUT).json()["status"] == "ok"
    answer = endpoint.invoke(MODEL, rows[:5])
    assert answer["model_version"] == deployed.version and len(answer["predictions"]) == 5
    print("\nstatuses seen:")
    for (source, status), count in sorted(STATUSES.items()):
        print(f"  {source:45s} {status}: {count}")


# -- (3) tampered artifacts are refused everywhere --------------------------------------------


def _tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _registry_artifact(registry: MlflowModelRegistry, version) -> Path:
    from urllib.parse import urlparse

    path = Path(urlparse(f"{version.artifact_uri}/model.joblib").path)
    assert path.is_file(), path
    return path


def test_tampered_registry_artifact_is_refused_by_deploy_and_batch(root, registry, endpoint, deployed):
    # runs after the fuzz tests (file order); a second version, tampered in the registry
    tampered = _register(root, registry, "tampered", seed=5)
    _tamper(_registry_artifact(registry, tampered))
    record = endpoint._record_path(MODEL)
    before = record.read_bytes()

    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        deploy(endpoint, tampered)
    assert record.read_bytes() == before  # still the old deployment
    assert endpoint.current(MODEL).version == deployed.version

    frame = generate_week("2026-W07", 50, seed=4)
    registry.storage.put_bytes("scoring/input.parquet", frame.to_parquet())
    scorer = ChunkedBatchScorer(registry.storage, registry)
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        next(iter(score(scorer, tampered, "scoring/input.parquet")))
    # the untampered version still scores
    chunks = list(score(scorer, deployed_version(registry, deployed), "scoring/input.parquet"))
    assert sum(len(c) for c in chunks) == 50


def deployed_version(registry, deployed):
    return registry.get_version(MODEL, deployed.version)


def test_server_refuses_an_artifact_tampered_after_deploy(root, registry, endpoint, server, deployed, rows):
    # version A is loaded by the server; deploy B, then tamper B's copy in the endpoint folder
    assert endpoint.invoke(MODEL, rows[:2])["model_version"] == deployed.version
    b = _register(root, registry, "b", seed=2)
    deploy(endpoint, b)
    artifact = Path(json.loads(endpoint._record_path(MODEL).read_text())["artifact_path"])
    _tamper(artifact)

    response = _post(server, {"rows": rows[:2]})
    assert response.status_code == 503, response.text
    assert "integrity" in response.json()["detail"]
    info = httpx.get(f"{server.url}/models/{MODEL}", timeout=TIMEOUT)
    assert info.status_code == 503
    assert httpx.get(f"{server.url}/health", timeout=TIMEOUT).status_code == 200

    # a redeploy of the good version serves again, without a restart
    pid = server.process.pid
    deploy(endpoint, deployed_version(registry, deployed))
    answer = _post(server, {"rows": rows[:2]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == deployed.version
    assert server.process.pid == pid and server.process.poll() is None
