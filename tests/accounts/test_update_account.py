"""PATCH /api/v3_0/accounts/{id}: who may change what, validation, atomicity, ETag/If-Match."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from httpx import AsyncClient, Response

from tests.assertions import assert_error
from tests.world import World

URL = "/api/v3_0/accounts"
Headers = Callable[[str | None], dict[str, str]]

PROSUMER = "Test Prosumer Account"
SUPPLIER = "Test Supplier Account"
DUMMY = "Test Dummy Account"
EMPTY = "Test Empty Account"
CONSULTANCY = "Test Consultancy Account"
CLIENT = "Test ConsultancyClient Account"
UNKNOWN_ID = 999_999


def assert_422_on(response: Response, location: str, field: str) -> None:
    message = assert_error(response, 422, "UNPROCESSABLE_ENTITY")
    assert list(message) == [location]
    assert list(message[location]) == [field]
    assert all(isinstance(reason, str) for reason in message[location][field])


class Snapshot:
    """An account as an admin reads it, plus how long its audit log is."""

    def __init__(self, account: dict[str, Any], etag: str, log_length: int) -> None:
        self.account = account
        self.etag = etag
        self.log_length = log_length

    @classmethod
    async def take(cls, client: AsyncClient, headers_for: Headers, account_id: int) -> Snapshot:
        read = await client.get(f"{URL}/{account_id}", headers=headers_for("admin"))
        assert read.status_code == 200
        log = await client.get(f"{URL}/{account_id}/auditlog", headers=headers_for("admin"))
        return cls(read.json(), read.headers["ETag"], len(log.json()))

    async def assert_unchanged(self, client: AsyncClient, headers_for: Headers) -> None:
        now = await Snapshot.take(client, headers_for, self.account["id"])
        assert now.account == self.account
        assert now.etag == self.etag
        assert now.log_length == self.log_length


async def patch(
    client: AsyncClient, headers_for: Headers, user: str | None, account_id: int, body: Any
) -> Response:
    return await client.patch(f"{URL}/{account_id}", json=body, headers=headers_for(user))


async def events(client: AsyncClient, headers_for: Headers, account_id: int) -> list[str]:
    log = await client.get(f"{URL}/{account_id}/auditlog", headers=headers_for("admin"))
    return [record["event"] for record in log.json()]


# --- who may update ---------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["prosumer", "prosumer_admin", "prosumer_3"])
async def test_members_update_their_own_account(
    client: AsyncClient, headers_for: Headers, world: World, user: str
) -> None:
    account_id = world.account(PROSUMER)
    body = {
        "name": "Renamed Prosumer",
        "primary_color": "#1a3443",
        "secondary_color": "#F1A122",
        "logo_url": "https://example.com/logo.png",
    }
    response = await patch(client, headers_for, user, account_id, body)
    assert response.status_code == 200
    assert response.json() == {
        "id": account_id,
        "account_roles": [{"id": world.account_roles["Prosumer"], "name": "Prosumer"}],
        "consultancy_account_id": None,
        "attributes": {},
        **body,
    }
    read = await client.get(f"{URL}/{account_id}", headers=headers_for(user))
    assert read.json() == response.json()


async def test_consultant_updates_a_client_account(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(CLIENT)
    response = await patch(
        client, headers_for, "consultant", account_id, {"name": "Managed By Consultant"}
    )
    assert response.status_code == 200
    assert response.json()["name"] == "Managed By Consultant"
    assert response.json()["consultancy_account_id"] == world.account(CONSULTANCY)
    assert (await Snapshot.take(client, headers_for, account_id)).account == response.json()


async def test_admin_updates_any_account(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    response = await patch(
        client, headers_for, "admin", world.account(SUPPLIER), {"logo_url": "http://a.example/x"}
    )
    assert response.status_code == 200
    assert response.json()["logo_url"] == "http://a.example/x"


@pytest.mark.parametrize(
    ("user", "account", "status"),
    [
        ("supplier", PROSUMER, 403),
        ("dummy_admin", PROSUMER, 403),
        ("admin_reader", PROSUMER, 403),
        ("consultant", PROSUMER, 403),
        ("consultancy_user", CLIENT, 403),
        ("client", CONSULTANCY, 403),
        (None, PROSUMER, 401),
    ],
)
async def test_others_may_not_update(
    client: AsyncClient,
    headers_for: Headers,
    world: World,
    user: str | None,
    account: str,
    status: int,
) -> None:
    account_id = world.account(account)
    before = await Snapshot.take(client, headers_for, account_id)
    response = await patch(client, headers_for, user, account_id, {"name": "Hijacked"})
    assert_error(response, status, "INVALID_SENDER" if status == 403 else "UNAUTHORIZED")
    await before.assert_unchanged(client, headers_for)


@pytest.mark.parametrize(
    "body",
    [
        {"primary_color": "not a colour"},
        {"logo_url": "ftp://example.com/x.png"},
        {"unknown": 1},
        {"id": 1},
        {"name": ""},
        {"attributes": None},
    ],
)
async def test_permission_comes_before_validation(
    client: AsyncClient, headers_for: Headers, world: World, body: dict[str, Any]
) -> None:
    account_id = world.account(SUPPLIER)
    before = await Snapshot.take(client, headers_for, account_id)
    response = await patch(client, headers_for, "prosumer", account_id, body)
    assert_error(response, 403, "INVALID_SENDER")
    await before.assert_unchanged(client, headers_for)


@pytest.mark.parametrize(
    ("user", "account", "body"),
    [
        ("prosumer", PROSUMER, {"account_roles": ["Prosumer"], "primary_color": "bad"}),
        ("prosumer_admin", PROSUMER, {"account_roles": "not a list"}),
        ("consultant", CLIENT, {"account_roles": [], "unknown": 1}),
        ("prosumer", PROSUMER, {"consultancy_account_id": None, "primary_color": "bad"}),
        ("prosumer_admin", PROSUMER, {"consultancy_account_id": None, "logo_url": "ftp://x"}),
        ("consultancy_user", CONSULTANCY, {"consultancy_account_id": "abc"}),
        ("client", CLIENT, {"consultancy_account_id": None, "name": ""}),
    ],
    ids=[
        "roles+bad-colour",
        "roles-not-a-list",
        "consultant-roles+unknown-field",
        "consultancy+bad-colour",
        "account-admin-without-consultancy-role",
        "consultancy-user-bad-type",
        "client+blank-name",
    ],
)
async def test_field_permissions_come_before_validation(
    client: AsyncClient,
    headers_for: Headers,
    world: World,
    user: str,
    account: str,
    body: dict[str, Any],
) -> None:
    # Only admins may send account_roles, and only consultants or account-admins of a
    # consultancy account may send consultancy_account_id: both are permission checks (SPEC §4).
    if isinstance(body.get("account_roles"), list):
        body = {**body, "account_roles": [world.account_roles[r] for r in body["account_roles"]]}
    account_id = world.account(account)
    before = await Snapshot.take(client, headers_for, account_id)
    response = await patch(client, headers_for, user, account_id, body)
    assert_error(response, 403, "INVALID_SENDER")
    await before.assert_unchanged(client, headers_for)


async def test_without_a_token_a_bad_body_is_still_401(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    before = await Snapshot.take(client, headers_for, account_id)
    response = await patch(client, headers_for, None, account_id, {"primary_color": "bad"})
    assert_error(response, 401, "UNAUTHORIZED")
    await before.assert_unchanged(client, headers_for)


@pytest.mark.parametrize("account_id", [UNKNOWN_ID, 0, 2**63])
async def test_unknown_account_is_404(
    client: AsyncClient, headers_for: Headers, account_id: int
) -> None:
    response = await patch(client, headers_for, "admin", account_id, {"name": "Ghost"})
    assert assert_error(response, 404, "NOT_FOUND") == f"Account {account_id} not found"


async def test_unknown_account_is_404_before_the_body_is_validated(
    client: AsyncClient, headers_for: Headers
) -> None:
    response = await patch(client, headers_for, "prosumer", UNKNOWN_ID, {"primary_color": "x"})
    assert_error(response, 404, "NOT_FOUND")


@pytest.mark.parametrize("account_id", ["abc", "1.5", "1e3"])
async def test_non_integer_id_is_422_in_the_path(
    client: AsyncClient, headers_for: Headers, account_id: str
) -> None:
    response = await client.patch(
        f"{URL}/{account_id}", json={"name": "Whatever"}, headers=headers_for("admin")
    )
    assert_422_on(response, "path", "id")


# --- account roles ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "account"),
    [("prosumer", PROSUMER), ("prosumer_admin", PROSUMER), ("consultant", CLIENT)],
)
async def test_only_admins_may_change_account_roles(
    client: AsyncClient, headers_for: Headers, world: World, user: str, account: str
) -> None:
    account_id = world.account(account)
    before = await Snapshot.take(client, headers_for, account_id)
    roles = [world.account_roles["Prosumer"], world.account_roles["Supplier"]]
    response = await patch(client, headers_for, user, account_id, {"account_roles": roles})
    assert_error(response, 403, "INVALID_SENDER")
    await before.assert_unchanged(client, headers_for)


async def test_non_admin_resending_the_same_roles_is_still_403(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    before = await Snapshot.take(client, headers_for, account_id)
    same = [world.account_roles["Prosumer"]]
    response = await patch(client, headers_for, "prosumer", account_id, {"account_roles": same})
    assert_error(response, 403, "INVALID_SENDER")
    await before.assert_unchanged(client, headers_for)


async def test_admin_sets_account_roles(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    roles = [world.account_roles["Supplier"], world.account_roles["Prosumer"]]
    response = await patch(client, headers_for, "admin", account_id, {"account_roles": roles})
    assert response.status_code == 200
    assert {role["name"] for role in response.json()["account_roles"]} == {"Prosumer", "Supplier"}
    assert {role["id"] for role in response.json()["account_roles"]} == set(roles)
    read = await Snapshot.take(client, headers_for, account_id)
    assert read.account["account_roles"] == response.json()["account_roles"]
    assert (await events(client, headers_for, account_id))[-1] == (
        "Account Updated, Field: account_roles"
    )


async def test_admin_clears_account_roles(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account("Multi Role Account")
    response = await patch(client, headers_for, "admin", account_id, {"account_roles": []})
    assert response.status_code == 200
    assert response.json()["account_roles"] == []
    assert (await Snapshot.take(client, headers_for, account_id)).account["account_roles"] == []


@pytest.mark.parametrize(
    "roles", [[UNKNOWN_ID], [2**63], [-1], ["Prosumer"], "1", [1.5], None], ids=repr
)
async def test_unknown_or_malformed_role_ids_are_422(
    client: AsyncClient, headers_for: Headers, world: World, roles: Any
) -> None:
    account_id = world.account(PROSUMER)
    before = await Snapshot.take(client, headers_for, account_id)
    response = await patch(
        client, headers_for, "admin", account_id, {"name": "Not Applied", "account_roles": roles}
    )
    message = assert_error(response, 422, "UNPROCESSABLE_ENTITY")
    assert list(message) == ["json"]
    assert all(field.startswith("account_roles") for field in message["json"])
    await before.assert_unchanged(client, headers_for)


async def test_one_unknown_role_id_among_known_ones_changes_nothing(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    before = await Snapshot.take(client, headers_for, account_id)
    roles = [world.account_roles["Supplier"], UNKNOWN_ID]
    response = await patch(client, headers_for, "admin", account_id, {"account_roles": roles})
    assert_422_on(response, "json", "account_roles")
    await before.assert_unchanged(client, headers_for)


# --- unknown fields, types --------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"id": 12345},
        {"id": "same as path"},
        {"nonsense": True},
        {"user_count": 3},
        {"consultancy_account": 1},
    ],
)
async def test_unknown_fields_are_422_and_change_nothing(
    client: AsyncClient, headers_for: Headers, world: World, body: dict[str, Any]
) -> None:
    account_id = world.account(PROSUMER)
    before = await Snapshot.take(client, headers_for, account_id)
    response = await patch(client, headers_for, "admin", account_id, {"name": "Nope", **body})
    message = assert_error(response, 422, "UNPROCESSABLE_ENTITY")
    assert message == {"json": {next(iter(body)): ["Unknown field."]}}
    await before.assert_unchanged(client, headers_for)


async def test_its_own_id_in_the_body_is_422(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    before = await Snapshot.take(client, headers_for, account_id)
    response = await patch(client, headers_for, "admin", account_id, {"id": account_id})
    assert_422_on(response, "json", "id")
    await before.assert_unchanged(client, headers_for)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": 5}, "name"),
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"consultancy_account_id": "1"}, "consultancy_account_id"),
        ({"consultancy_account_id": True}, "consultancy_account_id"),
        ({"primary_color": 123456}, "primary_color"),
        ({"logo_url": 5}, "logo_url"),
    ],
)
async def test_wrong_types_and_blank_names_are_422(
    client: AsyncClient, headers_for: Headers, world: World, body: dict[str, Any], field: str
) -> None:
    account_id = world.account(PROSUMER)
    before = await Snapshot.take(client, headers_for, account_id)
    response = await patch(client, headers_for, "admin", account_id, body)
    assert_422_on(response, "json", field)
    await before.assert_unchanged(client, headers_for)


@pytest.mark.parametrize(
    "content", [b"not json", b'{"name": ', b'["name"]', b'"name"', b"null"], ids=repr
)
async def test_a_body_that_is_not_a_json_object_is_400(
    client: AsyncClient, headers_for: Headers, world: World, content: bytes
) -> None:
    account_id = world.account(PROSUMER)
    before = await Snapshot.take(client, headers_for, account_id)
    response = await client.patch(
        f"{URL}/{account_id}",
        content=content,
        headers={**headers_for("admin"), "Content-Type": "application/json"},
    )
    assert_error(response, 400, "INVALID_REQUEST")
    await before.assert_unchanged(client, headers_for)


# --- colours and logo -------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["primary_color", "secondary_color"])
@pytest.mark.parametrize("colour", ["#abc", "#ABC", "#a1b2c3", "#A1B2C3", "#aB9", "#00fF0a"])
async def test_good_colours_are_stored_as_given(
    client: AsyncClient, headers_for: Headers, world: World, field: str, colour: str
) -> None:
    account_id = world.account(PROSUMER)
    response = await patch(client, headers_for, "prosumer", account_id, {field: colour})
    assert response.status_code == 200
    assert response.json()[field] == colour
    assert (await Snapshot.take(client, headers_for, account_id)).account[field] == colour


@pytest.mark.parametrize("field", ["primary_color", "secondary_color"])
@pytest.mark.parametrize(
    "colour",
    [
        "abc",
        "a1b2c3",
        "#ab",
        "#abcd",
        "#abcde",
        "#1234567",
        "#ggg",
        "#12345g",
        "",
        "#",
        "red",
        " #abc",
        "#abc ",
        "##abc",
    ],
)
async def test_bad_colours_are_422(
    client: AsyncClient, headers_for: Headers, world: World, field: str, colour: str
) -> None:
    account_id = world.account(PROSUMER)
    await patch(client, headers_for, "admin", account_id, {field: "#010203"})
    before = await Snapshot.take(client, headers_for, account_id)
    response = await patch(client, headers_for, "prosumer", account_id, {field: colour})
    assert_422_on(response, "json", field)
    await before.assert_unchanged(client, headers_for)


async def test_colours_and_logo_may_be_cleared_with_null(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    filled = {"primary_color": "#111", "secondary_color": "#222222", "logo_url": "https://x.io/a"}
    assert (await patch(client, headers_for, "admin", account_id, filled)).status_code == 200
    cleared = dict.fromkeys(filled)
    response = await patch(client, headers_for, "prosumer", account_id, cleared)
    assert response.status_code == 200
    for field in filled:
        assert response.json()[field] is None
    read = await Snapshot.take(client, headers_for, account_id)
    assert {field: read.account[field] for field in filled} == cleared


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/logo.png",
        "https://example.com/logo.png",
        "https://cdn.example.org:8443/a/b/logo.svg?v=2#top",
    ],
)
async def test_http_and_https_logo_urls_are_accepted(
    client: AsyncClient, headers_for: Headers, world: World, url: str
) -> None:
    account_id = world.account(PROSUMER)
    response = await patch(client, headers_for, "prosumer", account_id, {"logo_url": url})
    assert response.status_code == 200
    assert response.json()["logo_url"] == url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/logo.png",
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "file:///etc/passwd",
        "example.com/logo.png",
        "/static/logo.png",
        "https://",
        "not a url",
        "",
    ],
)
async def test_non_http_logo_urls_are_422(
    client: AsyncClient, headers_for: Headers, world: World, url: str
) -> None:
    account_id = world.account(PROSUMER)
    before = await Snapshot.take(client, headers_for, account_id)
    response = await patch(client, headers_for, "prosumer", account_id, {"logo_url": url})
    assert_422_on(response, "json", "logo_url")
    await before.assert_unchanged(client, headers_for)


def url_of_length(length: int) -> str:
    prefix = "https://example.com/"
    return prefix + "a" * (length - len(prefix))


async def test_a_logo_url_of_255_characters_is_accepted(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    url = url_of_length(255)
    response = await patch(
        client, headers_for, "prosumer", world.account(PROSUMER), {"logo_url": url}
    )
    assert response.status_code == 200
    assert response.json()["logo_url"] == url


@pytest.mark.parametrize("length", [256, 1000])
async def test_a_logo_url_longer_than_255_characters_is_422(
    client: AsyncClient, headers_for: Headers, world: World, length: int
) -> None:
    account_id = world.account(PROSUMER)
    before = await Snapshot.take(client, headers_for, account_id)
    body = {"logo_url": url_of_length(length)}
    response = await patch(client, headers_for, "prosumer", account_id, body)
    assert_422_on(response, "json", "logo_url")
    await before.assert_unchanged(client, headers_for)


# --- names ------------------------------------------------------------------------------------


async def test_a_name_taken_by_another_account_is_422(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    before = await Snapshot.take(client, headers_for, account_id)
    response = await patch(
        client, headers_for, "prosumer", account_id, {"name": SUPPLIER, "primary_color": "#123"}
    )
    assert_422_on(response, "json", "name")
    await before.assert_unchanged(client, headers_for)


async def test_a_name_in_another_case_is_another_name(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    response = await patch(
        client, headers_for, "prosumer", world.account(PROSUMER), {"name": SUPPLIER.upper()}
    )
    assert response.status_code == 200
    assert response.json()["name"] == SUPPLIER.upper()


async def test_resending_its_own_name_is_allowed_and_changes_nothing(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    before = await Snapshot.take(client, headers_for, account_id)
    response = await patch(client, headers_for, "prosumer", account_id, {"name": PROSUMER})
    assert response.status_code == 200
    assert response.json() == before.account
    await before.assert_unchanged(client, headers_for)


async def test_a_freed_name_can_be_taken(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    freed = await patch(client, headers_for, "admin", world.account(SUPPLIER), {"name": "Moved"})
    assert freed.status_code == 200
    response = await patch(
        client, headers_for, "admin", world.account(PROSUMER), {"name": SUPPLIER}
    )
    assert response.status_code == 200
    assert response.json()["name"] == SUPPLIER


# --- consultancy ------------------------------------------------------------------------------


async def test_admin_may_set_and_clear_any_consultancy(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    set_ = await patch(
        client, headers_for, "admin", account_id, {"consultancy_account_id": world.account(DUMMY)}
    )
    assert set_.status_code == 200
    assert set_.json()["consultancy_account_id"] == world.account(DUMMY)
    cleared = await patch(
        client, headers_for, "admin", account_id, {"consultancy_account_id": None}
    )
    assert cleared.status_code == 200
    assert cleared.json()["consultancy_account_id"] is None


@pytest.mark.parametrize("user", ["admin", "consultant"])
async def test_no_account_can_be_its_own_consultancy(
    client: AsyncClient, headers_for: Headers, world: World, user: str
) -> None:
    account_id = world.account(CONSULTANCY)  # the consultant is a member here
    before = await Snapshot.take(client, headers_for, account_id)
    response = await patch(
        client,
        headers_for,
        user,
        account_id,
        {"name": "Self Made", "consultancy_account_id": account_id},
    )
    assert_422_on(response, "json", "consultancy_account_id")
    await before.assert_unchanged(client, headers_for)


@pytest.mark.parametrize("unknown", [UNKNOWN_ID, 0, -1, 2**63])
async def test_admin_naming_an_unknown_consultancy_is_422(
    client: AsyncClient, headers_for: Headers, world: World, unknown: int
) -> None:
    account_id = world.account(PROSUMER)
    before = await Snapshot.take(client, headers_for, account_id)
    response = await patch(
        client, headers_for, "admin", account_id, {"consultancy_account_id": unknown}
    )
    assert_422_on(response, "json", "consultancy_account_id")
    await before.assert_unchanged(client, headers_for)


@pytest.mark.parametrize("consultancy", [CONSULTANCY, None])
async def test_consultant_may_name_their_own_account_or_none(
    client: AsyncClient, headers_for: Headers, world: World, consultancy: str | None
) -> None:
    account_id = world.account(CLIENT)
    value = world.account(consultancy) if consultancy else None
    response = await patch(
        client, headers_for, "consultant", account_id, {"consultancy_account_id": value}
    )
    assert response.status_code == 200
    assert response.json()["consultancy_account_id"] == value
    assert (await Snapshot.take(client, headers_for, account_id)).account[
        "consultancy_account_id"
    ] == value


@pytest.mark.parametrize("other", [PROSUMER, DUMMY])
async def test_consultant_may_not_name_another_account(
    client: AsyncClient, headers_for: Headers, world: World, other: str
) -> None:
    account_id = world.account(CLIENT)
    before = await Snapshot.take(client, headers_for, account_id)
    response = await patch(
        client,
        headers_for,
        "consultant",
        account_id,
        {"consultancy_account_id": world.account(other)},
    )
    assert_error(response, 403, "INVALID_SENDER")
    await before.assert_unchanged(client, headers_for)


async def test_consultant_naming_an_unknown_account_is_422(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    # Existence is checked before whose account it is (SPEC §4's order).
    account_id = world.account(CLIENT)
    before = await Snapshot.take(client, headers_for, account_id)
    response = await patch(
        client, headers_for, "consultant", account_id, {"consultancy_account_id": UNKNOWN_ID}
    )
    assert_422_on(response, "json", "consultancy_account_id")
    await before.assert_unchanged(client, headers_for)


@pytest.mark.parametrize(
    ("user", "account", "consultancy"),
    [
        # account has Consultancy, but the user is neither consultant nor account-admin
        ("consultancy_user", CONSULTANCY, None),
        ("consultancy_user", CONSULTANCY, UNKNOWN_ID),  # 403 comes before the 422 of unknown ids
        ("consultancy_user", CONSULTANCY, CONSULTANCY),
        # account-admin, but the account lacks the Consultancy role
        ("prosumer_admin", PROSUMER, None),
        ("prosumer_admin", PROSUMER, UNKNOWN_ID),
        # plain members of accounts without the Consultancy role
        ("prosumer", PROSUMER, None),
        ("client", CLIENT, CONSULTANCY),  # even re-sending its current consultancy
        ("client", CLIENT, None),
    ],
)
async def test_non_admins_outside_a_consultancy_may_not_touch_the_consultancy(
    client: AsyncClient,
    headers_for: Headers,
    world: World,
    user: str,
    account: str,
    consultancy: str | int | None,
) -> None:
    account_id = world.account(account)
    value = world.account(consultancy) if isinstance(consultancy, str) else consultancy
    before = await Snapshot.take(client, headers_for, account_id)
    response = await patch(client, headers_for, user, account_id, {"consultancy_account_id": value})
    assert_error(response, 403, "INVALID_SENDER")
    await before.assert_unchanged(client, headers_for)


async def test_account_admin_of_a_consultancy_account_follows_the_same_rules(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    consultancy_role = [world.account_roles["Prosumer"], world.account_roles["Consultancy"]]
    promoted = await patch(
        client, headers_for, "admin", account_id, {"account_roles": consultancy_role}
    )
    assert promoted.status_code == 200
    await patch(
        client, headers_for, "admin", account_id, {"consultancy_account_id": world.account(DUMMY)}
    )
    before = await Snapshot.take(client, headers_for, account_id)

    # A plain member of the account still may not (neither consultant nor account-admin).
    plain = await patch(
        client, headers_for, "prosumer", account_id, {"consultancy_account_id": None}
    )
    assert_error(plain, 403, "INVALID_SENDER")
    unknown = await patch(
        client, headers_for, "prosumer_admin", account_id, {"consultancy_account_id": UNKNOWN_ID}
    )
    assert_422_on(unknown, "json", "consultancy_account_id")
    other = await patch(
        client,
        headers_for,
        "prosumer_admin",
        account_id,
        {"consultancy_account_id": world.account(SUPPLIER)},
    )
    assert_error(other, 403, "INVALID_SENDER")
    itself = await patch(
        client, headers_for, "prosumer_admin", account_id, {"consultancy_account_id": account_id}
    )
    assert_422_on(itself, "json", "consultancy_account_id")  # own id, but that is the account
    await before.assert_unchanged(client, headers_for)

    cleared = await patch(
        client, headers_for, "prosumer_admin", account_id, {"consultancy_account_id": None}
    )
    assert cleared.status_code == 200
    assert cleared.json()["consultancy_account_id"] is None


# --- attributes -------------------------------------------------------------------------------

ATTRIBUTES = {"note": "anything", "n": 3, "nested": {"list": [1, 2.5, None, True], "s": "é"}}


async def test_attributes_round_trip_as_an_object(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    response = await patch(client, headers_for, "prosumer", account_id, {"attributes": ATTRIBUTES})
    assert response.status_code == 200
    assert response.json()["attributes"] == ATTRIBUTES
    assert (await Snapshot.take(client, headers_for, account_id)).account[
        "attributes"
    ] == ATTRIBUTES


async def test_attributes_as_a_json_string_holding_an_object_are_accepted(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    body = {"attributes": json.dumps(ATTRIBUTES)}
    response = await patch(client, headers_for, "prosumer", account_id, body)
    assert response.status_code == 200
    assert response.json()["attributes"] == ATTRIBUTES
    assert (await Snapshot.take(client, headers_for, account_id)).account[
        "attributes"
    ] == ATTRIBUTES


async def test_attributes_are_replaced_and_cleared_with_an_empty_object(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    await patch(client, headers_for, "prosumer", account_id, {"attributes": ATTRIBUTES})
    replaced = await patch(client, headers_for, "prosumer", account_id, {"attributes": {"x": 1}})
    assert replaced.json()["attributes"] == {"x": 1}
    cleared = await patch(client, headers_for, "prosumer", account_id, {"attributes": {}})
    assert cleared.status_code == 200
    assert (await Snapshot.take(client, headers_for, account_id)).account["attributes"] == {}


@pytest.mark.parametrize(
    "attributes",
    [None, "[1, 2]", [1, 2], '"text"', "not json", "{broken", 5, True, "null"],
    ids=repr,
)
async def test_attributes_that_are_not_an_object_are_422(
    client: AsyncClient, headers_for: Headers, world: World, attributes: Any
) -> None:
    account_id = world.account(PROSUMER)
    await patch(client, headers_for, "admin", account_id, {"attributes": {"kept": True}})
    before = await Snapshot.take(client, headers_for, account_id)
    response = await patch(client, headers_for, "prosumer", account_id, {"attributes": attributes})
    assert_422_on(response, "json", "attributes")
    await before.assert_unchanged(client, headers_for)


# --- atomicity, no-ops ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"secondary_color": "#xyz"}, "secondary_color"),
        ({"logo_url": "ftp://x"}, "logo_url"),
        ({"consultancy_account_id": UNKNOWN_ID}, "consultancy_account_id"),
        ({"account_roles": [UNKNOWN_ID]}, "account_roles"),
        ({"attributes": "[]"}, "attributes"),
    ],
)
async def test_one_bad_field_leaves_every_field_unchanged(
    client: AsyncClient, headers_for: Headers, world: World, bad: dict[str, Any], field: str
) -> None:
    account_id = world.account(PROSUMER)
    before = await Snapshot.take(client, headers_for, account_id)
    body = {"name": "Half Applied", "primary_color": "#abcdef", "attributes": {"a": 1}, **bad}
    response = await patch(client, headers_for, "admin", account_id, body)
    assert_422_on(response, "json", field)
    await before.assert_unchanged(client, headers_for)


async def test_an_empty_body_changes_nothing(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    before = await Snapshot.take(client, headers_for, account_id)
    response = await patch(client, headers_for, "prosumer", account_id, {})
    assert response.status_code == 200
    assert response.json() == before.account
    assert response.headers["ETag"] == before.etag
    await before.assert_unchanged(client, headers_for)


async def test_resending_current_values_changes_nothing(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(CLIENT)
    before = await Snapshot.take(client, headers_for, account_id)
    current = {
        key: before.account[key]
        for key in ("name", "primary_color", "secondary_color", "logo_url", "attributes")
    }
    current["consultancy_account_id"] = before.account["consultancy_account_id"]
    response = await patch(client, headers_for, "consultant", account_id, current)
    assert response.status_code == 200
    assert response.json() == before.account
    await before.assert_unchanged(client, headers_for)


# --- ETag / If-Match --------------------------------------------------------------------------


async def test_get_and_patch_carry_the_same_etag(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    read = await client.get(f"{URL}/{account_id}", headers=headers_for("prosumer"))
    assert read.headers["ETag"]
    again = await client.get(f"{URL}/{account_id}", headers=headers_for("admin"))
    assert again.headers["ETag"] == read.headers["ETag"]
    response = await patch(client, headers_for, "prosumer", account_id, {"name": "Versioned"})
    assert response.headers["ETag"] != read.headers["ETag"]
    after = await client.get(f"{URL}/{account_id}", headers=headers_for("prosumer"))
    assert after.headers["ETag"] == response.headers["ETag"]


async def test_if_match_with_the_current_etag_applies_the_patch(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    etag = (await client.get(f"{URL}/{account_id}", headers=headers_for("prosumer"))).headers[
        "ETag"
    ]
    response = await client.patch(
        f"{URL}/{account_id}",
        json={"primary_color": "#0f0"},
        headers={**headers_for("prosumer"), "If-Match": etag},
    )
    assert response.status_code == 200
    assert response.json()["primary_color"] == "#0f0"
    assert response.headers["ETag"] != etag


async def test_if_match_with_a_stale_etag_is_412_and_changes_nothing(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    stale = (await client.get(f"{URL}/{account_id}", headers=headers_for("prosumer"))).headers[
        "ETag"
    ]
    moved_on = await patch(client, headers_for, "prosumer_admin", account_id, {"name": "First"})
    assert moved_on.status_code == 200
    before = await Snapshot.take(client, headers_for, account_id)
    response = await client.patch(
        f"{URL}/{account_id}",
        json={"name": "Second", "primary_color": "#123"},
        headers={**headers_for("prosumer"), "If-Match": stale},
    )
    assert_error(response, 412, "PRECONDITION_FAILED")
    await before.assert_unchanged(client, headers_for)
    assert before.account["name"] == "First"


async def test_if_match_naming_another_accounts_etag_is_412(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    other = await client.get(f"{URL}/{world.account(SUPPLIER)}", headers=headers_for("admin"))
    account_id = world.account(PROSUMER)
    before = await Snapshot.take(client, headers_for, account_id)
    response = await client.patch(
        f"{URL}/{account_id}",
        json={"name": "Wrong Tag"},
        headers={**headers_for("admin"), "If-Match": other.headers["ETag"]},
    )
    assert_error(response, 412, "PRECONDITION_FAILED")
    await before.assert_unchanged(client, headers_for)


async def test_if_match_star_matches_any_version(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    response = await client.patch(
        f"{URL}/{world.account(PROSUMER)}",
        json={"name": "Starred"},
        headers={**headers_for("prosumer"), "If-Match": "*"},
    )
    assert response.status_code == 200
    assert response.json()["name"] == "Starred"
