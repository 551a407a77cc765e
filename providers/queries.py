"""Read-only SQL queries with named parameters, shared by every warehouse's ``query``.

A query is written once with ``:name`` placeholders (``WHERE ts >= :week_start``) and each
warehouse hands the values to its driver, which binds them: DuckDB ``$name``, psycopg
``%(name)s``, redshift_connector's ``named`` style, the Redshift Data API's ``Parameters``.
Values never go into the SQL text.

:func:`parse_query` reads the SQL once: it finds the placeholders outside string literals,
quoted identifiers and comments (``::`` casts are not placeholders), refuses anything but one
SELECT (or WITH ... SELECT) statement, and refuses a placeholder it has no value for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import ParamError

# One token of SQL that is not plain code: a comment, a quoted literal or identifier, a cast, a
# placeholder. E'...' strings (PostgreSQL/Redshift) take backslash escapes; the others double
# their quote. An unterminated quote or comment runs to the end (the database reports it).
_TOKEN = re.compile(
    r"""
      (?P<comment> --[^\n]* | /\*.*?(?:\*/|\Z) )
    | (?P<quoted> (?<!\w)[Ee]'(?:[^'\\]|\\.|'')*(?:'|\Z)
                | '(?:[^']|'')*(?:'|\Z)
                | "(?:[^"]|"")*(?:"|\Z) )
    | (?P<cast> ::+ )
    | :(?P<param> [A-Za-z_]\w* )
    """,
    re.DOTALL | re.VERBOSE,
)
_FIRST_WORD = re.compile(r"[\s(]*([A-Za-z]+)")
# Words that make a SELECT write: SELECT ... INTO (creates a table), and the data-modifying
# statements a WITH may hold in PostgreSQL.
_WRITING = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE|INTO)\b", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z_]\w*\Z")


@dataclass(frozen=True)
class NamedQuery:
    """A checked read-only query: its SQL cut into parts, and the values of its placeholders.

    Attributes:
        parts: ``(kind, text)`` in order; kind is ``code``, ``quoted``, ``comment`` or ``param``
            (text: the placeholder's name).
        params: the values of the placeholders the SQL uses (and only those: some drivers
            refuse a value the statement does not reference).
    """

    parts: tuple[tuple[str, str], ...]
    params: dict[str, Any]

    def render(self, placeholder: Callable[[str], str], escape: Callable[[str], str] | None = None) -> str:
        """Return the SQL with each placeholder written in a driver's style.

        Args:
            placeholder: the driver's spelling of a named parameter, e.g. ``lambda n: f"${n}"``.
            escape: applied to every other part (psycopg: ``%`` -> ``%%``); None keeps them.
        """
        return "".join(
            placeholder(text) if kind == "param" else (escape(text) if escape else text)
            for kind, text in self.parts
        )


def parse_query(sql: str, params: Mapping[str, Any]) -> NamedQuery:
    """Check a read-only query and find its ``:name`` placeholders.

    Args:
        sql: one SELECT or WITH statement (a trailing ``;`` is allowed).
        params: the values the placeholders may use, by name.

    Returns:
        The query cut into parts, with the values of the placeholders it uses.

    Raises:
        ParamError: the SQL is not one SELECT/WITH statement, or uses a placeholder that
            ``params`` has no value for (the message lists the supported ones).
    """
    if not isinstance(sql, str) or not sql.strip():
        raise ParamError("the query is empty: write one SELECT statement")
    for name in params:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"query parameter name {name!r} must be letters, digits and _")
    parts: list[tuple[str, str]] = []
    position = 0
    for match in _TOKEN.finditer(sql):
        if match.start() > position:
            parts.append(("code", sql[position : match.start()]))
        kind = match.lastgroup or "code"
        text = match.group("param") if kind == "param" else match.group(0)
        parts.append(("code" if kind == "cast" else kind, text))
        position = match.end()
    if position < len(sql):
        parts.append(("code", sql[position:]))
    _check_read_only(" ".join(text if kind == "code" else " " for kind, text in parts))
    used = list(dict.fromkeys(text for kind, text in parts if kind == "param"))
    unknown = [name for name in used if name not in params]
    if unknown:
        supported = ", ".join(f":{name}" for name in sorted(params)) or "none"
        raise ParamError(
            f"the query uses unknown placeholder(s) {', '.join(':' + n for n in unknown)}; "
            f"the supported ones are {supported}"
        )
    return NamedQuery(tuple(parts), {name: params[name] for name in used})


def _check_read_only(code: str) -> None:
    """Refuse SQL (without its literals and comments) that is not one reading statement."""
    first = _FIRST_WORD.match(code)
    word = first.group(1).upper() if first else ""
    if word not in ("SELECT", "WITH"):
        raise ParamError(
            f"the query must be a SELECT (or WITH ... SELECT) statement, not {word or code.strip()[:20]!r}"
        )
    if ";" in code.rstrip().rstrip(";"):
        raise ParamError("the query must be one statement: remove the ';' between statements")
    writing = _WRITING.search(code)
    if writing:
        raise ParamError(
            f"the query must only read: {writing.group(1).upper()} is not allowed in a source query"
        )
