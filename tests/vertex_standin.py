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
mergeVersionAliases with the rules of the schema: one holder per alias, ``default`` always held);
custom jobs, which it really runs as the prebuilt training container would: it downloads the
job's Python package from GCS (the GCS stand-in), puts only the package's folder on the path,
and runs its module with the job's args and ``AIP_MODEL_DIR`` in a child process; the job is
PENDING, RUNNING, then SUCCEEDED or FAILED with the replica's exit status and stderr, as Vertex
AI reports it. ``fail_job(display_name_prefix, message)`` fails such jobs on cue without running
them (a quota or capacity error, as the service reports those).

Endpoints and batch prediction jobs run the model's serving code for real: a deployed model is
a child process running ``vertex_serve`` from the package its container env names
(``MLOPS_PACKAGE``; the image itself cannot be pulled here) with Vertex AI's ``AIP_*`` variables,
ready once its health route answers (a version's server is kept and reused by its next
deployment or batch job: it is stateless); predict goes to the deployed model with the traffic; a
batch prediction job starts one for its model, sends it the JSON Lines instances and writes
``prediction.results-*`` files as Vertex AI does. ``fail_deploy(message)`` makes the next
deployments fail (a model server that never becomes ready).
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from emulators import ServerProcess
from json_http import JsonHttpServer

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
# serving


