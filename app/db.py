"""Declarative base, engine factory and the one-session-per-request dependency."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DisconnectionError, IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import TypeDecorator
from starlette.types import ASGIApp, Receive, Scope, Send

from app import faults

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


#: Ids are 32-bit integers in the database; a larger number names no row (and must not reach SQL,
#: where it would overflow the column type).
MAX_ID = 2_147_483_647


def storable_id(value: int) -> bool:
    return 1 <= value <= MAX_ID


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always UTC-aware in Python, on PostgreSQL and SQLite alike.

    SQLite keeps no offset, so values are stored as naive UTC there and made aware on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; give a UTC offset")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: The execution option that marks an engine behind PgBouncer in transaction pooling mode.
BEHIND_PGBOUNCER = "behind_pgbouncer"


def make_engine(
    url: str,
    *,
    connect_timeout: float = 5.0,
    statement_timeout: float = 15.0,
    pool_size: int = 5,
    max_overflow: int = 10,
    pgbouncer: bool = False,
    **kwargs: Any,
) -> AsyncEngine:
    """Create the engine; on SQLite, with foreign keys on and working SAVEPOINTs."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": connect_timeout}, **kwargs)
        _sqlite_recipe(engine)
        return engine
    connect_args: dict[str, Any] = {
        "timeout": connect_timeout,
        "command_timeout": statement_timeout,
    }
    if pgbouncer:
        # PgBouncer in transaction mode: no statement cache (asyncpg's, nor SQLAlchemy's own
        # per connection: a statement prepared in one transaction may meet another server
        # connection in the next), a unique name per prepared statement (SQLAlchemy's asyncpg
        # dialect documentation), and statements only inside transactions (make_read_sessionmaker,
        # rawrows: BEHIND_PGBOUNCER).
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_cache_size"] = 0
        connect_args["prepared_statement_name_func"] = lambda: f"__asyncpg_{uuid.uuid4()}__"
        kwargs.setdefault("execution_options", {})[BEHIND_PGBOUNCER] = True
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=connect_timeout,
        connect_args=connect_args,
        **kwargs,
    )
    _bounded_pre_ping(engine, connect_timeout)
    faults.install(engine)
    return engine


#: A pooled connection idle for longer than this is checked before use (see _bounded_pre_ping).
PING_WHEN_IDLE_FOR = 1.0


def _bounded_pre_ping(engine: AsyncEngine, timeout: float) -> None:
    """Check a pooled connection that has been idle for a while before using it, giving up
    after `timeout` seconds.

    Instead of `pool_pre_ping=True`, which pings on every checkout and waits as long as asyncpg's
    `command_timeout` when the server stays connected but does not answer (a network partition,
    a frozen host). A failed ping makes the pool replace the connection, as pre-ping does ("Custom
    / Legacy Pessimistic Ping" in SQLAlchemy's pooling docs), and a new connection is bounded by
    the connect timeout. A connection back in the pool less than PING_WHEN_IDLE_FOR seconds ago
    was working then: under load none is pinged (a ping is a round trip, ~12 % of a `get_one`'s
    CPU). If the database goes away in the meantime, the first statement fails instead: a lost
    connection is invalidated and answered 503, a silent one gives up after the statement timeout.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _fresh(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()  # just connected: as good as used

    @event.listens_for(engine.sync_engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle = time.monotonic() - record.info.get("returned_at", 0.0)
        if idle < PING_WHEN_IDLE_FOR:
            return
        try:
            # A simple query (no prepared statement), so PgBouncer's transaction mode is fine.
            dbapi_connection.run_async(lambda conn: conn.execute("SELECT 1", timeout=timeout))
        except Exception as exc:
            raise DisconnectionError(f"ping failed: {type(exc).__name__}") from exc


def _sqlite_recipe(engine: AsyncEngine) -> None:
    # SQLAlchemy's aiosqlite recipe: let SQLAlchemy emit BEGIN itself so that SAVEPOINTs work
    # ("Serializable isolation / Savepoints / Transactional DDL" in the SQLite dialect docs).
    # IMMEDIATE takes the write lock up front: two concurrent read-then-write transactions wait
    # for each other (busy_timeout) instead of one failing with "database is locked".
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def make_read_sessionmaker(
    engine: AsyncEngine, *, pgbouncer: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions for requests that only read: on PostgreSQL without BEGIN and ROLLBACK.

    Under READ COMMITTED every statement sees its own snapshot anyway, so a transaction around
    reads buys no consistency, only two round trips. SQLite keeps its transactions (its
    locking recipe above relies on them), and so do reads behind PgBouncer in transaction mode:
    asyncpg prepares a statement and executes it in two exchanges, and outside a transaction
    PgBouncer (before 1.21's `max_prepared_statements`) may hand the second to another server
    connection, where the statement does not exist.

    The driver's autocommit is switched on when a read session takes a connection
    (`_ReadSession`) and off again when any connection goes back to the pool, so the next
    session to take it begins transactions as usual. SQLAlchemy's own way,
    `execution_options(isolation_level="AUTOCOMMIT")`, sets and resets the connection's
    isolation level through its connection characteristics on every checkout: ~7 % of a
    served `get_one`'s instructions (docs/BENCHMARKS.md).
    """
    if engine.dialect.name == "sqlite" or pgbouncer:
        return make_sessionmaker(engine)

    @event.listens_for(engine.sync_engine, "checkin")
    def _transactional_again(dbapi_connection: Any, _record: Any) -> None:
        if dbapi_connection is not None:  # None: invalidated, it is not used again
            dbapi_connection.autocommit = False

    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=_ReadSession)


