"""One answer to "is the database gone?", for the engine, the driver reads and the error handler.

A database fault is an error raised *by the database layer* that means the server can't be
reached or dropped the connection: a refused or timed-out connect, a socket that broke, a
statement the server never answered, a server shutting down (57P0x) or a connection exception
(class 08), or no pooled connection to be had in time. Every such error leaves the engine as a
`DBAPIError` with `connection_invalidated` set (the pool then replaces the connection), or as
SQLAlchemy's pool `TimeoutError`; `is_database_fault` recognises exactly those. An `OSError`
or `TimeoutError` raised anywhere else (the limiter's Redis, the mail server) is not one: it
never becomes "the database cannot be reached".
"""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine

#: SQLSTATEs with which the server ends a connection: a shutdown, a crash, not accepting yet.
SERVER_GONE = frozenset({"57P01", "57P02", "57P03"})

#: Errors of the driver (or the socket under it) that leave no usable connection.
_LOST_TYPES: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
)


def connection_lost(exc: BaseException, driver: Any = None) -> bool:
    """Whether an error from the database driver means its connection is unusable.

    `exc` may be the driver's own error or SQLAlchemy's adaptation of it (the driver's error is
    then its cause). `driver`, the asyncpg connection the statement ran on, when known: a
    closed one is lost whatever the error said.
    """
    if driver is not None and driver.is_closed():
        return True
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _LOST_TYPES):
            return True
        if isinstance(seen, asyncpg.PostgresError):
            state = str(getattr(seen, "sqlstate", "") or "")
            return state.startswith("08") or state in SERVER_GONE
        seen = seen.__cause__
    return False


def is_database_fault(exc: BaseException) -> bool:
    """Whether an error that reached the error handler means the database can't be reached."""
    if isinstance(exc, PoolTimeoutError):
        return True  # no connection came free (or could be opened) in time
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated) or (
            exc.orig is not None and connection_lost(exc.orig)
        )
    return False


def lost_connection_error(statement: str | None, parameters: Any, exc: BaseException) -> DBAPIError:
    """The error the engine raises for a lost connection: a DBAPIError marked invalidated."""
    error = DBAPIError.instance(statement, parameters, exc, Exception, connection_invalidated=True)
    assert isinstance(error, DBAPIError)
    return error


def install(engine: AsyncEngine) -> None:
    """Make every database fault of this (PostgreSQL) engine leave it as a DBAPIError.

    asyncpg raises a plain `OSError` or `TimeoutError` for a refused connect, a broken socket
    or a statement past its `command_timeout`, and SQLAlchemy passes those on unwrapped. Here
    they are wrapped where they happen, so that no other code has to guess where an `OSError`
    came from.
    """
    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as exc:
            if isinstance(exc, dialect.loaded_dbapi.Error) or not connection_lost(exc):
                raise
            # A DBAPI error: SQLAlchemy wraps it (and calls handle_error below) as for any other.
            raise dialect.loaded_dbapi.OperationalError(
                f"cannot connect: {type(exc).__name__}"
            ) from exc

    @event.listens_for(engine.sync_engine, "handle_error")
    def _classify(context: ExceptionContext) -> DBAPIError | None:
        original = context.original_exception
        if not connection_lost(original):
            return None
        context.is_disconnect = True  # the pool replaces the connection
        if context.sqlalchemy_exception is not None:
            return None  # already a DBAPIError; now marked invalidated
        return lost_connection_error(context.statement, context.parameters, original)
