"""app.db: DriverQuery (the hot reads PostgreSQL runs straight on asyncpg) behaves as SQLAlchemy's
own statements do: the same rows, inside the session's transaction, counted, and a lost
connection is a DBAPIError that invalidates it. The pool checks connections that sat idle.
A request's session is closed when the request has been answered (RequestSession)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import bindparam, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app import db
from app.accounts.models import Account
from app.db import make_engine
from app.faults import connection_lost
from app.rawrows import DriverQuery
from tests.conftest import QueryCounter
from tests.databases import Backend
from tests.world import World

BY_NAME = DriverQuery(
    select(
        Account.id.label("id"), Account.name.label("name"), Account.attributes.label("attributes")
    )
    .where(Account.name == bindparam("name"))
    .order_by(Account.id)
)


def test_sql_is_compiled_once_per_dialect_with_its_placeholders(engine: AsyncEngine) -> None:
    sql, names, _processors, _fixed = BY_NAME.sql_for(engine.dialect)
    assert names == ("name",)
    placeholder = "$1::VARCHAR" if engine.dialect.name == "postgresql" else "?"
    assert sql.endswith(f"WHERE account.name = {placeholder} ORDER BY account.id")
    assert BY_NAME.sql_for(engine.dialect) is BY_NAME.sql_for(engine.dialect)


async def test_rows_see_the_sessions_own_uncommitted_writes_and_are_counted(
    sessions: async_sessionmaker[AsyncSession], count_queries: QueryCounter
) -> None:
    async with sessions() as session:
        session.add(Account(name="Driver Query Account", attributes={"a": [1, 2]}))
        await session.flush()  # not committed: only this transaction sees it
        count_queries.reset()
        rows = await BY_NAME.rows(session, name="Driver Query Account")
        assert count_queries.statements == [BY_NAME.sql_for(session.bind.dialect)[0]]
        assert [(row["name"], row["attributes"]) for row in rows] == [
            ("Driver Query Account", {"a": [1, 2]}),
        ]
        assert await BY_NAME.rows(session, name="No Such Account") == []


BACKEND_PID = DriverQuery(select(func.pg_backend_pid().label("pid")))


@pytest.mark.postgres_only  # which server process answers: PostgreSQL's own function
async def test_a_session_reads_on_the_connection_its_transaction_holds(database_url: str) -> None:
    """The driver connection is looked up once per transaction: after a commit the session
    released its connection, and its next read must not run on it (another session has it)."""
    engine = make_engine(database_url, pool_size=2, max_overflow=0)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        async with sessions() as session:
            (first,) = await BACKEND_PID.rows(session)
            (again,) = await BACKEND_PID.rows(session)
            assert again["pid"] == first["pid"]
            await session.commit()  # the connection goes back to the pool
            async with sessions() as other:
                (taken,) = await BACKEND_PID.rows(other)  # the pool's idle one: the released
                assert taken["pid"] == first["pid"]
                (after,) = await BACKEND_PID.rows(session)
                assert after["pid"] != first["pid"]
                (still,) = await BACKEND_PID.rows(other)
                assert still["pid"] == first["pid"]
    finally:
        await engine.dispose()


class _OpenDriver:
    def is_closed(self) -> bool:
        return False


@pytest.mark.parametrize(
    ("error", "lost"),
    [
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), True),  # 57P01
        (asyncpg.exceptions.ConnectionFailureError("connection failure"), True),  # 08006
        (asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"), True),
        (OSError("connection reset"), True),
        (TimeoutError(), True),
        (asyncpg.exceptions.UniqueViolationError("duplicate key"), False),  # the statement
        (asyncpg.exceptions.QueryCanceledError("statement timeout"), False),
    ],
)
def test_which_driver_errors_mean_a_lost_connection(error: BaseException, lost: bool) -> None:
    assert connection_lost(error, _OpenDriver()) is lost


@pytest.mark.postgres_only  # SQLite runs DriverQuery's SQL through SQLAlchemy: no driver path
async def test_a_connection_lost_under_a_driver_read_is_invalidated_and_replaced(
    backend: Backend, database_url: str, world: World
) -> None:
    assert backend.name == "postgresql"
    engine = make_engine(database_url, pool_size=1, max_overflow=1)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        async with sessions() as session:
            connection = await session.connection()
            pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            async with engine.connect() as other:  # the overflow connection
                await _terminate(other, pid)
            with pytest.raises(DBAPIError) as raised:
                await BY_NAME.rows(session, name="Test Prosumer Account")
            assert raised.value.connection_invalidated
        # The lost connection was replaced: the next session reads again, on a new backend.
        async with sessions() as session:
            rows = await BY_NAME.rows(session, name="Test Prosumer Account")
            assert [row["name"] for row in rows] == ["Test Prosumer Account"]
            connection = await session.connection()
            assert (await connection.execute(text("SELECT pg_backend_pid()"))).scalar() != pid
    finally:
        await engine.dispose()


async def _terminate(connection: AsyncConnection, pid: int) -> None:
    """Terminate a server process and wait until it is gone (it exits asynchronously)."""
    await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    for _ in range(100):
        alive = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
        if (await connection.execute(alive, {"pid": pid})).scalar_one() == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"backend {pid} still alive 5 s after pg_terminate_backend")


async def _terminate_pooled_connection(engine: AsyncEngine, database_url: str) -> None:
    """Kill the server side of the pool's one idle connection."""
    async with engine.connect() as connection:
        pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    other = make_engine(database_url)
    try:
        async with other.connect() as connection:
            await _terminate(connection, pid)
    finally:
        await other.dispose()


