"""An admin's user list answers its counts from the totals the database keeps (`user_total`,
app/counters.py), and they stay what a real count says whatever changes the users: the API,
the CLI's commands, SQL (nothing in the API or the CLI deletes a user or moves one to another
account). The list's `num-records` and `filtered-records` keep SPEC §9's meaning."""

from __future__ import annotations

from collections.abc import Callable

from httpx import AsyncClient
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.accounts.models import Account
from app.pagination import count_where
from app.users import service as users_service
from app.users.models import User, UserTotal
from tests.world import World

URL = "/api/v3_0/users"
Headers = Callable[[str | None], dict[str, str]]


async def kept(connection: AsyncConnection) -> tuple[int, int]:
    """The kept totals: every user, the active ones."""
    statement = select(func.sum(UserTotal.total), func.sum(UserTotal.active_total))
    total, active = (await connection.execute(statement)).one()
    return int(total), int(active)


async def counted(connection: AsyncConnection) -> tuple[int, int]:
    """The same, counted."""
    statement = select(func.count(), count_where(User.active.is_(True)))
    total, active = (await connection.execute(statement.select_from(User))).one()
    return int(total), int(active)


async def envelope_counts(
    client: AsyncClient, headers: dict[str, str], **params: object
) -> tuple[int, int]:
    response = await client.get(URL, params={"page": 1, **params}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    return body["num-records"], body["filtered-records"]


async def assert_lists_agree(
    client: AsyncClient, headers: dict[str, str], connection: AsyncConnection
) -> tuple[int, int]:
    """The kept totals equal a count, and the admin's list reports them: the active users by
    default, every user with `include_inactive` (SPEC §9)."""
    total, active = await counted(connection)
    assert await kept(connection) == (total, active)
    assert await envelope_counts(client, headers) == (active, active)
    assert await envelope_counts(client, headers, include_inactive="true") == (total, total)
    return total, active


async def test_totals_follow_users_created_deactivated_and_activated_through_the_api(
    client: AsyncClient, headers_for: Headers, world: World, connection: AsyncConnection
) -> None:
    admin = headers_for("admin")
    total, active = await assert_lists_agree(client, admin, connection)
    ids = []
    for index in range(3):
        response = await client.post(
            URL,
            json={
                "email": f"totalled{index}@acme.org",
                "username": f"Totalled {index}",
                "account_id": world.account("Test Prosumer Account"),
            },
            headers=admin,
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    assert await assert_lists_agree(client, admin, connection) == (total + 3, active + 3)

    for user_id in ids[:2]:
        response = await client.patch(f"{URL}/{user_id}", json={"active": False}, headers=admin)
        assert response.status_code == 200, response.text
    assert await assert_lists_agree(client, admin, connection) == (total + 3, active + 1)

    # Deactivating an inactive user again changes nothing, nor does a change of anything else.
    for body in ({"active": False}, {"timezone": "Asia/Tokyo"}):
        response = await client.patch(f"{URL}/{ids[0]}", json=body, headers=admin)
        assert response.status_code == 200, response.text
    assert await assert_lists_agree(client, admin, connection) == (total + 3, active + 1)

    response = await client.patch(f"{URL}/{ids[1]}", json={"active": True}, headers=admin)
    assert response.status_code == 200, response.text
    assert await assert_lists_agree(client, admin, connection) == (total + 3, active + 2)


async def test_totals_follow_the_cli_commands(
    client: AsyncClient,
    headers_for: Headers,
    world: World,
    connection: AsyncConnection,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # What `add user` and `user deactivate|activate --email` run (app/cli.py).
    admin = headers_for("admin_reader")
    total, active = await assert_lists_agree(client, admin, connection)
    async with sessions() as session:
        await users_service.create_user_from_cli(
            session,
            username="From The CLI",
            email="cli-totalled@acme.org",
            account_id=world.account("Test Supplier Account"),
            password_hash="x",
        )
    assert await assert_lists_agree(client, admin, connection) == (total + 1, active + 1)
    async with sessions() as session:
        await users_service.set_active(session, world.user("prosumer_3").email, active=False)
        await users_service.set_active(session, "cli-totalled@acme.org", active=False)
    assert await assert_lists_agree(client, admin, connection) == (total + 1, active - 1)
    async with sessions() as session:
        await users_service.set_active(session, world.user("prosumer_3").email, active=True)
    assert await assert_lists_agree(client, admin, connection) == (total + 1, active)


async def test_totals_follow_deletions_and_moves_in_sql(
    client: AsyncClient, headers_for: Headers, world: World, connection: AsyncConnection
) -> None:
    admin = headers_for("admin")
    total, active = await assert_lists_agree(client, admin, connection)
    prosumers = world.account("Test Prosumer Account")
    suppliers = world.account("Test Supplier Account")

    await connection.execute(
        update(User).where(User.id == world.user("prosumer_3").id).values(active=False)
    )
    await connection.execute(delete(User).where(User.id == world.user("prosumer_3").id))
    await connection.execute(delete(User).where(User.id == world.user("supplier").id))
    assert await assert_lists_agree(client, admin, connection) == (total - 2, active - 2)

    # A move changes no total, and each account's list counts its users as they are now.
    await connection.execute(
        update(User).where(User.id == world.user("prosumer").id).values(account_id=suppliers)
    )
    assert await assert_lists_agree(client, admin, connection) == (total - 2, active - 2)
    for account_id in (prosumers, suppliers):
        real = await connection.scalar(
            select(func.count()).select_from(User).where(User.account_id == account_id)
        )
        counts = await envelope_counts(
            client, admin, account_id=account_id, include_inactive="true"
        )
        assert counts == (real, real)


async def test_a_filter_narrows_only_filtered_records(
    client: AsyncClient, headers_for: Headers, connection: AsyncConnection
) -> None:
    admin = headers_for("admin")
    _, active = await assert_lists_agree(client, admin, connection)
    columns = (User.email, User.username, Account.name)
    matching = await connection.scalar(
        select(func.count())
        .select_from(User)
        .join(Account, Account.id == User.account_id)
        .where(User.active.is_(True), or_(*(column.icontains("prosumer") for column in columns)))
    )
    assert 0 < matching < active
    assert await envelope_counts(client, admin, filter="prosumer") == (active, matching)
