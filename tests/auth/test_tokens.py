"""Every way a token can be refused on /api/v3_0, and how revocation works."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient, Response
from jose import jwt
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import tokens
from app.errors import Unauthorized
from app.users import service as users_service
from app.users.models import User
from tests.conftest import SECRET
from tests.world import PASSWORD, World

URL = "/api/v3_0/accounts"
LOGIN = "/api/requestAuthToken"
Headers = Callable[[str | None], dict[str, str]]
Sessions = async_sessionmaker[AsyncSession]


def b64url(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(user_id: int, **overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    base: dict[str, Any] = {
        "sub": str(user_id),
        "ver": 1,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(hours=1)).timestamp()),
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def assert_unauthorized(response: Response) -> None:
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"message", "status"}
    assert body["status"] == "UNAUTHORIZED"
    assert isinstance(body["message"], str)
    assert body["message"]


async def log_in(client: AsyncClient, email: str, password: str = PASSWORD) -> str:
    response = await client.post(LOGIN, json={"email": email, "password": password})
    assert response.status_code == 200
    return str(response.json()["auth_token"])


async def test_a_valid_token_is_accepted(client: AsyncClient, headers_for: Headers) -> None:
    # The control for everything below: the same request with a good token succeeds.
    assert (await client.get(URL, headers=headers_for("prosumer"))).status_code == 200


def _v3_operations() -> list[tuple[str, str]]:
    """Every operation under /api/v3_0 in the committed OpenAPI document (the document test
    keeps it equal to what the app serves), but the health probes, which are public."""
    document = json.loads((Path(__file__).resolve().parents[2] / "app/openapi.json").read_text())
    return [
        (method.upper(), path)
        for path, operations in document["paths"].items()
        if path.startswith("/api/v3_0/") and not path.startswith("/api/v3_0/health/")
        for method in operations
    ]


V3_OPERATIONS = _v3_operations()


def test_every_v3_operation_is_documented_as_needing_a_token() -> None:
    document = json.loads((Path(__file__).resolve().parents[2] / "app/openapi.json").read_text())
    assert len(V3_OPERATIONS) >= 11  # accounts and users: list, create, read, update, logs…
    for method, path in V3_OPERATIONS:
        operation = document["paths"][path][method.lower()]
        assert operation["security"] == [{"ApiKeyAuth": []}], (method, path)


@pytest.mark.parametrize(("method", "path"), V3_OPERATIONS, ids=" ".join)
async def test_without_a_header_every_v3_operation_is_401(
    client: AsyncClient, method: str, path: str
) -> None:
    """Whatever the body (none, or an empty object for a write), no token is a 401 first."""
    body = {} if method in ("POST", "PATCH") else None
    assert_unauthorized(await client.request(method, path.replace("{id}", "1"), json=body))


@pytest.mark.parametrize(
    "header",
    ["", "   ", "garbage", "Bearer", "Bearer ", "Bearer a b", "a.b.c", "Basic dXNlcjpwYXNz"],
)
async def test_a_malformed_header_is_401(client: AsyncClient, header: str) -> None:
    assert_unauthorized(await client.get(URL, headers={"Authorization": header}))


@pytest.mark.parametrize("scheme", ["", "Bearer "])
async def test_a_token_signed_with_another_key_is_401(
    client: AsyncClient, world: World, scheme: str
) -> None:
    token = tokens.issue_token(
        world.user("admin").id, 1, key="another-key-of-a-reasonable-length!", max_age=3600
    )
    assert_unauthorized(await client.get(URL, headers={"Authorization": f"{scheme}{token}"}))


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_an_unsigned_alg_none_token_is_401(
    client: AsyncClient, world: World, alg: str
) -> None:
    token = f"{b64url({'alg': alg, 'typ': 'JWT'})}.{b64url(claims(world.user('admin').id))}."
    assert_unauthorized(await client.get(URL, headers={"Authorization": token}))


async def test_a_stripped_signature_is_401(
    client: AsyncClient, token_for: Callable[..., str]
) -> None:
    header, payload, _signature = token_for("admin").split(".")
    assert_unauthorized(await client.get(URL, headers={"Authorization": f"{header}.{payload}."}))


async def test_a_tampered_payload_is_401(
    client: AsyncClient, world: World, token_for: Callable[..., str]
) -> None:
    header, _payload, signature = token_for("prosumer").split(".")
    forged = b64url(claims(world.user("admin").id))
    assert_unauthorized(
        await client.get(URL, headers={"Authorization": f"{header}.{forged}.{signature}"})
    )


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
async def test_other_hmac_algorithms_are_401_even_with_the_right_key(
    client: AsyncClient, world: World, alg: str
) -> None:
    token = jwt.encode(claims(world.user("admin").id), SECRET, algorithm=alg)
    assert_unauthorized(await client.get(URL, headers={"Authorization": token}))


async def test_an_expired_token_is_401(client: AsyncClient, world: World) -> None:
    token = tokens.issue_token(world.user("admin").id, 1, key=SECRET, max_age=-60)
    response = await client.get(URL, headers={"Authorization": token})
    assert_unauthorized(response)


async def test_a_token_used_before_is_refused_once_it_expires(
    client: AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verified tokens are cached; their expiry is still checked on every request."""
    token = tokens.issue_token(world.user("admin").id, 1, key=SECRET, max_age=60)
    assert (await client.get(URL, headers={"Authorization": token})).status_code == 200
    later = datetime.now(UTC).timestamp() + 61
    monkeypatch.setattr(tokens.time, "time", lambda: later)
    response = await client.get(URL, headers={"Authorization": token})
    assert_unauthorized(response)
    assert response.json()["message"] == "The token has expired."