@pytest.mark.postgres_only  # the suite's PostgreSQL server terminates a connection
@pytest.mark.parametrize("idle_enough", [True, False])
async def test_only_a_connection_idle_for_a_while_is_checked_before_use(
    database_url: str, world: World, monkeypatch: pytest.MonkeyPatch, idle_enough: bool
) -> None:
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        await _terminate_pooled_connection(engine, database_url)
        monkeypatch.setattr(db, "PING_WHEN_IDLE_FOR", 0.0 if idle_enough else 3600.0)
        async with engine.connect() as connection:
            statement = text("SELECT count(*) FROM account")
            if idle_enough:  # pinged, found dead, replaced: the statement just works
                assert (await connection.execute(statement)).scalar_one() > 0
            else:  # used a moment ago: not pinged, so the statement meets the lost connection
                with pytest.raises(DBAPIError) as raised:
                    await connection.execute(statement)
                assert raised.value.connection_invalidated
    finally:
        await engine.dispose()


def _session_app(engine: AsyncEngine, *, close: bool = True) -> FastAPI:
    """A bare app with get_session, as app.main wires it: reads on a session, and a failure."""
    app = FastAPI()
    app.state.sessionmaker = app.state.read_sessionmaker = db.make_sessionmaker(engine)
    if close:
        app.add_middleware(db.RequestSession)

    @app.get("/read")
    async def read(session: db.SessionDep, again: db.SessionDep) -> list[int]:
        assert session is again  # one session per request
        return [int(await session.scalar(select(func.count()).select_from(Account)) or 0)]

    @app.get("/fail")
    async def fail(session: db.SessionDep) -> None:
        await session.execute(select(Account.id).limit(1))
        raise RuntimeError("the endpoint failed after its first statement")

    @app.get("/none")
    async def none() -> str:
        return "no session asked for"

    return app


async def test_a_requests_session_is_closed_when_it_is_answered_whatever_happened(
    database_url: str, world: World
) -> None:
    """get_session opens one session per request; RequestSession closes it once the request has
    been answered (its connection back in the pool), after a failure too, and a request that
    never asked for one opened none."""
    engine = make_engine(database_url)
    pool = engine.sync_engine.pool
    try:
        app = _session_app(engine)
        transport = ASGITransport(app=app, raise_app_exceptions=False)
        async with AsyncClient(transport=transport, base_url="http://test") as http:
            answers = await asyncio.gather(*(http.get("/read") for _ in range(8)))
            assert {answer.status_code for answer in answers} == {200}
            assert pool.checkedout() == 0  # type: ignore[attr-defined]
            assert (await http.get("/fail")).status_code == 500
            assert pool.checkedout() == 0  # type: ignore[attr-defined]
            connections = pool.checkedin()  # type: ignore[attr-defined]
            assert (await http.get("/none")).status_code == 200
            assert pool.checkedin() == connections  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


async def test_get_session_without_request_session_refuses(database_url: str) -> None:
    """Without the middleware nothing would close the session: get_session says so instead."""
    engine = make_engine(database_url)
    try:
        app = _session_app(engine, close=False)
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http:
            with pytest.raises(RuntimeError, match="RequestSession"):
                await http.get("/read")
    finally:
        await engine.dispose()


async def _driver_of(session: AsyncSession) -> asyncpg.Connection:
    raw = await (await session.connection()).get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection
    return driver


@pytest.mark.postgres_only  # SQLite keeps its transactions (its locking recipe, app.db)
async def test_reads_run_outside_transactions_and_writes_inside_on_the_same_connection(
    database_url: str,
) -> None:
    """A read session's statements run without BEGIN (make_read_sessionmaker); the connection it
    used, back in the pool, begins a transaction again for the next write session."""
    engine = make_engine(database_url, pool_size=1, max_overflow=0)  # one connection for all
    reads, writes = db.make_read_sessionmaker(engine), db.make_sessionmaker(engine)
    first = select(Account.id).order_by(Account.id).limit(1)
    try:
        drivers = set()
        for _ in range(2):
            async with reads() as session:
                await session.execute(first)  # through SQLAlchemy, as the lists read
                driver = await _driver_of(session)
                assert not driver.is_in_transaction()
                drivers.add(id(driver))
            async with writes() as session:
                await session.execute(first)
                driver = await _driver_of(session)
                assert driver.is_in_transaction()
                drivers.add(id(driver))
        assert len(drivers) == 1
    finally:
        await engine.dispose()
