"""Faults a deployed service meets: the database going away and coming back, and SIGTERM.

These tests run a real uvicorn process against a PostgreSQL cluster of their own, whichever
backend the rest of the suite uses: only a server the test owns can be stopped and started again.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.databases import Backend
from tests.live import LiveServer, live_server
from tests.pgcontrol import StoppableCluster

# Runs once, in `make test`'s PostgreSQL pass: it needs a server of its own to stop or load.
pytestmark = pytest.mark.postgres_only

ACCOUNTS = "/api/v3_0/accounts"
HEALTH = "/api/v3_0/health/ready"
LOGIN = "/api/requestAuthToken"
ADMIN = {"email": "test_admin_user@seita.nl", "password": "testtest"}
CONNECT_TIMEOUT = 2  # DB_CONNECT_TIMEOUT of the service under test, seconds
STATEMENT_TIMEOUT = 4  # DB_STATEMENT_TIMEOUT of the service under test, seconds
ANSWER_WITHIN = 10.0  # seconds any request may take while the database is down
RECOVER_WITHIN = 20.0  # seconds the service may take to notice the database is back


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    json: dict[str, Any] | None = None
    authorized: bool = True


@pytest.fixture(scope="module")
def cluster() -> Iterator[StoppableCluster]:
    with StoppableCluster() as running:
        yield running


@pytest.fixture(scope="module")
async def service(cluster: StoppableCluster) -> AsyncIterator[LiveServer]:
    backend = Backend("postgresql", cluster.url)
    async with live_server(
        backend,
        extra_env={
            "DB_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
            "DB_STATEMENT_TIMEOUT": str(STATEMENT_TIMEOUT),
        },
    ) as srv:
        yield srv


def calls(account_id: int, label: str) -> list[Call]:
    """One call per endpoint, each of which needs the database; `label` makes names unique."""
    return [
        Call("GET", ACCOUNTS),
        Call("GET", f"{ACCOUNTS}?page=1&per_page=5"),
        Call("GET", f"{ACCOUNTS}/{account_id}"),
        Call("PATCH", f"{ACCOUNTS}/{account_id}", {"name": f"Renamed during {label}"}),
        Call("POST", ACCOUNTS, {"name": f"Created during {label}"}),
        Call("GET", f"{ACCOUNTS}/{account_id}/auditlog"),
        Call("GET", "/api/v3_0/users"),
        Call("GET", f"/api/v3_0/users?account_id={account_id}"),
        Call("POST", LOGIN, ADMIN, authorized=False),
    ]


async def timed(http: httpx.AsyncClient, call: Call, token: str) -> tuple[httpx.Response, float]:
    headers = {"Authorization": token} if call.authorized else {}
    started = time.monotonic()
    response = await http.request(call.method, call.path, json=call.json, headers=headers)
    return response, time.monotonic() - started


async def account_named(
    http: httpx.AsyncClient, headers: dict[str, str], name: str
) -> dict[str, Any]:
    accounts = (await http.get(ACCOUNTS, headers=headers)).json()
    return next(a for a in accounts if a["name"] == name)


async def wait_for_health(http: httpx.AsyncClient, status: int) -> float:
    """Poll readiness until it answers `status`; how long that took."""
    started = time.monotonic()
    while time.monotonic() - started < RECOVER_WITHIN:
        try:
            if (await http.get(HEALTH)).status_code == status:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"readiness did not answer {status} within {RECOVER_WITHIN} s")


def assert_unavailable(call: Call, response: httpx.Response, took: float) -> None:
    """A prompt 503 in the common envelope (health answers its own body)."""
    assert took < ANSWER_WITHIN, (call, took)
    assert response.status_code == 503, (call, response.text)
    if call.path == HEALTH:
        assert response.json() == {"database_status": False}
        return
    body = response.json()
    assert body == {"message": body["message"], "status": "SERVICE_UNAVAILABLE"}, call
    assert isinstance(body["message"], str)
    assert response.headers["FlexMeasures-Version"]


async def assert_recovered(
    http: httpx.AsyncClient, service: LiveServer, account_id: int, token: str, label: str
) -> None:
    """The process that saw the outage serves every endpoint again, with its old tokens."""
    await wait_for_health(http, 200)
    assert (await http.get(HEALTH)).json() == {"database_status": True}
    assert service.process is not None
    assert service.process.returncode is None
    for call in calls(account_id, label):
        response, _took = await timed(http, call, token)
        expected = 201 if call.method == "POST" and call.path == ACCOUNTS else 200
        assert response.status_code == expected, (call, response.text)


async def test_stopped_database_is_a_prompt_503_and_the_same_process_recovers(
    service: LiveServer, cluster: StoppableCluster
) -> None:
    token = await service.token(ADMIN["email"], ADMIN["password"])
    headers = {"Authorization": token}
    # The client's own timeout is far above the bound, so a hang shows up as a slow answer.
    async with httpx.AsyncClient(base_url=service.base_url, timeout=60) as http:
        account = await account_named(http, headers, "Test Prosumer Account")
        auditlog = f"{ACCOUNTS}/{account['id']}/auditlog"
        log_before = (await http.get(auditlog, headers=headers)).json()
        assert (await http.get(HEALTH)).json() == {"database_status": True}

        cluster.stop()
        try:
            # Twice: first with a pool of connections the server has just closed, then with
            # no connections at all.
            for _round in range(2):
                for call in [
                    *calls(account["id"], "a stop"),
                    Call("GET", HEALTH, authorized=False),
                ]:
                    assert_unavailable(call, *await timed(http, call, token))

            # Many at once: more than the pool holds; none may hang or fail otherwise.
            started = time.monotonic()
            burst = await asyncio.gather(
                *(http.get(ACCOUNTS, headers=headers) for _ in range(30)),
                *(http.get(HEALTH) for _ in range(10)),
            )
            assert {r.status_code for r in burst} == {503}
            assert time.monotonic() - started < ANSWER_WITHIN
        finally:
            cluster.start()

        await assert_recovered(http, service, account["id"], token, "a stop")
        # What was refused during the outage left no trace: the rename only happened now.
        log = (await http.get(auditlog, headers=headers)).json()
        assert log[: len(log_before)] == log_before
        assert [entry["event"] for entry in log[len(log_before) :]] == [
            "Account Updated, Field: name"
        ]


async def test_unresponsive_database_is_a_prompt_503_and_the_same_process_recovers(
    service: LiveServer, cluster: StoppableCluster
) -> None:
    """A server that keeps its connections open but answers nothing (a partition, a frozen
    host): the pooled connections' checks and new connections must both give up in time."""
    token = await service.token(ADMIN["email"], ADMIN["password"])
    headers = {"Authorization": token}
    async with httpx.AsyncClient(base_url=service.base_url, timeout=60) as http:
        account = await account_named(http, headers, "Test Supplier Account")
        # Fill the pool with connections that will go silent.
        warm = await asyncio.gather(*(http.get(ACCOUNTS, headers=headers) for _ in range(8)))
        assert {r.status_code for r in warm} == {200}

        frozen = cluster.pause()
        try:
            todo = [*calls(account["id"], "a freeze"), Call("GET", HEALTH, authorized=False)]
            answers = await asyncio.gather(*(timed(http, call, token) for call in todo))
            for call, (response, took) in zip(todo, answers, strict=True):
                assert_unavailable(call, response, took)
        finally:
            cluster.resume(frozen)

        await assert_recovered(http, service, account["id"], token, "a freeze")


