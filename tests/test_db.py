"""app.db: DriverQuery (the hot reads PostgreSQL runs straight on asyncpg) behaves as SQLAlchemy's
own statements do: the same rows, inside the session's transaction, counted, and a lost
connection is a DBAPIError that invalidates it. The pool checks connections that sat idle."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app import db
from app.accounts.models import Account
from app.db import DriverQuery, json_column, make_engine
from tests.conftest import QueryCounter
from tests.databases import Backend

BY_NAME = DriverQuery(
    select(Account.id, Account.name, Account.attributes)
    .where(Account.name == bindparam("name"))
    .order_by(Account.id)
)


def test_sql_is_compiled_once_per_dialect_with_its_placeholders(engine: AsyncEngine) -> None:
    sql, names = BY_NAME.sql_for(engine.dialect)
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
        assert [(row[1], json_column(row[2])) for row in rows] == [
            ("Driver Query Account", {"a": [1, 2]}),
        ]
        assert await BY_NAME.rows(session, name="No Such Account") == []


@pytest.mark.parametrize("value", ['{"a": 1}', b'{"a": 1}', {"a": 1}])
def test_json_column_accepts_the_text_or_the_decoded_value(value: Any) -> None:
    assert json_column(value) == {"a": 1}


@pytest.mark.postgres_only  # SQLite runs DriverQuery's SQL through SQLAlchemy: no driver path
async def test_a_connection_lost_under_a_driver_read_is_invalidated_and_replaced(
    backend: Backend, database_url: str
) -> None:
    assert backend.name == "postgresql"
    engine = make_engine(database_url, pool_size=1, max_overflow=1)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        async with sessions() as session:
            connection = await session.connection()
            pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            async with engine.connect() as other:  # the overflow connection
                await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            with pytest.raises(DBAPIError) as raised:
                await BY_NAME.rows(session, name="Test Prosumer Account")
            assert raised.value.connection_invalidated
        # The lost connection was replaced: the next session reads again, on a new backend.
        async with sessions() as session:
            rows = await BY_NAME.rows(session, name="Test Prosumer Account")
            assert [row[1] for row in rows] == ["Test Prosumer Account"]
            connection = await session.connection()
            assert (await connection.execute(text("SELECT pg_backend_pid()"))).scalar() != pid
    finally:
        await engine.dispose()


async def _terminate_pooled_connection(engine: AsyncEngine, database_url: str) -> None:
    """Kill the server side of the pool's one idle connection."""
    async with engine.connect() as connection:
        pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    other = make_engine(database_url)
    try:
        async with other.connect() as connection:
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await other.dispose()


@pytest.mark.postgres_only  # the suite's PostgreSQL server terminates a connection
@pytest.mark.parametrize("idle_enough", [True, False])
async def test_only_a_connection_idle_for_a_while_is_checked_before_use(
    database_url: str, monkeypatch: pytest.MonkeyPatch, idle_enough: bool
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
