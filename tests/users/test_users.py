"""GET /api/v3_0/users and /users/{id}: shape, visibility, filters, pages (SPEC §9)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db import make_sessionmaker
from app.users import service as users_service
from app.users.models import UserRole
from tests.conftest import QueryCounter
from tests.world import World

URL = "/api/v3_0/users"
Headers = Callable[[str | None], dict[str, str]]

ALL_USERS = 15
USER_KEYS = {
    "id",
    "email",
    "username",
    "account_id",
    "active",
    "timezone",
    "flexmeasures_roles",
    "last_login_at",
    "last_seen_at",
}
#: List items also carry their account (as FlexMeasures' list does).
LIST_ITEM_KEYS = USER_KEYS | {"account"}
#: who may see which world users (by demo key)
PROSUMERS = {"prosumer", "prosumer_admin", "prosumer_3"}
DUMMIES = {"dummy", "dummy_admin", "admin", "admin_reader"}
CONSULTANCY = {"consultant", "consultancy_user"}


@pytest.fixture(scope="module")
async def role_ids(engine: AsyncEngine, world: World) -> dict[str, int]:
    async with make_sessionmaker(engine)() as session:
        return {role.name: role.id for role in (await session.execute(select(UserRole))).scalars()}


def keys_of(world: World, users: list[dict[str, object]]) -> set[str]:
    by_id = {user.id: key for key, user in world.users.items()}
    return {by_id[int(str(user["id"]))] for user in users}


async def test_a_user_has_the_documented_shape(
    client: AsyncClient, headers_for: Headers, world: World, role_ids: dict[str, int]
) -> None:
    user = world.user("prosumer_admin")
    response = await client.get(f"{URL}/{user.id}", headers=headers_for("prosumer"))
    assert response.status_code == 200
    assert response.json() == {
        "id": user.id,
        "email": "test_prosumer_user_2@seita.nl",
        "username": "Test Prosumer User 2",
        "account_id": world.account("Test Prosumer Account"),
        "active": True,
        "timezone": "Europe/Amsterdam",
        "flexmeasures_roles": [role_ids["account-admin"]],
        "last_login_at": None,
        "last_seen_at": None,
    }


async def test_list_items_have_the_same_shape_with_role_ids(
    client: AsyncClient, headers_for: Headers, world: World, role_ids: dict[str, int]
) -> None:
    response = await client.get(URL, headers=headers_for("admin"))
    users = {user["id"]: user for user in response.json()}
    assert all(set(user) == LIST_ITEM_KEYS for user in users.values())
    client_user = users[world.user("client").id]
    assert client_user["account"]["id"] == world.account("Test ConsultancyClient Account")
    assert client_user["account"]["name"] == "Test ConsultancyClient Account"
    assert client_user["account"]["account_roles"] == [
        {"id": world.account_roles["ConsultancyClient"], "name": "ConsultancyClient"}
    ]
    assert users[world.user("admin").id]["flexmeasures_roles"] == [role_ids["admin"]]
    assert users[world.user("consultant").id]["flexmeasures_roles"] == [role_ids["consultant"]]
    assert users[world.user("prosumer").id]["flexmeasures_roles"] == []


async def test_no_password_hash_is_ever_returned(client: AsyncClient, headers_for: Headers) -> None:
    listed = await client.get(
        URL, params={"page": 1, "per_page": 100}, headers=headers_for("admin")
    )
    one = await client.get(f"{URL}/{listed.json()['data'][0]['id']}", headers=headers_for("admin"))
    for text in (listed.text, one.text):
        assert "password" not in text
        assert "$argon2" not in text


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("admin", None),
        ("admin_reader", None),
        ("prosumer", PROSUMERS),
        ("prosumer_admin", PROSUMERS),
        ("supplier", {"supplier", "supplier_admin"}),
        ("supplier_admin", {"supplier", "supplier_admin"}),
        ("multi_role_user", {"multi_role_admin", "multi_role_user"}),
        ("dummy", DUMMIES),
        ("consultant", CONSULTANCY | {"client", "client_admin"}),
        ("consultancy_user", CONSULTANCY),
        ("client", {"client", "client_admin"}),
        ("client_admin", {"client", "client_admin"}),
    ],
)
async def test_each_caller_sees_the_users_of_the_accounts_they_may_read(
    client: AsyncClient, headers_for: Headers, world: World, user: str, expected: set[str] | None
) -> None:
    response = await client.get(URL, headers=headers_for(user))
    assert response.status_code == 200
    assert isinstance(response.json(), list)
    assert keys_of(world, response.json()) == (expected or set(world.users))


@pytest.mark.parametrize(
    ("user", "account", "expected"),
    [
        ("admin", "Test Prosumer Account", PROSUMERS),
        ("admin", "Test Empty Account", set()),
        ("admin_reader", "Test Consultancy Account", CONSULTANCY),
        ("consultant", "Test ConsultancyClient Account", {"client", "client_admin"}),
        ("consultant", "Test Consultancy Account", CONSULTANCY),
        ("prosumer", "Test Prosumer Account", PROSUMERS),
    ],
)
async def test_account_id_filter(
    client: AsyncClient,
    headers_for: Headers,
    world: World,
    user: str,
    account: str,
    expected: set[str],
) -> None:
    response = await client.get(
        URL, params={"account_id": world.account(account)}, headers=headers_for(user)
    )
    assert response.status_code == 200
    assert keys_of(world, response.json()) == expected


@pytest.mark.parametrize(
    ("user", "account"),
    [
        ("prosumer", "Test Supplier Account"),
        ("consultancy_user", "Test ConsultancyClient Account"),
        ("client", "Test Consultancy Account"),
        ("prosumer_admin", "Test Dummy Account"),
    ],
)
async def test_account_id_of_an_account_the_caller_may_not_read_is_403(
    client: AsyncClient, headers_for: Headers, world: World, user: str, account: str
) -> None:
    response = await client.get(
        URL, params={"account_id": world.account(account)}, headers=headers_for(user)
    )
    assert response.status_code == 403
    assert response.json()["status"] == "INVALID_SENDER"


@pytest.mark.parametrize("user", ["admin", "prosumer"])
async def test_account_id_of_no_account_is_404(
    client: AsyncClient, headers_for: Headers, user: str
) -> None:
    response = await client.get(URL, params={"account_id": 987654}, headers=headers_for(user))
    assert response.status_code == 404
    assert response.json() == {"message": "Account 987654 not found", "status": "NOT_FOUND"}


async def test_account_id_that_is_not_a_number_is_422(
    client: AsyncClient, headers_for: Headers
) -> None:
    response = await client.get(URL, params={"account_id": "one"}, headers=headers_for("admin"))
    assert response.status_code == 422
    assert list(response.json()["message"]["query"]) == ["account_id"]


async def test_inactive_users_are_listed_only_on_request(
    client: AsyncClient,
    headers_for: Headers,
    world: World,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        await users_service.set_active(session, world.user("prosumer_3").email, active=False)
    headers = headers_for("prosumer")

    default = await client.get(URL, headers=headers)
    assert keys_of(world, default.json()) == PROSUMERS - {"prosumer_3"}

    everyone = await client.get(URL, params={"include_inactive": "true"}, headers=headers)
    assert keys_of(world, everyone.json()) == PROSUMERS
    active = {user["id"]: user["active"] for user in everyone.json()}
    assert active[world.user("prosumer_3").id] is False
    assert active[world.user("prosumer").id] is True


async def test_without_page_a_bare_list_with_page_the_envelope(
    client: AsyncClient, headers_for: Headers
) -> None:
    admin = headers_for("admin")
    bare = await client.get(URL, headers=admin)
    assert isinstance(bare.json(), list)
    assert len(bare.json()) == ALL_USERS

    first = await client.get(URL, params={"page": 1, "per_page": 4}, headers=admin)
    body = first.json()
    assert set(body) == {"data", "num-records", "filtered-records"}
    assert body["num-records"] == ALL_USERS
    assert body["filtered-records"] == ALL_USERS
    assert len(body["data"]) == 4

    pages = [first]
    for page in range(2, -(-ALL_USERS // 4) + 1):
        pages.append(await client.get(URL, params={"page": page, "per_page": 4}, headers=admin))
    paged = [user["id"] for page in pages for user in page.json()["data"]]
    assert sorted(paged) == sorted(user["id"] for user in bare.json())
    assert len(paged) == len(set(paged))


async def test_paginated_counts_respect_the_callers_scope(
    client: AsyncClient, headers_for: Headers
) -> None:
    # The consultant's own account (2 users) and its client account (2).
    response = await client.get(URL, params={"page": 1}, headers=headers_for("consultant"))
    body = response.json()
    assert body["num-records"] == 4
    assert len(body["data"]) == 4


async def test_listing_users_costs_a_constant_number_of_queries(
    client: AsyncClient, headers_for: Headers, count_queries: QueryCounter
) -> None:
    count_queries.reset()
    response = await client.get(URL, headers=headers_for("admin"))
    assert len(response.json()) == ALL_USERS
    # principal, users, their roles, their accounts, the accounts' roles
    assert count_queries.count == 5, count_queries.statements


@pytest.mark.parametrize(
    ("caller", "target", "status"),
    [
        ("prosumer", "prosumer", 200),  # oneself
        ("prosumer", "prosumer_3", 200),  # own account
        ("prosumer", "supplier", 403),
        ("prosumer_admin", "dummy", 403),
        ("consultant", "client", 200),  # a client account of the consultancy
        ("consultancy_user", "client", 403),  # no consultant role
        ("client", "consultant", 403),
        ("admin", "client", 200),
        ("admin_reader", "consultant", 200),
    ],
)
async def test_get_one_user(
    client: AsyncClient,
    headers_for: Headers,
    world: World,
    caller: str,
    target: str,
    status: int,
) -> None:
    user = world.user(target)
    response = await client.get(f"{URL}/{user.id}", headers=headers_for(caller))
    assert response.status_code == status
    if status == 200:
        assert response.json()["email"] == user.email
    else:
        assert response.json()["status"] == "INVALID_SENDER"


async def test_get_an_unknown_user_is_404(client: AsyncClient, headers_for: Headers) -> None:
    response = await client.get(f"{URL}/987654", headers=headers_for("admin"))
    assert response.status_code == 404
    assert response.json() == {"message": "User 987654 not found", "status": "NOT_FOUND"}


async def test_get_a_user_with_a_non_numeric_id_is_422(
    client: AsyncClient, headers_for: Headers
) -> None:
    response = await client.get(f"{URL}/abc", headers=headers_for("admin"))
    assert response.status_code == 422
    assert list(response.json()["message"]["path"]) == ["id"]


@pytest.mark.parametrize("user_id", [987654, 2**31, 2**63])  # past what an id column holds too
async def test_the_audit_log_of_an_unknown_user_is_404(
    client: AsyncClient, headers_for: Headers, user_id: int
) -> None:
    response = await client.get(f"{URL}/{user_id}/auditlog", headers=headers_for("admin"))
    assert response.status_code == 404
    assert response.json() == {"message": f"User {user_id} not found", "status": "NOT_FOUND"}
