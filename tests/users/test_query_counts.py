"""SQL statements per users request are a small constant: whatever the page size, whatever the
number of users or audit records (no N+1, nothing loaded to be filtered in Python), as for
accounts (tests/accounts/test_query_counts.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from httpx import AsyncClient

from tests.conftest import QueryCounter
from tests.world import World

URL = "/api/v3_0/users"
Headers = Callable[[str | None], dict[str, str]]

LIST_REQUESTS = {
    "page": {"page": 1, "per_page": 5},
    "deep page": {"page": 3, "per_page": 5},
    "filter": {"page": 1, "filter": "extra user"},
    "last log-in sort": {"page": 1, "sort_by": "lastLogin", "sort_dir": "desc"},
    "inactive too": {"page": 1, "include_inactive": "true"},
    "one account": {"page": 1, "account_id": "ACCOUNT"},
    "bare list": {},
}


@pytest.mark.parametrize("case", sorted(LIST_REQUESTS))
async def test_list_statements_do_not_grow_with_the_number_of_users(
    client: AsyncClient,
    headers_for: Headers,
    count_queries: QueryCounter,
    world: World,
    case: str,
) -> None:
    admin = headers_for("admin")
    account_id = world.account("Test Prosumer Account")
    params = {
        key: (account_id if value == "ACCOUNT" else value)
        for key, value in LIST_REQUESTS[case].items()
    }

    async def add_users(start: int, count: int) -> None:
        for index in range(start, start + count):
            response = await client.post(
                URL,
                json={
                    "email": f"extra{index}@acme.org",
                    "username": f"Extra User {index}",
                    "account_id": account_id,
                },
                headers=admin,
            )
            assert response.status_code == 201, response.text

    await add_users(0, 10)  # every page asked for has rows
    before = await count_queries.of_get(client, URL, admin, **params)
    await add_users(10, 25)
    after = await count_queries.of_get(client, URL, admin, **params)
    assert after == before
    # principal, the counts, ids+rows of the page, their roles, their accounts and those
    # accounts' roles: 7 at most, whatever the page size or the number of users
    assert before <= 7, "\n\n".join(count_queries.statements)


async def test_user_audit_log_page_statements_are_constant(
    client: AsyncClient, headers_for: Headers, count_queries: QueryCounter, world: World
) -> None:
    url = f"{URL}/{world.user('prosumer_3').id}"
    counts, _pages = await count_queries.of_gets_around(
        client, f"{url}/auditlog", headers_for("admin"), moves(client, headers_for, url), page=1
    )
    # principal, the user as the policy's target (roles, account: one statement), the counts,
    # the page of records
    assert counts[0] == counts[1] <= 4, counts


async def test_a_whole_user_audit_log_is_three_statements_at_any_length(
    client: AsyncClient, headers_for: Headers, count_queries: QueryCounter, world: World
) -> None:
    """Without page and filter (as FlexMeasures' clients ask): the records in one statement."""
    url = f"{URL}/{world.user('prosumer_3').id}"
    counts, logs = await count_queries.of_gets_around(
        client, f"{url}/auditlog", headers_for("admin"), moves(client, headers_for, url)
    )
    assert len(logs[1]) >= len(logs[0]) + 10
    assert counts == [3, 3], counts  # principal, the user as the policy's target, the records


def moves(client: AsyncClient, headers_for: Headers, url: str) -> Callable[[int], Awaitable[None]]:
    """Ten changes of the user's timezone, back and forth (each must answer 200)."""
    zones = ("Europe/Berlin", "Asia/Tokyo")

    async def move(round_: int) -> None:
        for index in range(10):
            response = await client.patch(
                url, json={"timezone": zones[(round_ + index) % 2]}, headers=headers_for("admin")
            )
            assert response.status_code == 200, response.text

    return move
