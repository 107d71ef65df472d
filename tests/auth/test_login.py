"""POST /api/requestAuthToken: log-in, and the same 401 for every way it can fail."""

from __future__ import annotations

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.users import service as users_service
from tests.world import PASSWORD, World

LOGIN = "/api/requestAuthToken"
ACCOUNTS = "/api/v3_0/accounts"


async def log_in(client: AsyncClient, email: str, password: str) -> tuple[int, dict[str, object]]:
    response = await client.post(LOGIN, json={"email": email, "password": password})
    return response.status_code, response.json()


async def test_right_password_gives_a_token_and_the_user_id(
    client: AsyncClient, world: World
) -> None:
    status, body = await log_in(client, world.user("prosumer").email, PASSWORD)
    assert status == 200
    assert set(body) == {"auth_token", "user_id"}
    assert body["user_id"] == world.user("prosumer").id
    assert isinstance(body["auth_token"], str)
    assert body["auth_token"]


async def test_email_is_matched_case_insensitively(client: AsyncClient, world: World) -> None:
    status, body = await log_in(client, world.user("prosumer").email.upper(), PASSWORD)
    assert status == 200
    assert body["user_id"] == world.user("prosumer").id


@pytest.mark.parametrize("scheme", ["", "Bearer ", "bearer "])
async def test_the_token_works_raw_and_as_bearer(
    client: AsyncClient, world: World, scheme: str
) -> None:
    _, body = await log_in(client, world.user("consultant").email, PASSWORD)
    response = await client.get(
        ACCOUNTS, headers={"Authorization": f"{scheme}{body['auth_token']}"}
    )
    assert response.status_code == 200
    assert {a["id"] for a in response.json()} == {
        world.account("Test Consultancy Account"),
        world.account("Test ConsultancyClient Account"),
    }


async def test_every_failed_log_in_is_the_same_401(
    client: AsyncClient, world: World, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session:
        await users_service.set_active(session, world.user("prosumer_3").email, active=False)

    wrong_password = await log_in(client, world.user("prosumer").email, "not-the-password")
    unknown_email = await log_in(client, "nobody@example.com", PASSWORD)
    inactive_user = await log_in(client, world.user("prosumer_3").email, PASSWORD)

    assert wrong_password == unknown_email == inactive_user
    status, body = wrong_password
    assert status == 401
    assert body["status"] == "UNAUTHORIZED"
    assert isinstance(body["message"], str)
    assert body["message"]
    assert set(body) == {"message", "status"}


async def test_an_inactive_user_with_the_right_password_gets_no_token(
    client: AsyncClient, world: World, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session:
        await users_service.set_active(session, world.user("supplier").email, active=False)
    status, body = await log_in(client, world.user("supplier").email, PASSWORD)
    assert status == 401
    assert "auth_token" not in body


async def test_a_reactivated_user_can_log_in_again(
    client: AsyncClient, world: World, sessions: async_sessionmaker[AsyncSession]
) -> None:
    email = world.user("supplier").email
    async with sessions() as session:
        await users_service.set_active(session, email, active=False)
    async with sessions() as session:
        await users_service.set_active(session, email, active=True)
    status, _ = await log_in(client, email, PASSWORD)
    assert status == 200


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({"password": PASSWORD}, {"email"}),
        ({"email": "test_prosumer_user@seita.nl"}, {"password"}),
        ({}, {"email", "password"}),
    ],
)
async def test_missing_fields_are_422(
    client: AsyncClient, body: dict[str, str], missing: set[str]
) -> None:
    response = await client.post(LOGIN, json=body)
    assert response.status_code == 422
    assert response.json()["status"] == "UNPROCESSABLE_ENTITY"
    assert set(response.json()["message"]["json"]) == missing


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'["email", "password"]', "application/json"),
        (b'"a string"', "application/json"),
        (b"", "application/json"),
        (b"email=a%40b.c&password=b", "application/x-www-form-urlencoded"),
        (b"hello", "text/plain"),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_400(
    client: AsyncClient, content: bytes, content_type: str
) -> None:
    response = await client.post(LOGIN, content=content, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert response.json() == {
        "message": "The request body is not a valid JSON object.",
        "status": "INVALID_REQUEST",
    }
