"""Several workers share one log-in failure count when the limiter's storage is Redis: the
test starts a Redis server of its own and two apps (two "workers") that point at it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import ratelimit
from app.main import create_app
from app.settings import Settings
from tests.conftest import with_sessions
from tests.live import free_port
from tests.redisserver import redis_server
from tests.world import PASSWORD, World

LOGIN = "/api/requestAuthToken"


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as server:
        yield server.url


def worker(settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: str) -> FastAPI:
    app = create_app(
        settings.model_copy(
            update={"login_failure_limit": "3/minute", "rate_limit_storage_url": redis}
        )
    )
    return with_sessions(app, sessions)


def http(app: FastAPI) -> AsyncClient:
    transport = ASGITransport(app=app, client=("198.51.100.4", 40000))
    return AsyncClient(transport=transport, base_url="http://test")


async def test_failures_on_one_worker_count_on_another(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    redis_url: str,
    world: World,
) -> None:
    first, second = (worker(settings, sessions, redis_url) for _ in range(2))
    email = world.user("dummy").email
    async with http(first) as one, http(second) as two:
        for client in (one, two, one):
            response = await client.post(LOGIN, json={"email": email, "password": "wrong"})
            assert response.status_code == 401
        results = await asyncio.gather(
            one.post(LOGIN, json={"email": email, "password": PASSWORD}),
            two.post(LOGIN, json={"email": email, "password": PASSWORD}),
        )
    assert [r.status_code for r in results] == [429, 429]
    assert all(int(r.headers["Retry-After"]) > 0 for r in results)


def metric(app: FastAPI, name: str) -> float:
    value = app.state.metrics.registry.get_sample_value(name)
    return float(value or 0.0)


async def test_a_redis_outage_during_log_in_is_not_a_database_problem(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    world: World,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing listens where the limiter's Redis should be: log-in is still answered (401 for a
    wrong password, 200 for the right one, 429 at the limit, counted in memory), never a 5xx or
    the database's 503; the fallback is logged once and counted."""
    app = worker(settings, sessions, f"redis://127.0.0.1:{free_port()}/0")
    email = world.user("dummy").email
    async with http(app) as client:
        wrong = [
            await client.post(LOGIN, json={"email": email, "password": "wrong"}) for _ in range(3)
        ]
        assert [r.status_code for r in wrong] == [401, 401, 401]
        over = await client.post(LOGIN, json={"email": email, "password": PASSWORD})
        assert over.status_code == 429
    warnings = [r for r in caplog.records if "rate-limit storage unreachable" in r.getMessage()]
    assert len(warnings) == 1  # at most once a minute per process
    # A right password logs in while Redis is down (a fresh process, nothing counted yet).
    fresh = worker(settings, sessions, f"redis://127.0.0.1:{free_port()}/0")
    async with http(fresh) as client:
        response = await client.post(LOGIN, json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    for response in (*wrong, over):
        assert "database" not in response.text
    assert metric(app, "rate_limit_storage_fallbacks_total") >= 1


async def test_counting_returns_to_redis_when_it_is_back(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ratelimit, "RETRY_STORAGE_AFTER", 0.0)
    email = world.user("dummy").email
    wrong = {"email": email, "password": "wrong password"}
    with redis_server() as server:
        first, second = (worker(settings, sessions, server.url) for _ in range(2))
        async with http(first) as one, http(second) as two:
            assert (await one.post(LOGIN, json=wrong)).status_code == 401
            server.stop()
            # Down: still answered, counted in this process only.
            assert (await one.post(LOGIN, json=wrong)).status_code == 401
            assert first.state.limiter.counting_in_memory
            server.start()
            # Back (same port, empty: it keeps nothing on disk): both count in Redis again, so
            # their failures add up there.
            for client in (two, one, two):
                assert (await client.post(LOGIN, json=wrong)).status_code == 401
            assert not first.state.limiter.counting_in_memory
            results = [
                await client.post(LOGIN, json={"email": email, "password": PASSWORD})
                for client in (one, two)
            ]
    # Redis holds the 3 failures since it came back: the limit is reached for both workers.
    assert [r.status_code for r in results] == [429, 429]


# The API rate limit (SPEC §11) on the same storage: it must survive Redis as the log-in
# limit does, and on the hot path (every request), so under load. `GET /api/` with a token is
# counted per user like any other request and needs no database, so that the load can be
# concurrent on the suite's one test transaction.

API = "/api/"


def limited_worker(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: str, limit: str
) -> FastAPI:
    return worker(settings.model_copy(update={"api_rate_limit": limit}), sessions, redis)


async def load(clients: list[AsyncClient], headers: dict[str, str], n: int) -> list[Response]:
    """`n` requests spread over `clients`, 8 at a time."""
    gate = asyncio.Semaphore(8)

    async def one(i: int) -> Response:
        async with gate:
            return await clients[i % len(clients)].get(API, headers=headers)

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def assert_served(responses: list[Response]) -> None:
    """Every request answered by the application, never a 5xx, each with its count."""
    assert {r.status_code for r in responses} == {200}, [r.text for r in responses][:3]
    assert all("X-RateLimit-Remaining" in r.headers for r in responses)


async def test_redis_stopped_under_load_and_started_again(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    headers_for: Callable[[str | None], dict[str, str]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ratelimit, "RETRY_STORAGE_AFTER", 0.0)
    headers = headers_for("dummy")
    with redis_server() as server:
        apps = [limited_worker(settings, sessions, server.url, "100000/hour") for _ in range(2)]
        async with http(apps[0]) as one, http(apps[1]) as two:
            before = await load([one, two], headers, 20)
            stopping = asyncio.create_task(asyncio.to_thread(server.stop))
            during = await load([one, two], headers, 60)
            await stopping
            down = await load([one, two], headers, 20)
            assert all(app.state.limiter.counting_in_memory for app in apps)
            server.start()
            back = await load([one, two], headers, 20)
            assert not any(app.state.limiter.counting_in_memory for app in apps)
            # Shared again: the two workers' requests land on one count in Redis.
            last = [await client.get(API, headers=headers) for client in (one, two)]
    for responses in (before, during, down, back):
        assert_served(responses)
    first, second = (int(r.headers["X-RateLimit-Remaining"]) for r in last)
    assert second == first - 1
    for app in apps:
        assert metric(app, "rate_limit_storage_fallbacks_total") >= 1
    warnings = [r for r in caplog.records if "rate-limit storage unreachable" in r.getMessage()]
    assert 1 <= len(warnings) <= len(apps)  # at most once a minute per process
    assert all("database" not in r.text for r in during + down)


async def test_a_redis_that_stops_answering_costs_a_request_at_most_the_timeout(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    headers_for: Callable[[str | None], dict[str, str]],
) -> None:
    headers = headers_for("dummy")
    with redis_server() as server:
        app = limited_worker(settings, sessions, server.url, "100000/hour")
        async with http(app) as client:
            assert_served(await load([client], headers, 5))
            server.pause()
            try:
                started = time.monotonic()
                slow = await load([client], headers, 16)
                elapsed = time.monotonic() - started
            finally:
                server.resume()
            assert app.state.limiter.counting_in_memory
    assert_served(slow)
    # One storage timeout (0.25 s) for the requests that met the frozen Redis, then memory.
    assert elapsed < 2 * ratelimit.STORAGE_TIMEOUT + 1.0, elapsed
    assert metric(app, "rate_limit_storage_fallbacks_total") >= 1


async def test_redis_dropping_connections_mid_load_is_not_noticed(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    headers_for: Callable[[str | None], dict[str, str]],
) -> None:
    headers = headers_for("dummy")
    with redis_server() as server:
        apps = [limited_worker(settings, sessions, server.url, "100000/hour") for _ in range(2)]
        async with http(apps[0]) as one, http(apps[1]) as two:
            responses = await load([one, two], headers, 10)
            for _ in range(3):
                killing = asyncio.create_task(
                    asyncio.to_thread(server.cli, "CLIENT", "KILL", "TYPE", "normal")
                )
                responses += await load([one, two], headers, 30)
                await killing
            last = [await client.get(API, headers=headers) for client in (one, two)]
    assert_served(responses)
    # The clients reconnected at once (a retry, no fallback needed to answer): still one count.
    assert not any(app.state.limiter.counting_in_memory for app in apps)
    first, second = (int(r.headers["X-RateLimit-Remaining"]) for r in last)
    assert second == first - 1
