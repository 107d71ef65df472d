"""Several workers share one log-in failure count when the limiter's storage is Redis: the
test starts a Redis server of its own and two apps (two "workers") that point at it."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import get_session
from app.main import create_app
from app.settings import Settings
from tests.live import free_port
from tests.world import PASSWORD, World

LOGIN = "/api/requestAuthToken"


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is missing: `apt-get install redis-server` (make system-deps)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="accounts-redis-")
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):  # at most ~10 s
            probe = subprocess.run(
                ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, check=False
            )
            if probe.stdout.strip() == "PONG":
                break
            if process.poll() is not None:
                pytest.fail("redis-server exited during start-up")
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def worker(settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: str) -> FastAPI:
    app = create_app(
        settings.model_copy(
            update={"login_failure_limit": "3/minute", "rate_limit_storage_url": redis}
        )
    )

    async def session_per_request() -> AsyncIterator[AsyncSession]:
        async with sessions() as session:
            yield session

    app.dependency_overrides[get_session] = session_per_request
    return app


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
