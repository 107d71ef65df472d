"""PATCH /api/v3_0/users/{id}: fields, records in SPEC §6's order, If-Match, deactivation; the
list's sorts and filters; activity (last_login_at, last_seen_at)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db import make_sessionmaker
from app.users.models import User, UserRole
from tests.world import PASSWORD, World

Headers = Callable[[str | None], dict[str, str]]
USERS = "/api/v3_0/users"


@pytest.fixture(scope="module")
async def role_ids(engine: AsyncEngine, world: World) -> dict[str, int]:
    async with make_sessionmaker(engine)() as session:
        return {role.name: role.id for role in (await session.execute(select(UserRole))).scalars()}


async def events(client: AsyncClient, headers: Headers, user_id: int) -> list[str]:
    response = await client.get(f"{USERS}/{user_id}/auditlog", headers=headers("admin"))
    assert response.status_code == 200
    # Not the demo's records (User Created, Role added: …), which have no acting user.
    return [r["event"] for r in response.json() if r["active_user_id"] is not None]


async def test_one_patch_writes_one_record_per_change_in_spec_order(
    client: AsyncClient, headers_for: Headers, world: World, role_ids: dict[str, int]
) -> None:
    user = world.user("prosumer")
    response = await client.patch(
        f"{USERS}/{user.id}",
        json={
            "timezone": "Europe/Berlin",
            "username": "Renamed",
            "email": "Renamed@Seita.NL",
            "active": False,
            "flexmeasures_roles": [role_ids["consultant"]],
        },
        headers=headers_for("admin"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["email"], body["username"], body["timezone"], body["active"]) == (
        "renamed@seita.nl",
        "Renamed",
        "Europe/Berlin",
        False,
    )
    assert body["flexmeasures_roles"] == [role_ids["consultant"]]
    assert await events(client, headers_for, user.id) == [
        "User Updated, Field: email, username, timezone",
        "User Deactivated",
        "Role added: consultant",
    ]
    # Deactivated: the user's tokens stop working at once.
    assert (await client.get(USERS, headers=headers_for("prosumer"))).status_code == 401


async def test_roles_are_recorded_one_per_role_by_id(
    client: AsyncClient, headers_for: Headers, world: World, role_ids: dict[str, int]
) -> None:
    user = world.user("prosumer_admin")  # account-admin
    response = await client.patch(
        f"{USERS}/{user.id}",
        json={"flexmeasures_roles": [role_ids["admin-reader"], role_ids["consultant"]]},
        headers=headers_for("admin"),
    )
    assert response.status_code == 200, response.text
    assert await events(client, headers_for, user.id) == [
        "Role added: admin-reader",
        "Role removed: account-admin",
        "Role added: consultant",
    ]


async def test_an_empty_patch_and_a_patch_of_equal_values_change_nothing(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    user = world.user("prosumer")
    before = await client.get(f"{USERS}/{user.id}", headers=headers_for("admin"))
    for body in ({}, {"username": user.username, "timezone": "Europe/Amsterdam"}):
        response = await client.patch(f"{USERS}/{user.id}", json=body, headers=headers_for("admin"))
        assert response.status_code == 200
        assert response.headers["ETag"] == before.headers["ETag"]
    assert await events(client, headers_for, user.id) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": 5}, "id"),
        ({"account_id": 1}, "account_id"),
        ({"password": "a new password"}, "password"),
        ({"email": "not-an-email"}, "email"),
        ({"email": None}, "email"),
        ({"username": "   "}, "username"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"active": "no"}, "active"),
        ({"flexmeasures_roles": [987654]}, "flexmeasures_roles"),
        ({"flexmeasures_roles": ["x"]}, "flexmeasures_roles"),
    ],
)
async def test_bad_input_is_422_keyed_by_the_field_and_changes_nothing(
    client: AsyncClient, headers_for: Headers, world: World, body: dict[str, object], field: str
) -> None:
    user = world.user("prosumer")
    response = await client.patch(f"{USERS}/{user.id}", json=body, headers=headers_for("admin"))
    assert response.status_code == 422, response.text
    assert list(response.json()["message"]["json"]) == [field]
    assert await events(client, headers_for, user.id) == []


async def test_an_email_taken_in_any_case_is_422(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    other = world.user("dummy").email.upper()
    for method, url, body in (
        ("PATCH", f"{USERS}/{world.user('prosumer').id}", {"email": other}),
        (
            "POST",
            USERS,
            {"email": other, "username": "X", "account_id": world.account("Test Dummy Account")},
        ),
    ):
        response = await client.request(method, url, json=body, headers=headers_for("admin"))
        assert response.status_code == 422, response.text
        assert list(response.json()["message"]["json"]) == ["email"]


async def test_if_match_that_no_longer_matches_is_412(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    user = world.user("prosumer")
    etag = (await client.get(f"{USERS}/{user.id}", headers=headers_for("admin"))).headers["ETag"]
    first = await client.patch(
        f"{USERS}/{user.id}",
        json={"username": "One"},
        headers={**headers_for("admin"), "If-Match": etag},
    )
    assert first.status_code == 200
    assert first.headers["ETag"] != etag
    second = await client.patch(
        f"{USERS}/{user.id}",
        json={"username": "Two"},
        headers={**headers_for("admin"), "If-Match": etag},
    )
    assert second.status_code == 412
    assert second.json()["status"] == "PRECONDITION_FAILED"


async def test_a_reactivated_user_logs_in_again_but_old_tokens_stay_invalid(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    user = world.user("dummy")
    old = headers_for("dummy")
    for active in (False, True):
        response = await client.patch(
            f"{USERS}/{user.id}", json={"active": active}, headers=headers_for("dummy_admin")
        )
        assert response.status_code == 200
    assert (await client.get(USERS, headers=old)).status_code == 401
    login = await client.post(
        "/api/requestAuthToken", json={"email": user.email, "password": PASSWORD}
    )
    assert login.status_code == 200
    assert await events(client, headers_for, user.id) == ["User Deactivated", "User Activated"]


async def test_nobody_changes_their_own_active_or_roles(
    client: AsyncClient, headers_for: Headers, world: World, role_ids: dict[str, int]
) -> None:
    admin = world.user("admin")
    for body in ({"active": True}, {"flexmeasures_roles": [role_ids["admin"]]}):
        response = await client.patch(
            f"{USERS}/{admin.id}", json=body, headers=headers_for("admin")
        )
        assert response.status_code == 403, body


@pytest.mark.parametrize("key", ["account", "account_id"])
async def test_the_list_of_one_account(
    client: AsyncClient, headers_for: Headers, world: World, key: str
) -> None:
    account_id = world.account("Test Prosumer Account")
    response = await client.get(USERS, params={key: account_id}, headers=headers_for("admin"))
    assert response.status_code == 200
    assert {user["account_id"] for user in response.json()} == {account_id}
    assert len(response.json()) == 3
    missing = await client.get(USERS, params={key: 987654}, headers=headers_for("admin"))
    assert missing.status_code == 404
    foreign = await client.get(USERS, params={key: account_id}, headers=headers_for("supplier"))
    assert foreign.status_code == 403


async def test_the_filter_matches_the_account_name_too(
    client: AsyncClient, headers_for: Headers
) -> None:
    # Neither user's email nor name says "consultancyclient": only their account's name does.
    response = await client.get(
        USERS, params={"filter": "ConsultancyClient", "page": 1}, headers=headers_for("admin")
    )
    assert [user["email"] for user in response.json()["data"]] == [
        "test_consultant_client@seita.nl",
        "test_consultant_client_admin@seita.nl",
    ]


@pytest.mark.parametrize("direction", ["asc", "desc"])
@pytest.mark.parametrize(
    ("key", "column"), [("lastLogin", "last_login_at"), ("lastSeen", "last_seen_at")]
)
async def test_never_seen_users_come_last_in_either_direction(
    client: AsyncClient,
    connection: AsyncConnection,
    headers_for: Headers,
    world: World,
    direction: str,
    key: str,
    column: str,
) -> None:
    now = datetime.now(UTC)
    times = {"prosumer": now - timedelta(days=2), "dummy": now - timedelta(days=1)}
    await connection.execute(update(User).values({column: None}))
    for who, when in times.items():
        await connection.execute(
            update(User).where(User.id == world.user(who).id).values({column: when})
        )
    response = await client.get(
        USERS,
        params={"sort_by": key, "sort_dir": direction, "page": 1, "per_page": 100},
        headers=headers_for("admin"),
    )
    ids = [user["id"] for user in response.json()["data"]]
    ordered = [world.user("prosumer").id, world.user("dummy").id]
    if key == "lastSeen":  # the admin's own request, just now, made them seen
        ordered.append(world.user("admin").id)
    if direction == "desc":
        ordered.reverse()
    never = sorted(set(ids) - set(ordered))  # ties by id
    assert ids == ordered + never


async def test_a_log_in_records_last_login_at(client: AsyncClient, world: World) -> None:
    user = world.user("supplier")
    response = await client.post(
        "/api/requestAuthToken", json={"email": user.email, "password": PASSWORD}
    )
    token = response.json()["auth_token"]
    me = await client.get(f"{USERS}/{user.id}", headers={"Authorization": token})
    assert me.json()["last_login_at"] is not None


async def test_last_seen_is_written_at_most_once_a_minute(
    client: AsyncClient, connection: AsyncConnection, headers_for: Headers, world: World
) -> None:
    user = world.user("supplier")
    seen = select(User.last_seen_at).where(User.id == user.id)
    await client.get(f"{USERS}/{user.id}", headers=headers_for("supplier"))
    first = (await connection.execute(seen)).scalar_one()
    assert first is not None
    await client.get(f"{USERS}/{user.id}", headers=headers_for("supplier"))
    assert (await connection.execute(seen)).scalar_one() == first  # within a minute: no write
    a_while_ago = datetime.now(UTC) - timedelta(minutes=2)
    await connection.execute(
        update(User).where(User.id == user.id).values(last_seen_at=a_while_ago)
    )
    await client.get(f"{USERS}/{user.id}", headers=headers_for("supplier"))
    assert (await connection.execute(seen)).scalar_one() > a_while_ago
