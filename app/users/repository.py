"""Queries on users and user roles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.accounts.models import Account, AccountRole, account_account_role
from app.accounts.scope import account_scope_clause
from app.auth.policy import AccountScope
from app.db import DriverQuery, storable_id
from app.pagination import PageRequest, SortDir, count_where, paginate
from app.users.models import User, UserRole, user_user_role


@dataclass(frozen=True, slots=True)
class PrincipalRow:
    id: int
    username: str
    account_id: int
    active: bool
    token_version: int
    roles: frozenset[str]
    account_roles: frozenset[str]


_PRINCIPAL = DriverQuery(
    select(
        User.id,
        User.username,
        User.account_id,
        User.active,
        User.token_version,
        UserRole.name,
        AccountRole.name,
    )
    .outerjoin(user_user_role, user_user_role.c.user_id == User.id)
    .outerjoin(UserRole, UserRole.id == user_user_role.c.user_role_id)
    .outerjoin(account_account_role, account_account_role.c.account_id == User.account_id)
    .outerjoin(AccountRole, AccountRole.id == account_account_role.c.account_role_id)
    .where(User.id == bindparam("user_id"))
)


async def get_principal_row(session: AsyncSession, user_id: int) -> PrincipalRow | None:
    """The user behind a token with its role names and its account's role names: one query,
    run on the driver (every authenticated request issues it, see `DriverQuery`)."""
    if not storable_id(user_id):
        return None
    rows = await _PRINCIPAL.rows(session, user_id=user_id)
    if not rows:
        return None
    first = rows[0]
    return PrincipalRow(
        id=first[0],
        username=first[1],
        account_id=first[2],
        active=first[3],
        token_version=first[4],
        roles=frozenset(row[5] for row in rows if row[5] is not None),
        account_roles=frozenset(row[6] for row in rows if row[6] is not None),
    )


async def get_by_id(session: AsyncSession, user_id: int) -> User | None:
    if not storable_id(user_id):
        return None
    statement = select(User).where(User.id == user_id).options(selectinload(User.roles))
    return (await session.execute(statement)).scalar_one_or_none()


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    # Emails are stored lower-cased (see normalize_email), so the unique index serves this.
    statement = select(User).where(User.email == normalize_email(email))
    return (await session.execute(statement)).scalar_one_or_none()


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def email_taken(session: AsyncSession, email: str) -> bool:
    return await get_by_email(session, email) is not None


async def get_roles_by_name(session: AsyncSession, names: Sequence[str]) -> list[UserRole]:
    if not names:
        return []
    statement = select(UserRole).where(UserRole.name.in_(names))
    return list((await session.execute(statement)).scalars())


def add(session: AsyncSession, row: User | UserRole) -> None:
    session.add(row)


@dataclass(frozen=True, slots=True)
class UserListFilters:
    scope: AccountScope
    account_id: int | None
    include_inactive: bool
    terms: Sequence[str]
    sort_by: str | None
    sort_dir: SortDir


def _where(filters: UserListFilters) -> list[ColumnElement[bool]]:
    clauses = [account_scope_clause(filters.scope)]
    if filters.account_id is not None:
        clauses.append(User.account_id == filters.account_id)
    if not filters.include_inactive:
        clauses.append(User.active.is_(True))
    return clauses


def _term_clauses(terms: Sequence[str]) -> list[ColumnElement[bool]]:
    return [
        or_(
            User.username.icontains(term, autoescape=True),
            User.email.icontains(term, autoescape=True),
        )
        for term in terms
    ]


def _ordered(statement: Select[tuple[User]], filters: UserListFilters) -> Select[tuple[User]]:
    key: Any = {
        "username": func.lower(User.username),
        "email": func.lower(User.email),
    }.get(filters.sort_by or "id", User.id)
    key = key.desc() if filters.sort_dir == "desc" else key.asc()
    return statement.order_by(key, User.id.asc())


async def find_users(
    session: AsyncSession, filters: UserListFilters, page: PageRequest
) -> tuple[list[User], int, int]:
    """One page (or all) of users, with the count before and after the text filter."""
    base = _where(filters)
    terms = _term_clauses(filters.terms)
    statement = (
        select(User)
        .join(Account, Account.id == User.account_id)
        .where(*base, *terms)
        .options(selectinload(User.roles))
    )
    users = list((await session.execute(paginate(_ordered(statement, filters), page))).scalars())
    if page.page is None:
        return users, len(users), len(users)
    count_statement = (
        select(func.count(), count_where(and_(*terms)) if terms else func.count())
        .select_from(User)
        .join(Account, Account.id == User.account_id)
        .where(*base)
    )
    total, filtered = (await session.execute(count_statement)).one()
    return users, int(total), int(filtered)
