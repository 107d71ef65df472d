"""The trigger-kept counts (app/counters.py), at SQL level: rows written, counts read back.

`account.user_count` counts an account's users, active or not; `account_total`'s rows sum to
the number of accounts; `user_total`'s to the number of users and of active users. Most tests
write in the test's rolled-back transaction; the concurrent ones need real commits and get a
database of their own.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import counters
from app.accounts.models import Account, AccountTotal
from app.db import make_engine
from app.pagination import count_where
from app.users.models import User, UserTotal
from tests.databases import Backend, create_database, drop_database, migrate


async def new_account(conn: AsyncConnection, name: str) -> int:
    statement = insert(Account).values(name=name, attributes={}).returning(Account.id)
    return int((await conn.execute(statement)).scalar_one())


def user_row(account_id: int, email: str) -> dict[str, object]:
    return {"email": email, "username": email, "password_hash": "x", "account_id": account_id}


async def new_user(conn: AsyncConnection, account_id: int, email: str) -> int:
    statement = insert(User).values(user_row(account_id, email)).returning(User.id)
    return int((await conn.execute(statement)).scalar_one())


async def user_count(conn: AsyncConnection, account_id: int) -> int:
    statement = select(Account.user_count).where(Account.id == account_id)
    return int((await conn.execute(statement)).scalar_one())


async def users_of(conn: AsyncConnection, account_id: int) -> int:
    statement = select(func.count()).select_from(User).where(User.account_id == account_id)
    return int((await conn.execute(statement)).scalar_one())


async def account_total(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.sum(AccountTotal.total)))).scalar_one())


async def accounts(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(Account))).scalar_one())


async def test_inserted_users_count_in_their_account_only(connection: AsyncConnection) -> None:
    mine = await new_account(connection, "Counted")
    other = await new_account(connection, "Not Counted")
    assert await user_count(connection, mine) == 0
    await new_user(connection, mine, "one@counted.example")
    assert await user_count(connection, mine) == 1
    # One statement, many rows: the triggers run for each row.
    rows = [user_row(mine, f"{i}@counted.example") for i in range(2, 5)]
    await connection.execute(insert(User), rows)
    assert await user_count(connection, mine) == 4 == await users_of(connection, mine)
    assert await user_count(connection, other) == 0


async def test_moving_a_user_moves_its_count(connection: AsyncConnection) -> None:
    a = await new_account(connection, "Move From")
    b = await new_account(connection, "Move To")
    mover = await new_user(connection, a, "mover@move.example")
    await new_user(connection, a, "stayer@move.example")
    await new_user(connection, b, "there@move.example")

    await connection.execute(update(User).where(User.id == mover).values(account_id=b))
    assert (await user_count(connection, a), await user_count(connection, b)) == (1, 2)

    # Setting the account it already has, or changing anything else, moves nothing.
    await connection.execute(update(User).where(User.id == mover).values(account_id=b))
    await connection.execute(update(User).where(User.id == mover).values(email="m@move.example"))
    assert (await user_count(connection, a), await user_count(connection, b)) == (1, 2)

    # One statement moving every user of b: each row moves one.
    await connection.execute(update(User).where(User.account_id == b).values(account_id=a))
    assert (await user_count(connection, a), await user_count(connection, b)) == (3, 0)
    assert await users_of(connection, a) == 3


async def test_inactive_users_still_count(connection: AsyncConnection) -> None:
    # No trigger watches `active`: user_count is every user of the account, as FlexMeasures'
    # account listing counts them (deactivated users are still the account's users).
    account = await new_account(connection, "With Inactive")
    user = await new_user(connection, account, "dormant@inactive.example")
    await new_user(connection, account, "awake@inactive.example")
    await connection.execute(update(User).where(User.id == user).values(active=False))
    assert await user_count(connection, account) == 2
    await connection.execute(update(User).where(User.id == user).values(active=True))
    assert await user_count(connection, account) == 2


async def test_deleted_users_no_longer_count(connection: AsyncConnection) -> None:
    account = await new_account(connection, "Shrinking")
    first = await new_user(connection, account, "first@shrinking.example")
    for i in range(3):
        await new_user(connection, account, f"{i}@shrinking.example")
    await connection.execute(delete(User).where(User.id == first))
    assert await user_count(connection, account) == 3
    await connection.execute(delete(User).where(User.account_id == account))
    assert await user_count(connection, account) == 0


async def test_account_total_follows_inserts_and_deletes(connection: AsyncConnection) -> None:
    before = await account_total(connection)
    assert before == await accounts(connection) > 0  # the world's accounts
    ids = [await new_account(connection, f"Totalled {i}") for i in range(5)]
    assert await account_total(connection) == before + 5
    await connection.execute(delete(Account).where(Account.id.in_(ids[:2])))
    assert await account_total(connection) == before + 3 == await accounts(connection)
    await connection.execute(
        insert(Account), [{"name": f"Totalled in bulk {i}", "attributes": {}} for i in range(4)]
    )
    assert await account_total(connection) == before + 7 == await accounts(connection)


async def test_each_slot_counts_the_accounts_whose_id_falls_in_it(
    connection: AsyncConnection,
) -> None:
    for i in range(counters.ACCOUNT_TOTAL_SLOTS + 3):  # some slots get two
        await new_account(connection, f"Slotted {i}")
    slots = counters.ACCOUNT_TOTAL_SLOTS
    kept = dict((await connection.execute(select(AccountTotal.slot, AccountTotal.total))).all())
    by_slot = text(f"SELECT id % {slots}, count(*) FROM account GROUP BY id % {slots}")
    counted = (await connection.execute(by_slot)).all()
    assert kept == {slot: 0 for slot in range(slots)} | dict(counted)


async def user_totals(conn: AsyncConnection) -> tuple[int, int]:
    statement = select(func.sum(UserTotal.total), func.sum(UserTotal.active_total))
    total, active = (await conn.execute(statement)).one()
    return int(total), int(active)


async def users(conn: AsyncConnection) -> tuple[int, int]:
    statement = select(func.count(), count_where(User.active.is_(True))).select_from(User)
    total, active = (await conn.execute(statement)).one()
    return int(total), int(active)


async def test_user_totals_follow_inserts_deletes_and_activity(
    connection: AsyncConnection,
) -> None:
    total, active = await user_totals(connection)
    assert (total, active) == await users(connection)
    assert total > 0  # the world's users
    account = await new_account(connection, "Totalled Users")
    first = await new_user(connection, account, "first@totalled.example")
    await connection.execute(
        insert(User),
        # Every row names `active`: the rows of one INSERT take their columns from the first.
        [{**user_row(account, f"{i}@totalled.example"), "active": i < 3} for i in range(4)],
    )
    assert await user_totals(connection) == (total + 5, active + 4) == await users(connection)

    # Deactivating counts once; again, or any other change, changes nothing.
    for _ in range(2):
        await connection.execute(update(User).where(User.id == first).values(active=False))
    await connection.execute(update(User).where(User.id == first).values(username="changed"))
    assert await user_totals(connection) == (total + 5, active + 3)
    # One statement, many rows, both ways: each row that changes counts.
    await connection.execute(
        update(User).where(User.account_id == account).values(active=User.id == first)
    )
    assert await user_totals(connection) == (total + 5, active + 1) == await users(connection)

    # Deleting an active and an inactive user.
    gone = ("first@totalled.example", "0@totalled.example")
    await connection.execute(delete(User).where(User.email.in_(gone)))
    assert await user_totals(connection) == (total + 3, active) == await users(connection)
    await connection.execute(delete(User).where(User.account_id == account))
    assert await user_totals(connection) == (total, active) == await users(connection)


async def test_each_user_slot_counts_the_users_whose_id_falls_in_it(
    connection: AsyncConnection,
) -> None:
    account = await new_account(connection, "Slotted Users")
    for i in range(counters.USER_TOTAL_SLOTS + 3):  # some slots get two
        await new_user(connection, account, f"{i}@slotted.example")
    slots = counters.USER_TOTAL_SLOTS
    await connection.execute(update(User).where(User.id % 3 == 0).values(active=False))
    kept = {
        slot: (total, active)
        for slot, total, active in (
            await connection.execute(
                select(UserTotal.slot, UserTotal.total, UserTotal.active_total)
            )
        ).all()
    }
    by_slot = text(
        f'SELECT id % {slots}, count(*), count(CASE WHEN active THEN 1 END) FROM "user" '
        f"GROUP BY id % {slots}"
    )
    counted = {slot: (total, active) for slot, total, active in await connection.execute(by_slot)}
    assert kept == {slot: (0, 0) for slot in range(slots)} | counted


def trigger_names(counter: counters.Counter, dialect_name: str) -> set[str]:
    return {
        match.group(1)
        for statement in counter.create_statements(dialect_name)
        for match in [re.search(r"CREATE TRIGGER (\w+)", statement)]
        if match
    }


async def test_the_database_has_the_current_triggers(connection: AsyncConnection) -> None:
    dialect = connection.dialect.name
    if dialect == "postgresql":
        query = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    found = set((await connection.execute(text(query))).scalars())
    expected = set().union(*(trigger_names(c, dialect) for c in counters.CURRENT))
    assert found == expected
    if dialect == "sqlite":
        # SQLite keeps each trigger's CREATE statement as it was given.
        stored = set((await connection.execute(text(query.replace("name", "sql", 1)))).scalars())
        assert stored == {
            s for c in counters.CURRENT for s in c.create_statements(dialect) if "TRIGGER" in s
        }


# Concurrent writers: each a connection of its own, committing each row separately.
WRITERS = 10
ROWS_PER_WRITER = 5


@pytest.fixture(scope="module")
async def committed(backend: Backend) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh, migrated database of its own, for writes that really commit."""
    url = await create_database(backend)
    try:
        await migrate(url)
        engine = make_engine(url, pool_size=WRITERS, max_overflow=0)
        try:
            yield engine
        finally:
            await engine.dispose()
    finally:
        await drop_database(backend, url)


