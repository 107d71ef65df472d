"""Hot reads straight on the driver: a Core statement compiled once, its rows read by column name.

For the statements every authenticated request issues (the caller's principal, one account by
id). SQLAlchemy's execution path costs about 110 µs of CPU per statement above asyncpg's own and
the ORM session more (docs/BENCHMARKS.md). Here the statement is compiled once per dialect; on
PostgreSQL its SQL goes to the session's own asyncpg connection (`driver_connection`), inside
whatever transaction the session has, and rows come back as asyncpg decodes them: no SQLAlchemy
result processing. So these statements select only columns whose driver values are already what
the ORM would give (integers, text, booleans, and JSON, which asyncpg decodes with the codec
SQLAlchemy's dialect registers on every connection); timestamps are UTC-aware on asyncpg.
With any other driver (SQLite's aiosqlite), and behind PgBouncer, the statement runs through
SQLAlchemy as usual.

Every selected column carries an explicit label, checked once when the query is built, and rows
are read by that name (`row["account_id"]`), so adding a column touches the statement and the
one place that reads it. The engine's statement hooks see these statements as they see
SQLAlchemy's own: `before_cursor_execute` and `after_cursor_execute` are dispatched (cursor and
context are None), and the SQL is logged on `sqlalchemy.engine.Engine` when that logger is on
(`echo`). Errors are raised as the engine raises its own (`app.faults`; a broken constraint
as `IntegrityError`).

asyncpg starts no transaction for a statement sent to it straight: a request whose statements
so far all ran here has none open (SQLAlchemy sends BEGIN before its own first statement), so
a write run here is then its own transaction, committed when it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.elements import Label

from app import faults
from app.db import BEHIND_PGBOUNCER

_engine_log = logging.getLogger("sqlalchemy.engine.Engine")


Processor = Callable[[Any], Any]
#: A statement compiled for a dialect: its SQL, its positional parameters' names in order, their
#: bind processors, and the values of those the statement holds itself.
_Compiled = tuple[str, tuple[str, ...], tuple[Processor | None, ...], dict[str, Any]]


class NamedRow(Protocol):
    """A row read by column label: asyncpg's Record and SQLAlchemy's RowMapping both are."""

    def __getitem__(self, key: str, /) -> Any: ...

    def keys(self) -> Iterable[str]: ...


class DriverQuery:
    """A statement, written with SQLAlchemy Core, that PostgreSQL runs straight on asyncpg: a
    read, or a write whose data-modifying CTEs a SELECT returns (`Select.add_cte`). Parameter
    values go through their types' bind processing as SQLAlchemy's own would (JSON is
    serialised, for instance)."""

    def __init__(self, statement: Select[Any]) -> None:
        columns = list(statement.selected_columns)
        unlabelled = [str(column) for column in columns if not isinstance(column, Label)]
        if unlabelled:
            raise ValueError(f"every column of a DriverQuery needs a label: {unlabelled}")
        names = [str(column.key) for column in columns]
        if len(set(names)) != len(names):
            raise ValueError(f"the labels of a DriverQuery must differ: {names}")
        self.statement = statement
        self.names: frozenset[str] = frozenset(names)
        self._compiled: dict[str, _Compiled] = {}

    def require(self, names: Iterable[str]) -> tuple[str, ...]:
        """`names`, checked (once, where the query is defined) to be labels of this query."""
        wanted = tuple(names)
        missing = sorted(set(wanted) - self.names)
        if missing:
            raise ValueError(f"a DriverQuery has no column labelled {missing}")
        return wanted

    def sql_for(self, dialect: Dialect) -> _Compiled:
        """The SQL for this dialect, the names of its positional parameters in order, each
        one's bind processor (None: the value goes to the driver as it is), and the values of
        the parameters the statement holds itself (`literal("…")`), by name."""
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            statement = self.statement.compile(dialect=dialect)
            names = tuple(statement.positiontup or ())
            processors = tuple(
                statement.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in names
            )
            fixed = {
                name: statement.binds[name].effective_value
                for name in names
                if not statement.binds[name].required
            }
            compiled = (str(statement), names, processors, fixed)
            self._compiled[dialect.name] = compiled
        return compiled

    async def rows(self, session: AsyncSession, **parameters: Any) -> Sequence[NamedRow]:
        connection, driver = await _session_driver(session)
        if driver is None:
            # Not asyncpg (SQLite), or behind PgBouncer: through SQLAlchemy, which opens the
            # session's transaction (BEGIN) first. (A statement sent straight to the driver
            # could be the first, and outside a transaction PgBouncer may run its two exchanges
            # on two server connections.)
            return (await connection.execute(self.statement, parameters)).mappings().all()
        sync_connection = connection.sync_connection
        assert sync_connection is not None  # a session's connection is always started
        sql, names, processors, fixed = self.sql_for(connection.dialect)
        if fixed:
            parameters = {**fixed, **parameters}
        values = tuple(
            parameters[name] if process is None else process(parameters[name])
            for name, process in zip(names, processors, strict=True)
        )
        dispatch = sync_connection.dispatch
        dispatch.before_cursor_execute(sync_connection, None, sql, values, None, False)
        if _engine_log.isEnabledFor(logging.INFO):
            _engine_log.info("%s [driver] %r", sql, values)
        try:
            rows: Sequence[NamedRow] = await driver.fetch(sql, *values)
        except Exception as exc:
            # As the engine does for its own statements: a connection that failed (rather than
            # the statement) is invalidated so that the pool replaces it (app.faults).
            if faults.connection_lost(exc, driver):
                session.info.pop(_DRIVER, None)
                await connection.invalidate()
                raise faults.lost_connection_error(sql, values, exc) from exc
            if str(getattr(exc, "sqlstate", "")).startswith("23"):
                # A constraint the statement broke (a write's unique name, say): what the
                # engine raises for it, so that callers catch one class on every path.
                raise IntegrityError(sql, values, exc) from exc
            raise DBAPIError.instance(sql, values, exc, Exception) from exc
        dispatch.after_cursor_execute(sync_connection, None, sql, values, None, False)
        return rows


#: Where a session keeps the connection its transaction holds and that connection's asyncpg
#: connection (None: not to be used straight), with the transaction they belong to.
_DRIVER = "rawrows.driver"


async def _session_driver(session: AsyncSession) -> tuple[AsyncConnection, Any]:
    """The session's connection, and its asyncpg connection where statements may go to it
    straight. Looked up once per transaction: each lookup is two greenlet switches (the
    session's connection, then the pooled one under it), and a request's statements share one
    transaction until it commits or rolls back, when the session releases its connection and
    the next lookup starts again."""
    held = session.info.get(_DRIVER)
    transaction = session.sync_session.get_transaction()
    if held is not None and transaction is held[0] and transaction.is_active:
        return held[1], held[2]
    connection = await session.connection()
    sync_connection = connection.sync_connection
    assert sync_connection is not None  # a session's connection is always started
    driver = None
    if connection.dialect.driver == "asyncpg" and not sync_connection.get_execution_options().get(
        BEHIND_PGBOUNCER
    ):
        # The pooled connection the session just checked out and began on: valid, so reading
        # it needs no await (`get_raw_connection()` would switch greenlets to read it).
        driver = sync_connection.connection.driver_connection
        assert driver is not None  # a checked-out connection
    session.info[_DRIVER] = (session.sync_session.get_transaction(), connection, driver)
    return connection, driver
