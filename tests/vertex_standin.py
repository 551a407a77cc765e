"""A Vertex AI stand-in: a local HTTP server answering the aiplatform v1 REST API.

No Vertex AI emulator exists, so the tests point the SDK's REST transport at this server
(``api_endpoint="http://127.0.0.1:PORT"``, anonymous credentials). It judges every request by
the service's own published definitions, never by what the project sends:

- routes, HTTP verbs, resource-name patterns and query parameters come from Vertex AI's
  discovery document (``aiplatform.v1.json``, as shipped by google-api-python-client);
- a request body is checked against the document's schema of the method's request: unknown
  fields, wrong JSON types, enum names the service does not define and missing ``Required.``
  fields are refused with 400 INVALID_ARGUMENT, as the service does; then it is parsed into the
  service's own protobuf message (``google.cloud.aiplatform_v1``, the published protos), which
  also refuses enum numbers the proto does not define;
- every response is built through the same protobuf messages, so a field the service would not
  send cannot be sent.

Errors are ``{"error": {"code", "message", "status"}}`` (google.api_core maps them to its
exceptions). Long-running operations are answered done, polled at ``/ui/{name}`` as the SDK does.
``fail_next(method, ...)`` makes the next calls of a method fail on cue (quota exhausted, a
server error...).

What it keeps: models and their versions (upload, get by version or alias, listVersions,
mergeVersionAliases with the rules of the schema: one holder per alias, ``default`` always held).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

SCHEMA_PREFIX = "GoogleCloudAiplatformV1"
STATUS_CODES = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
_ALIAS = re.compile(r"^[a-z][a-zA-Z0-9-]{0,126}[a-z0-9-]$")  # MergeVersionAliasesRequest's rule
_MODEL_ID = re.compile(r"^[a-z_][a-z0-9_-]{0,62}$")  # UploadModelRequest.modelId's rule
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")  # Model.labels' rule (keys start with a letter)
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,64}$")


class ApiError(Exception):
    """An error answer of the service."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = STATUS_CODES[status]

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": str(self), "status": self.status}}


# --------------------------------------------------------------------------------------------
# the published definitions


def discovery_document() -> dict[str, Any]:
    """Vertex AI's v1 discovery document, as google-api-python-client ships it."""
    import googleapiclient

    path = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "aiplatform.v1.json"
    return json.loads(path.read_text())


@dataclass(frozen=True)
class Method:
    """One REST method of the discovery document."""

    id: str  # aiplatform.projects.locations.models.upload
    http_method: str
    pattern: re.Pattern[str]  # the flat path
    path_parameter: str  # the {+name} of the path template
    parameter_pattern: re.Pattern[str] | None
    template: re.Pattern[str]  # extracts the path parameter from the path
    query_parameters: dict[str, dict[str, Any]]
    request_schema: str | None

    @property
    def short(self) -> str:
        """``models.upload``."""
        return ".".join(self.id.split(".")[-2:])


def _methods(document: dict[str, Any]) -> list[Method]:
    found: list[Method] = []

    def walk(resources: dict[str, Any]) -> None:
        for resource in resources.values():
            for method in resource.get("methods", {}).values():
                flat = re.sub(
                    r"\{[^}]+\}",
                    "[^/:]+",
                    re.escape(method["flatPath"]).replace(r"\{", "{").replace(r"\}", "}"),
                )
                path_param = re.search(r"\{\+(\w+)\}", method["path"])
                name = path_param.group(1) if path_param else ""
                template = re.escape(method["path"]).replace(r"\{\+" + name + r"\}", f"(?P<{name}>.+?)")
                spec = method.get("parameters", {}).get(name, {})
                found.append(
                    Method(
                        id=method["id"],
                        http_method=method["httpMethod"],
                        pattern=re.compile(f"^{flat}$"),
                        path_parameter=name,
                        parameter_pattern=re.compile(spec["pattern"]) if spec.get("pattern") else None,
                        template=re.compile(f"^{template}$"),
                        query_parameters={
                            k: v
                            for k, v in method.get("parameters", {}).items()
                            if v.get("location") == "query"
                        },
                        request_schema=method.get("request", {}).get("$ref"),
                    )
                )
            walk(resource.get("resources", {}))

    walk(document["resources"])
    return found