Write = Callable[[AsyncConnection, int, int], Awaitable[None]]


async def concurrently(engine: AsyncEngine, write: Write) -> None:
    """Run `write(conn, writer, row)` for every writer and row, each row in its own
    transaction, the writers concurrently (on SQLite their transactions take turns)."""

    async def writer(index: int) -> None:
        for row in range(ROWS_PER_WRITER):
            async with engine.begin() as conn:
                await write(conn, index, row)

    await asyncio.gather(*(writer(index) for index in range(WRITERS)))


async def test_concurrent_user_inserts_into_one_account_are_all_counted(
    committed: AsyncEngine,
) -> None:
    async with committed.begin() as conn:
        account = await new_account(conn, "Crowded")

    async def add_user(conn: AsyncConnection, writer: int, row: int) -> None:
        await new_user(conn, account, f"{writer}.{row}@crowded.example")

    await concurrently(committed, add_user)
    async with committed.connect() as conn:
        assert await user_count(conn, account) == WRITERS * ROWS_PER_WRITER
        assert await users_of(conn, account) == WRITERS * ROWS_PER_WRITER


async def test_concurrent_user_inserts_and_deactivations_keep_the_user_totals_exact(
    committed: AsyncEngine,
) -> None:
    async with committed.begin() as conn:
        account = await new_account(conn, "Busy Users")
        total_before, active_before = await users(conn)

    created: dict[int, int] = {}

    async def create_or_deactivate(conn: AsyncConnection, writer: int, row: int) -> None:
        if row % 2:  # the user this writer created (and committed) last time goes inactive
            await conn.execute(update(User).where(User.id == created[writer]).values(active=False))
        else:
            created[writer] = await new_user(conn, account, f"{writer}.{row}@busy.example")

    await concurrently(committed, create_or_deactivate)
    async with committed.connect() as conn:
        creations, deactivations = (ROWS_PER_WRITER + 1) // 2, ROWS_PER_WRITER // 2
        total, active = await users(conn)
        assert total == total_before + WRITERS * creations
        assert active == active_before + WRITERS * (creations - deactivations)
        assert await user_totals(conn) == (total, active)


async def test_concurrent_account_creations_and_deletions_keep_the_total_exact(
    committed: AsyncEngine,
) -> None:
    async with committed.connect() as conn:
        before = await accounts(conn)

    created: dict[int, int] = {}

    async def create_or_delete(conn: AsyncConnection, writer: int, row: int) -> None:
        if row % 2:  # the account this writer created (and committed) last time goes again
            await conn.execute(delete(Account).where(Account.id == created[writer]))
        else:
            created[writer] = await new_account(conn, f"Busy {writer}.{row}")

    await concurrently(committed, create_or_delete)
    async with committed.connect() as conn:
        creations, deletions = (ROWS_PER_WRITER + 1) // 2, ROWS_PER_WRITER // 2
        assert await accounts(conn) == before + WRITERS * (creations - deletions)
        assert await account_total(conn) == await accounts(conn)
