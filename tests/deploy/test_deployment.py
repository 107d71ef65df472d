"""The multi-machine story, proven with the parts an operator runs (tests/deploy/topology.py):
HAProxy in front of two instances of two workers each, PgBouncer in transaction pooling mode,
Redis for the shared limits, PostgreSQL with its durable defaults.

One topology serves the module; a test that stops an instance starts it again. The tests use
different users, so that their API rate-limit counts don't meet.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.deploy.topology import Topology, topology

pytestmark = pytest.mark.postgres_only  # brings its own PostgreSQL: run once, in that pass

LIMIT, WINDOW = 300, 30  # API_RATE_LIMIT of the instances: 300 per 30 seconds
# A writer's pace under SIGKILL: at most 180 writes in its 6 s, so that the admin's, with the
# reads that check them, stay within the limit however fast the service answers (unpaced, a
# fast enough service let the admin's writes use up the window and its checks met 429).
WRITE_EVERY_S = 1 / 30
LOGIN = "/api/requestAuthToken"
ACCOUNTS = "/api/v3_0/accounts"
USERS = "/api/v3_0/users"
PASSWORD = "testtest"
EMAILS = {
    "admin": "test_admin_user@seita.nl",
    "prosumer": "test_prosumer_user@seita.nl",
    "prosumer_3": "test_prosumer_user_3@seita.nl",
    "dummy": "test_dummy_user_3@seita.nl",
    "consultant": "test_consultant@seita.nl",
    "prosumer_admin": "test_prosumer_user_2@seita.nl",
    "dummy_admin": "test_dummy_account_admin@seita.nl",
    "supplier_admin": "test_supplier_account_admin@seita.nl",
    "multi_role_admin": "multi_role_account_admin@seita.nl",
    "client_admin": "test_consultant_client_admin@seita.nl",
}


@pytest.fixture(scope="module")
def deployed() -> Iterator[Topology]:
    with topology(f"{LIMIT}/{WINDOW} seconds") as running:
        yield running


def client(base_url: str, address: str = "127.0.0.2", **options: Any) -> httpx.AsyncClient:
    """A caller connecting from `address` (a loopback address of its own)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=base_url, transport=transport, timeout=30, **options)


