"""Abuse and bad input: brute force, oversized bodies, hostile text. Always 4xx with the
envelope, never a 500, nothing stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.main import create_app
from app.settings import Settings
from tests.conftest import with_sessions
from tests.world import PASSWORD, World

ACCOUNTS = "/api/v3_0/accounts"
LOGIN = "/api/requestAuthToken"
Headers = Callable[[str | None], dict[str, str]]


@pytest.fixture
def limited_app(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> FastAPI:
    """An app whose limiter allows 3 failed log-ins a minute, on the test's transaction."""
    return with_sessions(
        create_app(settings.model_copy(update={"login_failure_limit": "3/minute"})), sessions
    )


def client_from(app: FastAPI, address: str) -> AsyncClient:
    return AsyncClient(
        transport=ASGITransport(app=app, client=(address, 50000)), base_url="http://test"
    )


async def test_failed_log_ins_per_email_are_limited(limited_app: FastAPI, world: World) -> None:
    email = world.user("prosumer").email
    for attempt in range(3):
        async with client_from(limited_app, f"10.0.0.{attempt}") as http:
            response = await http.post(LOGIN, json={"email": email, "password": "wrong"})
            assert response.status_code == 401
    async with client_from(limited_app, "10.0.0.99") as http:
        # Even the right password waits: the email is under attack.
        response = await http.post(LOGIN, json={"email": email, "password": PASSWORD})
    assert response.status_code == 429
    assert response.json()["status"] == "TOO_MANY_REQUESTS"
    assert 0 < int(response.headers["Retry-After"]) <= 60
    async with client_from(limited_app, "10.0.0.99") as http:
        other = world.user("supplier").email
        response = await http.post(LOGIN, json={"email": other, "password": PASSWORD})
    assert response.status_code == 200


async def test_failed_log_ins_per_address_are_limited(limited_app: FastAPI, world: World) -> None:
    async with client_from(limited_app, "192.0.2.7") as http:
        for attempt in range(3):
            response = await http.post(
                LOGIN, json={"email": f"nobody{attempt}@example.com", "password": "x"}
            )
            assert response.status_code == 401
        response = await http.post(
            LOGIN, json={"email": world.user("supplier").email, "password": PASSWORD}
        )
        assert response.status_code == 429
        assert "Retry-After" in response.headers
    async with client_from(limited_app, "192.0.2.8") as http:
        response = await http.post(
            LOGIN, json={"email": world.user("supplier").email, "password": PASSWORD}
        )
        assert response.status_code == 200


async def test_successful_log_ins_are_not_limited(limited_app: FastAPI, world: World) -> None:
    async with client_from(limited_app, "192.0.2.9") as http:
        for _ in range(5):
            response = await http.post(
                LOGIN, json={"email": world.user("admin").email, "password": PASSWORD}
            )
            assert response.status_code == 200


async def _account_names(client: AsyncClient, headers: dict[str, str]) -> set[str]:
    return {a["name"] for a in (await client.get(ACCOUNTS, headers=headers)).json()}


async def test_a_body_over_the_limit_is_413(client: AsyncClient, headers_for: Headers) -> None:
    admin = headers_for("admin")
    before = await _account_names(client, admin)
    body = {"name": "Big", "padding": "x" * 70_000}
    response = await client.post(ACCOUNTS, json=body, headers=admin)
    assert response.status_code == 413
    assert response.json()["status"] == "PAYLOAD_TOO_LARGE"
    assert await _account_names(client, admin) == before


async def test_a_streamed_body_over_the_limit_is_413(
    client: AsyncClient, headers_for: Headers
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "Streamed", "x": "'
        for _ in range(20):
            yield b"y" * 8192
        yield b'"}'

    headers = {**headers_for("admin"), "Content-Type": "application/json"}
    response = await client.post(ACCOUNTS, content=chunks(), headers=headers)
    assert response.status_code == 413
    assert "Streamed" not in await _account_names(client, headers_for("admin"))


async def test_a_body_under_the_limit_passes(client: AsyncClient, headers_for: Headers) -> None:
    attributes = {"note": "x" * 10_000}
    created = await client.post(ACCOUNTS, json={"name": "Fits"}, headers=headers_for("admin"))
    response = await client.patch(
        f"{ACCOUNTS}/{created.json()['id']}",
        json={"attributes": attributes},
        headers=headers_for("admin"),
    )
    assert response.status_code == 200
    assert response.json()["attributes"] == attributes


def _nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


BAD_PATCHES: list[tuple[str, bytes]] = [
    ("overlong name", json.dumps({"name": "n" * 101}).encode()),
    ("NUL in name", json.dumps({"name": "a\x00b"}).encode()),
    ("lone surrogate in name", b'{"name": "a\\ud800b"}'),
    ("NUL in attributes", json.dumps({"attributes": {"k": "a\x00b"}}).encode()),
    ("NUL in attribute key", json.dumps({"attributes": {"a\x00": 1}}).encode()),
    ("surrogate in attributes", b'{"attributes": {"k": "\\udfff"}}'),
    ("deep attributes", json.dumps({"attributes": _nested(17)}).encode()),
    ("large attributes", json.dumps({"attributes": {"k": "x" * 17_000}}).encode()),
    ("attributes string too deep", json.dumps({"attributes": "[" * 3000 + "]" * 3000}).encode()),
    ("control character in logo URL", json.dumps({"logo_url": "https://a.org/\x07"}).encode()),
]


@pytest.mark.parametrize(("case", "body"), BAD_PATCHES, ids=[case for case, _ in BAD_PATCHES])
async def test_hostile_values_are_422_and_change_nothing(
    client: AsyncClient, headers_for: Headers, world: World, case: str, body: bytes
) -> None:
    url = f"{ACCOUNTS}/{world.account('Test Prosumer Account')}"
    admin = {**headers_for("admin"), "Content-Type": "application/json"}
    before = (await client.get(url, headers=admin)).json()
    response = await client.patch(url, content=body, headers=admin)
    assert response.status_code == 422, case
    assert response.json()["status"] == "UNPROCESSABLE_ENTITY"
    assert (await client.get(url, headers=admin)).json() == before


BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("not UTF-8", b'{"name": "\xff\xfe"}', "application/json"),
    ("deeply nested JSON", b'{"name": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", "application/json"),
    ("plain text", b'{"name": "Plain"}', "text/plain"),
    ("form", b"name=Form", "application/x-www-form-urlencoded"),
    ("empty", b"", "application/json"),
    ("JSON null", b"null", "application/json"),
]


@pytest.mark.parametrize(
    ("case", "body", "content_type"), BAD_BODIES, ids=[case for case, *_ in BAD_BODIES]
)
async def test_unreadable_bodies_are_4xx_with_the_envelope(
    client: AsyncClient, headers_for: Headers, case: str, body: bytes, content_type: str
) -> None:
    admin = headers_for("admin")
    before = await _account_names(client, admin)
    response = await client.post(
        ACCOUNTS, content=body, headers={**admin, "Content-Type": content_type}
    )
    assert 400 <= response.status_code < 500, case
    assert set(response.json()) == {"message", "status"}
    assert await _account_names(client, admin) == before


async def test_a_lone_surrogate_in_a_log_in_is_422_not_500(client: AsyncClient) -> None:
    response = await client.post(
        LOGIN,
        content=b'{"email": "a\\ud800@b.org", "password": "x"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
