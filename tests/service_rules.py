"""Requests held to the service's own published model, as the real service holds them.

A cloud SDK checks only part of its service's rules before it sends a request (botocore's
``ParamValidator`` checks required members, types and minimums, not ``pattern``, ``max`` or
``enum``); the service refuses the rest with a 400. Emulators such as moto accept nearly
anything, so a request the real service would refuse passes the tests unless the stand-in
applies the model itself. This module does:

- :func:`violations` walks a request against a botocore shape and returns one message per broken
  rule, worded as AWS words them (``Value 'x' at 'resourceConfig.instanceType' failed to satisfy
  constraint: Member must satisfy enum value set: [...]``).
- :class:`MotoServiceRules` installs that check in moto's request handling (in the process that
  runs moto's server), so *every* request of every client - the test's and the Airflow task
  subprocesses' - is parsed with moto's protocol parsers and refused with the service's own
  ``ValidationException`` when it breaks a rule. Each refusal is also recorded in
  ``refused`` so a test can fail on a refusal its code swallowed.

The rule checks themselves (:func:`string_rules`, :func:`number_rules`, :func:`count_rules`) take
plain limits, not botocore objects, so the GCP and Azure stand-ins can apply them to their own
published schemas (Vertex AI's discovery document, azure-ai-ml's REST models).
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

# Java regular expressions (the models' dialect) write a code point above U+FFFF as a surrogate
# pair; Python's engines need the code point itself.
_SURROGATE_PAIR = r"\\u(D[89AB][0-9A-F]{2})\\u(D[C-F][0-9A-F]{2})"


@functools.lru_cache(maxsize=4096)
def compiled_pattern(pattern: str) -> Any:
    """A model's ``pattern`` compiled with Java's meaning (``regex`` knows ``\\p{..}`` classes)."""
    import regex

    def code_point(match: Any) -> str:
        high, low = int(match.group(1), 16), int(match.group(2), 16)
        return f"\\U{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00):08X}"

    return regex.compile(regex.sub(_SURROGATE_PAIR, code_point, pattern, flags=regex.IGNORECASE))


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def _bounds(measure: str, value: float, minimum: float | None, maximum: float | None) -> list[str]:
    """The bounds ``value`` (a ``measure``: "value" or "length") breaks, worded as AWS words them."""

    def shown(bound: float) -> str:
        return str(int(bound)) if float(bound).is_integer() else str(bound)

    broken = []
    if minimum is not None and value < minimum:
        broken.append(f"Member must have {measure} greater than or equal to {shown(minimum)}")
    if maximum is not None and value > maximum:
        broken.append(f"Member must have {measure} less than or equal to {shown(maximum)}")
    return broken


def string_rules(
    value: str,
    *,
    min_length: int | None = None,
    max_length: int | None = None,
    pattern: str | None = None,
    enum: Sequence[str] = (),
) -> list[str]:
    """The constraints a string breaks, worded as AWS words them (empty when it keeps them all).

    A pattern must match the whole value (Java's ``String.matches``), as the services apply it.
    """
    broken = []
    if enum and value not in enum:
        shown = ", ".join(enum[:12]) + (f", ... ({len(enum)} values)" if len(enum) > 12 else "")
        broken.append(f"Member must satisfy enum value set: [{shown}]")
    broken += _bounds("length", len(value), min_length, max_length)
    if pattern is not None and not compiled_pattern(pattern).fullmatch(value):
        broken.append(f"Member must satisfy regular expression pattern: {pattern}")
    return broken


def number_rules(value: float, *, minimum: float | None = None, maximum: float | None = None) -> list[str]:
    """The range constraints a number breaks."""
    return _bounds("value", value, minimum, maximum)


def count_rules(size: int, *, minimum: int | None = None, maximum: int | None = None) -> list[str]:
    """The size constraints a list, map or blob breaks."""
    return _bounds("length", size, minimum, maximum)


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def violations(shape: Any, value: Any, path: str = "") -> list[str]:
    """Every rule of a botocore ``shape`` that ``value`` breaks, one message per rule.

    Args:
        shape: the botocore shape of the value (an operation's ``input_shape`` for a request).
        value: the request as the service reads it (member names as in the model).
        path: where the value sits (AWS's lowerCamel path, lists as ``name.N.member``).

    Returns:
        Messages like AWS's: ``Value 'x' at 'a.b' failed to satisfy constraint: Member must ...``.
    """
    where = path or _lower_camel(shape.name)

    def broke(rules: list[str]) -> list[str]:
        shown = _shown(value)
        return [f"Value '{shown}' at '{where}' failed to satisfy constraint: {rule}" for rule in rules]

    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, Mapping):
            return broke([f"Member must be a structure {shape.name}"])
        found = []
        for name in shape.required_members:
            if value.get(name) is None:
                member_path = f"{path}.{_lower_camel(name)}" if path else _lower_camel(name)
                found.append(
                    f"Value null at '{member_path}' failed to satisfy constraint: Member must not be null"
                )
        for name, member in shape.members.items():
            if value.get(name) is not None:
                member_path = f"{path}.{_lower_camel(name)}" if path else _lower_camel(name)
                found += violations(member, value[name], member_path)
        return found
    if kind == "list":
        if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
            return broke(["Member must be a list"])
        found = broke(count_rules(len(value), minimum=meta.get("min"), maximum=meta.get("max")))
        for index, item in enumerate(value, start=1):
            found += violations(shape.member, item, f"{where}.{index}.member")
        return found
    if kind == "map":
        if not isinstance(value, Mapping):
            return broke(["Member must be a map"])
        found = broke(count_rules(len(value), minimum=meta.get("min"), maximum=meta.get("max")))
        for key, item in value.items():
            found += violations(shape.key, key, f"{where}.{key}.key")
            found += violations(shape.value, item, f"{where}.{key}.value")
        return found
    if kind == "string":
        if not isinstance(value, str):
            return broke(["Member must be a string"])
        return broke(
            string_rules(
                value,
                min_length=meta.get("min"),
                max_length=meta.get("max"),
                pattern=meta.get("pattern"),
                enum=shape.enum or (),
            )
        )
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            return broke([f"Member must be an {kind}"])
        return broke(number_rules(value, minimum=meta.get("min"), maximum=meta.get("max")))
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return broke([f"Member must be a {kind}"])
        return broke(number_rules(value, minimum=meta.get("min"), maximum=meta.get("max")))
    if kind == "boolean":
        return [] if isinstance(value, bool) else broke(["Member must be a boolean"])
    if kind == "blob":
        if isinstance(value, str):
            value = value.encode()
        if hasattr(value, "read"):  # a streaming body: its size is the service's concern
            return []
        return broke(count_rules(len(value), minimum=meta.get("min"), maximum=meta.get("max")))
    return []  # timestamps are parsed by the protocol layer; documents are free-form


def summary(found: list[str]) -> str:
    """AWS's one-line form: ``2 validation errors detected: ...; ...``."""
    noun = "error" if len(found) == 1 else "errors"
    return f"{len(found)} validation {noun} detected: " + "; ".join(found)


# --------------------------------------------------------------------------------------------
# moto


class _Refused(Exception):
    """Raised inside moto's request handling; turned into the service's 400 by the app wrapper."""

    def __init__(self, status: int, headers: dict[str, str], body: str) -> None:
        super().__init__(body)
        self.response = (status, headers, body)


def _error_response(
    service_model: Any, protocol: str, message: str, code: str = ""
) -> tuple[int, dict[str, str], str]:
    """The 400 the service answers with, in its protocol (by default under its own validation
    error's name)."""
    names = set(service_model.shape_names)
    default = next(
        (n for n in ("ValidationException", "ValidationError") if n in names), "ValidationException"
    )
    code = code or default
    if protocol in ("json", "rest-json"):
        content_type = "application/x-amz-json-1.1" if protocol == "json" else "application/json"
        headers = {"Content-Type": content_type, "x-amzn-ErrorType": code}
        return 400, headers, json.dumps({"__type": code, "message": message})
    from xml.sax.saxutils import escape

    if protocol == "rest-xml":  # S3 has no validation exception in its model; it says InvalidArgument
        code = "InvalidArgument" if code == default else code
        body = f"<Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
    else:
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{escape(message)}</Message></Error></ErrorResponse>"
        )
    return 400, {"Content-Type": "text/xml"}, f'<?xml version="1.0" encoding="UTF-8"?>{body}'


class MotoServiceRules:
    """The service-model check, installed into moto's request handling in this process.

    ``refused`` lists ``(service, operation, message)`` of every request refused, oldest first;
    ``checked`` counts requests checked per ``service.Operation`` (proof that the check ran);
    ``unmatched`` lists requests that matched no operation of the model, so were not checked.
    :meth:`throttle` makes the service answer ``ThrottlingException`` on cue, as AWS does under a
    rate limit (checked before the rules, like the real front door).
    """

    def __init__(self) -> None:
        self.refused: list[tuple[str, str, str]] = []
        self.checked: dict[str, int] = {}
        self.throttled: dict[str, int] = {}  # "service.Operation" -> requests still to throttle
        self.unmatched: list[str] = []  # requests no operation of the model matched (not checked)
        self._lock = threading.Lock()
        self._patches: list[tuple[Any, str, Any]] = []

    def install(self) -> None:
        """Check every request moto's server handles from now on."""
        from moto.core.responses import BaseResponse
        from moto.core.utils import convert_to_flask_response

        rules = self
        original_setup = BaseResponse.setup_class
        original_call = convert_to_flask_response.__call__

        def setup_class(response: Any, request: Any, *args: Any, **kwargs: Any) -> None:
            original_setup(response, request, *args, **kwargs)
            rules._check(response, request)

        def call(wrapper: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return original_call(wrapper, *args, **kwargs)
            except _Refused as refusal:
                from flask import Response

                status, headers, body = refusal.response
                return Response(response=body, status=status, headers=headers)

        for owner, name, replacement in (
            (BaseResponse, "setup_class", setup_class),
            (convert_to_flask_response, "__call__", call),
        ):
            self._patches.append((owner, name, getattr(owner, name)))
            setattr(owner, name, replacement)

    def throttle(self, operation: str, times: int) -> None:
        """Answer the next ``times`` requests of ``operation`` ("service.Operation") with a
        ``ThrottlingException`` (HTTP 400, as SageMaker and the Data API send it)."""
        with self._lock:
            self.throttled[operation] = times

    def take_refused(self) -> list[tuple[str, str, str]]:
        """The refusals so far, oldest first; forgets them."""
        with self._lock:
            refused, self.refused = self.refused, []
        return refused

    def uninstall(self) -> None:
        """Put moto back as it was."""
        for owner, name, original in reversed(self._patches):
            setattr(owner, name, original)
        self._patches.clear()

    def _check(self, response: Any, request: Any) -> None:
        from moto.core.parse import PROTOCOL_PARSERS
        from moto.core.request import determine_request_protocol
        from moto.core.utils import get_service_model

        service = response.boto3_service_name
        if request.path.startswith("/moto-api"):
            return
        service_model = get_service_model(service)
        operation, uri_params = self._operation(request, service_model)
        if operation is None:  # not an operation of the model: moto answers it as it would
            with self._lock:
                self.unmatched.append(f"{service} {request.method} {request.path}")
            return
        protocol = determine_request_protocol(service_model, request.content_type)
        key = f"{service}.{operation.name}"
        with self._lock:
            throttled = self.throttled.get(key, 0) > 0
            if throttled:
                self.throttled[key] -= 1
        if throttled:
            raise _Refused(*_error_response(service_model, protocol, "Rate exceeded", "ThrottlingException"))
        parser = PROTOCOL_PARSERS[protocol](operation, map_type=dict)
        params = parser.parse(
            {
                "method": request.method,
                "values": request.values,
                "headers": request.headers,
                "body": request.data,
                "url_path": request.path,
                "url_params": uri_params,
            }
        )
        found = violations(operation.input_shape, params) if operation.input_shape is not None else []
        with self._lock:
            self.checked[key] = self.checked.get(key, 0) + 1
            if found:
                self.refused.append((service, operation.name, summary(found)))
        if found:
            raise _Refused(*_error_response(service_model, protocol, summary(found)))

    @staticmethod
    def _operation(request: Any, service_model: Any) -> tuple[Any, dict[str, Any]]:
        """The model's operation a request calls (from its target header, Action or route), and
        the parameters its route puts in the URI."""
        from botocore.model import OperationNotFoundError

        target = request.headers.get("X-Amz-Target")
        name = target.split(".")[-1] if target else request.values.get("Action")
        if not name:
            from moto.core.routing import get_service_router

            try:
                return get_service_router(service_model.service_name).match(request)
            except Exception:  # no route of the model matches: not ours to judge
                return None, {}
        try:
            return service_model.operation_model(name), {}
        except OperationNotFoundError:
            return None, {}