class ServingContainer:
    """A deployed model's serving container: ``vertex_serve`` of the model's package, a child process."""

    def __init__(self, model: dict[str, Any], timeout: float = 120) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        spec = model.get("containerSpec") or {}
        env = {item["name"]: item.get("value", "") for item in spec.get("env", [])}
        if "MLOPS_PACKAGE" not in env:
            raise RuntimeError(
                "the model's container env names no MLOPS_PACKAGE: the stand-in cannot serve it"
            )
        self.folder = Path(tempfile.mkdtemp(prefix="vertex-serving-"))
        project = model["name"].split("/")[1]
        bucket, blob = env["MLOPS_PACKAGE"][5:].split("/", 1)
        data = storage.Client(credentials=AnonymousCredentials(), project=project).bucket(bucket).blob(blob)
        with tarfile.open(fileobj=io.BytesIO(data.download_as_bytes())) as tar:
            tar.extractall(self.folder, filter="data")
        (code_root,) = [p for p in self.folder.iterdir() if (p / "setup.py").is_file()]
        from helpers import free_port

        self.port = free_port()
        self.predict_route = spec.get("predictRoute", "/predict")
        health = spec.get("healthRoute", "/health")
        variables = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AIP_"))}
        variables.update(env)
        variables.update(
            {
                "AIP_HTTP_PORT": str(self.port),
                "AIP_HEALTH_ROUTE": health,
                "AIP_PREDICT_ROUTE": self.predict_route,
                "AIP_STORAGE_URI": model.get("artifactUri", ""),
                "MLOPS_SERVE_HOST": "127.0.0.1",
                "PYTHONPATH": str(code_root),
                "OMP_NUM_THREADS": "1",
            }
        )
        bootstrap = (
            "import runpy, sys; root = sys.argv.pop(1); "
            "sys.path[:] = [p for p in sys.path if p.rstrip('/') != root and p not in ('', '.')]; "
            "runpy.run_module('vertex_serve', run_name='__main__', alter_sys=True)"
        )
        try:
            self.server = ServerProcess([sys.executable, "-c", bootstrap, str(ROOT)], self.port, health,
                                        self.folder / "server.log", env=variables, timeout=timeout,
                                        cwd=self.folder, inherit_env=False)  # fmt: skip
        except RuntimeError as exc:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise RuntimeError(f"the model server did not start: {exc}") from None
        self.process = self.server.process

    def predict(self, instances: list[Any]) -> list[Any]:
        """The server's predictions for ``instances``; ApiError(INVALID_ARGUMENT) on its 4xx."""
        import httpx

        answer = httpx.post(self.server.url + self.predict_route, json={"instances": instances}, timeout=300)
        if answer.status_code >= 400:
            raise ApiError("INVALID_ARGUMENT" if answer.status_code < 500 else "INTERNAL", answer.text[:1000])
        return answer.json()["predictions"]

    def stop(self) -> None:
        """Stop the server (by its pid, SIGKILL after a grace period); delete its folder."""
        self.server.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class _ServingMixin:
    """Endpoints and batch prediction jobs of :class:`VertexStandIn` (kept apart for reading)."""

    def fail_deploy(self, message: str = "Model server never became ready.") -> None:
        """Fail the next deployment with ``message`` (an endpoint that never becomes ready)."""
        self.deploy_failures.append(message)

    def _server(self, model: dict[str, Any]) -> ServingContainer:
        """The running server of a model version (started on first use)."""
        env = {
            item["name"]: item.get("value", "") for item in (model.get("containerSpec") or {}).get("env", [])
        }
        key = (env.get("MLOPS_PACKAGE", ""), model.get("artifactUri", ""), env.get("MODEL_SHA256", ""))
        with self._serving_lock:
            if key not in self.warm or self.warm[key].process.poll() is not None:
                self.warm[key] = ServingContainer(model)
            return self.warm[key]

    def _pending_operation(self, parent: str, metadata_type: str) -> dict[str, Any]:
        name = f"{parent}/operations/{next(self._ids)}"
        operation = {
            "name": name,
            "done": False,
            "metadata": {
                "@type": f"type.googleapis.com/google.cloud.aiplatform.v1.{metadata_type}",
                "genericMetadata": {"createTime": _now(), "updateTime": _now()},
            },
        }
        self.operations[name] = operation
        return operation

    def _endpoint(self, name: str) -> dict[str, Any]:
        if name not in self.endpoints:
            raise ApiError("NOT_FOUND", f"Endpoint {name} does not exist.")
        return self.endpoints[name]

    def _create_endpoint(self, parent: str, body: dict[str, Any], query: dict[str, str]) -> Any:
        endpoint_id = query.get("endpointId") or str(next(self._ids))
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,61}[a-z0-9]|[1-9][0-9]{0,8}", endpoint_id):
            raise ApiError("INVALID_ARGUMENT", f"endpointId {endpoint_id!r} is invalid")
        name = f"{parent}/endpoints/{endpoint_id}"
        if name in self.endpoints:
            raise ApiError("ALREADY_EXISTS", f"Endpoint {name} already exists.")
        endpoint = {
            **body,
            "name": name,
            "deployedModels": [],
            "trafficSplit": {},
            "createTime": _now(),
            "updateTime": _now(),
            "etag": str(next(self._ids)),
        }
        self.endpoints[name] = endpoint
        return self._operation(name, "Endpoint", endpoint)

    def _get_endpoint(self, name: str, body: Any, query: dict[str, str]) -> Any:
        return f"{SCHEMA_PREFIX}Endpoint", self._endpoint(name)

    @staticmethod
    def _check_split(split: dict[str, int], ids: set[str]) -> None:
        unknown = set(split) - ids
        if unknown:
            raise ApiError(
                "INVALID_ARGUMENT", f"trafficSplit names DeployedModel(s) {sorted(unknown)} not deployed"
            )
        if split and sum(split.values()) != 100:
            raise ApiError("INVALID_ARGUMENT", f"trafficSplit must add up to 100, not {sum(split.values())}")

    def _patch_endpoint(self, name: str, body: dict[str, Any], query: dict[str, str]) -> Any:
        endpoint = self._endpoint(name)
        paths = [_camel(p) for p in query.get("updateMask", "").split(",") if p]
        if paths != ["trafficSplit"]:
            raise ApiError("UNIMPLEMENTED", f"the stand-in patches trafficSplit only, not {paths}")
        split = {k: int(v) for k, v in (body.get("trafficSplit") or {}).items()}
        self._check_split(split, {m["id"] for m in endpoint["deployedModels"]})
        endpoint.update(trafficSplit=split, updateTime=_now())
        return f"{SCHEMA_PREFIX}Endpoint", endpoint

    def _deploy_model(self, name: str, body: dict[str, Any], query: dict[str, str]) -> Any:
        endpoint = self._endpoint(name)
        wanted = body["deployedModel"]
        if "model" not in wanted or "dedicatedResources" not in wanted:
            raise ApiError(
                "INVALID_ARGUMENT", "deployedModel.model and deployedModel.dedicatedResources are required"
            )
        model_name, record = self._version(wanted["model"])
        deployed_id = wanted.get("id") or str(next(self._ids))
        if not re.fullmatch(r"[0-9]{1,10}", deployed_id):
            raise ApiError("INVALID_ARGUMENT", f"DeployedModel id {deployed_id!r} must be 1-10 digits")
        ids = {m["id"] for m in endpoint["deployedModels"]}
        if deployed_id in ids:
            raise ApiError("ALREADY_EXISTS", f"DeployedModel {deployed_id} already exists in {name}.")
        split = {
            (deployed_id if k == "0" else k): int(v) for k, v in (body.get("trafficSplit") or {}).items()
        }
        self._check_split(split, ids | {deployed_id})
        if not split and not ids:
            split = {deployed_id: 100}
        operation = self._pending_operation(name, "DeployModelOperationMetadata")
        deployed = {
            **wanted,
            "id": deployed_id,
            "model": model_name,
            "createTime": _now(),
            "modelVersionId": record.resource["versionId"],
        }
        failure = self.deploy_failures.pop(0) if self.deploy_failures else None

        def deploy() -> None:
            try:
                if failure:
                    raise RuntimeError(failure)
                self._server(self._view(record)[1])
            except Exception as exc:
                operation.update(
                    done=True, error={"code": 13, "message": f"Failed to deploy model: {exc}"[-1500:]}
                )
                return
            with self._lock:
                endpoint["deployedModels"].append(deployed)
                if split:
                    endpoint["trafficSplit"] = split
                endpoint["updateTime"] = _now()
                operation.update(
                    done=True,
                    response={
                        "@type": "type.googleapis.com/google.cloud.aiplatform.v1.DeployModelResponse",
                        "deployedModel": deployed,
                    },
                )

        thread = threading.Thread(target=deploy, daemon=True)
        self.threads.append(thread)
        thread.start()
        return "Operation", operation

    def _undeploy_model(self, name: str, body: dict[str, Any], query: dict[str, str]) -> Any:
        endpoint = self._endpoint(name)
        deployed_id = body["deployedModelId"]
        if deployed_id not in {m["id"] for m in endpoint["deployedModels"]}:
            raise ApiError("NOT_FOUND", f"DeployedModel {deployed_id} does not exist in {name}.")
        split = dict(endpoint["trafficSplit"])
        if "trafficSplit" in body:
            split = {k: int(v) for k, v in body["trafficSplit"].items()}
        remaining = [m for m in endpoint["deployedModels"] if m["id"] != deployed_id]
        if remaining and split.get(deployed_id, 0) > 0:
            raise ApiError(
                "FAILED_PRECONDITION",
                f"DeployedModel {deployed_id} still has {split[deployed_id]}% of the traffic: move it first",
            )
        split.pop(deployed_id, None)
        self._check_split(split, {m["id"] for m in remaining})
        endpoint.update(deployedModels=remaining, trafficSplit=split if remaining else {}, updateTime=_now())
        return self._operation(name, "UndeployModelResponse", {})

    def _predict(self, name: str, body: dict[str, Any], query: dict[str, str]) -> Any:
        endpoint = self._endpoint(name)
        split = endpoint["trafficSplit"]
        serving = [m for m in endpoint["deployedModels"] if split.get(m["id"], 0) > 0]
        if not serving:
            raise ApiError("FAILED_PRECONDITION", f"Endpoint {name} has no DeployedModel with traffic.")
        deployed = max(serving, key=lambda m: split[m["id"]])
        _, record = self._version(f"{deployed['model']}@{deployed['modelVersionId']}")
        # a replica whose server died is started again, as Vertex AI restarts a failed replica
        predictions = self._server(self._view(record)[1]).predict(body["instances"])
        return f"{SCHEMA_PREFIX}PredictResponse", {
            "predictions": predictions,
            "deployedModelId": deployed["id"],
            "model": deployed["model"],
            "modelVersionId": deployed["modelVersionId"],
            "modelDisplayName": deployed.get("displayName", ""),
        }

    # -- batch prediction ------------------------------------------------------------------

    def _create_batch_job(self, parent: str, body: dict[str, Any], query: dict[str, str]) -> Any:
        _, record = self._version(body.get("model", ""))
        job = self._start_job(
            self.batch_jobs, f"{parent}/batchPredictionJobs", body, self._run_batch_job, record
        )
        return f"{SCHEMA_PREFIX}BatchPredictionJob", job

    def _get_batch_job(self, name: str, body: Any, query: dict[str, str]) -> Any:
        return f"{SCHEMA_PREFIX}BatchPredictionJob", _job(self.batch_jobs, name, "BatchPredictionJob")

    def _list_batch_jobs(self, parent: str, body: Any, query: dict[str, str]) -> Any:
        jobs = _matching(self.batch_jobs, parent, query)
        return self._page(
            f"{SCHEMA_PREFIX}ListBatchPredictionJobsResponse", "batchPredictionJobs", jobs, query
        )

    def _run_batch_job(self, job: dict[str, Any], record: ModelVersionRecord) -> None:
        """Serve the model, send it the instances, write the predictions as Vertex AI does."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        container = None
        try:
            self._set(job, state="JOB_STATE_RUNNING", startTime=_now())
            if (
                job["inputConfig"]["instancesFormat"] != "jsonl"
                or job["outputConfig"]["predictionsFormat"] != "jsonl"
            ):
                raise RuntimeError("the stand-in reads and writes jsonl only")
            client = storage.Client(credentials=AnonymousCredentials(), project=job["name"].split("/")[1])
            instances = []
            for uri in job["inputConfig"]["gcsSource"]["uris"]:
                bucket, blob = uri[5:].split("/", 1)
                text = client.bucket(bucket).blob(blob).download_as_text()
                instances += [json.loads(line) for line in text.splitlines() if line.strip()]
            container = self._server(self._view(record)[1])
            lines = []
            for start in range(0, len(instances), 500):
                batch = instances[start : start + 500]
                for instance, prediction in zip(batch, container.predict(batch), strict=True):
                    lines.append(json.dumps({"instance": instance, "prediction": prediction}))
            prefix = job["outputConfig"]["gcsDestination"]["outputUriPrefix"].rstrip("/")
            stamp = datetime.now(UTC).strftime("%Y_%m_%dT%H_%M_%S_%fZ")
            folder = f"{prefix}/prediction-{record.resource['name'].rsplit('/', 1)[-1]}-{stamp}"
            bucket, blob = folder[5:].split("/", 1)
            out = client.bucket(bucket).blob(f"{blob}/prediction.results-00000-of-00001")
            out.upload_from_string("\n".join(lines) + "\n")
            self._set(
                job,
                state="JOB_STATE_SUCCEEDED",
                endTime=_now(),
                outputInfo={"gcsOutputDirectory": folder},
                completionStats={"successfulCount": str(len(lines))},
            )
        except Exception as exc:
            self._set(
                job, state="JOB_STATE_FAILED", endTime=_now(), error={"code": 13, "message": f"{exc}"[-1500:]}
            )
        finally:
            if container is not None:
                container.stop()


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


class VertexStandIn(_ServingMixin):
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
            "customJobs.create": self._create_custom_job,
            "customJobs.get": self._get_custom_job,
            "customJobs.list": self._list_custom_jobs,
            "customJobs.cancel": self._cancel_custom_job,
            "endpoints.create": self._create_endpoint,
            "endpoints.get": self._get_endpoint,
            "endpoints.patch": self._patch_endpoint,
            "endpoints.deployModel": self._deploy_model,
            "endpoints.undeployModel": self._undeploy_model,
            "endpoints.predict": self._predict,
            "batchPredictionJobs.create": self._create_batch_job,
            "batchPredictionJobs.get": self._get_batch_job,
            "batchPredictionJobs.list": self._list_batch_jobs,
        }
        self.endpoints: dict[str, dict[str, Any]] = {}
        # servers by (package, artifact, sha256): a version deployed again, or batch-scored, reuses
        # its running server (they are stateless), which keeps the tests' time down
        self.warm: dict[tuple[str, ...], ServingContainer] = {}
        self.batch_jobs: dict[str, dict[str, Any]] = {}
        self.deploy_failures: list[str] = []
        self.custom_jobs: dict[str, dict[str, Any]] = {}
        self.job_failures: dict[str, str] = {}  # display name prefix -> the error it fails with
        self.threads: list[threading.Thread] = []
        self.operations: dict[str, dict[str, Any]] = {}
        self._serving_lock = threading.Lock()
        self.http = JsonHttpServer(port, self.handle)
        self.url = self.http.url

    def stop(self) -> None:
        """Stop serving; stop every deployed model's server."""
        self.http.stop()
        for container in list(self.warm.values()):
            container.stop()

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
        except Exception as exc:  # the stand-in's own trouble: answered as the service's internal error
            error = ApiError("INTERNAL", f"{type(exc).__name__}: {exc}")
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

    # -- custom jobs -----------------------------------------------------------------------

    def fail_job(self, display_name_prefix: str, message: str) -> None:
        """Fail the custom jobs whose display name starts with the prefix, with ``message``."""
        self.job_failures[display_name_prefix] = message

    def join(self, timeout: float = 300) -> None:
        """Wait for the running jobs to end."""
        for thread in self.threads:
            thread.join(timeout=timeout)

    def _create_custom_job(self, parent: str, body: dict[str, Any], query: dict[str, str]) -> Any:
        for key, value in (body.get("labels") or {}).items():
            if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
                raise ApiError("INVALID_ARGUMENT", f"Label {key}={value!r} is invalid")
        pools = body["jobSpec"]["workerPoolSpecs"]
        if not pools or not pools[0].get("machineSpec", {}).get("machineType"):
            raise ApiError("INVALID_ARGUMENT", "workerPoolSpecs[0].machineSpec.machineType is required")
        failure = next((m for p, m in self.job_failures.items() if body["displayName"].startswith(p)), None)
        job = self._start_job(self.custom_jobs, f"{parent}/customJobs", body, self._run_custom_job, failure)
        return f"{SCHEMA_PREFIX}CustomJob", job

    def _start_job(
        self, jobs: dict[str, Any], collection: str, body: dict[str, Any], work: Any, extra: Any
    ) -> Any:
        """Record a new job (PENDING) and start ``work(job, extra)`` in a thread."""
        now = _now()
        job = {**body, "name": f"{collection}/{next(self._ids)}", "state": "JOB_STATE_PENDING",
               "createTime": now, "updateTime": now}  # fmt: skip
        jobs[job["name"]] = job
        thread = threading.Thread(target=work, args=(job, extra), daemon=True)
        self.threads.append(thread)
        thread.start()
        return job

    def _get_custom_job(self, name: str, body: Any, query: dict[str, str]) -> Any:
        return f"{SCHEMA_PREFIX}CustomJob", _job(self.custom_jobs, name, "CustomJob")

    def _list_custom_jobs(self, parent: str, body: Any, query: dict[str, str]) -> Any:
        jobs = _matching(self.custom_jobs, parent, query)
        return self._page(f"{SCHEMA_PREFIX}ListCustomJobsResponse", "customJobs", jobs, query)

    def _cancel_custom_job(self, name: str, body: Any, query: dict[str, str]) -> Any:
        job = self._get_custom_job(name, body, query)[1]
        if job["state"] in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING"):
            job.update(state="JOB_STATE_CANCELLED", endTime=_now(), error={"code": 1, "message": "CANCELED"})
        return None

    def _set(self, job: dict[str, Any], **changes: Any) -> None:
        with self._lock:
            if job["state"] == "JOB_STATE_CANCELLED":
                return
            job.update(changes, updateTime=_now())

    def _run_custom_job(self, job: dict[str, Any], failure: str | None) -> None:
        """Do the prebuilt training container's work for the job's first worker pool."""
        try:
            if failure is not None:
                self._set(
                    job, state="JOB_STATE_FAILED", endTime=_now(), error={"code": 8, "message": failure}
                )
                return
            self._set(job, state="JOB_STATE_RUNNING", startTime=_now())
            code, stderr = self._run_package(job)
            if code == 0:
                self._set(job, state="JOB_STATE_SUCCEEDED", endTime=_now())
            else:
                message = (
                    f"The replica workerpool0-0 exited with a non-zero status of {code}. "
                    f"Termination reason: Error. {stderr[-1500:]}"
                )
                self._set(
                    job, state="JOB_STATE_FAILED", endTime=_now(), error={"code": 3, "message": message}
                )
        except Exception as exc:  # the stand-in's own trouble: reported as the service's internal error
            self._set(job, state="JOB_STATE_FAILED", endTime=_now(), error={"code": 13, "message": f"{exc}"})

    def _run_package(self, job: dict[str, Any]) -> tuple[int, str]:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        spec = job["jobSpec"]
        pool = spec["workerPoolSpecs"][0]
        package = pool.get("pythonPackageSpec")
        if package is None:
            return 1, "the stand-in runs pythonPackageSpec worker pools only"
        client = storage.Client(credentials=AnonymousCredentials(), project=job["name"].split("/")[1])
        bucket, blob = package["packageUris"][0][5:].split("/", 1)
        data = client.bucket(bucket).blob(blob).download_as_bytes()
        output = spec.get("baseOutputDirectory", {}).get("outputUriPrefix", "").rstrip("/")
        timeout = float(spec.get("scheduling", {}).get("timeout", "604800s").rstrip("s"))
        with tempfile.TemporaryDirectory(prefix="vertex-job-") as tmp:
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                tar.extractall(tmp, filter="data")
            (code_root,) = [p for p in Path(tmp).iterdir() if (p / "setup.py").is_file()]
            env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AIP_"))}
            env.update(
                {
                    "AIP_MODEL_DIR": f"{output}/model/",
                    "AIP_CHECKPOINT_DIR": f"{output}/checkpoints/",
                    "CLOUD_ML_PROJECT_ID": job["name"].split("/")[1],
                    "CLOUD_ML_JOB_ID": job["name"].rsplit("/", 1)[1],
                    "PYTHONPATH": str(code_root),
                    "OMP_NUM_THREADS": "1",
                }
            )
            # As in the container, only the installed package is importable: the project root that
            # the virtualenv's .pth adds is dropped, so the module runs on the package's own code.
            bootstrap = (
                "import runpy, sys; root = sys.argv.pop(1); module = sys.argv.pop(1); "
                "sys.path[:] = [p for p in sys.path if p.rstrip('/') != root and p not in ('', '.')]; "
                "runpy.run_module(module, run_name='__main__', alter_sys=True)"
            )
            command = [
                sys.executable,
                "-c",
                bootstrap,
                str(ROOT),
                package["pythonModule"],
                *package.get("args", []),
            ]
            result = subprocess.run(
                command, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout
            )
            return result.returncode, result.stderr.strip()


