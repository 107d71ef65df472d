"""pagination.find_counted, the one path of every list, on both databases: each page (forwards
and read from the end) is exactly its slice of the whole ordered list, NULLs come last in either
direction, and the counts are the scope's and the filter's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts.models import Account
from app.pagination import Counted, PageRequest, SortKey, find_counted, match_terms

PREFIX = "Paging Test "
#: (name, logo_url): ties and NULLs in the sort key on purpose.
ROWS = [
    ("b", "https://x/2"),
    ("a", None),
    ("c", "https://x/1"),
    ("d", "https://x/2"),
    ("e", None),
    ("f", "https://x/3"),
    ("g", "https://x/1"),
]


@pytest.fixture
async def session(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessions() as session:
        for name, logo in ROWS:
            session.add(Account(name=PREFIX + name, logo_url=logo, attributes={}, version=1))
            await session.flush()  # one at a time: ids in ROWS order
        yield session


def in_scope() -> list[ColumnElement[bool]]:
    return [Account.name.startswith(PREFIX)]


async def names(session: AsyncSession, order: list[SortKey], page: PageRequest) -> Counted[str]:
    result = await find_counted(
        session,
        select(Account),
        id_column=Account.id,
        scope=in_scope(),
        filters=[],
        order=order,
        page=page,
    )
    items = [account.name.removeprefix(PREFIX) for account in result.items]
    return Counted(items, result.total, result.filtered)


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("per_page", [1, 2, 3, 7, 10])
async def test_every_page_is_its_slice_and_nulls_come_last(
    session: AsyncSession, descending: bool, per_page: int
) -> None:
    order = [SortKey(Account.logo_url, descending=descending, nulls_last=True)]
    whole = (await names(session, order, PageRequest(None, per_page))).items
    with_logo = sorted(
        (logo, index, name) for index, (name, logo) in enumerate(ROWS) if logo is not None
    )
    # Ties by id ascending: rows were inserted in ROWS order, so ids follow that order.
    by_logo = sorted(with_logo, key=lambda row: row[1])
    by_logo.sort(key=lambda row: row[0], reverse=descending)
    assert whole == [name for _, _, name in by_logo] + ["a", "e"]
    pages = []
    for number in range(1, len(ROWS) // per_page + 3):
        page = await names(session, order, PageRequest(number, per_page))
        assert (page.total, page.filtered) == (len(ROWS), len(ROWS))
        start = (number - 1) * per_page
        assert page.items == whole[start : start + per_page], number
        pages.extend(page.items)
    assert pages == whole


async def test_counts_are_the_scope_and_the_filter(session: AsyncSession) -> None:
    result = await find_counted(
        session,
        select(Account),
        id_column=Account.id,
        scope=in_scope(),
        filters=match_terms(["TEST", " g"], Account.name),  # every term, case-insensitively
        order=[SortKey(func.lower(Account.name))],
        page=PageRequest(1, 10),
    )
    assert (result.total, result.filtered) == (len(ROWS), 1)
    assert [account.name for account in result.items] == [PREFIX + "g"]


async def test_a_term_with_wildcards_is_literal(session: AsyncSession) -> None:
    result = await find_counted(
        session,
        select(Account),
        id_column=Account.id,
        scope=in_scope(),
        filters=match_terms(["%", "_"], Account.name),
        order=[],
        page=PageRequest(1, 10),
    )
    assert (result.total, result.filtered, result.items) == (len(ROWS), 0, [])