def test_a_cached_token_is_still_checked_against_the_key() -> None:
    token = tokens.issue_token(1, 1, key=SECRET, max_age=60)
    assert tokens.read_token(token, key=SECRET) == tokens.TokenClaims(1, 1)
    with pytest.raises(Unauthorized):
        tokens.read_token(token, key=SECRET + "-other")


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": None},  # no expiry at all
        {"sub": None},
        {"ver": None},
        {"sub": "not-a-number"},
        {"ver": 2},  # a version the user never had
        {"ver": 0},
    ],
    ids=["no-exp", "no-sub", "no-ver", "bad-sub", "future-ver", "past-ver"],
)
async def test_a_token_with_wrong_claims_is_401(
    client: AsyncClient, world: World, overrides: dict[str, Any]
) -> None:
    token = jwt.encode(claims(world.user("admin").id, **overrides), SECRET, algorithm="HS256")
    assert_unauthorized(await client.get(URL, headers={"Authorization": token}))


async def test_a_token_of_a_user_that_does_not_exist_is_401(client: AsyncClient) -> None:
    token = tokens.issue_token(987654, 1, key=SECRET, max_age=3600)
    assert_unauthorized(await client.get(URL, headers={"Authorization": token}))


async def test_a_deactivated_users_token_is_401(
    client: AsyncClient, world: World, headers_for: Headers, sessions: Sessions
) -> None:
    headers = headers_for("supplier")
    assert (await client.get(URL, headers=headers)).status_code == 200
    async with sessions() as session:
        await users_service.set_active(session, world.user("supplier").email, active=False)
    assert_unauthorized(await client.get(URL, headers=headers))


async def test_an_inactive_user_is_401_even_with_a_current_token_version(
    client: AsyncClient, world: World, headers_for: Headers, sessions: Sessions
) -> None:
    # Deactivated behind the service's back (no token_version bump): `active` alone must count.
    async with sessions() as session:
        await session.execute(
            update(User).where(User.id == world.user("supplier").id).values(active=False)
        )
        await session.commit()
    assert_unauthorized(await client.get(URL, headers=headers_for("supplier")))


async def test_tokens_stay_invalid_after_reactivation(
    client: AsyncClient, world: World, headers_for: Headers, sessions: Sessions
) -> None:
    email = world.user("supplier").email
    old = headers_for("supplier")
    async with sessions() as session:
        await users_service.set_active(session, email, active=False)
    async with sessions() as session:
        await users_service.set_active(session, email, active=True)
    assert_unauthorized(await client.get(URL, headers=old))
    fresh = await log_in(client, email)
    assert (await client.get(URL, headers={"Authorization": fresh})).status_code == 200


async def test_activating_an_active_user_keeps_their_tokens(
    client: AsyncClient, world: World, headers_for: Headers, sessions: Sessions
) -> None:
    async with sessions() as session:
        await users_service.set_active(session, world.user("supplier").email, active=True)
    assert (await client.get(URL, headers=headers_for("supplier"))).status_code == 200


async def test_a_password_change_revokes_earlier_tokens(
    client: AsyncClient, world: World, sessions: Sessions
) -> None:
    email = world.user("prosumer").email
    before = await log_in(client, email)
    assert (await client.get(URL, headers={"Authorization": before})).status_code == 200
    async with sessions() as session:
        await users_service.set_password(session, email, "a-brand-new-password")
    assert_unauthorized(await client.get(URL, headers={"Authorization": before}))
    after = await log_in(client, email, "a-brand-new-password")
    assert (await client.get(URL, headers={"Authorization": after})).status_code == 200


async def test_a_bumped_token_version_revokes_tokens(
    client: AsyncClient, world: World, headers_for: Headers, sessions: Sessions
) -> None:
    async with sessions() as session:
        await session.execute(
            update(User)
            .where(User.id == world.user("consultant").id)
            .values(token_version=User.token_version + 1)
        )
        await session.commit()
    assert_unauthorized(await client.get(URL, headers=headers_for("consultant")))
    # Another user's tokens are untouched.
    assert (await client.get(URL, headers=headers_for("client"))).status_code == 200