class _ReadSession(Session):
    """A session that reads outside transactions (make_read_sessionmaker)."""


@event.listens_for(_ReadSession, "after_begin")
def _autocommit(_session: Session, _transaction: Any, connection: Connection) -> None:
    # Before the session's first statement on the connection; asyncpg's adapter then sends no
    # BEGIN (and so no ROLLBACK).
    connection.connection.dbapi_connection.autocommit = True  # type: ignore[union-attr]


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


#: Where a request's session lives in its ASGI scope's state (`RequestSession`).
_SESSION = "db.session"


class _Slot:
    __slots__ = ("session",)

    def __init__(self) -> None:
        self.session: AsyncSession | None = None


class RequestSession:
    """Pure ASGI middleware: closes the session `get_session` opened for a request once the
    app has answered, which rolls back whatever was not committed and returns the connection.

    Instead of `get_session` being a dependency with `yield`: FastAPI runs each one in an exit
    stack under a shielded cancel scope of its own, ~8 % of a served `get_one`'s instructions
    (docs/BENCHMARKS.md). A close cut short by cancellation (a server stopping) still returns
    the connection: SQLAlchemy invalidates it and puts it back in the pool.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        slot = _Slot()
        scope.setdefault("state", {})[_SESSION] = slot
        try:
            await self.app(scope, receive, send)
        finally:
            if slot.session is not None:
                await slot.session.close()


async def get_session(request: Request) -> AsyncSession:
    """The request's one session, opened when first asked for; `RequestSession` closes it."""
    slot = request.scope.get("state", {}).get(_SESSION)
    if not isinstance(slot, _Slot):
        raise RuntimeError("get_session needs the RequestSession middleware (app.main installs it)")
    if slot.session is None:
        state = request.app.state
        sessions: async_sessionmaker[AsyncSession] = (
            state.read_sessionmaker if request.method in READ_METHODS else state.sessionmaker
        )
        slot.session = sessions()
    return slot.session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    """Where work that outlives the request's own session (a mail sent after the answer) gets
    a session of its own."""
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return sessions


SessionsDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessions)]


@asynccontextmanager
async def unique_or(session: AsyncSession, error: Exception) -> AsyncIterator[None]:
    """A write whose unique constraint may decide a race between two requests: the loser's
    IntegrityError becomes `error` (a 422), and the session is rolled back."""
    try:
        yield
    except IntegrityError as exc:
        await session.rollback()
        raise error from exc
