"""Readable refusals of bad Params: what a trigger with a malformed week is told.

Airflow validates a run's conf against each Param's JSON schema and answers a bad value with
jsonschema's own text (a regular expression, then "Failed validating 'pattern' in schema:" and
the schema). :class:`ReadableParamErrors`, a root middleware of the api-server added by the
plugin, rewrites that answer of the trigger endpoint into one sentence that says what the value
must look like. The patterns the DAGs' Params use are defined here with their wording, so the
two cannot drift apart. Nothing heavy is imported: DAG files import the patterns.
"""

from __future__ import annotations

import json
import re
from typing import Any

WEEK_PATTERN = r"^\d{4}-W(0[1-9]|[1-4][0-9]|5[0-3])$"
JOB_NAME_PATTERN = r"^[a-z0-9-]{1,63}$"
VERSION_PATTERN = r"^[0-9]{1,9}$"
FORMATS = {
    WEEK_PATTERN: "must look like 2026-W05: a year, 'W' and the ISO week 01-53 with two digits "
    "(or leave it empty for the last complete week)",
    JOB_NAME_PATTERN: "must be a training job name: 1-63 lowercase letters, digits and '-', "
    "as train_model logged it (or leave it empty)",
    VERSION_PATTERN: "must be a model version number, e.g. 3 (or leave it empty)",
}
# "Invalid input for param week: '2026-5' does not match '^...$'\n\nFailed validating ..."
_PARAM_ERROR = re.compile(r"^Invalid input for param (?P<name>[\w.-]+): (?P<message>.*?)(\n\n|$)", re.S)
_NO_MATCH = re.compile(r"^(?P<value>.*) does not match (?P<pattern>'.*')$", re.S)
_TRIGGER_PATH = re.compile(r"/api/v2/dags/[^/]+/dagRuns$")


def readable(detail: str) -> str:
    """Turn Airflow's "Invalid input for param ..." text into one sentence; other text unchanged.

    Examples:
        ``week '2026-5' must look like 2026-W05: ...`` for a pattern, or ``gate_margin: 7 is
        greater than the maximum of 0.5`` for other rules (jsonschema's first line is readable).
    """
    match = _PARAM_ERROR.match(detail)
    if match is None:
        return detail
    name, message = match["name"], match["message"].strip()
    no_match = _NO_MATCH.match(message)
    if no_match:
        pattern = _unquote(no_match["pattern"])
        wording = FORMATS.get(pattern, f"must match the regular expression {pattern}")
        return f"Invalid value for {name}: {no_match['value']} {wording}."
    return f"Invalid value for {name}: {message}."


def _unquote(literal: str) -> str:
    """The pattern as written in the DAG: jsonschema shows its repr (backslashes doubled)."""
    import ast

    try:
        return str(ast.literal_eval(literal))
    except (ValueError, SyntaxError):
        return literal.strip("'")


class ReadableParamErrors:
    """ASGI middleware: a refused trigger's schema error becomes :func:`readable`'s sentence.

    A 400 of ``POST /api/v2/dags/<id>/dagRuns`` whose detail is a Param's schema error gets the
    sentence as its detail instead. Only those responses are held and rewritten; every other
    request passes straight through.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Pass the request on; rewrite the answer if it is a refused trigger."""
        if scope["type"] != "http" or scope["method"] != "POST" or not _TRIGGER_PATH.search(scope["path"]):
            await self.app(scope, receive, send)
            return
        start: dict | None = None
        body = bytearray()

        async def held_send(message: dict) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if message["status"] != 400:
                    await send(message)  # not a refusal: pass everything through
                else:
                    start = message
                return
            if start is None:
                await send(message)
                return
            body.extend(message.get("body", b""))
            if not message.get("more_body", False):
                await _send_rewritten(send, start, bytes(body))

        await self.app(scope, receive, held_send)


async def _send_rewritten(send: Any, start: dict, body: bytes) -> None:
    try:
        payload = json.loads(body)
        detail = payload.get("detail") if isinstance(payload, dict) else None
    except ValueError:
        detail = None
    if isinstance(detail, str) and readable(detail) != detail:
        payload["detail"] = readable(detail)
        body = json.dumps(payload).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        start = {**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})
