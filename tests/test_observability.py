"""One log line per request with a request id, no secrets in any log, Prometheus metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.users.models import User
from tests.world import PASSWORD, World

Headers = Callable[[str | None], dict[str, str]]


def request_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [
        json.loads(record.getMessage())
        for record in caplog.records
        if record.name == "app.requests"
    ]


async def test_each_request_logs_one_structured_line(
    client: AsyncClient, headers_for: Headers, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.requests")
    account_id = world.account("Test Prosumer Account")
    response = await client.get(f"/api/v3_0/accounts/{account_id}", headers=headers_for("admin"))
    (line,) = request_lines(caplog)
    assert line["method"] == "GET"
    assert line["path"] == "/api/v3_0/accounts/{id}"  # the template, never the id
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["request_id"] == response.headers["X-Request-ID"]


async def test_a_given_request_id_is_honoured(client: AsyncClient) -> None:
    response = await client.get("/api/", headers={"X-Request-ID": "abc-123.x"})
    assert response.headers["X-Request-ID"] == "abc-123.x"


@pytest.mark.parametrize("given", ["", "has space", "x" * 200, "new\nline"])
async def test_an_unusable_request_id_is_replaced(client: AsyncClient, given: str) -> None:
    headers = {"X-Request-ID": given} if "\n" not in given else {}
    response = await client.get("/api/", headers=headers)
    generated = response.headers["X-Request-ID"]
    assert generated != given
    assert len(generated) == 32


async def test_no_password_token_or_hash_reaches_the_logs(
    client: AsyncClient,
    world: World,
    sessions: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    email = world.user("admin").email
    wrong = "not-the-password-0xDEADBEEF"
    await client.post("/api/requestAuthToken", json={"email": email, "password": wrong})
    login = await client.post("/api/requestAuthToken", json={"email": email, "password": PASSWORD})
    token = login.json()["auth_token"]
    account_id = world.account("Test Dummy Account")
    await client.patch(
        f"/api/v3_0/accounts/{account_id}",
        json={"name": "Renamed Dummy"},
        headers={"Authorization": token},
    )
    await client.get("/api/v3_0/accounts", headers={"Authorization": f"Bearer {token}"})
    await client.get("/api/v3_0/accounts", headers={"Authorization": token[:-4] + "AAAA"})
    async with sessions() as session:
        password_hash = (
            await session.execute(select(User.password_hash).where(User.email == email))
        ).scalar_one()

    text = caplog.text + "".join(str(record.args) for record in caplog.records)
    assert len(request_lines(caplog)) == 5
    for secret in (PASSWORD, wrong, token, token.split(".")[2], password_hash):
        assert secret not in text


async def test_metrics_count_requests_by_route_template_and_status(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account("Test Prosumer Account")
    await client.get(f"/api/v3_0/accounts/{account_id}", headers=headers_for("admin"))
    await client.get(f"/api/v3_0/accounts/{account_id}", headers=headers_for("supplier"))
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    body = response.text
    assert 'http_requests_total{method="GET",route="/api/v3_0/accounts/{id}",status="200"}' in body
    assert 'http_requests_total{method="GET",route="/api/v3_0/accounts/{id}",status="403"}' in body
    assert (
        'http_request_duration_seconds_bucket{le="0.005",method="GET",route="/api/v3_0/accounts/{id}"}'
        in body
    )
    assert "db_pool_checked_out" in body
    assert f"/api/v3_0/accounts/{account_id}" not in body
