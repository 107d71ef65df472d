"""Queries on accounts and account roles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, bindparam, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from app.accounts.errors import AccountNotFound
from app.accounts.models import Account, AccountRole, AccountTotal, account_account_role
from app.accounts.schemas import AccountRead, AccountRoleOut
from app.accounts.scope import account_scope_clause
from app.auth.policy import AccountScope
from app.db import storable_id
from app.pagination import (
    Column,
    Counted,
    PageRequest,
    SortDir,
    SortKey,
    find_counted,
    match_terms,
)
from app.rawrows import DriverQuery


@dataclass(frozen=True, slots=True)
class AccountListFilters:
    scope: AccountScope
    terms: Sequence[str]
    role_id: int | None
    sort_by: str | None
    sort_dir: SortDir


_ACCOUNT = DriverQuery(
    select(
        Account.id.label("id"),
        Account.name.label("name"),
        Account.primary_color.label("primary_color"),
        Account.secondary_color.label("secondary_color"),
        Account.logo_url.label("logo_url"),
        Account.attributes.label("attributes"),
        Account.consultancy_account_id.label("consultancy_account_id"),
        Account.version.label("version"),
        Account.user_count.label("user_count"),
        AccountRole.id.label("role_id"),
        AccountRole.name.label("role_name"),
    )
    .outerjoin(account_account_role, account_account_role.c.account_id == Account.id)
    .outerjoin(AccountRole, AccountRole.id == account_account_role.c.account_role_id)
    .where(Account.id == bindparam("account_id"))
    .order_by(AccountRole.id)
)
_ACCOUNT_FIELDS = _ACCOUNT.require(
    name for name in AccountRead.model_fields if name != "account_roles"
)


async def get_by_id(session: AsyncSession, account_id: int) -> AccountRead:
    """One account with its roles, in one statement run on the driver (every read of an
    account issues it, see `app.rawrows`)."""
    if not storable_id(account_id):
        raise AccountNotFound(account_id)
    rows = await _ACCOUNT.rows(session, account_id=account_id)
    if not rows:
        raise AccountNotFound(account_id)
    # Built without validation: the values are the database's, already of the right types.
    return AccountRead.model_construct(
        **{name: rows[0][name] for name in _ACCOUNT_FIELDS},
        account_roles=[
            AccountRoleOut.model_construct(id=row["role_id"], name=row["role_name"])
            for row in rows
            if row["role_id"] is not None
        ],
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
    clauses = match_terms(filters.terms, Account.name)
    if filters.role_id is not None:
        clauses.append(
            exists().where(
                account_account_role.c.account_id == Account.id,
                account_account_role.c.account_role_id == filters.role_id,
            )
        )
    return clauses


def _sort_key(filters: AccountListFilters) -> SortKey:
    key: Column
    if filters.sort_by == "name":
        key = func.lower(Account.name)
    elif filters.sort_by == "users":
        key = Account.user_count
    else:
        key = Account.id
    return SortKey(key, descending=filters.sort_dir == "desc")


async def find_page(
    session: AsyncSession, filters: AccountListFilters, page: PageRequest
) -> Counted[Account]:
    """The accounts in scope that pass the filters, in order, with their roles; one page of
    them (and the counts) if asked."""
    return await find_counted(
        session,
        select(Account),
        id_column=Account.id,
        scope=[account_scope_clause(filters.scope)],
        filters=_filter_clauses(filters),
        order=[_sort_key(filters)],
        page=page,
        # Every account: the count the database keeps (the sum of a few rows, app/counters.py),
        # not a count of all rows.
        total=(
            select(func.sum(AccountTotal.total)).scalar_subquery()
            if filters.scope.everything
            else None
        ),
        options=[selectinload(Account.account_roles)],
    )
