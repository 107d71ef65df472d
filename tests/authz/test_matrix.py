"""Every cell of the authorization matrix (tests/authz/matrix.py), over HTTP with real tokens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from httpx import AsyncClient, Response

from tests.authz.matrix import (
    ACCOUNTS,
    CELLS,
    HIDDEN,
    LISTED,
    UNKNOWN,
    USERS,
    Cell,
    consultancy_value,
    created_consultancy,
)
from tests.world import World

URL = "/api/v3_0/accounts"
UNKNOWN_ID = 999_999
NEW_NAME = "Matrix New Account"
ERROR_STATUS = {401: "UNAUTHORIZED", 403: "INVALID_SENDER", 422: "UNPROCESSABLE_ENTITY"}
Headers = Callable[[str | None], dict[str, str]]


def account_id(world: World, name: str | None) -> int | None:
    if name is None:
        return None
    return UNKNOWN_ID if name == UNKNOWN else world.account(name)


def request_for(cell: Cell, world: World) -> tuple[str, str, dict[str, Any] | None]:
    """Method, URL and JSON body of a cell's request."""
    if cell.account is None:
        body: dict[str, Any] = {"name": NEW_NAME}
        if cell.variant != "absent":
            value = consultancy_value(cell.variant, cell.user, None)
            body["consultancy_account_id"] = account_id(world, value)
        return "POST", URL, body
    target = world.account(cell.account.name)
    if cell.action == "list":
        return "GET", URL, None
    if cell.action == "read":
        return "GET", f"{URL}/{target}", None
    if cell.action == "auditlog":
        return "GET", f"{URL}/{target}/auditlog", None
    if cell.action == "users":
        return "GET", f"/api/v3_0/users?account_id={target}", None
    if cell.action == "update":
        return "PATCH", f"{URL}/{target}", {"primary_color": "#0a0b0c"}
    if cell.action == "update_id":
        return "PATCH", f"{URL}/{target}", {"id": target}
    if cell.action == "update_account_roles":
        roles = sorted(world.account_roles[name] for name in cell.account.roles)
        return "PATCH", f"{URL}/{target}", {"account_roles": roles}
    value = consultancy_value(cell.variant, cell.user, cell.account)
    return "PATCH", f"{URL}/{target}", {"consultancy_account_id": account_id(world, value)}


def check_success(cell: Cell, world: World, sent: dict[str, Any] | None, body: Any) -> None:
    """What a successful answer must hold besides its status."""
    if cell.account is None:
        expected = created_consultancy(cell.user, consultancy_value(cell.variant, cell.user, None))
        assert body["name"] == NEW_NAME
        assert body["consultancy_account_id"] == account_id(world, expected)
        return
    target = world.account(cell.account.name)
    if cell.action == "list":
        listed = target in {account["id"] for account in body}
        assert (LISTED if listed else HIDDEN) == cell.expected
    elif cell.action == "users":
        members = {u.email for u in world.users.values() if u.account_id == target}
        assert {user["account_id"] for user in body} <= {target}
        assert {user["email"] for user in body} == members
    elif cell.action == "auditlog":
        assert body, "every world account has at least its creation record"
    else:  # read, and PATCHes: the whole account, with what was sent
        assert body["id"] == target
        assert body["name"] == cell.account.name
        for field, value in (sent or {}).items():
            if field == "account_roles":
                assert sorted(role["id"] for role in body[field]) == value
            else:
                assert body[field] == value


def test_the_matrix_covers_the_whole_world(world: World) -> None:
    assert {account.name for account in ACCOUNTS} == set(world.accounts)
    assert {user.key for user in USERS} == {*world.users, None}
    for user in USERS:
        if user.key is not None:
            assert user.account is not None
            assert world.user(user.key).account_id == world.account(user.account.name)


@pytest.mark.parametrize("cell", CELLS, ids=[cell.id for cell in CELLS])
async def test_cell(client: AsyncClient, headers_for: Headers, world: World, cell: Cell) -> None:
    method, url, sent = request_for(cell, world)
    response: Response = await client.request(
        method, url, json=sent, headers=headers_for(cell.user.key)
    )
    expected_status = 200 if cell.expected in (LISTED, HIDDEN) else cell.expected
    assert response.status_code == expected_status, f"{cell.id}: {response.text}"
    if response.is_success:
        check_success(cell, world, sent, response.json())
    else:
        assert response.json()["status"] == ERROR_STATUS[response.status_code], response.text
