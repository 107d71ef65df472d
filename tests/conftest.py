"""One migrated database per backend and session; each test in a transaction that is rolled back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr
from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.auth import tokens
from app.db import make_engine
from app.main import create_app
from app.settings import Settings
from app.users.models import User
from tests.databases import Backend, create_database, drop_database, migrate, selected_backend
from tests.world import World, seed

SECRET = "test-secret-key-that-is-long-enough-for-hs256"


@pytest.fixture(scope="session")
def backend() -> Backend:
    return selected_backend()


@pytest.fixture(scope="session")
async def database_url(backend: Backend) -> AsyncIterator[str]:
    url = await create_database(backend)
    await migrate(url)
    yield url
    await drop_database(backend, url)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def world(engine: AsyncEngine) -> World:
    return await seed(engine)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        app_env="test",
        database_url=database_url,
        secret_key=SecretStr(SECRET),
        token_max_age=3600,
        # The suite's app is shared by every test; the limits have tests of their own (on,
        # so every request is counted and carries the headers, but never answers 429 here).
        login_failure_limit="100000/minute",
        api_rate_limit="100000000/minute",
    )


@pytest.fixture(scope="session")
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def connection(engine: AsyncEngine, world: World) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn:
        outer = await conn.begin()
        yield conn
        if outer.is_active:
            await outer.rollback()


@pytest.fixture
def sessions(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions joined to the test's transaction: a service's commit releases a SAVEPOINT."""
    return async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )


def with_sessions(app: FastAPI, sessions: async_sessionmaker[AsyncSession]) -> FastAPI:
    """Every session of the app (each request's, through its own get_session, and those of
    work after the answer) from `sessions`: joined to the test's rolled-back transaction."""
    app.state.sessionmaker = app.state.read_sessionmaker = sessions
    return app


@pytest.fixture
async def client(
    app: FastAPI, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[AsyncClient]:
    own = app.state.sessionmaker, app.state.read_sessionmaker
    with_sessions(app, sessions)
    try:
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http:
            yield http
    finally:
        app.state.sessionmaker, app.state.read_sessionmaker = own


@pytest.fixture(scope="session")
def token_for(world: World) -> Callable[[str], str]:
    """A real token for a world user (by demo key), signed as the app signs them."""

    def mint(key: str) -> str:
        return tokens.issue_token(world.user(key).id, 1, key=SECRET, max_age=3600)

    return mint


@pytest.fixture(scope="session")
def headers_for(token_for: Callable[[str], str]) -> Callable[[str | None], dict[str, str]]:
    def headers(key: str | None) -> dict[str, str]:
        return {} if key is None else {"Authorization": token_for(key)}

    return headers


class QueryCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    @property
    def count(self) -> int:
        return len(self.statements)

    def reset(self) -> None:
        self.statements.clear()

    async def of_get(
        self, client: AsyncClient, url: str, headers: dict[str, str], **params: object
    ) -> int:
        """How many statements one `GET url` takes (it must answer 200)."""
        self.reset()
        response = await client.get(url, params=params, headers=headers)
        assert response.status_code == 200, response.text
        return self.count

    async def of_gets_around(
        self,
        client: AsyncClient,
        url: str,
        headers: dict[str, str],
        change: Callable[[int], Awaitable[None]],
        **params: object,
    ) -> tuple[list[int], list[Any]]:
        """`GET url` twice (each must answer 200), `change(round)` awaited after each read, so
        that the second read sees more rows than the first: its statements and body each time."""
        counts, bodies = [], []
        for round_ in range(2):
            self.reset()
            response = await client.get(url, params=params, headers=headers)
            assert response.status_code == 200, response.text
            counts.append(self.count)
            bodies.append(response.json())
            await change(round_)
        return counts, bodies


@pytest.fixture
async def count_queries(
    engine: AsyncEngine, connection: AsyncConnection
) -> AsyncIterator[QueryCounter]:
    """Counts the statements the test's requests send. Every world user counts as seen just
    now, so that a read's statements are the read's (a user's first request in a minute also
    records `last_seen_at`, tested on its own)."""
    await connection.execute(update(User).values(last_seen_at=datetime.now(UTC)))
    counter = QueryCounter()

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
            counter.statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    yield counter
    event.remove(engine.sync_engine, "before_cursor_execute", before)