async def token(http: httpx.AsyncClient, who: str) -> dict[str, str]:
    response = await http.post(LOGIN, json={"email": EMAILS[who], "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": response.json()["auth_token"]}


def served(deployed: Topology) -> dict[str, int]:
    return {name: int(row["stot"]) for name, row in deployed.balancer.servers().items()}


async def wait_for_window(seconds_needed: float) -> None:
    """Sleep into the next rate-limit window if the current one ends within `seconds_needed`
    (windows are aligned to the clock, so the test knows where they end)."""
    left = WINDOW - time.time() % WINDOW
    if left < seconds_needed:
        await asyncio.sleep(left + 0.05)


async def test_a_users_rate_limit_is_shared_by_both_instances(deployed: Topology) -> None:
    async with client(deployed.balancer.base_url) as http:
        headers = await token(http, "prosumer")
        before = served(deployed)
        await wait_for_window(15)
        gate = asyncio.Semaphore(16)

        async def one() -> httpx.Response:
            async with gate:
                return await http.get("/api/", headers=headers)

        answers = await asyncio.gather(*(one() for _ in range(LIMIT + 30)))
    after = served(deployed)
    statuses = [r.status_code for r in answers]
    # The log-in counted against the address, not the user: the user has LIMIT requests.
    assert statuses.count(200) == LIMIT, statuses
    assert statuses.count(429) == 30
    # One count, in Redis: every remaining value from LIMIT - 1 down to 0, once each.
    left = sorted(int(r.headers["X-RateLimit-Remaining"]) for r in answers if r.status_code == 200)
    assert left == list(range(LIMIT))
    # ...though both instances answered.
    assert all(after[name] - before[name] >= LIMIT // 10 for name in ("app1", "app2")), (
        before,
        after,
    )


async def test_a_user_deactivated_on_one_instance_is_refused_by_the_other_at_once(
    deployed: Topology,
) -> None:
    first, second = (instance.base_url for instance in deployed.instances.values())
    async with client(first) as one, client(second) as two:
        admin = await token(one, "admin")
        user = await token(two, "prosumer_3")
        me = (await two.get(USERS, headers=user)).json()
        user_id = next(u["id"] for u in me if u["email"] == EMAILS["prosumer_3"])
        assert (await two.get(ACCOUNTS, headers=user)).status_code == 200
        deactivated = await one.patch(f"{USERS}/{user_id}", json={"active": False}, headers=admin)
        assert deactivated.status_code == 200, deactivated.text
        refused = await two.get(ACCOUNTS, headers=user)
        assert refused.status_code == 401
        login = await two.post(LOGIN, json={"email": EMAILS["prosumer_3"], "password": PASSWORD})
        assert login.status_code == 401
        back = await one.patch(f"{USERS}/{user_id}", json={"active": True}, headers=admin)
        assert back.status_code == 200


async def test_the_client_address_is_the_balancers_word_and_never_the_clients(
    deployed: Topology,
) -> None:
    """Counted per address (no token): through HAProxy, two callers have counts of their own
    and a forged X-Forwarded-For changes nothing; straight to an instance (no trusted proxy in
    between) the header is ignored too."""
    balancer = deployed.balancer.base_url
    await wait_for_window(5)
    async with client(balancer, "127.0.0.3") as a, client(balancer, "127.0.0.4") as b:
        first = await a.get("/api/")
        forged = await a.get("/api/", headers={"X-Forwarded-For": "127.0.0.4"})
        other = await b.get("/api/")
    remaining = [int(r.headers["X-RateLimit-Remaining"]) for r in (first, forged, other)]
    assert remaining[1] == remaining[0] - 1  # the forged header did not move a's count to b
    assert remaining[2] == LIMIT - 1  # b's first request: a count of its own
    direct = deployed.instances["app1"].base_url
    async with client(direct, "127.0.0.5") as c:
        answers = [
            await c.get("/api/", headers={"X-Forwarded-For": f"198.51.100.{n}"}) for n in (1, 2)
        ]
    assert [int(r.headers["X-RateLimit-Remaining"]) for r in answers] == [LIMIT - 1, LIMIT - 2]
    # Failed log-ins per address: the balancer's word again (LOGIN_FAILURE_LIMIT 10/minute).
    async with client(balancer, "127.0.0.6") as d, client(balancer, "127.0.0.7") as e:
        for n in range(10):
            wrong = {"email": f"nobody{n}@example.com", "password": "wrong"}
            assert (await d.post(LOGIN, json=wrong)).status_code == 401
        over = await d.post(
            LOGIN,
            json={"email": "nobody10@example.com", "password": "wrong"},
            headers={"X-Forwarded-For": "127.0.0.7"},
        )
        elsewhere = await e.post(LOGIN, json={"email": "nobody@example.com", "password": "x"})
    assert over.status_code == 429
    assert elsewhere.status_code == 401


async def test_postgresql_restarting_behind_pgbouncer_is_survived(deployed: Topology) -> None:
    async with client(deployed.balancer.base_url) as http:
        headers = await token(http, "dummy")
        assert (await http.get(ACCOUNTS, headers=headers)).status_code == 200
        await asyncio.to_thread(deployed.cluster.restart)
        deadline = time.monotonic() + 20
        statuses: list[int] = []
        while time.monotonic() < deadline:
            response = await http.get(ACCOUNTS, headers=headers)
            statuses.append(response.status_code)
            if response.status_code != 200:
                # While it comes back: the service's 503 or HAProxy's, in the envelope.
                assert response.status_code == 503, response.text
                assert response.json()["status"] == "SERVICE_UNAVAILABLE"
            elif statuses[-3:] == [200, 200, 200]:
                break
            await asyncio.sleep(0.2)
    assert statuses[-3:] == [200, 200, 200], statuses
    # Nothing was restarted: the same service processes answer.
    assert all(
        i.process is not None and i.process.poll() is None for i in deployed.instances.values()
    )


async def test_pgbouncer_restarting_is_survived(deployed: Topology) -> None:
    """PgBouncer away for two seconds: callers get 503s in the envelope (from the service, or
    from HAProxy once both instances report not ready), then service resumes by itself."""
    async with client(deployed.balancer.base_url) as http:
        headers = await token(http, "dummy_admin")
        assert (await http.get(ACCOUNTS, headers=headers)).status_code == 200
        restarting = asyncio.create_task(asyncio.to_thread(deployed.bouncer.restart, 2.0))
        statuses: list[int] = []
        while not restarting.done() or statuses[-3:] != [200, 200, 200]:
            response = await http.get(ACCOUNTS, headers=headers)
            statuses.append(response.status_code)
            if response.status_code != 200:
                assert response.status_code == 503, response.text
                assert response.json()["status"] == "SERVICE_UNAVAILABLE"
            assert len(statuses) < 500, statuses
            await asyncio.sleep(0.1)
        await restarting
    assert 503 in statuses  # it was away, and said so
    assert all(
        i.process is not None and i.process.poll() is None for i in deployed.instances.values()
    )


async def test_sigterm_drains_in_flight_requests(deployed: Topology) -> None:
    """Slow requests (log-ins: argon2id) in flight on both instances when one gets SIGTERM:
    every one of them is answered, and requests sent while it drains go to the other."""
    app1 = deployed.instances["app1"]
    async with client(deployed.balancer.base_url) as http:
        body = {"email": EMAILS["consultant"], "password": PASSWORD}
        in_flight = [asyncio.create_task(http.post(LOGIN, json=body)) for _ in range(24)]
        await asyncio.sleep(0.3)
        app1.signal(signal.SIGTERM)
        during = [await http.get("/api/") for _ in range(10)]
        answers = await asyncio.gather(*in_flight)
        exited = await asyncio.to_thread(app1.wait, 30)
    assert [r.status_code for r in answers] == [200] * 24, [r.text for r in answers]
    assert [r.status_code for r in during] == [200] * 10
    assert exited in (0, -signal.SIGTERM)
    await asyncio.to_thread(deployed.restart, "app1")


@dataclass
class Writer:
    """One caller PATCHing one account over and over, each time to a new value."""

    who: str
    account_id: int
    sent: int = 0
    acknowledged: list[int] = field(default_factory=list)
    acknowledged_at: list[float] = field(default_factory=list)
    failed: list[tuple[float, int | str]] = field(default_factory=list)


def version(etag: str) -> int:
    return int(etag.strip('"').rsplit("-", 1)[1])


async def audit(http: httpx.AsyncClient, account_id: int, headers: dict[str, str]) -> list[Any]:
    response = await http.get(
        f"{ACCOUNTS}/{account_id}/auditlog", params={"page": 1, "per_page": 1000}, headers=headers
    )
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def test_sigkill_under_write_load_loses_no_acknowledged_write(deployed: Topology) -> None:
    """Six callers (an admin and five account-admins, each on an account of its own) write
    30 times a second each; one instance is SIGKILLed in the middle. Every acknowledged PATCH is in
    the audit log, and no audit record is without its change (the account's version moved once
    per record), and the balancer routes on to the other instance."""
    async with client(deployed.balancer.base_url) as http:
        admin = await token(http, "admin")
        accounts = {a["name"]: a["id"] for a in (await http.get(ACCOUNTS, headers=admin)).json()}
        mine = {
            "admin": "Test Empty Account",
            "prosumer_admin": "Test Prosumer Account",
            "dummy_admin": "Test Dummy Account",
            "supplier_admin": "Test Supplier Account",
            "multi_role_admin": "Multi Role Account",
            "client_admin": "Test ConsultancyClient Account",
        }
        writers = [Writer(who, accounts[name]) for who, name in mine.items()]
        tokens = {w.who: await token(http, w.who) for w in writers}
        start = {}
        for w in writers:
            response = await http.get(f"{ACCOUNTS}/{w.account_id}", headers=admin)
            start[w.who] = (
                version(response.headers["ETag"]),
                len(await audit(http, w.account_id, admin)),
            )
        stop_at = time.monotonic() + 6.0
        killed_at = time.monotonic() + 2.0

        async def write(w: Writer) -> None:
            next_at = time.monotonic()
            while time.monotonic() < stop_at:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at += WRITE_EVERY_S
                w.sent += 1
                body = {"attributes": {"writer": w.who, "seq": w.sent}}
                try:
                    response = await http.patch(
                        f"{ACCOUNTS}/{w.account_id}", json=body, headers=tokens[w.who]
                    )
                except httpx.TransportError as exc:
                    w.failed.append((time.monotonic(), type(exc).__name__))
                    continue
                if response.status_code == 200:
                    w.acknowledged.append(w.sent)
                    w.acknowledged_at.append(time.monotonic())
                else:
                    w.failed.append((time.monotonic(), response.status_code))

        async def kill() -> None:
            await asyncio.sleep(killed_at - time.monotonic())
            deployed.instances["app1"].signal(signal.SIGKILL)

        await asyncio.gather(kill(), *(write(w) for w in writers))
        for w in writers:
            response = await http.get(f"{ACCOUNTS}/{w.account_id}", headers=admin)
            v0, records_before = start[w.who]
            records = (await audit(http, w.account_id, admin))[records_before:]
            updates = [r for r in records if r["event"].startswith("Account Updated")]
            assert len(records) == len(updates)
            # No audit record without its change, no change without its record.
            assert version(response.headers["ETag"]) - v0 == len(updates), w
            # Every acknowledged write is there (and at most the ones sent).
            assert len(w.acknowledged) <= len(updates) <= w.sent, w
            assert response.json()["attributes"]["seq"] >= w.acknowledged[-1]
            # Whatever failed, failed around the kill, as a 502/503 or a dropped connection.
            for at, what in w.failed:
                assert killed_at - 0.5 <= at <= killed_at + 3.0, (w.who, at - killed_at, what)
                assert what in (502, 503) or isinstance(what, str), what
            # The balancer routed on: this writer kept being answered after the kill.
            assert any(at > killed_at + 3.0 for at in w.acknowledged_at), w
    assert deployed.balancer.servers()["app1"]["status"].startswith("DOWN")
    await asyncio.to_thread(deployed.restart, "app1")
