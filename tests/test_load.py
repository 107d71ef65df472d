"""Concurrent writers in several OS processes against two uvicorn workers on PostgreSQL.

`accounts/test_concurrency.py` races requests inside one process; here the races are real:
separate client processes, two server processes with a connection pool each, one database
whose locks and unique constraints decide. Every request is designed so that its effect is
known from its answer alone: a 200 to a rename is one change (the name is new), a no-op PATCH
changes nothing, and a create either made an account (201) or was refused (422).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from typing import Any

import asyncpg
import httpx
import pytest

from tests.databases import Backend, asyncpg_dsn
from tests.live import LiveServer, live_server
from tests.postgres import throwaway_cluster

# Runs once, in `make test`'s PostgreSQL pass: it needs a server of its own to stop or load.
pytestmark = pytest.mark.postgres_only

ACCOUNTS = "/api/v3_0/accounts"
ADMIN = {"email": "test_admin_user@seita.nl", "password": "testtest"}
PROCESSES = 4
TARGETS = 4  # == PROCESSES: process p sends its contested names to target p only
ROUNDS = 5  # each process sends each kind of request this many times: 5 kinds x 5 = 25
STEADY_COLOR = "#123456"  # every target's secondary colour; only no-op PATCHes send it
COLORS = ("#aa0000", "#00aa00")
UPDATED = "Account Updated"


@dataclass(frozen=True, slots=True)
class Planned:
    kind: str  # rename, contested-rename, no-op, create, contested-create
    method: str
    path: str
    json: dict[str, Any]
    target: int | None = None  # index into the targets, for PATCHes


@dataclass(frozen=True, slots=True)
class Outcome:
    planned: Planned
    status: int
    body: Any


def plan(process: int, target_ids: list[int]) -> list[Planned]:
    """Process `process`'s requests, in a shuffled but reproducible order."""
    requests: list[Planned] = []
    for i in range(ROUNDS):
        target = (process + i) % TARGETS
        requests += [
            # A name no one else ever sends: every 200 is a change (and the colour alternates).
            Planned(
                "rename",
                "PATCH",
                f"{ACCOUNTS}/{target_ids[target]}",
                {"name": f"Load p{process} r{i}", "primary_color": COLORS[i % 2]},
                target,
            ),
            # The same name to a different target from every process: one may win at a time.
            Planned(
                "contested-rename",
                "PATCH",
                f"{ACCOUNTS}/{target_ids[process]}",
                {"name": f"Contested {i}"},
                process,
            ),
            # The value every target already has (or nothing at all): 200, and no record.
            Planned(
                "no-op",
                "PATCH",
                f"{ACCOUNTS}/{target_ids[target]}",
                {"secondary_color": STEADY_COLOR} if i % 2 else {},
                target,
            ),
            Planned("create", "POST", ACCOUNTS, {"name": f"New p{process} r{i}"}),
            # Every process creates "New contested i": exactly one of them may succeed.
            Planned("contested-create", "POST", ACCOUNTS, {"name": f"New contested {i}"}),
        ]
    random.Random(process).shuffle(requests)
    return requests


async def send_all(base_url: str, token: str, requests: list[Planned]) -> list[Outcome]:
    headers = {"Authorization": token}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as http:

        async def send(planned: Planned) -> Outcome:
            response = await http.request(planned.method, planned.path, json=planned.json)
            try:
                body = response.json()
            except ValueError:
                body = response.text
            return Outcome(planned, response.status_code, body)

        return list(await asyncio.gather(*(send(planned) for planned in requests)))


def client_process(
    base_url: str, token: str, requests: list[Planned], start: Barrier, results: Any
) -> None:
    """One OS process: wait for the others, then send all its requests at once."""
    start.wait(timeout=30)
    results.put(asyncio.run(send_all(base_url, token, requests)))


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    given = os.environ.get("TEST_DATABASE_URL", "")
    if given.startswith("postgresql"):
        yield given
    else:
        with throwaway_cluster() as url:
            yield url


@pytest.fixture(scope="module")
async def service(server_url: str) -> AsyncIterator[LiveServer]:
    # The load is many requests by few users: the API rate limit must not be what answers.
    async with live_server(
        Backend("postgresql", server_url),
        "--workers",
        "2",
        extra_env={"API_RATE_LIMIT": "100000000/minute"},
    ) as running:
        yield running


