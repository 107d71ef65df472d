"""SQL statements per request are a small constant: whatever the page size, whatever the
number of accounts (no N+1, nothing loaded to be filtered in Python)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from httpx import AsyncClient

from tests.conftest import QueryCounter
from tests.databases import Backend
from tests.world import World

URL = "/api/v3_0/accounts"
Headers = Callable[[str | None], dict[str, str]]

LIST_REQUESTS = {
    "page": {"page": 1, "per_page": 5},
    "deep page": {"page": 3, "per_page": 5},
    "filter and name sort": {"page": 1, "filter": "test account", "sort_by": "name"},
    "users sort": {"page": 1, "sort_by": "users", "sort_dir": "desc"},
    "role": {"page": 1, "role": "Prosumer"},
    "bare list": {},
}


@pytest.mark.parametrize("case", sorted(LIST_REQUESTS))
async def test_list_statements_do_not_grow_with_the_number_of_accounts(
    client: AsyncClient, headers_for: Headers, count_queries: QueryCounter, case: str
) -> None:
    admin = headers_for("admin")
    params = LIST_REQUESTS[case]

    async def add_accounts(start: int, count: int) -> None:
        for index in range(start, start + count):
            await client.post(URL, json={"name": f"Test Account Extra {index}"}, headers=admin)

    await add_accounts(0, 10)  # every page asked for has rows
    before = await count_queries.of_get(client, URL, admin, **params)
    await add_accounts(10, 25)
    after = await count_queries.of_get(client, URL, admin, **params)
    assert after == before
    # principal, ids+rows of the page, their roles, both counts (+ the role's id)
    assert before <= 5


async def test_reading_one_account_takes_two_statements(
    client: AsyncClient, headers_for: Headers, count_queries: QueryCounter, world: World
) -> None:
    count_queries.reset()
    response = await client.get(
        f"{URL}/{world.account('Test Prosumer Account')}", headers=headers_for("prosumer")
    )
    assert response.status_code == 200
    assert count_queries.count == 2, count_queries.statements  # principal, account with roles


async def test_audit_log_page_statements_are_constant(
    client: AsyncClient, headers_for: Headers, count_queries: QueryCounter, world: World
) -> None:
    url = f"{URL}/{world.account('Test Prosumer Account')}"
    counts, _pages = await count_queries.of_gets_around(
        client, f"{url}/auditlog", headers_for("admin"), renames(client, headers_for, url), page=1
    )
    assert counts[0] == counts[1] == 4  # principal, account, page of records, counts


async def test_a_whole_audit_log_is_three_statements_at_any_length(
    client: AsyncClient, headers_for: Headers, count_queries: QueryCounter, world: World
) -> None:
    """Without page and filter (as FlexMeasures' clients ask): the records in one statement,
    however many there are."""
    url = f"{URL}/{world.account('Test Prosumer Account')}"
    counts, logs = await count_queries.of_gets_around(
        client, f"{url}/auditlog", headers_for("admin"), renames(client, headers_for, url)
    )
    assert len(logs[1]) == len(logs[0]) + 10
    assert counts == [3, 3], counts  # principal, account, the records


def renames(
    client: AsyncClient, headers_for: Headers, url: str
) -> Callable[[int], Awaitable[None]]:
    """Ten renames of the account, each one record on its audit log."""

    async def rename(round_: int) -> None:
        for index in range(10):
            await client.patch(
                url, json={"name": f"Renamed {round_} {index}"}, headers=headers_for("admin")
            )

    return rename


async def test_a_patch_changes_and_audits_in_its_last_statement(
    client: AsyncClient,
    headers_for: Headers,
    count_queries: QueryCounter,
    world: World,
    backend: Backend,
) -> None:
    """Everything is read and checked first, without a lock; the change and its audit record
    (on PostgreSQL one statement, which takes the row's lock) come last, so that the lock is
    held for that statement and the commit only."""
    url = f"{URL}/{world.account('Test Prosumer Account')}"
    count_queries.reset()
    admin = headers_for("admin")
    response = await client.patch(url, json={"name": "Renamed In One"}, headers=admin)
    assert response.status_code == 200, response.text
    statements = count_queries.statements
    # principal, account with roles: a rename reads no more (the unique constraint decides)
    reads, writes = statements[:2], statements[2:]
    assert not any("UPDATE" in read.upper() for read in reads), statements
    if backend.name == "postgresql":
        (write,) = writes
        assert "UPDATE account SET" in write
        assert "INSERT INTO audit_log" in write
    else:  # SQLite: the transaction's first statement took its write lock (app.db)
        assert len(writes) == 2, statements
        assert writes[0].startswith("UPDATE account SET")
        assert writes[1].startswith("INSERT INTO audit_log")
