"""POST /api/v3_0/accounts: who may create accounts, consultancy defaults, validation, audit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from httpx import AsyncClient

from tests.assertions import assert_error
from tests.world import World

URL = "/api/v3_0/accounts"
Headers = Callable[[str | None], dict[str, str]]

CONSULTANCY = "Test Consultancy Account"
CLIENT = "Test ConsultancyClient Account"
PROSUMER = "Test Prosumer Account"
UNKNOWN_ID = 999_999


async def account_names(client: AsyncClient, headers_for: Headers) -> set[str]:
    response = await client.get(URL, headers=headers_for("admin"))
    return {account["name"] for account in response.json()}


async def test_without_a_token_it_is_401(client: AsyncClient, headers_for: Headers) -> None:
    response = await client.post(URL, json={"name": "Nobody's Account"})
    assert_error(response, 401, "UNAUTHORIZED")
    assert "Nobody's Account" not in await account_names(client, headers_for)


@pytest.mark.parametrize(
    "user", ["prosumer", "prosumer_admin", "dummy_admin", "admin_reader", "client"]
)
async def test_users_who_are_neither_admin_nor_consultant_may_not_create(
    client: AsyncClient, headers_for: Headers, user: str
) -> None:
    response = await client.post(URL, json={"name": "Forbidden Account"}, headers=headers_for(user))
    assert_error(response, 403, "INVALID_SENDER")
    assert "Forbidden Account" not in await account_names(client, headers_for)


async def test_consultancy_user_without_the_consultant_role_may_not_create(
    client: AsyncClient, headers_for: Headers
) -> None:
    response = await client.post(
        URL, json={"name": "Would Be Client"}, headers=headers_for("consultancy_user")
    )
    assert_error(response, 403, "INVALID_SENDER")
    assert "Would Be Client" not in await account_names(client, headers_for)


async def test_admin_creates_an_account_without_a_consultancy(
    client: AsyncClient, headers_for: Headers
) -> None:
    response = await client.post(URL, json={"name": "ACME Solar"}, headers=headers_for("admin"))
    assert response.status_code == 201
    created = response.json()
    assert created == {
        "id": created["id"],
        "name": "ACME Solar",
        "account_roles": [],
        "consultancy_account_id": None,
        "primary_color": None,
        "secondary_color": None,
        "logo_url": None,
        "attributes": {},
    }
    read = await client.get(f"{URL}/{created['id']}", headers=headers_for("admin"))
    assert read.status_code == 200
    assert read.json() == created


async def test_admin_sending_null_means_no_consultancy(
    client: AsyncClient, headers_for: Headers
) -> None:
    response = await client.post(
        URL,
        json={"name": "No Consultancy", "consultancy_account_id": None},
        headers=headers_for("admin"),
    )
    assert response.status_code == 201
    assert response.json()["consultancy_account_id"] is None


@pytest.mark.parametrize(
    "body",
    [{"name": "Client Of Mine"}, {"name": "Client Of Mine", "consultancy_account_id": None}],
)
async def test_consultants_new_account_is_their_client(
    client: AsyncClient, headers_for: Headers, world: World, body: dict[str, Any]
) -> None:
    response = await client.post(URL, json=body, headers=headers_for("consultant"))
    assert response.status_code == 201
    created = response.json()
    assert created["name"] == "Client Of Mine"
    assert created["consultancy_account_id"] == world.account(CONSULTANCY)
    # ... and so the consultant may read it afterwards.
    read = await client.get(f"{URL}/{created['id']}", headers=headers_for("consultant"))
    assert read.status_code == 200
    assert read.json() == created


async def test_consultant_may_name_their_own_account_as_consultancy(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    response = await client.post(
        URL,
        json={"name": "Explicit Client", "consultancy_account_id": world.account(CONSULTANCY)},
        headers=headers_for("consultant"),
    )
    assert response.status_code == 201
    assert response.json()["consultancy_account_id"] == world.account(CONSULTANCY)


@pytest.mark.parametrize("other", [PROSUMER, CLIENT])
async def test_consultant_may_not_name_another_account_as_consultancy(
    client: AsyncClient, headers_for: Headers, world: World, other: str
) -> None:
    response = await client.post(
        URL,
        json={"name": "Someone Else's Client", "consultancy_account_id": world.account(other)},
        headers=headers_for("consultant"),
    )
    assert_error(response, 403, "INVALID_SENDER")
    assert "Someone Else's Client" not in await account_names(client, headers_for)


async def test_consultant_naming_an_unknown_consultancy_is_422(
    client: AsyncClient, headers_for: Headers
) -> None:
    response = await client.post(
        URL,
        json={"name": "Orphan Client", "consultancy_account_id": UNKNOWN_ID},
        headers=headers_for("consultant"),
    )
    message = assert_error(response, 422, "UNPROCESSABLE_ENTITY")
    assert list(message) == ["json"]
    assert list(message["json"]) == ["consultancy_account_id"]
    assert "Orphan Client" not in await account_names(client, headers_for)


async def test_consultant_whose_account_lost_the_consultancy_role_may_not_create(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    allowed = await client.post(
        URL, json={"name": "Before Demotion"}, headers=headers_for("consultant")
    )
    assert allowed.status_code == 201
    demoted = await client.patch(
        f"{URL}/{world.account(CONSULTANCY)}",
        json={"account_roles": []},
        headers=headers_for("admin"),
    )
    assert demoted.status_code == 200
    assert demoted.json()["account_roles"] == []
    # The principal is loaded per request: the consultant's same token now lacks the role.
    response = await client.post(
        URL, json={"name": "After Demotion"}, headers=headers_for("consultant")
    )
    assert_error(response, 403, "INVALID_SENDER")
    assert "After Demotion" not in await account_names(client, headers_for)


@pytest.mark.parametrize("other", [PROSUMER, CONSULTANCY])
async def test_admin_may_name_any_account_as_consultancy(
    client: AsyncClient, headers_for: Headers, world: World, other: str
) -> None:
    response = await client.post(
        URL,
        json={"name": "Admin's Pick", "consultancy_account_id": world.account(other)},
        headers=headers_for("admin"),
    )
    assert response.status_code == 201
    assert response.json()["consultancy_account_id"] == world.account(other)


@pytest.mark.parametrize("unknown", [UNKNOWN_ID, 0, 2**63])
async def test_admin_naming_an_unknown_consultancy_is_422(
    client: AsyncClient, headers_for: Headers, unknown: int
) -> None:
    response = await client.post(
        URL,
        json={"name": "Dangling", "consultancy_account_id": unknown},
        headers=headers_for("admin"),
    )
    message = assert_error(response, 422, "UNPROCESSABLE_ENTITY")
    assert list(message["json"]) == ["consultancy_account_id"]
    assert "Dangling" not in await account_names(client, headers_for)


@pytest.mark.parametrize("name", ["", " ", "   \t\n"])
async def test_empty_or_blank_name_is_422(
    client: AsyncClient, headers_for: Headers, name: str
) -> None:
    before = await account_names(client, headers_for)
    response = await client.post(URL, json={"name": name}, headers=headers_for("admin"))
    message = assert_error(response, 422, "UNPROCESSABLE_ENTITY")
    assert list(message["json"]) == ["name"]
    assert await account_names(client, headers_for) == before


@pytest.mark.parametrize("body", [{}, {"consultancy_account_id": None}, {"name": None}])
async def test_missing_or_null_name_is_422(
    client: AsyncClient, headers_for: Headers, body: dict[str, Any]
) -> None:
    response = await client.post(URL, json=body, headers=headers_for("admin"))
    message = assert_error(response, 422, "UNPROCESSABLE_ENTITY")
    assert list(message["json"]) == ["name"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": 42}, "name"),
        ({"name": "Typed", "consultancy_account_id": "2"}, "consultancy_account_id"),
        ({"name": "Typed", "consultancy_account_id": 1.5}, "consultancy_account_id"),
    ],
)
async def test_wrong_types_are_422(
    client: AsyncClient, headers_for: Headers, body: dict[str, Any], field: str
) -> None:
    response = await client.post(URL, json=body, headers=headers_for("admin"))
    message = assert_error(response, 422, "UNPROCESSABLE_ENTITY")
    assert list(message["json"]) == [field]


@pytest.mark.parametrize("user", ["admin", "consultant"])
async def test_a_taken_name_is_422(client: AsyncClient, headers_for: Headers, user: str) -> None:
    response = await client.post(URL, json={"name": PROSUMER}, headers=headers_for(user))
    message = assert_error(response, 422, "UNPROCESSABLE_ENTITY")
    assert list(message["json"]) == ["name"]
    everything = (await client.get(URL, headers=headers_for("admin"))).json()
    assert [a["name"] for a in everything].count(PROSUMER) == 1


async def test_names_are_unique_as_written(client: AsyncClient, headers_for: Headers) -> None:
    # Case-sensitive, as FlexMeasures: another capitalisation is another name.
    response = await client.post(URL, json={"name": PROSUMER.lower()}, headers=headers_for("admin"))
    assert response.status_code == 201
    assert response.json()["name"] == PROSUMER.lower()


async def test_a_name_created_twice_is_422_the_second_time(
    client: AsyncClient, headers_for: Headers
) -> None:
    first = await client.post(URL, json={"name": "Twice"}, headers=headers_for("admin"))
    second = await client.post(URL, json={"name": "Twice"}, headers=headers_for("admin"))
    assert first.status_code == 201
    assert_error(second, 422, "UNPROCESSABLE_ENTITY")


@pytest.mark.parametrize(
    "extra",
    [
        {"primary_color": "#123456"},
        {"account_roles": [1]},
        {"id": 12345},
        {"attributes": {}},
        {"nonsense": True},
    ],
)
async def test_unknown_fields_are_422_keyed_by_their_name(
    client: AsyncClient, headers_for: Headers, extra: dict[str, Any]
) -> None:
    response = await client.post(
        URL, json={"name": "With Extras", **extra}, headers=headers_for("admin")
    )
    message = assert_error(response, 422, "UNPROCESSABLE_ENTITY")
    assert message == {"json": {next(iter(extra)): ["Unknown field."]}}
    assert "With Extras" not in await account_names(client, headers_for)


@pytest.mark.parametrize(
    "content",
    [b"not json", b'{"name": "Broken"', b'[{"name": "In A List"}]', b'"just a string"', b"42"],
)
async def test_a_body_that_is_not_a_json_object_is_400(
    client: AsyncClient, headers_for: Headers, content: bytes
) -> None:
    before = await account_names(client, headers_for)
    response = await client.post(
        URL,
        content=content,
        headers={**headers_for("admin"), "Content-Type": "application/json"},
    )
    assert_error(response, 400, "INVALID_REQUEST")
    assert await account_names(client, headers_for) == before


async def test_permission_comes_before_validation(
    client: AsyncClient, headers_for: Headers
) -> None:
    response = await client.post(
        URL, json={"name": "", "unknown": 1}, headers=headers_for("prosumer")
    )
    assert_error(response, 403, "INVALID_SENDER")


@pytest.mark.parametrize("user", ["admin", "consultant"])
async def test_creation_writes_an_account_created_record(
    client: AsyncClient, headers_for: Headers, world: World, user: str
) -> None:
    created = await client.post(URL, json={"name": "Audited"}, headers=headers_for(user))
    assert created.status_code == 201
    log = await client.get(f"{URL}/{created.json()['id']}/auditlog", headers=headers_for("admin"))
    assert log.status_code == 200
    (record,) = log.json()
    assert record["event"] == "Account Created"
    assert record["active_user_id"] == world.user(user).id
    assert record["active_user_name"] == world.user(user).username


async def test_a_failed_creation_writes_no_record(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    response = await client.post(URL, json={"name": CLIENT}, headers=headers_for("consultant"))
    assert response.status_code == 422
    log = await client.get(f"{URL}/{world.account(CLIENT)}/auditlog", headers=headers_for("admin"))
    assert [record["event"] for record in log.json()] == ["Account Created"]


async def test_created_account_carries_an_etag_that_a_patch_accepts(
    client: AsyncClient, headers_for: Headers
) -> None:
    created = await client.post(URL, json={"name": "Tagged"}, headers=headers_for("admin"))
    etag = created.headers["ETag"]
    read = await client.get(f"{URL}/{created.json()['id']}", headers=headers_for("admin"))
    assert read.headers["ETag"] == etag
    patched = await client.patch(
        f"{URL}/{created.json()['id']}",
        json={"name": "Tagged Again"},
        headers={**headers_for("admin"), "If-Match": etag},
    )
    assert patched.status_code == 200