ROOT = Path(__file__).resolve().parent.parent
_CONDITION = re.compile(r'^\s*([a-z_.]+)\s*=\s*"?([^"]*)"?\s*$')


def _filter(text: str) -> list[tuple[str, str]]:
    """``key="value" AND ...`` (what the stand-in understands of the list filter syntax)."""
    if not text.strip():
        return []
    conditions = []
    for part in re.split(r"\s+AND\s+", text.strip()):
        match = _CONDITION.match(part)
        if not match:
            raise ApiError(
                "UNIMPLEMENTED", f'the stand-in understands key="value" AND ... filters, not {text!r}'
            )
        conditions.append((match.group(1), match.group(2)))
    return conditions


def _job(jobs: dict[str, Any], name: str, kind: str) -> dict[str, Any]:
    if name not in jobs:
        raise ApiError("NOT_FOUND", f"{kind} {name} does not exist.")
    return jobs[name]


def _matching(jobs: dict[str, Any], parent: str, query: dict[str, str]) -> list[dict[str, Any]]:
    """The jobs under ``parent`` that match the list request's filter."""
    conditions = _filter(query.get("filter", ""))
    return [job for name, job in jobs.items() if name.startswith(parent + "/")
            and all(_field(job, key) == value for key, value in conditions)]  # fmt: skip


def _field(resource: dict[str, Any], key: str) -> Any:
    """A filter field of a resource (``display_name``, ``state``, ``labels.<key>``)."""
    if key.startswith("labels."):
        return (resource.get("labels") or {}).get(key[7:])
    return resource.get(_camel(key))
