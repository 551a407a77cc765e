"""A stand-in for the Azure ML workspace REST API (the model registry part), for the real MLClient.

No Azure ML emulator exists. ``MLClient`` (azure-ai-ml) is given :class:`StandInTransport`, an
azure-core transport that answers its requests in this process (NOTES-emulators.md, Azure).
Every request body is validated against the service's own published REST schema: the
definitions of ``tests/azureml/*.json``, copied from the
azure-rest-api-specs repository (stable 2025-12-01), read with AutoRest's rules (``allOf``
parents' properties belong to the child, ``additionalProperties: false`` then forbids any
other key, ``x-nullable`` allows null). A body that breaks them gets the service's 400
``UserError``; the request is kept in ``invalid`` so a test can fail on it.

What the stand-in keeps: model containers and versions (a PUT of an existing version may
change its tags, description, stage and archive flag, not its URI or type: 409 as the service
answers), with ``createdtime`` ordering and paging. ``fail_next`` makes the next matching
request fail with a given status and error code (throttling, a server error, quota).
Requests for a resource's Azure Monitor metrics go to ``monitor`` (tests/azure_monitor_standin.py),
as Azure Resource Manager routes them to the Microsoft.Insights provider.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import HttpResponse, HttpTransport

SCHEMA_FOLDER = Path(__file__).parent / "azureml"
_WORKSPACE = (
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)"
)
_MODEL = re.compile(_WORKSPACE + r"/models/(?P<name>[^/]+)$", re.IGNORECASE)
_VERSIONS = re.compile(_WORKSPACE + r"/models/(?P<name>[^/]+)/versions$", re.IGNORECASE)
_VERSION = re.compile(_WORKSPACE + r"/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$", re.IGNORECASE)
_JOB = re.compile(_WORKSPACE + r"/jobs/(?P<name>[^/]+)$", re.IGNORECASE)
_WORKSPACE_ONLY = re.compile(_WORKSPACE + r"$", re.IGNORECASE)
_CODE = re.compile(_WORKSPACE + r"/codes/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$", re.IGNORECASE)
_ENDPOINT = re.compile(_WORKSPACE + r"/onlineEndpoints/(?P<endpoint>[^/]+)$", re.IGNORECASE)
_KEYS = re.compile(_WORKSPACE + r"/onlineEndpoints/(?P<endpoint>[^/]+)/listKeys$", re.IGNORECASE)
_DEPLOYMENTS = re.compile(_WORKSPACE + r"/onlineEndpoints/(?P<endpoint>[^/]+)/deployments$", re.IGNORECASE)
_DEPLOYMENT = re.compile(
    _WORKSPACE + r"/onlineEndpoints/(?P<endpoint>[^/]+)/deployments/(?P<name>[^/]+)$", re.IGNORECASE
)
_OPERATION = re.compile(r"/locations/(?P<location>[^/]+)/mfeOperationsStatus/(?P<id>[^/]+)$", re.IGNORECASE)
_SCORING_HOST = re.compile(r"^(?P<endpoint>[^.]+)\.(?P<location>[^.]+)\.inference\.ml\.azure\.com$")
_ENDPOINT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]$")  # the service's rule: 3-32
_DEPLOYMENT_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]{0,31}$")
LOCATION = "westeurope"
_ASSET_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,254}$")  # the spec's name pattern


class StaticTokenCredential:
    """An offline credential (every azure.identity credential contacts Entra ID or IMDS)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("stand-in-token", int(time.time()) + 3600)


# --------------------------------------------------------------------------------------------
# the published schema, as AutoRest reads it

SCHEMA_KEYWORDS = ("type", "enum", "pattern", "minLength", "maxLength", "minimum", "maximum", "format")


