"""Queries on accounts and account roles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from app.accounts.errors import AccountNotFound
from app.accounts.models import Account, AccountRole, AccountTotal, account_account_role
from app.accounts.scope import account_scope_clause
from app.auth.policy import AccountScope
from app.db import DriverQuery, storable_id
from app.pagination import PageRequest, SortDir, paginate


@dataclass(frozen=True, slots=True)
class AccountListFilters:
    scope: AccountScope
    terms: Sequence[str]
    role_id: int | None
    sort_by: str | None
    sort_dir: SortDir


@dataclass(frozen=True, slots=True)
class AccountRoleView:
    id: int
    name: str


@dataclass(frozen=True, slots=True)
class AccountView:
    """An account as read for an answer or an access decision: plain data, no ORM identity."""

    id: int
    name: str
    primary_color: str | None
    secondary_color: str | None
    logo_url: str | None
    attributes: dict[str, Any]
    consultancy_account_id: int | None
    version: int
    user_count: int
    account_roles: tuple[AccountRoleView, ...]


_ACCOUNT = DriverQuery(
    select(
        Account.id,
        Account.name,
        Account.primary_color,
        Account.secondary_color,
        Account.logo_url,
        Account.attributes,
        Account.consultancy_account_id,
        Account.version,
        Account.user_count,
        AccountRole.id,
        AccountRole.name,
    )
    .outerjoin(account_account_role, account_account_role.c.account_id == Account.id)
    .outerjoin(AccountRole, AccountRole.id == account_account_role.c.account_role_id)
    .where(Account.id == bindparam("account_id"))
    .order_by(AccountRole.id)
)


async def get_by_id(session: AsyncSession, account_id: int) -> AccountView:
    """One account with its roles, in one statement run on the driver (every read of an
    account issues it, see `DriverQuery`)."""
    if not storable_id(account_id):
        raise AccountNotFound(account_id)
    rows = await _ACCOUNT.rows(session, account_id=account_id)
    if not rows:
        raise AccountNotFound(account_id)
    first = rows[0]
    return AccountView(
        id=first[0],
        name=first[1],
        primary_color=first[2],
        secondary_color=first[3],
        logo_url=first[4],
        attributes=first[5],
        consultancy_account_id=first[6],
        version=first[7],
        user_count=first[8],
        account_roles=tuple(AccountRoleView(row[9], row[10]) for row in rows if row[9] is not None),
    )


async def get_for_update(session: AsyncSession, account_id: int) -> Account:
    """One account with its roles, its row locked until the transaction ends."""
    if not storable_id(account_id):
        raise AccountNotFound(account_id)
    statement = (
        select(Account)
        .where(Account.id == account_id)
        .options(joinedload(Account.account_roles))
        # Only the account row: the roles come from the nullable side of an outer join.
        .with_for_update(of=Account)
    )
    account = (await session.execute(statement)).unique().scalar_one_or_none()
    if account is None:
        raise AccountNotFound(account_id)
    return account


async def exists_by_id(session: AsyncSession, account_id: int) -> bool:
    if not storable_id(account_id):
        return False
    statement = select(exists().where(Account.id == account_id))
    return bool((await session.execute(statement)).scalar())


async def get_by_name(session: AsyncSession, name: str) -> Account | None:
    statement = select(Account).where(Account.name == name)
    return (await session.execute(statement)).scalar_one_or_none()


async def get_role_by_name(session: AsyncSession, name: str) -> AccountRole | None:
    statement = select(AccountRole).where(AccountRole.name == name)
    return (await session.execute(statement)).scalar_one_or_none()


async def get_roles_by_ids(session: AsyncSession, ids: Sequence[int]) -> list[AccountRole]:
    ids = [role_id for role_id in ids if storable_id(role_id)]
    if not ids:
        return []
    statement = select(AccountRole).where(AccountRole.id.in_(ids)).order_by(AccountRole.id)
    return list((await session.execute(statement)).scalars())


async def get_roles_by_names(session: AsyncSession, names: Sequence[str]) -> list[AccountRole]:
    if not names:
        return []
    statement = select(AccountRole).where(AccountRole.name.in_(names)).order_by(AccountRole.id)
    return list((await session.execute(statement)).scalars())


def add(session: AsyncSession, row: Account | AccountRole) -> None:
    session.add(row)


def _filter_clauses(filters: AccountListFilters) -> list[ColumnElement[bool]]:
    # autoescape: `%`, `_` and the escape character are literal (SPEC §5, beyond FlexMeasures).
    clauses = [Account.name.icontains(term, autoescape=True) for term in filters.terms]
    if filters.role_id is not None:
        clauses.append(
            exists().where(
                account_account_role.c.account_id == Account.id,
                account_account_role.c.account_role_id == filters.role_id,
            )
        )
    return clauses


def _order_keys(filters: AccountListFilters, *, reverse: bool = False) -> list[Any]:
    key: Any
    if filters.sort_by == "name":
        key = func.lower(Account.name)
    elif filters.sort_by == "users":
        key = Account.user_count
    else:
        key = Account.id
    descending = (filters.sort_dir == "desc") != reverse
    # `id` ascending breaks ties, so the same page asked twice has the same rows. Every key is
    # NOT NULL, so the reverse order is exactly the forward order read backwards.
    return [
        key.desc() if descending else key.asc(),
        Account.id.desc() if reverse else Account.id.asc(),
    ]


async def find_accounts(
    session: AsyncSession,
    filters: AccountListFilters,
    page: PageRequest,
    *,
    matching: int | None = None,
) -> list[Account]:
    """The accounts in scope that pass the filters, in order; one page of them if asked.

    `matching`, how many accounts pass the filters, lets a page in the back half of the list be
    read from its end: the last page skips a few index entries instead of almost all of them.
    """
    where = [account_scope_clause(filters.scope), *_filter_clauses(filters)]
    keys = _order_keys(filters)
    if page.page is None:
        statement = select(Account).where(*where)
    else:
        # Deferred join: the page's ids come from an index-only scan (deep pages skip index
        # entries, not table rows), then only those rows are fetched.
        ids = _page_ids(where, filters, page, matching).subquery()
        statement = select(Account).join(ids, ids.c.id == Account.id)
    statement = statement.order_by(*keys).options(selectinload(Account.account_roles))
    return list((await session.execute(statement)).scalars())


def _page_ids(
    where: list[ColumnElement[bool]],
    filters: AccountListFilters,
    page: PageRequest,
    matching: int | None,
) -> Select[tuple[int]]:
    ids = select(Account.id).where(*where)
    if matching is None or page.offset < matching / 2 or page.offset >= matching:
        return paginate(ids.order_by(*_order_keys(filters)), page)
    # Rows [offset, offset + per_page) forwards are rows [matching - offset - per_page,
    # matching - offset) backwards; the caller orders the page forwards again. `matching` was
    # counted by an earlier statement: an account created in between shifts this page by one,
    # as it shifts any offset page between two requests.
    end = min(page.offset + page.per_page, matching)
    return (
        ids.order_by(*_order_keys(filters, reverse=True))
        .limit(end - page.offset)
        .offset(matching - end)
    )


async def count_accounts(session: AsyncSession, filters: AccountListFilters) -> tuple[int, int]:
    """How many accounts are in scope, and how many of those pass the filters.

    One round trip, two independent counts, so that each can use its own index (the filtered
    one the trigram index) instead of testing the filters on every row in scope.
    """
    scope = account_scope_clause(filters.scope)
    clauses = _filter_clauses(filters)
    total = (
        # Every account: the count the database keeps (the sum of a few rows, see
        # app.counters), instead of counting them all.
        select(func.sum(AccountTotal.total)).scalar_subquery()
        if filters.scope.everything
        else select(func.count()).select_from(Account).where(scope).scalar_subquery()
    )
    if not clauses:
        count = int((await session.execute(select(total))).scalar_one())
        return count, count
    filtered = select(func.count()).select_from(Account).where(scope, *clauses).scalar_subquery()
    row = (await session.execute(select(total, filtered))).one()
    return int(row[0]), int(row[1])