async def test_sigterm_finishes_requests_in_flight_then_exits(
    cluster: StoppableCluster,
) -> None:
    backend = Backend("postgresql", cluster.url)
    async with live_server(backend) as server:
        process = server.process
        assert process is not None
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30, limits=limits) as http:
            # Log-ins hash a password (argon2, tens of ms each in a small thread pool), so
            # twenty of them keep the server busy well after the first one has answered.
            requests = [asyncio.create_task(http.post(LOGIN, json=ADMIN)) for _ in range(20)]
            await asyncio.wait(requests, return_when=asyncio.FIRST_COMPLETED)
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            in_flight = sum(not task.done() for task in requests)
            results = await asyncio.gather(*requests, return_exceptions=True)
            returncode = await asyncio.wait_for(process.wait(), 15)
            exited_after = time.monotonic() - signalled

    # Here (two cores) nearly all are; a machine with many cores may hash them all at once.
    assert in_flight >= 1, "no request was in flight at SIGTERM: nothing was tested"
    failures = [r for r in results if not isinstance(r, httpx.Response)]
    # A connection refused was never accepted; anything else (a reset, a connection closed
    # without an answer) means an accepted request was dropped.
    assert all(isinstance(f, httpx.ConnectError) for f in failures), failures
    answered = [r for r in results if isinstance(r, httpx.Response)]
    assert [r.status_code for r in answered] == [200] * len(answered)
    assert all(r.json()["auth_token"] for r in answered)
    assert len(answered) >= in_flight
    # uvicorn drains, runs the lifespan shutdown, then re-raises the signal it caught (since
    # 0.29) so that a supervisor sees how it ended: 0 or "terminated by SIGTERM" are both clean;
    # a forced exit after a timeout, or a crash, is neither.
    assert returncode in (0, -signal.SIGTERM), returncode
    assert exited_after < 15