class PublishedSchema:
    """The vendored definitions (``tests/azureml/*.json``) as one JSON Schema (draft 7) each.

    AutoRest's reading of Swagger, which plain JSON Schema lacks: an ``allOf`` parent's
    properties belong to the child (so ``additionalProperties: false`` does not refuse them);
    a ``$ref`` to a definition with a ``discriminator`` means "the subtype whose
    ``x-ms-discriminator-value`` the body names" (an unknown value is refused); ``x-nullable``
    allows null. A definition that is not vendored is refused if a body uses it.
    """

    def __init__(self, folder: Path = SCHEMA_FOLDER) -> None:
        self.definitions: dict[str, Any] = {}
        for path in sorted(folder.glob("*.json")):
            self.definitions.update(json.loads(path.read_text())["definitions"])
        converted: dict[str, Any] = {}
        for name in self.definitions:
            converted[name] = self._flat(name)
            if "discriminator" in self.definitions[name]:
                converted[f"{name}.subtypes"] = self._dispatch(name)
        self.schema_definitions = converted
        self._validators: dict[str, Any] = {}

    def errors(self, definition: str, body: Any) -> list[str]:
        """Every way ``body`` breaks the definition (empty: valid)."""
        import jsonschema

        if definition not in self._validators:
            schema = {"definitions": self.schema_definitions, **self._ref(definition)}
            self._validators[definition] = jsonschema.Draft7Validator(schema)
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
            for e in self._validators[definition].iter_errors(body)
        ]

    def _ref(self, name: str) -> dict[str, Any]:
        if name not in self.definitions:
            return {"not": {}, "description": f"{name} is not vendored: refused"}
        suffix = ".subtypes" if "discriminator" in self.definitions[name] else ""
        return {"$ref": f"#/definitions/{name}{suffix}"}

    def _node(self, node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            ref = self._ref(node["$ref"].rsplit("/", 1)[-1])
            return {"anyOf": [ref, {"type": "null"}]} if node.get("x-nullable") else ref
        out: dict[str, Any] = {k: node[k] for k in SCHEMA_KEYWORDS if k in node}
        if "properties" in node:
            out["properties"] = {k: self._node(v) for k, v in node["properties"].items()}
        if "items" in node:
            out["items"] = self._node(node["items"])
        if "additionalProperties" in node:
            extra = node["additionalProperties"]
            out["additionalProperties"] = extra if isinstance(extra, bool) else self._node(extra)
        if node.get("x-nullable") and "type" in out:
            out["type"] = [out["type"], "null"]
        return out

    def _flat(self, name: str) -> dict[str, Any]:
        """One definition with its allOf parents' properties and requirements merged in."""
        node = self.definitions[name]
        out = self._node({k: v for k, v in node.items() if k not in ("allOf", "properties")})
        properties: dict[str, Any] = {}
        required: set[str] = set(node.get("required", []))
        for parent in node.get("allOf", []):
            parent_name = parent["$ref"].rsplit("/", 1)[-1]
            if parent_name not in self.definitions:
                return {"not": {}, "description": f"{name}: parent {parent_name} is not vendored"}
            flat = self._flat(parent_name)
            properties.update(flat.get("properties", {}))
            required.update(flat.get("required", []))
        properties.update({k: self._node(v) for k, v in node.get("properties", {}).items()})
        discriminator_value = node.get("x-ms-discriminator-value")
        if discriminator_value:
            for parent in node.get("allOf", []):
                parent_def = self.definitions[parent["$ref"].rsplit("/", 1)[-1]]
                if "discriminator" in parent_def:
                    properties[parent_def["discriminator"]] = {"const": discriminator_value}
        if properties:
            out["properties"] = properties
        if required:
            out["required"] = sorted(required)
        return out

    def _dispatch(self, base: str) -> dict[str, Any]:
        """A discriminated base: the body's discriminator value picks the subtype to check."""
        key = self.definitions[base]["discriminator"]
        subtypes = {
            node["x-ms-discriminator-value"]: name
            for name, node in self.definitions.items()
            if node.get("x-ms-discriminator-value")
            and any(p.get("$ref", "").endswith(f"/{base}") for p in node.get("allOf", []))
        }
        return {
            "type": "object",
            "required": [key],
            "properties": {key: {"enum": sorted(subtypes)}},
            "allOf": [
                {"if": {"properties": {key: {"const": value}}}, "then": {"$ref": f"#/definitions/{name}"}}
                for value, name in sorted(subtypes.items())
            ],
        }


# --------------------------------------------------------------------------------------------
# the transport


class _Response(HttpResponse):
    def __init__(self, request: Any, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        from requests.structures import CaseInsensitiveDict

        super().__init__(request, None)
        self.status_code = status
        self.reason = "OK" if status < 400 else "Error"
        self.content_type = "application/json"
        # case-insensitive: long-running-operation polling looks for Azure-AsyncOperation
        self.headers = CaseInsensitiveDict({"content-type": "application/json", **(headers or {})})
        self._body = b"" if body is None else json.dumps(body).encode()

    def body(self) -> bytes:
        return self._body

    def text(self, encoding: str | None = None) -> str:
        return self._body.decode()

    # the newer generated clients read responses through azure.core.rest's interface
    def json(self) -> Any:
        return json.loads(self._body) if self._body else None

    @property
    def content(self) -> bytes:
        return self._body

    def read(self) -> bytes:
        return self._body

    def iter_bytes(self, **kwargs: Any) -> Any:
        yield self._body

    def iter_raw(self, **kwargs: Any) -> Any:
        yield self._body


class AzureMLStandIn:
    """The workspace in memory (model registry, command jobs); ``transport()`` is what MLClient is given.

    Args:
        blob_connection_string: the storage account (Azurite) that jobs read inputs from and
            write outputs to; jobs are refused without one.
    """

    def __init__(self, blob_connection_string: str | None = None) -> None:
        self.schema = PublishedSchema()
        self.blob_connection_string = blob_connection_string
        self.models: dict[str, dict[str, dict[str, Any]]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.job_logs: dict[str, str] = {}  # the command's output, as the job's logs would hold it
        self.fail_jobs: str | None = None  # jobs whose name starts with this fail (their script exits 1)
        self.threads: list[threading.Thread] = []
        self.requests: list[tuple[str, str, Any]] = []  # (method, path, body)
        self.invalid: list[tuple[str, str, list[str]]] = []  # requests refused by the schema
        self._failures: list[tuple[str, str, int, str, str]] = []
        self.codes: dict[tuple[str, str], dict[str, Any]] = {}
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.deployments: dict[str, dict[str, dict[str, Any]]] = {}  # endpoint -> name -> resource
        self.workers: dict[tuple[str, str], Any] = {}  # (endpoint, deployment) -> ScoringWorker
        self.operations: dict[str, tuple[str, str]] = {}  # async operation id -> (endpoint, deployment)
        self.fail_deployments: str | None = None  # deployments whose name starts with this never succeed
        self.provision_seconds = 1.0  # a deployment stays Creating at least this long
        self._lock = threading.RLock()
        self._clock = 0
        from azure_monitor_standin import AzureMonitorStandIn

        # Azure Resource Manager hands a resource's .../providers/Microsoft.Insights/metrics to Azure Monitor
        self.monitor = AzureMonitorStandIn()

    def transport(self) -> StandInTransport:
        return StandInTransport(self)

    def fail_next(self, method: str, path_part: str, status: int, code: str, message: str) -> None:
        """Make the next ``method`` request whose path contains ``path_part`` fail."""
        with self._lock:
            self._failures.append((method.upper(), path_part, status, code, message))

    def requests_of(self, method: str, path_part: str = "") -> list[tuple[str, str, Any]]:
        return [r for r in self.requests if r[0] == method.upper() and path_part in r[1]]

    def handle(self, request: Any) -> _Response:
        url = urlparse(request.url)
        query = parse_qs(url.query)
        raw = request.data if request.data is not None else request.content
        body = json.loads(raw) if raw else None
        method = request.method.upper()
        if "/providers/microsoft.insights/" in url.path.lower():
            return _Response(request, *self.monitor.handle(request))
        if match := _SCORING_HOST.match(url.hostname or ""):
            return self._score(request, match["endpoint"], raw)
        with self._lock:
            self.requests.append((method, url.path, copy.deepcopy(body)))
            if not request.headers.get("Authorization", "").startswith("Bearer "):
                return _error(request, 401, "AuthenticationFailed", "no bearer token")
            if "api-version" not in query:
                return _error(
                    request, 400, "MissingApiVersionParameter", "the api-version query parameter is required"
                )
            for index, (f_method, part, status, code, message) in enumerate(self._failures):
                if f_method == method and part in url.path:
                    del self._failures[index]
                    return _error(request, status, code, message)
            return self._route(request, method, url.path, query, body)

    def _route(
        self, request: Any, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> _Response:
        if (response := self._route_online(request, method, path, body)) is not None:
            return response
        if match := _JOB.match(path):
            if method == "PUT":
                return self._put_job(request, path, match["name"], body)
            if method == "GET":
                found = self.jobs.get(match["name"])
                if found is None:
                    return _error(request, 404, "UserError", f"Job {match['name']} not found")
                return _Response(request, 200, _public(found))
        if match := _VERSION.match(path):
            name, version = match["name"], match["version"]
            if method == "PUT":
                return self._put_version(request, path, name, version, body)
            if method == "GET":
                found = self.models.get(name, {}).get(version)
                if found is None:
                    return _error(
                        request, 404, "UserError", f"Could not find asset with ID: {name}:{version}"
                    )
                return _Response(request, 200, found)
        if (match := _VERSIONS.match(path)) and method == "GET":
            versions = sorted(self.models.get(match["name"], {}).values(), key=lambda v: v["_order"])
            if query.get("$orderBy", [""])[0].lower().endswith("desc"):
                versions.reverse()
            top = int(query.get("$top", ["0"])[0] or 0)
            skip = int(query.get("$skip", ["0"])[0] or 0)
            page = versions[skip : skip + (top or 2)]  # pages of two: the client must follow nextLink
            result: dict[str, Any] = {"value": [_public(v) for v in page]}
            if not top and skip + 2 < len(versions):
                version = query["api-version"][0]
                result["nextLink"] = (
                    f"https://management.azure.com{path}?api-version={version}&$skip={skip + 2}"
                )
            return _Response(request, 200, result)
        if (match := _MODEL.match(path)) and method == "GET":
            versions = self.models.get(match["name"])
            if not versions:
                return _error(request, 404, "UserError", f"Could not find model container {match['name']}")
            latest = max(versions.values(), key=lambda v: v["_order"])
            container = {
                "id": path,
                "name": match["name"],
                "type": "Microsoft.MachineLearningServices/workspaces/models",
                "properties": {
                    "isArchived": False,
                    "latestVersion": latest["name"],
                    "provisioningState": "Succeeded",
                },
            }
            return _Response(request, 200, container)
        return _error(request, 404, "NotFound", f"the stand-in does not serve {method} {path}")

    def _put_version(self, request: Any, path: str, name: str, version: str, body: Any) -> _Response:
        errors = self.schema.errors("ModelVersionResource", body)
        if not _ASSET_NAME.match(name):
            errors.append(f"model name {name!r} does not match {_ASSET_NAME.pattern}")
        if errors:
            self.invalid.append(("PUT", path, errors))
            return _error(request, 400, "UserError", "; ".join(errors))
        properties = body["properties"]
        existing = self.models.get(name, {}).get(version)
        if existing is not None:
            old = existing["properties"]
            for key in ("modelUri", "modelType"):
                if properties.get(key) != old.get(key):
                    return _error(
                        request,
                        409,
                        "UserError",
                        f"Model {name}:{version} exists and its {key} cannot change",
                    )
            created = existing["systemData"]["createdAt"]
            order = existing["_order"]
            status = 200
        else:
            self._clock += 1
            created, order, status = _now(), self._clock, 201
        resource = {
            "id": path,
            "name": version,
            "type": "Microsoft.MachineLearningServices/workspaces/models/versions",
            "systemData": {"createdAt": created, "createdBy": "stand-in", "lastModifiedAt": _now()},
            "properties": {
                "flavors": {},
                "tags": {},
                "properties": {},
                **properties,
                "provisioningState": "Succeeded",
            },
            "_order": order,
        }
        self.models.setdefault(name, {})[version] = resource
        return _Response(request, status, _public(resource))

    # -- command jobs: NotStarted -> Running -> Completed | Failed, the command really run --

    def _put_job(self, request: Any, path: str, name: str, body: Any) -> _Response:
        errors = self.schema.errors("JobBaseResource", body)
        if not _ASSET_NAME.match(name):
            errors.append(f"job name {name!r} does not match {_ASSET_NAME.pattern}")
        if errors:
            self.invalid.append(("PUT", path, errors))
            return _error(request, 400, "UserError", "; ".join(errors))
        if name in self.jobs:  # a job's definition cannot change once submitted
            return _error(request, 409, "UserError", f"Job {name} already exists and cannot be updated")
        if self.blob_connection_string is None:
            return _error(request, 400, "UserError", "the stand-in has no storage account for job data")
        job = {
            "id": path,
            "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/jobs",
            "systemData": {"createdAt": _now(), "createdBy": "stand-in"},
            "properties": {**body["properties"], "status": "NotStarted", "services": {}},
        }
        self.jobs[name] = job
        fails = bool(self.fail_jobs and name.startswith(self.fail_jobs))  # decided on arrival
        thread = threading.Thread(target=self._run_job, args=(name, fails), daemon=True)
        self.threads.append(thread)
        thread.start()
        return _Response(request, 201, _public(job))

    def _run_job(self, name: str, fails: bool) -> None:
        from azureml_container import run_command_job

        job = self.jobs[name]
        job["properties"]["status"] = "Running"
        try:
            ok, logs = run_command_job(job["properties"], self.blob_connection_string, fails)
        except Exception as exc:  # the stand-in's own failure: the job fails as the service reports it
            ok, logs = False, f"stand-in error: {exc}"
        self.job_logs[name] = logs
        job["properties"]["status"] = "Completed" if ok else "Failed"

    def join(self, timeout: float = 300) -> None:
        """Wait for the running jobs to end."""
        for thread in self.threads:
            thread.join(timeout=timeout)

    # -- managed online endpoints and deployments (blue/green), code assets -----------------

    def _route_online(self, request: Any, method: str, path: str, body: Any) -> _Response | None:
        if (match := _WORKSPACE_ONLY.match(path)) and method == "GET":
            workspace = {
                "id": path,
                "name": match["ws"],
                "location": LOCATION,
                "type": "Microsoft.MachineLearningServices/workspaces",
                "properties": {},
            }
            return _Response(request, 200, workspace)
        if match := _CODE.match(path):
            key = (match["name"], match["version"])
            if method == "PUT":
                return self._put_code(request, path, key, body)
            if method == "GET":
                if key not in self.codes:
                    return _error(
                        request, 404, "UserError", f"Could not find asset with ID: {key[0]}:{key[1]}"
                    )
                return _Response(request, 200, self.codes[key])
        if match := _ENDPOINT.match(path):
            name = match["endpoint"]
            if method == "PUT":
                return self._put_endpoint(request, path, name, body)
            if method == "GET":
                if name not in self.endpoints:
                    return _error(request, 404, "UserError", f"Endpoint {name} not found")
                return _Response(request, 200, self.endpoints[name])
        if (match := _KEYS.match(path)) and method == "POST":
            if match["endpoint"] not in self.endpoints:
                return _error(request, 404, "UserError", f"Endpoint {match['endpoint']} not found")
            return _Response(request, 200, {"primaryKey": _key(match["endpoint"]), "secondaryKey": "second"})
        if (match := _DEPLOYMENTS.match(path)) and method == "GET":
            found = self.deployments.get(match["endpoint"], {})
            return _Response(request, 200, {"value": [found[n] for n in sorted(found)]})
        if match := _DEPLOYMENT.match(path):
            endpoint, name = match["endpoint"], match["name"]
            if method == "PUT":
                return self._put_deployment(request, path, endpoint, name, body)
            found = self.deployments.get(endpoint, {}).get(name)
            if found is None:
                return _error(
                    request, 404, "UserError", f"Deployment {name} of endpoint {endpoint} not found"
                )
            if method == "GET":
                return _Response(request, 200, found)
            if method == "DELETE":
                return self._delete_deployment(request, endpoint, name)
        if (match := _OPERATION.match(path)) and method == "GET":
            endpoint, name = self.operations[match["id"]]
            state = self.deployments.get(endpoint, {}).get(name, {}).get("properties", {})
            status = state.get("provisioningState", "Succeeded")
            return _Response(request, 200, {"status": "InProgress" if status == "Creating" else status})
        return None

    def _refused(
        self, request: Any, path: str, definition: str, body: Any, extra: list[str]
    ) -> _Response | None:
        errors = self.schema.errors(definition, body) + extra
        if not errors:
            return None
        self.invalid.append(("PUT", path, errors))
        return _error(request, 400, "UserError", "; ".join(errors))

    def _put_code(self, request: Any, path: str, key: tuple[str, str], body: Any) -> _Response:
        bad = (
            []
            if _ASSET_NAME.match(key[0])
            else [f"code name {key[0]!r} does not match {_ASSET_NAME.pattern}"]
        )
        if refused := self._refused(request, path, "CodeVersionResource", body, bad):
            return refused
        if key in self.codes:
            if self.codes[key]["properties"].get("codeUri") != body["properties"].get("codeUri"):
                return _error(
                    request, 409, "UserError", f"Code {key[0]}:{key[1]} exists with another codeUri"
                )
            return _Response(request, 200, self.codes[key])
        self.codes[key] = {
            "id": path,
            "name": key[1],
            "type": "Microsoft.MachineLearningServices/workspaces/codes/versions",
            "systemData": _system_data(_now()),
            "properties": {**body["properties"], "provisioningState": "Succeeded"},
        }
        return _Response(request, 201, self.codes[key])

    def _put_endpoint(self, request: Any, path: str, name: str, body: Any) -> _Response:
        bad = (
            []
            if _ENDPOINT_NAME.match(name)
            else [f"endpoint name {name!r} does not match {_ENDPOINT_NAME.pattern}"]
        )
        if refused := self._refused(request, path, "OnlineEndpointTrackedResource", body, bad):
            return refused
        traffic = {k: int(v) for k, v in (body["properties"].get("traffic") or {}).items()}
        for deployment, share in traffic.items():
            found = self.deployments.get(name, {}).get(deployment)
            if found is None or (share and found["properties"]["provisioningState"] != "Succeeded"):
                return _error(
                    request,
                    400,
                    "BadArgument",
                    f"Traffic cannot go to deployment {deployment}: it does not exist or is not Succeeded",
                )
        if sum(traffic.values()) not in (0, 100):
            return _error(
                request, 400, "BadArgument", f"Traffic must add up to 0 or 100, not {sum(traffic.values())}"
            )
        existing = self.endpoints.get(name)
        resource = {
            "id": path,
            "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
            "location": body["location"],
            "tags": body.get("tags") or {},
            "kind": body.get("kind"),
            "identity": {"type": "SystemAssigned", "principalId": "p", "tenantId": "t"},
            "systemData": _system_data(existing["systemData"]["createdAt"] if existing else _now()),
            "properties": {
                **body["properties"],
                "traffic": traffic,
                "provisioningState": "Succeeded",
                "scoringUri": f"https://{name}.{LOCATION}.inference.ml.azure.com/score",
            },
        }
        self.endpoints[name] = resource
        return _Response(request, 200 if existing else 201, resource)

    def _put_deployment(self, request: Any, path: str, endpoint: str, name: str, body: Any) -> _Response:
        bad = (
            []
            if _DEPLOYMENT_NAME.match(name)
            else [f"deployment name {name!r} does not match {_DEPLOYMENT_NAME.pattern}"]
        )
        if refused := self._refused(request, path, "OnlineDeploymentTrackedResource", body, bad):
            return refused
        if endpoint not in self.endpoints:
            return _error(request, 404, "UserError", f"Endpoint {endpoint} not found")
        if name in self.deployments.get(endpoint, {}):
            return _error(
                request, 409, "UserError", f"Deployment {name} exists: its model and code cannot change"
            )
        resource = {
            "id": path,
            "name": name,
            "location": body["location"],
            "tags": body.get("tags") or {},
            "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
            "sku": body.get("sku"),
            "systemData": _system_data(_now()),
            "properties": {
                "scaleSettings": {"scaleType": "Default"},
                **body["properties"],
                "provisioningState": "Creating",
            },
        }
        self.deployments.setdefault(endpoint, {})[name] = resource
        operation = f"{endpoint}-{name}-{len(self.operations)}"
        self.operations[operation] = (endpoint, name)
        fails = bool(self.fail_deployments and name.startswith(self.fail_deployments))
        thread = threading.Thread(target=self._provision, args=(endpoint, name, fails), daemon=True)
        self.threads.append(thread)
        thread.start()
        sub = path.split("/")[2]
        status_url = (
            f"https://management.azure.com/subscriptions/{sub}/providers/Microsoft.MachineLearningServices"
            f"/locations/{LOCATION}/mfeOperationsStatus/{operation}?api-version=2025-12-01"
        )
        return _Response(request, 201, resource, {"Azure-AsyncOperation": status_url})

    def _provision(self, endpoint: str, name: str, fails: bool) -> None:
        """Creating -> Succeeded once the scoring process has run init(); Failed on cue or if init() fails."""
        from azureml_container import ScoringWorker

        started = time.monotonic()
        properties = self.deployments[endpoint][name]["properties"]
        state, reason = "Succeeded", ""
        if fails:
            state, reason = "Failed", "ResourceNotReady: the container crashed on start (on cue)"
        else:
            try:
                code = self._code_uri(properties["codeConfiguration"]["codeId"])
                model = self._model_uri(properties["model"])
                worker = ScoringWorker(
                    code, model, properties.get("environmentVariables") or {}, self.blob_connection_string
                )
                ok, why = worker.ready()
                if ok:
                    self.workers[(endpoint, name)] = worker
                else:
                    worker.stop()
                    state, reason = "Failed", why
            except (
                Exception
            ) as exc:  # the stand-in's own failure: the deployment fails as the service reports it
                state, reason = "Failed", f"stand-in error: {exc}"
        time.sleep(max(0.0, self.provision_seconds - (time.monotonic() - started)))
        with self._lock:
            self.job_logs[f"{endpoint}/{name}"] = reason
            properties["provisioningState"] = state

    def _code_uri(self, code_id: str) -> str:
        match = _CODE.match(code_id)
        return self.codes[(match["name"], match["version"])]["properties"]["codeUri"]

    def _model_uri(self, model_id: str) -> str:
        match = _VERSION.match(model_id)
        return self.models[match["name"]][match["version"]]["properties"]["modelUri"]

    def _delete_deployment(self, request: Any, endpoint: str, name: str) -> _Response:
        if int((self.endpoints[endpoint]["properties"].get("traffic") or {}).get(name, 0)):
            return _error(request, 400, "BadArgument", f"Deployment {name} takes traffic: move it away first")
        del self.deployments[endpoint][name]
        worker = self.workers.pop((endpoint, name), None)
        if worker is not None:
            worker.stop()
        return _Response(request, 200, None)

    def _score(self, request: Any, endpoint_name: str, raw: Any) -> _Response:
        """The endpoint's scoring URI: the key checked, the request routed by traffic (or by header)."""
        with self._lock:
            endpoint = self.endpoints.get(endpoint_name)
            if endpoint is None:
                return _error(request, 404, "NotFound", f"no endpoint {endpoint_name}")
            if request.headers.get("Authorization") != f"Bearer {_key(endpoint_name)}":
                return _error(request, 401, "Unauthorized", "the endpoint's key is required")
            traffic = endpoint["properties"].get("traffic") or {}
            name = request.headers.get("azureml-model-deployment") or max(
                traffic, key=lambda n: traffic[n], default=None
            )
            if not name or (not request.headers.get("azureml-model-deployment") and not traffic[name]):
                return _error(request, 424, "NoTraffic", "no deployment takes this endpoint's traffic")
            worker = self.workers.get((endpoint_name, name))
        if worker is None:
            return _error(request, 424, "DeploymentNotReady", f"deployment {name} is not running")
        status, answer = worker.score(raw.decode() if isinstance(raw, bytes) else raw)
        response = _Response(request, status, answer if status == 200 else {"message": answer})
        response.headers["azureml-model-deployment"] = name
        return response

    def close(self) -> None:
        """Stop every deployment's scoring process."""
        for worker in list(self.workers.values()):
            worker.stop()
        self.workers.clear()


class StandInTransport(HttpTransport):
    """An azure-core transport whose every request is answered by the stand-in."""

    def __init__(self, stand_in: AzureMLStandIn) -> None:
        self.stand_in = stand_in

    def __enter__(self) -> StandInTransport:
        return self

    def __exit__(self, *args: Any) -> None:
        pass

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, request: Any, **kwargs: Any) -> _Response:
        return self.stand_in.handle(request)


def _public(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if not k.startswith("_")}


def _error(request: Any, status: int, code: str, message: str) -> _Response:
    return _Response(request, status, {"error": {"code": code, "message": message}})


def _system_data(created: str) -> dict[str, str]:
    return {
        "createdAt": created,
        "createdBy": "stand-in",
        "lastModifiedAt": _now(),
        "lastModifiedBy": "stand-in",
    }


def _key(endpoint: str) -> str:
    return f"key-of-{endpoint}"


def _now() -> str:
    return datetime.now(UTC).isoformat()