class RequestValidator:
    """Checks a request body against the discovery schema, then parses it into the proto message."""

    def __init__(self, schemas: dict[str, Any]) -> None:
        self.schemas = schemas

    def check(self, body: Any, schema_id: str) -> Any:
        """Return the parsed protobuf message of ``body``; raise ApiError(INVALID_ARGUMENT)."""
        errors: list[str] = []
        self._value(body, {"$ref": schema_id}, "", errors)
        if errors:
            raise ApiError("INVALID_ARGUMENT", "Invalid JSON payload received. " + "; ".join(errors[:5]))
        return self._proto(body, schema_id)

    def _value(self, value: Any, schema: dict[str, Any], where: str, errors: list[str]) -> None:
        if "$ref" in schema:
            schema = self.schemas[schema["$ref"]]
        kind = schema.get("type")
        at = f" at '{where}'" if where else ""
        if kind == "object":
            if not isinstance(value, dict):
                errors.append(f"Invalid value{at} ({json.dumps(value)[:40]}): expected an object")
                return
            if "properties" in schema:
                properties = schema["properties"]
                for key, item in value.items():
                    name = key if key in properties else _camel(key)
                    if name not in properties:
                        errors.append(f'Unknown name "{key}"{at}: Cannot find field.')
                        continue
                    self._value(item, properties[name], f"{where}.{name}".lstrip("."), errors)
                for name, spec in properties.items():
                    if spec.get("description", "").startswith("Required.") and not _present(value, name):
                        errors.append(f"Required field '{f'{where}.{name}'.lstrip('.')}' is not set")
            elif "additionalProperties" in schema:
                for key, item in value.items():
                    self._value(item, schema["additionalProperties"], f"{where}[{key}]", errors)
        elif kind == "array":
            if not isinstance(value, list):
                errors.append(f"Invalid value{at}: expected a list")
                return
            for index, item in enumerate(value):
                self._value(item, schema.get("items", {}), f"{where}[{index}]", errors)
        elif kind == "string":
            if "enum" in schema:
                if (
                    not (isinstance(value, int) and not isinstance(value, bool))
                    and value not in schema["enum"]
                ):
                    errors.append(f"Invalid value{at} ({json.dumps(value)}): not one of {schema['enum']}")
            elif schema.get("format") in ("int64", "uint64"):
                if not re.fullmatch(r"-?[0-9]+", str(value)) or isinstance(value, bool):
                    errors.append(f"Invalid value{at} ({json.dumps(value)}): expected an int64")
            elif schema.get("format") == "google-duration":
                if not isinstance(value, str) or not re.fullmatch(r"-?[0-9]+(\.[0-9]{1,9})?s", value):
                    errors.append(f"Invalid value{at} ({json.dumps(value)}): expected a duration like '60s'")
            elif not isinstance(value, str):
                errors.append(f"Invalid value{at} ({json.dumps(value)[:40]}): expected a string")
        elif kind == "integer":
            if isinstance(value, bool) or not re.fullmatch(r"-?[0-9]+", str(value)):
                errors.append(f"Invalid value{at} ({json.dumps(value)}): expected an integer")
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                errors.append(f"Invalid value{at} ({json.dumps(value)}): expected a number")
        elif kind == "boolean":
            if not isinstance(value, bool):
                errors.append(f"Invalid value{at} ({json.dumps(value)}): expected true or false")

    def _proto(self, body: Any, schema_id: str) -> Any:
        from google.protobuf import json_format

        message = proto_class(schema_id)
        if message is None:
            return None
        try:
            parsed = json_format.ParseDict(body, message.pb()(), ignore_unknown_fields=False)
        except json_format.ParseError as exc:
            raise ApiError("INVALID_ARGUMENT", f"Invalid JSON payload received. {exc}") from None
        undefined = _undefined_enums(parsed)
        if undefined:
            raise ApiError("INVALID_ARGUMENT", f"Invalid value for enum field(s): {', '.join(undefined)}")
        return parsed


def proto_class(schema_id: str) -> Any:
    """The proto-plus message class of a discovery schema (None outside aiplatform v1)."""
    from google.cloud import aiplatform_v1

    if not schema_id.startswith(SCHEMA_PREFIX):
        return None
    return getattr(aiplatform_v1, schema_id[len(SCHEMA_PREFIX) :], None)


