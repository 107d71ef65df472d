"""Concurrent writes through the real app, with real commits, on a database of their own.

The rest of the suite runs each test in a transaction that is rolled back; that cannot show what
happens when requests race each other to commit. Here the app runs as deployed (no session
override, its own engine and pool), so every request commits for real and the database's locks
and unique constraints decide the races.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from pydantic import SecretStr

from app.accounts import repository as accounts_repository
from app.accounts import service as accounts_service
from app.accounts.schemas import AccountPatch, AccountRead
from app.auth import tokens
from app.errors import Forbidden, InvalidInput, PreconditionFailed
from app.main import create_app
from app.settings import Settings
from app.users import repository as users_repository
from tests.conftest import SECRET
from tests.databases import Backend, create_database, drop_database, migrate
from tests.world import World, seed

URL = "/api/v3_0/accounts"


@dataclass(frozen=True, slots=True)
class Live:
    app: FastAPI
    world: World

    def headers(self, key: str) -> dict[str, str]:
        token = tokens.issue_token(self.world.user(key).id, 1, key=SECRET, max_age=3600)
        return {"Authorization": token}


@pytest.fixture(scope="module")
async def live(backend: Backend) -> AsyncIterator[Live]:
    """A fresh, migrated, seeded database and an app that commits to it for real."""
    url = await create_database(backend)
    try:
        await migrate(url)
        app = create_app(
            Settings(
                app_env="test",
                database_url=url,
                secret_key=SecretStr(SECRET),
                token_max_age=3600,
                db_pool_size=10,
                db_max_overflow=10,
            )
        )
        try:
            yield Live(app=app, world=await seed(app.state.engine))
        finally:
            await app.state.engine.dispose()
    finally:
        await drop_database(backend, url)


@pytest.fixture
async def http(live: Live) -> AsyncIterator[AsyncClient]:
    assert not live.app.dependency_overrides  # real sessions, real commits
    async with AsyncClient(transport=ASGITransport(app=live.app), base_url="http://test") as client:
        yield client


async def new_account(http: AsyncClient, live: Live, name: str) -> int:
    response = await http.post(URL, json={"name": name}, headers=live.headers("admin"))
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def audit_events(http: AsyncClient, live: Live, account_id: int) -> list[str]:
    response = await http.get(f"{URL}/{account_id}/auditlog", headers=live.headers("admin"))
    assert response.status_code == 200
    return [record["event"] for record in response.json()]


async def names_like(http: AsyncClient, live: Live, name: str) -> list[str]:
    response = await http.get(URL, params={"filter": f'"{name}"'}, headers=live.headers("admin"))
    return [account["name"] for account in response.json()]


def statuses(responses: list[Response]) -> list[int]:
    return sorted(response.status_code for response in responses)


async def test_concurrent_patches_of_one_account_all_apply_whole(
    http: AsyncClient, live: Live
) -> None:
    account_id = await new_account(http, live, "Contended")
    renames = [
        {"name": f"Contended {i}", "primary_color": f"#{i:02d}{i:02d}{i:02d}"} for i in range(10)
    ]
    # Five requests that all set the same value: whichever runs first changes it, the others
    # change nothing, so they add exactly one record between them.
    same_colour = [{"secondary_color": "#abcdef"}] * 5
    bodies: list[dict[str, Any]] = [*renames, *same_colour]
    responses = await asyncio.gather(
        *(
            http.patch(f"{URL}/{account_id}", json=body, headers=live.headers("admin"))
            for body in bodies
        )
    )
    assert statuses(responses) == [200] * len(bodies), [r.text for r in responses]
    for body, response in zip(bodies, responses, strict=True):
        assert response.json().items() >= body.items()  # each answers its own change

    # Ten different states: ten different versions, so no two renames read the same version.
    rename_etags = [response.headers["ETag"] for response in responses[: len(renames)]]
    assert len(set(rename_etags)) == len(renames)

    final = await http.get(f"{URL}/{account_id}", headers=live.headers("admin"))
    state = final.json()
    # The final state is one request's, whole: its name and colour come from the same body.
    winner = next(i for i, body in enumerate(renames) if body["name"] == state["name"])
    assert state["primary_color"] == renames[winner]["primary_color"]
    assert state["secondary_color"] == "#abcdef"
    # ... and its ETag is the one the last effective change answered with.
    assert final.headers["ETag"] in {response.headers["ETag"] for response in responses}

    events = await audit_events(http, live, account_id)
    assert events[0] == "Account Created"
    updates = events[1:]
    assert len(updates) == len(renames) + 1
    assert updates.count("Account Updated, Field: secondary_color") == 1
    assert sum(
        event.startswith("Account Updated, Field: name, primary_color") for event in updates
    ) == (len(renames))


async def test_concurrent_patches_with_the_same_if_match_let_exactly_one_through(
    http: AsyncClient, live: Live
) -> None:
    account_id = await new_account(http, live, "Guarded")
    read = await http.get(f"{URL}/{account_id}", headers=live.headers("admin"))
    etag = read.headers["ETag"]
    headers = {**live.headers("admin"), "If-Match": etag}
    responses = await asyncio.gather(
        *(
            http.patch(f"{URL}/{account_id}", json={"name": f"Guarded {i}"}, headers=headers)
            for i in range(8)
        )
    )
    assert statuses(responses) == [200] + [412] * 7, [r.text for r in responses]
    (winner,) = [response for response in responses if response.status_code == 200]
    for response in responses:
        if response.status_code == 412:
            assert response.json()["status"] == "PRECONDITION_FAILED"
    final = await http.get(f"{URL}/{account_id}", headers=live.headers("admin"))
    assert final.json()["name"] == winner.json()["name"]
    assert final.headers["ETag"] == winner.headers["ETag"] != etag
    assert await audit_events(http, live, account_id) == [
        "Account Created",
        "Account Updated, Field: name",
    ]


@pytest.mark.parametrize("racers", [2, 6])
async def test_concurrent_creates_of_one_name_make_one_account(
    http: AsyncClient, live: Live, racers: int
) -> None:
    name = f"Created Once By {racers}"
    responses = await asyncio.gather(
        *(http.post(URL, json={"name": name}, headers=live.headers("admin")) for _ in range(racers))
    )
    assert statuses(responses) == [201] + [422] * (racers - 1), [r.text for r in responses]
    for response in responses:
        if response.status_code == 422:
            assert response.json() == {
                "message": {"json": {"name": response.json()["message"]["json"]["name"]}},
                "status": "UNPROCESSABLE_ENTITY",
            }
    assert await names_like(http, live, name) == [name]
    (created,) = [response for response in responses if response.status_code == 201]
    assert await audit_events(http, live, created.json()["id"]) == ["Account Created"]


async def test_concurrent_renames_of_two_accounts_to_one_name_let_one_win(
    http: AsyncClient, live: Live
) -> None:
    first = await new_account(http, live, "Rename Race A")
    second = await new_account(http, live, "Rename Race B")
    responses = await asyncio.gather(
        *(
            http.patch(f"{URL}/{account_id}", json={"name": "Rename Race Winner"}, headers=h)
            for account_id, h in ((first, live.headers("admin")), (second, live.headers("admin")))
        )
    )
    assert statuses(responses) == [200, 422], [r.text for r in responses]
    winner, loser = (first, second) if responses[0].status_code == 200 else (second, first)
    names = {}
    for account_id in (first, second):
        read = await http.get(f"{URL}/{account_id}", headers=live.headers("admin"))
        names[account_id] = read.json()["name"]
    assert names[winner] == "Rename Race Winner"
    assert names[loser] == ("Rename Race A" if loser == first else "Rename Race B")
    assert await audit_events(http, live, winner) == [
        "Account Created",
        "Account Updated, Field: name",
    ]
    assert await audit_events(http, live, loser) == ["Account Created"]


async def test_a_rename_to_a_taken_name_is_422_and_the_next_requests_are_served(
    http: AsyncClient, live: Live
) -> None:
    """A rename is not checked for first: its one statement meets the unique constraint, writes
    nothing, and leaves no transaction behind on the pooled connection."""
    await new_account(http, live, "Taken Name")
    account_id = await new_account(http, live, "Wants Taken Name")
    admin = live.headers("admin")
    before = await http.get(f"{URL}/{account_id}", headers=admin)
    for _ in range(3):  # more than once: the same pooled connections serve the next ones
        response = await http.patch(
            f"{URL}/{account_id}", json={"name": "Taken Name", "logo_url": None}, headers=admin
        )
        assert response.status_code == 422, response.text
        assert response.json()["message"] == {
            "json": {"name": ["An account named 'Taken Name' already exists."]}
        }
    after = await http.get(f"{URL}/{account_id}", headers=admin)
    assert after.json() == before.json()
    assert after.headers["ETag"] == before.headers["ETag"]
    assert await audit_events(http, live, account_id) == ["Account Created"]
    renamed = await http.patch(f"{URL}/{account_id}", json={"name": "Free Name"}, headers=admin)
    assert renamed.status_code == 200, renamed.text


# A PATCH reads the account without a lock and writes only if it is still at the version read
# (app.accounts.service.update_account). These drive the service with a read that another
# request has made stale, which racing requests hit only by chance.


@dataclass(frozen=True, slots=True)
class Stale:
    account_id: int
    read: AccountRead  # the account as read before the changes
    etag: str  # the account's ETag after them


async def stale_read(http: AsyncClient, live: Live, name: str, *changes: dict[str, Any]) -> Stale:
    """A new account, read, then changed by other requests (each must answer 200)."""
    return await stale_read_of(http, live, await new_account(http, live, name), *changes)


async def stale_read_of(
    http: AsyncClient, live: Live, account_id: int, *changes: dict[str, Any]
) -> Stale:
    """The account, read, then changed by other requests (each must answer 200)."""
    async with live.app.state.sessionmaker() as session:
        read = await accounts_repository.get_by_id(session, account_id)
    etag = ""
    for body in changes:
        changed = await http.patch(f"{URL}/{account_id}", json=body, headers=live.headers("admin"))
        assert changed.status_code == 200, changed.text
        etag = changed.headers["ETag"]
    return Stale(account_id, read, etag)


async def assert_left_as(http: AsyncClient, live: Live, stale: Stale, name: str) -> None:
    """The account still has `name`, at the version the other requests left it (its ETag)."""
    read = await http.get(f"{URL}/{stale.account_id}", headers=live.headers("admin"))
    assert read.json()["name"] == name
    assert read.headers["ETag"] == stale.etag


async def _update(
    live: Live,
    account: AccountRead,
    body: dict[str, Any],
    if_match: str | None = None,
    *,
    user: str = "admin",
) -> AccountRead:
    async with live.app.state.sessionmaker() as session:
        who = await users_repository.get_principal(session, live.world.user(user).id)
        assert who is not None
        patch = AccountPatch.model_validate(body)
        return await accounts_service.update_account(session, who, account, patch, if_match)


async def test_a_patch_whose_read_went_stale_is_decided_again_on_the_account_as_it_is(
    http: AsyncClient, live: Live
) -> None:
    stale = await stale_read(http, live, "Stale Read", {"primary_color": "#111111"})
    account_id = stale.account_id
    written = await _update(
        live, stale.read, {"name": "Stale Read Renamed", "primary_color": "#111111"}
    )
    # The colour was already set by the other request: only the name changed, once more.
    assert (written.name, written.primary_color) == ("Stale Read Renamed", "#111111")
    assert written.version == stale.read.version + 2
    read = await http.get(f"{URL}/{account_id}", headers=live.headers("admin"))
    assert read.json()["name"] == "Stale Read Renamed"
    assert read.headers["ETag"] == accounts_service.etag_of(written)
    assert await audit_events(http, live, account_id) == [
        "Account Created",
        "Account Updated, Field: primary_color",
        "Account Updated, Field: name",
    ]


async def test_a_stale_patch_that_another_request_already_made_writes_nothing(
    http: AsyncClient, live: Live
) -> None:
    body = {"secondary_color": "#abcdef"}
    stale = await stale_read(http, live, "Stale No-op", body)
    answered = await _update(live, stale.read, body)
    assert answered.secondary_color == "#abcdef"
    assert answered.version == stale.read.version + 1  # the other request's: no new one
    assert await audit_events(http, live, stale.account_id) == [
        "Account Created",
        "Account Updated, Field: secondary_color",
    ]


async def test_a_stale_patch_with_if_match_is_refused_and_changes_nothing(
    http: AsyncClient, live: Live
) -> None:
    stale = await stale_read(
        http, live, "Stale Guarded", {"logo_url": None}, {"primary_color": "#222222"}
    )
    etag = accounts_service.etag_of(stale.read)
    with pytest.raises(PreconditionFailed):
        await _update(live, stale.read, {"name": "Stale Guarded 2"}, etag)
    await assert_left_as(http, live, stale, "Stale Guarded")


async def test_a_stale_rename_to_a_name_another_account_took_meanwhile_is_422(
    http: AsyncClient, live: Live
) -> None:
    stale = await stale_read(http, live, "Stale Taker A", {"primary_color": "#333333"})
    await new_account(http, live, "Stale Taken Meanwhile")
    with pytest.raises(InvalidInput):
        await _update(live, stale.read, {"name": "Stale Taken Meanwhile"})
    await assert_left_as(http, live, stale, "Stale Taker A")
    assert await audit_events(http, live, stale.account_id) == [
        "Account Created",
        "Account Updated, Field: primary_color",
    ]


async def test_a_stale_rename_to_the_name_the_account_got_meanwhile_changes_nothing(
    http: AsyncClient, live: Live
) -> None:
    body = {"name": "Stale Name B"}
    stale = await stale_read(http, live, "Stale Name A", body)
    # The name is taken, by the account itself: not a 422.
    answered = await _update(live, stale.read, body)
    assert (answered.name, answered.version) == ("Stale Name B", stale.read.version + 1)
    assert await audit_events(http, live, stale.account_id) == [
        "Account Created",
        "Account Updated, Field: name",
    ]


async def _moved_out_of_its_consultancy(http: AsyncClient, live: Live, name: str) -> Stale:
    """A client of the demo consultancy, read, then taken out of the consultancy."""
    admin = live.headers("admin")
    account_id = await new_account(http, live, name)
    consultancy = live.world.account("Test Consultancy Account")
    joined = await http.patch(
        f"{URL}/{account_id}", json={"consultancy_account_id": consultancy}, headers=admin
    )
    assert joined.status_code == 200, joined.text
    return await stale_read_of(http, live, account_id, {"consultancy_account_id": None})


async def test_a_consultant_whose_client_left_since_the_read_may_not_patch_it(
    http: AsyncClient, live: Live
) -> None:
    """Access was granted on the read (the account was a client of theirs); the write finds the
    premise gone and decides again: 403, nothing written."""
    stale = await _moved_out_of_its_consultancy(http, live, "Leaving Client")
    with pytest.raises(Forbidden):
        await _update(live, stale.read, {"name": "Renamed By Former Consultant"}, user="consultant")
    await assert_left_as(http, live, stale, "Leaving Client")
    assert await audit_events(http, live, stale.account_id) == [
        "Account Created",
        "Account Updated, Field: consultancy_account_id",
        "Account Updated, Field: consultancy_account_id",
    ]


async def test_an_admin_patch_read_before_a_consultancy_move_is_decided_again(
    http: AsyncClient, live: Live
) -> None:
    stale = await _moved_out_of_its_consultancy(http, live, "Moved Client")
    answered = await _update(live, stale.read, {"name": "Moved Client Renamed"})
    assert answered.name == "Moved Client Renamed"
    assert answered.consultancy_account_id is None  # as it is now, not as read
    read = await http.get(f"{URL}/{stale.account_id}", headers=live.headers("admin"))
    assert read.json()["name"] == "Moved Client Renamed"
    assert read.json()["consultancy_account_id"] is None
    assert (await audit_events(http, live, stale.account_id))[-1] == "Account Updated, Field: name"


async def test_a_patch_of_several_fields_names_those_that_differ_from_the_account_as_it_is(
    http: AsyncClient, live: Live
) -> None:
    """The fields named in the record are decided on the locked row: one that another request
    set to the same value meanwhile is not named, one it changed back from is."""
    stale = await stale_read(
        http, live, "Several Fields", {"primary_color": "#444444", "logo_url": None}
    )
    body = {"name": "Several Fields", "primary_color": "#444444", "secondary_color": "#555555"}
    answered = await _update(live, stale.read, body)
    assert (answered.primary_color, answered.secondary_color) == ("#444444", "#555555")
    assert (await audit_events(http, live, stale.account_id))[-1] == (
        "Account Updated, Field: secondary_color"
    )
