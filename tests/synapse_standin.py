"""A stand-in for a Synapse SQL pool: T-SQL checked strictly, then run on DuckDB.

No T-SQL engine installs on this machine (no SQL Server, Babelfish or TDS server package), so
the TDS/ODBC path is never executed. What is real: pymssql's own client-side parameter
substitution (``pymssql._mssql.substitute_params``) makes the exact text the driver would send
over TDS; that text must parse as T-SQL with sqlglot in strict mode (a parse error, an
``exp.Command`` fallback or any "unsupported" warning fails the statement), and is then
transpiled to DuckDB and executed, in a transaction per DB-API connection as pymssql opens one.

Two type mappings differ between the dialects and are corrected here (sqlglot maps both
wrongly for this purpose): T-SQL ``FLOAT`` is float(53), a double (sqlglot: REAL), and ``BIT``
is SQL Server's boolean (DuckDB's BIT is a bit string).
"""

from __future__ import annotations

import logging
import threading
from typing import Any


class TsqlError(AssertionError):
    """A statement that is not strict T-SQL, or that cannot be run faithfully on DuckDB."""


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


_parse_lock = threading.Lock()  # the warning capture is per logger, so parses take turns


def to_duckdb(text: str) -> list[str]:
    """Parse ``text`` strictly as T-SQL and return its statements in DuckDB's SQL.

    Raises:
        TsqlError: a parse error, a statement sqlglot could only keep as a raw Command, or a
            warning (sqlglot logs "unsupported" constructs instead of raising).
    """
    import sqlglot
    from sqlglot import ErrorLevel, exp

    handler = _Warnings()
    logger = logging.getLogger("sqlglot")
    with _parse_lock:
        logger.addHandler(handler)
        try:
            statements = sqlglot.parse(text, read="tsql", error_level=ErrorLevel.RAISE)
            out = []
            for statement in statements:
                if statement is None:
                    continue
                if isinstance(statement, exp.Command) or statement.find(exp.Command):
                    raise TsqlError(f"not parsed as T-SQL (a raw Command): {text[:300]}")
                for data_type in statement.find_all(exp.DataType):
                    if data_type.this == exp.DataType.Type.FLOAT:
                        data_type.set("this", exp.DataType.Type.DOUBLE)
                        data_type.set("expressions", [])
                    elif data_type.this == exp.DataType.Type.BIT:
                        data_type.set("this", exp.DataType.Type.BOOLEAN)
                out.append(statement.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE))
        except sqlglot.errors.SqlglotError as exc:
            raise TsqlError(f"not strict T-SQL ({exc}): {text[:300]}") from None
        finally:
            logger.removeHandler(handler)
    if handler.messages:
        raise TsqlError(f"sqlglot warned {handler.messages} on: {text[:300]}")
    if not out:
        raise TsqlError(f"no statement in {text[:300]!r}")
    return out


class SynapseStandIn:
    """One DuckDB database standing in for the SQL pool; ``connect()`` is what the provider calls.

    ``statements`` records every text the driver would have sent (after its parameter
    substitution), in order. ``fail_on`` makes the next statement containing it fail (as a
    server error would), once.
    """

    def __init__(self, schema: str = "dbo") -> None:
        import duckdb

        self.database = duckdb.connect(":memory:")
        self.database.execute("SET TimeZone = 'UTC'")
        self.database.execute(f"CREATE SCHEMA {schema}")
        self.schema = schema
        self.statements: list[str] = []
        self.fail_on: str | None = None
        self._lock = threading.Lock()

    def connect(self) -> StandInConnection:
        """A new DB-API connection (its own DuckDB connection: its own transaction)."""
        return StandInConnection(self)

    def record(self, text: str) -> None:
        with self._lock:
            self.statements.append(text)
            if self.fail_on and self.fail_on in text:
                self.fail_on = None
                raise RuntimeError(f"the stand-in SQL pool failed on cue: {text[:200]}")


class StandInConnection:
    """A DB-API connection as pymssql's: autocommit off, a transaction opened by the first statement."""

    def __init__(self, stand_in: SynapseStandIn) -> None:
        self.stand_in = stand_in
        self.duck = stand_in.database.cursor()
        # a SQL Server login resolves unqualified names in its default schema (dbo)
        self.duck.execute(f"SET search_path = '{stand_in.schema}'")
        self.in_transaction = False

    def cursor(self) -> StandInCursor:
        return StandInCursor(self)

    def commit(self) -> None:
        if self.in_transaction:
            self.duck.execute("COMMIT")
            self.in_transaction = False

    def rollback(self) -> None:
        if self.in_transaction:
            self.duck.execute("ROLLBACK")
            self.in_transaction = False

    def close(self) -> None:
        self.rollback()
        self.duck.close()


class StandInCursor:
    """A DB-API cursor: pymssql's substitution, the strict T-SQL check, then DuckDB."""

    def __init__(self, connection: StandInConnection) -> None:
        self.connection = connection
        self.description: list[tuple[Any, ...]] | None = None
        self.rowcount = -1
        self._rows: list[tuple[Any, ...]] = []

    def execute(self, operation: str, params: Any = None) -> None:
        from pymssql._mssql import substitute_params

        text = operation if params is None else substitute_params(operation, params).decode("utf-8")
        statements = to_duckdb(text)
        self.connection.stand_in.record(text)
        if not self.connection.in_transaction:
            self.connection.duck.execute("BEGIN TRANSACTION")
            self.connection.in_transaction = True
        for statement in statements:
            result = self.connection.duck.execute(statement)
            is_query = statement.lstrip().upper().startswith(("SELECT", "WITH"))
            rows = result.fetchall() if result.description else []
            if is_query:
                self.description = [(d[0], None, None, None, None, None, None) for d in result.description]
                self._rows, self.rowcount = rows, -1
            else:  # DuckDB answers DML with its count; pymssql has no result set there
                self.description, self._rows = None, []
                self.rowcount = int(rows[0][0]) if rows and rows[0] else -1

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows, []
        return rows

    def close(self) -> None:
        self._rows = []
