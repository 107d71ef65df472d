"""GET /api/, the FlexMeasures-Version header, and readiness (SPEC §3)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr
from starlette.routing import Mount, Route

from app import __version__
from app.main import GC_YOUNG_THRESHOLD, create_app
from app.settings import Settings
from tests.conftest import SECRET

Headers = Callable[[str | None], dict[str, str]]
READY = "/api/v3_0/health/ready"
UNREACHABLE = "postgresql+asyncpg://nobody@127.0.0.1:1/none"


async def test_api_info(client: AsyncClient) -> None:
    response = await client.get("/api/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"message", "versions", "server_version", "flexmeasures_version"}
    assert isinstance(body["message"], str)
    assert body["message"]
    assert body["versions"] == ["v3_0"]
    assert body["server_version"] == __version__
    assert body["flexmeasures_version"] == "1.0.1"


async def test_api_info_is_public_and_ignores_a_bad_token(client: AsyncClient) -> None:
    response = await client.get("/api/", headers={"Authorization": "garbage"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "auth", "body", "status"),
    [
        ("GET", "/api/", None, {}, 200),
        ("GET", "/api/v3_0/health/ready", None, {}, 200),
        ("GET", "/api/v3_0/openapi.json", None, {}, 200),
        ("GET", "/api/v3_0/accounts", "prosumer", {}, 200),
        ("GET", "/api/v3_0/accounts", None, {}, 401),
        ("GET", "/api/v3_0/accounts/987654", "admin", {}, 404),
        ("GET", "/api/v3_0/users/987654", "admin", {}, 404),
        ("GET", "/api/v3_0/accounts?page=0", "admin", {}, 422),
        ("GET", "/nowhere", None, {}, 404),
        ("DELETE", "/api/", None, {}, 405),
        ("POST", "/api/requestAuthToken", None, {"content": b"nope"}, 400),
        ("POST", "/api/requestAuthToken", None, {"json": {}}, 422),
        ("POST", "/api/requestAuthToken", None, {"json": {"email": "x@y.z", "password": "p"}}, 401),
    ],
)
async def test_every_response_carries_the_flexmeasures_version_header(
    client: AsyncClient,
    headers_for: Headers,
    method: str,
    path: str,
    auth: str | None,
    body: dict[str, Any],
    status: int,
) -> None:
    response = await client.request(method, path, headers=headers_for(auth), **body)
    assert response.status_code == status
    assert response.headers.get_list("FlexMeasures-Version") == ["1.0.1"]


async def test_ready_when_the_database_answers(client: AsyncClient) -> None:
    response = await client.get(READY)
    assert response.status_code == 200
    assert response.json() == {"database_status": True}


async def test_ready_is_public_and_ignores_a_bad_token(client: AsyncClient) -> None:
    response = await client.get(READY, headers={"Authorization": "garbage"})
    assert response.status_code == 200


@pytest.fixture
async def unreachable() -> AsyncIterator[FastAPI]:
    """An app whose database does not exist: nothing listens on port 1."""
    app = create_app(
        Settings(
            app_env="test",
            database_url=UNREACHABLE,
            db_connect_timeout=1,
            secret_key=SecretStr(SECRET),
        )
    )
    yield app
    await app.state.engine.dispose()


async def test_not_ready_when_the_database_cannot_be_reached(unreachable: FastAPI) -> None:
    async with AsyncClient(
        transport=ASGITransport(app=unreachable), base_url="http://test"
    ) as http:
        response = await http.get(READY)
    assert response.status_code == 503
    assert response.json() == {"database_status": False}
    assert response.headers["FlexMeasures-Version"] == "1.0.1"


async def test_api_info_needs_no_database(unreachable: FastAPI) -> None:
    async with AsyncClient(
        transport=ASGITransport(app=unreachable), base_url="http://test"
    ) as http:
        response = await http.get("/api/")
    assert response.status_code == 200
    assert response.json()["versions"] == ["v3_0"]


async def test_start_up_takes_what_exists_out_of_full_garbage_collections(
    unreachable: FastAPI,
) -> None:
    """The worker's long-lived objects are frozen when it starts (gc.freeze), so the collector's
    full collections don't walk them: those walks were the p99 of a read (docs/BENCHMARKS.md)."""
    gc.unfreeze()
    try:
        async with unreachable.router.lifespan_context(unreachable):
            assert gc.get_freeze_count() > 10_000  # the modules, the app and its schemas
    finally:
        gc.unfreeze()


async def test_the_young_generation_is_collected_less_often_while_serving(
    unreachable: FastAPI,
) -> None:
    """While the app serves, a young collection waits for GC_YOUNG_THRESHOLD net allocations
    (CPython's 700 made full collections, which pause every request in flight, the tail of a
    read: docs/BENCHMARKS.md); the process's own thresholds come back when it stops."""
    before = gc.get_threshold()
    try:
        async with unreachable.router.lifespan_context(unreachable):
            assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
        assert gc.get_threshold() == before
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_every_operation_is_served_by_the_apps_own_router(unreachable: FastAPI) -> None:
    """No router node between the app and an operation (app.main.include_flat): FastAPI matches
    a request through each node it keeps for an included router, ~9 % of a `get_one`'s
    instructions at our two levels (docs/BENCHMARKS.md). Docs and static assets aside, every
    route the app holds is an API operation of its own."""
    kinds = {type(route) for route in unreachable.routes}
    assert kinds <= {APIRoute, Route, Mount}, kinds
    operations = [route for route in unreachable.routes if isinstance(route, APIRoute)]
    paths = {route.path for route in operations}
    assert {"/api/", "/api/requestAuthToken", "/api/v3_0/accounts/{id}"} <= paths
    assert {"/api/v3_0/users/{id}", "/api/v3_0/health/ready"} <= paths
    # The operations are the app's own: its dependency overrides reach them.
    assert all(route.dependency_overrides_provider is unreachable for route in operations)