def _undefined_enums(message: Any, where: str = "") -> list[str]:
    from google.protobuf.descriptor import FieldDescriptor

    found: list[str] = []
    for descriptor, value in message.ListFields():
        name = f"{where}.{descriptor.json_name}".lstrip(".")
        values = value if descriptor.label == FieldDescriptor.LABEL_REPEATED else [value]
        if descriptor.type == FieldDescriptor.TYPE_ENUM:
            found += [f"{name}={v}" for v in values if v not in descriptor.enum_type.values_by_number]
        elif (
            descriptor.type == FieldDescriptor.TYPE_MESSAGE
            and not descriptor.message_type.GetOptions().map_entry
        ):
            for item in values:
                found += _undefined_enums(item, name)
    return found


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _present(value: dict[str, Any], name: str) -> bool:
    snake = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)
    return any(value.get(key) not in (None, "", [], {}) for key in (name, snake))


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------
# the server


@dataclass
class Fault:
    """An error to answer instead of the method's work."""

    method: str  # short id, e.g. "models.upload"
    status: str
    message: str
    times: int = 1


@dataclass
class ModelVersionRecord:
    """One version of a model, as the service stores it (the Model message of that version)."""

    resource: dict[str, Any]
    aliases: list[str] = field(default_factory=list)


class VertexStandIn:
    """The server, in a thread of this process, on 127.0.0.1:<free port>.

    Attributes:
        url: the ``api_endpoint`` to give the SDK.
        requests: ``(method short id, name, body)`` of every request that passed validation.
        rejected: ``(method short id, status, error message)`` of every refused request.
    """

    def __init__(self, port: int) -> None:
        document = discovery_document()
        self.methods = _methods(document)
        self.validator = RequestValidator(document["schemas"])
        self.requests: list[tuple[str, str, Any]] = []
        self.rejected: list[tuple[str, str, str]] = []
        self.faults: list[Fault] = []
        self.models: dict[str, list[ModelVersionRecord]] = {}  # model name -> versions, oldest first
        self._lock = threading.RLock()
        self._ids = itertools.count(1000)
        self.handlers: dict[str, Callable[[str, Any, dict[str, str]], Any]] = {
            "models.upload": self._upload_model,
            "models.get": self._get_model,
            "models.listVersions": self._list_versions,
            "models.list": self._list_models,
            "models.mergeVersionAliases": self._merge_aliases,
            "operations.get": self._get_operation,
        }
        self.operations: dict[str, dict[str, Any]] = {}
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body = stand_in.handle(self.command, self.path, raw)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    def fail_next(
        self, method: str, status: str = "RESOURCE_EXHAUSTED", message: str = "", times: int = 1
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (e.g. ``models.upload``) with an error."""
        if status not in STATUS_CODES:
            raise ValueError(f"unknown status {status!r}")
        if not any(m.short == method for m in self.methods):
            raise ValueError(f"Vertex AI has no method {method!r}")
        default = {"RESOURCE_EXHAUSTED": "Quota exceeded for aiplatform.googleapis.com (stand-in cue)"}
        self.faults.append(
            Fault(method, status, message or default.get(status, f"{status} (stand-in cue)"), times)
        )

    def calls(self, method: str) -> list[tuple[str, Any]]:
        """``(name, body)`` of the accepted requests of one method, oldest first."""
        return [(name, body) for short, name, body in self.requests if short == method]

    # -- dispatch --------------------------------------------------------------------------

    def handle(self, verb: str, raw_path: str, raw_body: bytes) -> tuple[int, Any]:
        """Route, validate and answer one request: (HTTP status, JSON body)."""
        short = "?"
        try:
            split = urlsplit(raw_path)
            path = unquote(split.path).lstrip("/")
            if path.startswith("ui/"):  # the SDK polls operations here
                path = "v1/" + path[3:]
            method, name = self._route(verb, path)
            short = method.short
            query = dict(parse_qsl(split.query, keep_blank_values=True))
            alt = query.pop("$alt", "json")
            for key in query:
                if key not in method.query_parameters and key.split(".")[0] not in method.query_parameters:
                    raise ApiError(
                        "INVALID_ARGUMENT",
                        f'Invalid JSON payload received. Unknown name "{key}": Cannot bind query parameter.',
                    )
            body: Any = None
            if method.request_schema:
                try:
                    body = json.loads(raw_body or b"{}")
                except ValueError:
                    raise ApiError(
                        "INVALID_ARGUMENT", "Invalid JSON payload received. Unexpected token."
                    ) from None
                self.validator.check(body, method.request_schema)
            with self._lock:
                for fault in self.faults:
                    if fault.method == short and fault.times > 0:
                        fault.times -= 1
                        raise ApiError(fault.status, fault.message)
                handler = self.handlers.get(short)
                if handler is None:
                    raise ApiError("UNIMPLEMENTED", f"the stand-in does not implement {method.id}")
                self.requests.append((short, name, copy.deepcopy(body)))
                answer = handler(name, body, query)
            return 200, self._encode(answer, "enum-encoding=int" in alt)
        except ApiError as error:
            self.rejected.append((short, error.status, str(error)))
            return error.code, error.body()

    def _route(self, verb: str, path: str) -> tuple[Method, str]:
        candidates = [m for m in self.methods if m.pattern.match(path)]
        if not candidates:
            raise ApiError("NOT_FOUND", f"The requested URL /{path} was not found on this server.")
        for method in candidates:
            if method.http_method != verb:
                continue
            match = method.template.match(path)
            name = match.group(method.path_parameter) if match and method.path_parameter else ""
            if method.parameter_pattern and not method.parameter_pattern.match(name):
                raise ApiError(
                    "INVALID_ARGUMENT",
                    f"{method.path_parameter} {name!r} does not match {method.parameter_pattern.pattern}",
                )
            return method, name
        raise ApiError("NOT_FOUND", f"no {verb} method at /{path}")

    @staticmethod
    def _encode(answer: tuple[str, dict[str, Any]] | None, int_enums: bool) -> Any:
        """Send the answer through the service's message: ``(schema id, dict)``."""
        from google.protobuf import json_format

        if answer is None:
            return {}
        schema_id, payload = answer
        message = proto_class(schema_id) if schema_id.startswith(SCHEMA_PREFIX) else None
        if message is None:  # google.longrunning.Operation
            return payload
        parsed = json_format.ParseDict(payload, message.pb()(), ignore_unknown_fields=False)
        return json_format.MessageToDict(parsed, use_integers_for_enums=int_enums)

    def _operation(
        self, parent: str, response_type: str, response: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """A long-running operation, done at once (the work was done in the request)."""
        name = f"{parent}/operations/{next(self._ids)}"
        operation = {
            "name": name,
            "done": True,
            "metadata": {
                "@type": "type.googleapis.com/google.cloud.aiplatform.v1.GenericOperationMetadata",
                "createTime": _now(),
                "updateTime": _now(),
            },
            "response": {
                "@type": f"type.googleapis.com/google.cloud.aiplatform.v1.{response_type}",
                **response,
            },
        }
        self.operations[name] = operation
        return "Operation", operation

    def _get_operation(self, name: str, body: Any, query: dict[str, str]) -> Any:
        if name not in self.operations:
            raise ApiError("NOT_FOUND", f"Operation {name} not found")
        return "Operation", self.operations[name]

    # -- models ----------------------------------------------------------------------------

    def _upload_model(self, parent: str, body: dict[str, Any], query: dict[str, str]) -> Any:
        model = dict(body["model"])
        for key, value in (model.get("labels") or {}).items():
            if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
                raise ApiError(
                    "INVALID_ARGUMENT",
                    f"Label {key}={value!r} is invalid: at most 64 lowercase "
                    "letters, digits, '_' and '-' (keys start with a letter)",
                )
        if body.get("parentModel"):
            name = body["parentModel"]
            if not name.startswith(parent + "/models/"):
                raise ApiError("INVALID_ARGUMENT", f"parentModel {name} is not a model of {parent}")
            if name not in self.models:
                raise ApiError("NOT_FOUND", f"Model {name} does not exist.")
            if body.get("modelId"):
                raise ApiError("INVALID_ARGUMENT", "modelId must be empty when parentModel is set")
        else:
            model_id = body.get("modelId") or str(next(self._ids))
            if not _MODEL_ID.match(model_id) or model_id[0].isdigit() and body.get("modelId"):
                raise ApiError(
                    "INVALID_ARGUMENT",
                    f"modelId {model_id!r} is invalid: up to 63 of [a-z0-9_-], "
                    "not starting with a digit or '-'",
                )
            name = f"{parent}/models/{model_id}"
            if name in self.models:
                raise ApiError("ALREADY_EXISTS", f"Model {name} already exists.")
            self.models[name] = []
        versions = self.models[name]
        version_id = str(len(versions) + 1)
        now = _now()
        created = versions[0].resource["createTime"] if versions else now
        resource = {
            **{k: v for k, v in model.items() if k not in ("name", "versionId", "versionAliases")},
            "name": name,
            "versionId": version_id,
            "createTime": created,
            "updateTime": now,
            "versionCreateTime": now,
            "versionUpdateTime": now,
            "etag": f"v{version_id}-{next(self._ids)}",
            "supportedDeploymentResourcesTypes": ["DEDICATED_RESOURCES"],
        }
        aliases = ["default"] if not versions else []
        for alias in model.get("versionAliases") or []:
            self._check_alias(alias)
            if self._holder(name, alias) is not None:
                raise ApiError("ALREADY_EXISTS", f"Version alias {alias} already exists on model {name}.")
            aliases.append(alias)
        versions.append(ModelVersionRecord(resource, aliases))
        return self._operation(name, "UploadModelResponse", {"model": name, "modelVersionId": version_id})

    def _version(self, name: str) -> tuple[str, ModelVersionRecord]:
        model, _, ref = name.partition("@")
        versions = self.models.get(model)
        if not versions:
            raise ApiError("NOT_FOUND", f"Model {name} does not exist.")
        ref = ref or "default"
        for record in versions:
            if record.resource["versionId"] == ref or ref in record.aliases:
                return model, record
        raise ApiError("NOT_FOUND", f"Model {name} does not exist.")

    @staticmethod
    def _view(record: ModelVersionRecord) -> tuple[str, dict[str, Any]]:
        return f"{SCHEMA_PREFIX}Model", {**record.resource, "versionAliases": list(record.aliases)}

    def _get_model(self, name: str, body: Any, query: dict[str, str]) -> Any:
        return self._view(self._version(name)[1])

    def _list_versions(self, name: str, body: Any, query: dict[str, str]) -> Any:
        if "@" in name:
            raise ApiError("INVALID_ARGUMENT", "listVersions takes a model name without a version")
        model, _ = self._version(name)
        views = [self._view(r)[1] for r in self.models[model]]
        return self._page(f"{SCHEMA_PREFIX}ListModelVersionsResponse", "models", views, query)

    def _list_models(self, parent: str, body: Any, query: dict[str, str]) -> Any:
        views = [
            self._view(self._version(n)[1])[1] for n in sorted(self.models) if n.startswith(parent + "/")
        ]
        return self._page(f"{SCHEMA_PREFIX}ListModelsResponse", "models", views, query)

    @staticmethod
    def _page(schema: str, key: str, items: list[Any], query: dict[str, str]) -> tuple[str, dict[str, Any]]:
        size = int(query.get("pageSize") or 100)
        start = int(query.get("pageToken") or 0)
        page: dict[str, Any] = {key: items[start : start + size]}
        if start + size < len(items):
            page["nextPageToken"] = str(start + size)
        return schema, page

    @staticmethod
    def _check_alias(alias: str) -> None:
        if not _ALIAS.match(alias) or len(alias) > 128:
            raise ApiError(
                "INVALID_ARGUMENT", f"Version alias {alias!r} must match [a-z][a-zA-Z0-9-]{{0,126}}[a-z-0-9]"
            )

    def _holder(self, model: str, alias: str) -> ModelVersionRecord | None:
        return next((r for r in self.models.get(model, []) if alias in r.aliases), None)

    def _merge_aliases(self, name: str, body: dict[str, Any], query: dict[str, str]) -> Any:
        model, record = self._version(name)
        changes = body.get("versionAliases") or []
        if not changes:
            raise ApiError("INVALID_ARGUMENT", "versionAliases must not be empty")
        for change in changes:
            alias = change[1:] if change.startswith("-") else change
            self._check_alias(alias)
            if change.startswith("-"):
                if alias == "default":
                    raise ApiError(
                        "FAILED_PRECONDITION",
                        "The default version alias cannot be removed; move it "
                        "by adding it to another version.",
                    )
                if alias in record.aliases:
                    record.aliases.remove(alias)
                continue
            holder = self._holder(model, alias)
            if holder is record:
                continue
            if alias == "default":  # adding default moves it: there is always exactly one
                holder.aliases.remove("default")
            elif holder is not None:
                raise ApiError(
                    "FAILED_PRECONDITION",
                    f"Version alias {alias} is already used by version "
                    f"{holder.resource['versionId']} of {model}; remove it there first.",
                )
            record.aliases.append(alias)
        record.resource["versionUpdateTime"] = _now()
        return self._view(record)
