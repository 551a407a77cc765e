"""The Vertex AI stand-in refuses what Vertex AI's published definitions refuse, and fails on cue.

Raw requests (the SDK never sends most of these) against the stand-in: an unknown field, a
wrong JSON type, an enum value the service does not define (by name and by number), a missing
``Required.`` field, a resource name off the method's pattern, an unknown query parameter; then
the SDK's own REST client for what it does send, and a fault on cue.
"""

from __future__ import annotations

import httpx
import pytest

PARENT = "projects/test-project/locations/europe-west1"
UPLOAD = f"/v1/{PARENT}/models:upload"
MODEL = {"displayName": "m", "containerSpec": {"imageUri": "europe-docker.pkg.dev/x/y:1"}}


def post(stand_in, path: str, body) -> httpx.Response:
    return httpx.post(stand_in.url + path + "?$alt=json;enum-encoding=int", json=body, timeout=30)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"model": {**MODEL, "colour": "red"}}, 'Unknown name "colour"'),
        (
            {"model": {**MODEL, "containerSpec": {"imageUri": "x", "ports": [{"containerPort": "a"}]}}},
            "integer",
        ),
        ({"model": {**MODEL, "labels": "a=b"}}, "expected an object"),
        (
            {"model": {**MODEL, "supportedExportFormats": [{"exportableContents": ["NOT_A_CONTENT"]}]}},
            "not one of",
        ),
        ({"model": {**MODEL, "supportedExportFormats": [{"exportableContents": [99]}]}}, "enum"),
        ({"model": {"containerSpec": {"imageUri": "x"}}}, "'model.displayName' is not set"),
        ({"model": {"displayName": "m", "containerSpec": {}}}, "'model.containerSpec.imageUri' is not set"),
        ({}, "'model' is not set"),
    ],
)
def test_a_body_off_the_schema_is_refused(vertex_standin, body, says):
    answer = post(vertex_standin, UPLOAD, body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and says in error["message"], error


@pytest.mark.parametrize(
    ("verb", "path", "status"),
    [
        ("GET", f"/v1/{PARENT}/models/a/b", 404),  # no such route
        ("GET", "/v1/projects/p/models/m", 404),  # no location: off every pattern
        ("PUT", f"/v1/{PARENT}/models:upload", 404),  # the wrong verb
        ("GET", f"/v1/{PARENT}/models/m:listVersions?colour=red", 400),  # an unknown query parameter
    ],
)
def test_a_request_off_the_routes_is_refused(vertex_standin, verb, path, status):
    assert httpx.request(verb, vertex_standin.url + path, timeout=30).status_code == status


def test_a_method_the_stand_in_does_not_keep_is_unimplemented_not_faked(vertex_standin):
    answer = post(vertex_standin, f"/v1/{PARENT}/models/m:export", {"outputConfig": {"exportFormatId": "x"}})
    assert answer.status_code == 501 and answer.json()["error"]["status"] == "UNIMPLEMENTED"


def test_the_sdk_uploads_versions_moves_aliases_and_meets_quota_on_cue(vertex_standin):
    from google.api_core.exceptions import NotFound, TooManyRequests
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1

    client = aiplatform_v1.ModelServiceClient(
        credentials=AnonymousCredentials(), transport="rest",
        client_options={"api_endpoint": vertex_standin.url},
    )  # fmt: skip
    model = {"display_name": "sdk", "container_spec": {"image_uri": "europe-docker.pkg.dev/x/y:1"}}
    first = client.upload_model(request={"parent": PARENT, "model": model, "model_id": "sdk_model"}).result(
        timeout=30
    )
    name = first.model
    second = client.upload_model(request={"parent": PARENT, "model": model, "parent_model": name}).result(
        timeout=30
    )
    assert (first.model_version_id, second.model_version_id) == ("1", "2")
    assert client.get_model(name=name).version_id == "1"  # "default" stays on the first version
    client.merge_version_aliases(name=f"{name}@2", version_aliases=["production"])
    assert client.get_model(name=f"{name}@production").version_id == "2"
    with pytest.raises(Exception, match="already used by version 2"):
        client.merge_version_aliases(name=f"{name}@1", version_aliases=["production"])
    with pytest.raises(Exception, match="default version alias cannot be removed"):
        client.merge_version_aliases(name=f"{name}@1", version_aliases=["-default"])
    with pytest.raises(Exception, match="must match"):
        client.merge_version_aliases(name=f"{name}@1", version_aliases=["Bad_Alias"])
    with pytest.raises(NotFound):
        client.get_model(name=f"{name}@7")
    vertex_standin.fail_next("models.upload", "RESOURCE_EXHAUSTED")
    with pytest.raises(TooManyRequests, match="Quota exceeded"):
        client.upload_model(request={"parent": PARENT, "model": model, "parent_model": name})
    assert [v.version_id for v in client.list_model_versions(name=name)] == ["1", "2"]  # nothing made
