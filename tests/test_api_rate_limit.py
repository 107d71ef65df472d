"""SPEC §11: every request under /api/ but health counts against API_RATE_LIMIT, per user with a
valid token, else per client address; counted responses carry X-RateLimit-*, and over the limit
the answer is 429 in the envelope with Retry-After."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.main import create_app
from app.settings import Settings
from tests.conftest import with_sessions
from tests.world import World

ACCOUNTS = "/api/v3_0/accounts"
Headers = Callable[[str | None], dict[str, str]]


@asynccontextmanager
async def limited(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    limit: str,
    address: str = "198.51.100.7",
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    app = with_sessions(create_app(settings.model_copy(update={"api_rate_limit": limit})), sessions)
    transport = ASGITransport(app=app, client=(address, 40000))
    async with AsyncClient(transport=transport, base_url="http://test") as http:
        yield app, http


def remaining(response: Response) -> int:
    return int(response.headers["X-RateLimit-Remaining"])


async def test_counted_responses_carry_the_limit_and_the_429_comes_at_it(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], headers_for: Headers
) -> None:
    async with limited(settings, sessions, "3/minute") as (_app, http):
        answers = [await http.get(ACCOUNTS, headers=headers_for("admin")) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert [remaining(r) for r in answers] == [2, 1, 0, 0]
    assert {r.headers["X-RateLimit-Limit"] for r in answers} == {"3"}
    reset = int(answers[0].headers["X-RateLimit-Reset"])
    assert time.time() < reset <= time.time() + 60
    over = answers[-1]
    assert over.json()["status"] == "TOO_MANY_REQUESTS"
    assert set(over.json()) == {"message", "status"}
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    assert over.headers["X-RateLimit-Reset"] == str(reset)


async def test_each_user_has_a_count_of_their_own_whatever_the_address_or_token(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    headers_for: Headers,
    token_for: Callable[[str], str],
) -> None:
    async with limited(settings, sessions, "2/minute") as (_app, http):
        admin = [await http.get(ACCOUNTS, headers=headers_for("admin")) for _ in range(3)]
        # The same user from the same address with the Bearer form: the same count.
        bearer = {"Authorization": f"Bearer {token_for('admin')}"}
        assert (await http.get(ACCOUNTS, headers=bearer)).status_code == 429
        other = await http.get(ACCOUNTS, headers=headers_for("prosumer"))
        # No token from the same address: counted by address, apart from both users.
        anonymous = await http.get("/api/")
    assert [r.status_code for r in admin] == [200, 200, 429]
    assert other.status_code == 200
    assert remaining(other) == 1
    assert anonymous.status_code == 200
    assert remaining(anonymous) == 1


async def test_without_a_valid_token_the_count_is_the_client_address(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with limited(settings, sessions, "2/minute") as (_app, http):
        answers = [
            await http.get(ACCOUNTS, headers={"Authorization": "not-a-token"}),
            await http.get(ACCOUNTS),
            await http.post("/api/requestAuthToken", json={"email": "x@y.z", "password": "p"}),
        ]
    # An invalid token does not get a fresh count per made-up token: all three share one.
    assert [r.status_code for r in answers] == [401, 401, 429]
    async with limited(settings, sessions, "2/minute", address="198.51.100.8") as (_app, http):
        elsewhere = await http.get(ACCOUNTS)
    assert elsewhere.status_code == 401
    assert remaining(elsewhere) == 1


async def test_health_and_pages_outside_the_api_are_not_counted(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with limited(settings, sessions, "1/minute") as (_app, http):
        for _ in range(3):
            ready = await http.get("/api/v3_0/health/ready")
            page = await http.get("/reset-password", params={"token": "x"})
            metrics = await http.get("/metrics")
            for response in (ready, page, metrics):
                assert response.status_code == 200
                assert "X-RateLimit-Limit" not in response.headers
        assert (await http.get("/api/")).status_code == 200
        assert (await http.get("/api/")).status_code == 429


async def test_unlimited_turns_it_off(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], headers_for: Headers
) -> None:
    async with limited(settings, sessions, "unlimited") as (_app, http):
        answers = [await http.get(ACCOUNTS, headers=headers_for("admin")) for _ in range(5)]
    assert {r.status_code for r in answers} == {200}
    assert all("X-RateLimit-Limit" not in r.headers for r in answers)


async def test_a_429_changes_nothing_and_is_observed(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    headers_for: Headers,
    world: World,
) -> None:
    account = f"{ACCOUNTS}/{world.account('Test Empty Account')}"
    async with limited(settings, sessions, "1/minute") as (app, http):
        before = await http.get(account, headers=headers_for("admin"))
        refused = await http.patch(
            account, json={"name": "Renamed while limited"}, headers=headers_for("admin")
        )
    assert before.status_code == 200
    assert refused.status_code == 429
    async with limited(settings, sessions, "5/minute") as (_app, http):
        after = await http.get(account, headers=headers_for("admin"))
    assert after.json()["name"] == before.json()["name"]
    sample = app.state.metrics.registry.get_sample_value(
        "http_requests_total", {"method": "PATCH", "route": "<unmatched>", "status": "429"}
    )
    assert sample == 1.0


@pytest.mark.parametrize(
    "value",
    ["500 a minute", "fast", "", "-1/minute", "0/minute"],
    ids=["words", "word", "empty", "negative", "zero"],
)
def test_a_rate_that_does_not_parse_stops_start_up_naming_the_setting(value: str) -> None:
    with pytest.raises(ValueError, match="API_RATE_LIMIT must be a rate"):
        Settings(app_env="test", api_rate_limit=value)


def test_every_counted_operation_documents_the_headers_and_the_429(app: FastAPI) -> None:
    document = app.openapi()
    counted = 0
    for path, operations in document["paths"].items():
        for operation in operations.values():
            responses = operation["responses"]
            if not path.startswith("/api/") or path.startswith("/api/v3_0/health/"):
                for response in responses.values():
                    assert "X-RateLimit-Limit" not in response.get("headers", {})
                continue
            counted += 1
            assert "Retry-After" in responses["429"]["headers"], path
            for code, response in responses.items():
                assert set(response["headers"]) >= {
                    "X-RateLimit-Limit",
                    "X-RateLimit-Remaining",
                    "X-RateLimit-Reset",
                }, (path, code)
    assert counted >= 12
