"""Every user action of SPEC §4 for every caller on every user of the world, over HTTP, on both
databases: the expectations come from tests/authz/users_matrix.py (SPEC's words, not the policy
module). Each cell runs in its own rolled-back transaction."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import make_sessionmaker
from app.users.models import UserRole
from tests.authz.users_matrix import (
    PEOPLE,
    UNKNOWN_ACCOUNT,
    Cell,
    cells,
    create_cells,
    may_read,
)
from tests.world import World

Headers = Callable[[str | None], dict[str, str]]
USERS = "/api/v3_0/users"
CELLS = list(cells())
CREATE_CELLS = list(create_cells())


@pytest.fixture(scope="module")
async def role_ids(engine: AsyncEngine, world: World) -> dict[str, int]:
    async with make_sessionmaker(engine)() as session:
        return {role.name: role.id for role in (await session.execute(select(UserRole))).scalars()}


async def act(
    client: AsyncClient, headers: dict[str, str], cell: Cell, target_id: int, roles: dict[str, int]
) -> Response:
    url = f"{USERS}/{target_id}"
    if cell.action == "read":
        return await client.get(url, headers=headers)
    if cell.action == "auditlog":
        return await client.get(f"{url}/auditlog", headers=headers)
    if cell.action == "password_reset":
        return await client.patch(f"{url}/password-reset", headers=headers)
    if cell.action == "timezone":
        return await client.patch(url, json={"timezone": "Europe/Berlin"}, headers=headers)
    if cell.action == "deactivate":
        return await client.patch(url, json={"active": False}, headers=headers)
    # A role: added if the target lacks it, else removed; the other roles stay as they are.
    role_id = roles[cell.action.removeprefix("role:")]
    current = (await client.get(url, headers=headers)).json().get("flexmeasures_roles")
    if current is None:  # the caller may not read the target: send a list all the same
        current = []
    wanted = [r for r in current if r != role_id] if role_id in current else [*current, role_id]
    return await client.patch(url, json={"flexmeasures_roles": wanted}, headers=headers)


@pytest.mark.parametrize("cell", CELLS, ids=[cell.id for cell in CELLS])
async def test_user_action(
    client: AsyncClient,
    headers_for: Headers,
    world: World,
    role_ids: dict[str, int],
    cell: Cell,
) -> None:
    target_id = world.user(cell.target).id
    response = await act(client, headers_for(cell.caller), cell, target_id, role_ids)
    assert response.status_code == cell.expected, response.text


@pytest.mark.parametrize(
    ("caller", "account", "expected"),
    CREATE_CELLS,
    ids=[f"{caller or 'no_token'}-create-in-{account}" for caller, account, _ in CREATE_CELLS],
)
async def test_create_user(
    client: AsyncClient,
    headers_for: Headers,
    world: World,
    caller: str | None,
    account: str,
    expected: int,
) -> None:
    account_id = 987_654 if account == UNKNOWN_ACCOUNT else world.account(account)
    body = {"email": "matrix@example.org", "username": "Matrix", "account_id": account_id}
    response = await client.post(USERS, json=body, headers=headers_for(caller))
    assert response.status_code == expected, response.text


@pytest.mark.parametrize("caller", [person.key for person in PEOPLE])
async def test_the_user_list_shows_exactly_the_readable_users(
    client: AsyncClient, headers_for: Headers, world: World, caller: str
) -> None:
    response = await client.get(
        USERS, params={"include_inactive": True}, headers=headers_for(caller)
    )
    assert response.status_code == 200
    by_id = {user.id: key for key, user in world.users.items()}
    listed = {by_id[user["id"]] for user in response.json()}
    me = next(person for person in PEOPLE if person.key == caller)
    assert listed == {target.key for target in PEOPLE if may_read(me, target)}
