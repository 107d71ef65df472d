"""Every error is FlexMeasures' {"message", "status"} envelope (SPEC §7), never {"detail"}."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response

from app.main import create_app
from app.settings import Settings
from tests.world import World

Headers = Callable[[str | None], dict[str, str]]


def assert_envelope(response: Response, http_status: int, status: str) -> dict[str, Any]:
    assert response.status_code == http_status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"message", "status"}, body
    assert body["status"] == status
    assert "Traceback" not in response.text
    return dict(body)


@pytest.mark.parametrize(
    "path", ["/nowhere", "/api/v2_0/accounts", "/api/v3_0/nothing-here", "/api/v3_0/accounts/1/x"]
)
async def test_an_unknown_route_is_a_404_envelope(
    client: AsyncClient, headers_for: Headers, path: str
) -> None:
    for headers in ({}, headers_for("admin")):
        body = assert_envelope(await client.get(path, headers=headers), 404, "NOT_FOUND")
        assert isinstance(body["message"], str)
        assert body["message"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/v3_0/accounts", {"GET", "POST"}),
        ("PUT", "/api/v3_0/accounts/1", {"GET", "PATCH"}),
        ("GET", "/api/requestAuthToken", {"POST"}),
        ("POST", "/api/", {"GET"}),
        ("DELETE", "/api/v3_0/users", {"GET", "POST"}),
        ("POST", "/api/v3_0/users/1/auditlog", {"GET"}),
    ],
)
async def test_a_wrong_method_is_a_405_envelope(
    client: AsyncClient, headers_for: Headers, method: str, path: str, allowed: set[str]
) -> None:
    response = await client.request(method, path, headers=headers_for("admin"))
    assert_envelope(response, 405, "METHOD_NOT_ALLOWED")
    # Starlette names the methods of the first route matching the path, so not always all of them.
    offered = set(response.headers["Allow"].replace(" ", "").split(","))
    assert offered
    assert offered <= allowed


async def test_422_in_the_query_is_keyed_by_location_and_field(
    client: AsyncClient, headers_for: Headers
) -> None:
    response = await client.get(
        "/api/v3_0/accounts", params={"page": "x"}, headers=headers_for("admin")
    )
    body = assert_envelope(response, 422, "UNPROCESSABLE_ENTITY")
    assert list(body["message"]) == ["query"]
    (reasons,) = body["message"]["query"].values()
    assert list(body["message"]["query"]) == ["page"]
    assert reasons
    assert all(isinstance(reason, str) and reason for reason in reasons)


async def test_422_in_the_path_is_keyed_by_location_and_field(
    client: AsyncClient, headers_for: Headers
) -> None:
    response = await client.get("/api/v3_0/accounts/abc", headers=headers_for("admin"))
    body = assert_envelope(response, 422, "UNPROCESSABLE_ENTITY")
    assert list(body["message"]) == ["path"]
    assert list(body["message"]["path"]) == ["id"]
    assert all(isinstance(reason, str) for reason in body["message"]["path"]["id"])


async def test_422_in_the_body_is_keyed_json_and_lists_every_field(client: AsyncClient) -> None:
    response = await client.post("/api/requestAuthToken", json={"email": 5})
    body = assert_envelope(response, 422, "UNPROCESSABLE_ENTITY")
    assert list(body["message"]) == ["json"]
    assert set(body["message"]["json"]) == {"email", "password"}
    assert all(
        isinstance(reasons, list) and all(isinstance(reason, str) for reason in reasons)
        for reasons in body["message"]["json"].values()
    )


async def test_an_unknown_body_field_is_422_unknown_field(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account("Test Prosumer Account")
    response = await client.patch(
        f"/api/v3_0/accounts/{account_id}", json={"id": 5}, headers=headers_for("admin")
    )
    body = assert_envelope(response, 422, "UNPROCESSABLE_ENTITY")
    assert body["message"] == {"json": {"id": ["Unknown field."]}}


@pytest.mark.parametrize(
    "content", [b"{not json", b"[1, 2]", b'"a string"', b"42", b"null", b"", b"\xff\xfe"]
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/requestAuthToken"), ("POST", "/api/v3_0/accounts"), ("PATCH", "account")],
)
async def test_a_body_that_is_not_a_json_object_is_400(
    client: AsyncClient,
    headers_for: Headers,
    world: World,
    content: bytes,
    method: str,
    path: str,
) -> None:
    if path == "account":
        path = f"/api/v3_0/accounts/{world.account('Test Prosumer Account')}"
    response = await client.request(
        method,
        path,
        content=content,
        headers={**headers_for("admin"), "Content-Type": "application/json"},
    )
    body = assert_envelope(response, 400, "INVALID_REQUEST")
    assert isinstance(body["message"], str)


@pytest.fixture
async def exploding_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """A fresh app with one extra route that fails the way a bug would."""
    app = create_app(settings)

    @app.get("/api/explode")
    async def explode() -> None:
        raise RuntimeError("internal detail: /srv/secret/path.py line 42")

    yield app
    await app.state.engine.dispose()


async def test_an_unexpected_exception_is_a_plain_500_envelope(exploding_app: FastAPI) -> None:
    transport = ASGITransport(app=exploding_app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/api/explode")
    body = assert_envelope(response, 500, "INTERNAL_SERVER_ERROR")
    assert isinstance(body["message"], str)
    assert "internal detail" not in response.text
    assert "RuntimeError" not in response.text
    assert "secret" not in response.text
    assert response.headers.get_list("FlexMeasures-Version") == ["1.0.1"]


async def test_the_500_does_not_break_the_next_request(exploding_app: FastAPI) -> None:
    transport = ASGITransport(app=exploding_app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://test") as http:
        assert (await http.get("/api/explode")).status_code == 500
        assert (await http.get("/api/")).status_code == 200


@pytest.mark.parametrize(
    "roles", [["x"], [1, "x"], [None], [[1]], [1.5]], ids=["str", "second", "null", "list", "float"]
)
async def test_a_bad_item_of_a_list_field_is_keyed_by_the_field(
    client: AsyncClient, headers_for: Headers, world: World, roles: list[Any]
) -> None:
    account_id = world.account("Test Prosumer Account")
    response = await client.patch(
        f"/api/v3_0/accounts/{account_id}",
        json={"account_roles": roles},
        headers=headers_for("admin"),
    )
    body = assert_envelope(response, 422, "UNPROCESSABLE_ENTITY")
    assert list(body["message"]) == ["json"]
    assert list(body["message"]["json"]) == ["account_roles"]
    reasons = body["message"]["json"]["account_roles"]
    assert reasons
    assert all(reason.startswith("Item ") for reason in reasons), reasons