async def counts(database_url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return {
            "accounts": await conn.fetchval("SELECT count(*) FROM account"),
            "created": await conn.fetchval(
                "SELECT count(*) FROM audit_log WHERE event = 'Account Created'"
            ),
            "updated": await conn.fetchval(
                "SELECT count(*) FROM audit_log WHERE event LIKE 'Account Updated%'"
            ),
            "duplicate_names": await conn.fetch(
                "SELECT name, count(*) FROM account GROUP BY name HAVING count(*) > 1"
            ),
        }
    finally:
        await conn.close()


async def test_concurrent_writers_in_many_processes_keep_names_unique_and_audit_exact(
    service: LiveServer,
) -> None:
    started = time.monotonic()
    token = await service.token(ADMIN["email"], ADMIN["password"])
    headers = {"Authorization": token}
    async with httpx.AsyncClient(base_url=service.base_url, headers=headers, timeout=30) as http:
        target_ids = []
        for n in range(TARGETS):
            created = await http.post(ACCOUNTS, json={"name": f"Load target {n}"})
            assert created.status_code == 201, created.text
            target_ids.append(created.json()["id"])
            steady = await http.patch(
                f"{ACCOUNTS}/{target_ids[-1]}", json={"secondary_color": STEADY_COLOR}
            )
            assert steady.status_code == 200, steady.text
        before = await counts(service.database_url)
        audit_before = [await audit_events(http, target) for target in target_ids]

        context = multiprocessing.get_context("spawn")
        start = context.Barrier(PROCESSES)
        results = context.Queue()
        clients = [
            context.Process(
                target=client_process,
                args=(service.base_url, token, plan(p, target_ids), start, results),
            )
            for p in range(PROCESSES)
        ]
        for client in clients:
            client.start()
        try:
            # Bounded: a client that never reports makes get() raise queue.Empty.
            outcomes = await asyncio.gather(
                *(asyncio.to_thread(results.get, True, 40) for _ in clients)
            )
        finally:
            for client in clients:
                client.join(timeout=5)
                if client.is_alive():
                    client.kill()
        assert [client.exitcode for client in clients] == [0] * PROCESSES

        done = [outcome for batch in outcomes for outcome in batch]
        assert len(done) == PROCESSES * ROUNDS * 5
        assert not [o for o in done if o.status >= 500], "5xx answers"
        by_kind: dict[str, list[Outcome]] = {}
        for outcome in done:
            by_kind.setdefault(outcome.planned.kind, []).append(outcome)
        expected_codes = {
            "rename": {200},
            "contested-rename": {200, 422},
            "no-op": {200},
            "create": {201},
            "contested-create": {201, 422},
        }
        for kind, allowed in expected_codes.items():
            unexpected = [(o.status, o.body) for o in by_kind[kind] if o.status not in allowed]
            assert not unexpected, (kind, unexpected)
        for outcome in by_kind["no-op"]:
            assert outcome.body["secondary_color"] == STEADY_COLOR
        # Each contested create name was sent by every process; exactly one got it.
        winners = Counter(
            o.planned.json["name"] for o in by_kind["contested-create"] if o.status == 201
        )
        assert winners == {f"New contested {i}": 1 for i in range(ROUNDS)}

        # Audit records: one per effective change, none for a no-op or a refused request.
        changes = Counter(
            o.planned.target
            for o in [*by_kind["rename"], *by_kind["contested-rename"]]
            if o.status == 200
        )
        for n, target in enumerate(target_ids):
            events = await audit_events(http, target)
            assert events[: len(audit_before[n])] == audit_before[n]
            new = events[len(audit_before[n]) :]
            assert all(event.startswith(UPDATED) for event in new), new
            assert len(new) == changes[n], (target, new)
        after = await counts(service.database_url)
        assert after["updated"] - before["updated"] == sum(changes.values())
        creates = sum(o.status == 201 for o in done)
        assert after["accounts"] - before["accounts"] == creates
        assert after["created"] - before["created"] == creates
        assert after["duplicate_names"] == []

        # The accounts are in a state some sequence of the accepted changes produced.
        final = {a["id"]: a for a in (await http.get(ACCOUNTS)).json()}
        for n, target in enumerate(target_ids):
            accepted = {
                o.planned.json["name"]
                for o in [*by_kind["rename"], *by_kind["contested-rename"]]
                if o.status == 200 and o.planned.target == n
            }
            assert final[target]["name"] in accepted | {f"Load target {n}"}
            assert final[target]["secondary_color"] == STEADY_COLOR
    assert time.monotonic() - started < 60


async def audit_events(http: httpx.AsyncClient, account_id: int) -> list[str]:
    response = await http.get(f"{ACCOUNTS}/{account_id}/auditlog")
    assert response.status_code == 200, response.text
    return [entry["event"] for entry in response.json()]
