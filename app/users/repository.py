"""Queries on users and user roles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.accounts.models import Account, AccountRole, account_account_role
from app.accounts.scope import account_scope_clause
from app.auth.policy import AccountScope, UserTarget
from app.auth.principal import StoredPrincipal
from app.db import storable_id
from app.pagination import Counted, PageRequest, SortDir, SortKey, find_counted, match_terms
from app.rawrows import DriverQuery
from app.users.errors import UserNotFound
from app.users.models import User, UserRole, UserTotal, user_user_role

_PRINCIPAL = DriverQuery(
    select(
        User.id.label("user_id"),
        User.username.label("username"),
        User.account_id.label("account_id"),
        User.active.label("active"),
        User.token_version.label("token_version"),
        User.last_seen_at.label("last_seen_at"),
        UserRole.name.label("role"),
        AccountRole.name.label("account_role"),
    )
    .outerjoin(user_user_role, user_user_role.c.user_id == User.id)
    .outerjoin(UserRole, UserRole.id == user_user_role.c.user_role_id)
    .outerjoin(account_account_role, account_account_role.c.account_id == User.account_id)
    .outerjoin(AccountRole, AccountRole.id == account_account_role.c.account_role_id)
    .where(User.id == bindparam("user_id"))
)
_PRINCIPAL_FIELDS = _PRINCIPAL.require(
    ("user_id", "username", "account_id", "active", "token_version", "last_seen_at")
)


async def get_principal(session: AsyncSession, user_id: int) -> StoredPrincipal | None:
    """The user behind a token with its role names and its account's role names: one query,
    run on the driver (every authenticated request issues it, see `app.rawrows`)."""
    if not storable_id(user_id):
        return None
    rows = await _PRINCIPAL.rows(session, user_id=user_id)
    if not rows:
        return None
    return StoredPrincipal(
        **{name: rows[0][name] for name in _PRINCIPAL_FIELDS},
        roles=frozenset(row["role"] for row in rows if row["role"] is not None),
        account_roles=frozenset(
            row["account_role"] for row in rows if row["account_role"] is not None
        ),
    )


async def get_by_id(session: AsyncSession, user_id: int, *, lock: bool = False) -> User:
    """One user with their roles and their account; `lock`: the user's row locked until the
    transaction ends (a change, so that two changes of one user queue)."""
    if not storable_id(user_id):
        raise UserNotFound(user_id)
    statement = (
        select(User)
        .where(User.id == user_id)
        .options(selectinload(User.roles), selectinload(User.account))
    )
    if lock:
        statement = statement.with_for_update(of=User)
    user = (await session.execute(statement)).scalar_one_or_none()
    if user is None:
        raise UserNotFound(user_id)
    return user


@dataclass(frozen=True, slots=True)
class AccountRef:
    """An account as the access rules need it for a user's target: its id and consultancy."""

    id: int
    consultancy_account_id: int | None


_TARGET = DriverQuery(
    select(
        User.id.label("user_id"),
        Account.id.label("account_id"),
        Account.consultancy_account_id.label("consultancy_account_id"),
        UserRole.name.label("role"),
    )
    .join(Account, Account.id == User.account_id)
    .outerjoin(user_user_role, user_user_role.c.user_id == User.id)
    .outerjoin(UserRole, UserRole.id == user_user_role.c.user_role_id)
    .where(User.id == bindparam("user_id"))
)


async def get_target(session: AsyncSession, user_id: int) -> UserTarget:
    """A user as the access rules see them (role names, account and its consultancy), in one
    statement run on the driver: for reads that answer with something else than the user
    (their audit log)."""
    if not storable_id(user_id):
        raise UserNotFound(user_id)
    rows = await _TARGET.rows(session, user_id=user_id)
    if not rows:
        raise UserNotFound(user_id)
    return UserTarget(
        id=rows[0]["user_id"],
        roles=frozenset(row["role"] for row in rows if row["role"] is not None),
        account=AccountRef(
            id=rows[0]["account_id"], consultancy_account_id=rows[0]["consultancy_account_id"]
        ),
    )


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


async def get_roles_by_ids(session: AsyncSession, ids: Sequence[int]) -> list[UserRole]:
    ids = [role_id for role_id in ids if storable_id(role_id)]
    if not ids:
        return []
    statement = select(UserRole).where(UserRole.id.in_(ids)).order_by(UserRole.id)
    return list((await session.execute(statement)).scalars())


async def reserve_id(session: AsyncSession) -> int | None:
    """The id a new user will have, taken from PostgreSQL's sequence now, before the INSERT;
    None where the INSERT assigns it (SQLite)."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    sequence = func.pg_get_serial_sequence('"user"', "id")
    return int((await session.execute(select(func.nextval(sequence).label("id")))).scalar_one())


def add(session: AsyncSession, row: User | UserRole) -> None:
    session.add(row)


#: A user is recorded as seen at most once per this many seconds (SPEC §9).
SEEN_EVERY = timedelta(minutes=1)


async def record_seen(session: AsyncSession, user_id: int, now: datetime) -> None:
    """`last_seen_at = now` unless it was recorded less than a minute ago: conditional, so that
    several workers seeing the same user at once write it once."""
    statement = (
        update(User)
        .where(
            User.id == user_id,
            or_(User.last_seen_at.is_(None), User.last_seen_at <= now - SEEN_EVERY),
        )
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.execute(statement)


async def record_login(session: AsyncSession, user_id: int, now: datetime) -> None:
    statement = (
        update(User)
        .where(User.id == user_id)
        .values(last_login_at=now, last_seen_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.execute(statement)


@dataclass(frozen=True, slots=True)
class UserListFilters:
    scope: AccountScope
    account_id: int | None
    include_inactive: bool
    terms: Sequence[str]
    sort_by: str | None
    sort_dir: SortDir


def _sort_key(filters: UserListFilters) -> SortKey | None:
    descending = filters.sort_dir == "desc"
    if filters.sort_by == "username":
        return SortKey(func.lower(User.username), descending)
    if filters.sort_by == "email":
        return SortKey(User.email, descending)  # stored lower-cased
    if filters.sort_by == "lastLogin":
        # Never logged in: last in either direction (SPEC §9).
        return SortKey(User.last_login_at, descending, nulls_last=True)
    if filters.sort_by == "lastSeen":
        return SortKey(User.last_seen_at, descending, nulls_last=True)
    return SortKey(User.id, descending) if descending else None


async def find_page(
    session: AsyncSession, filters: UserListFilters, page: PageRequest
) -> Counted[User]:
    """The users in scope that pass the filters, in order, with their roles and account; one
    page of them (and the counts) if asked. Each filter term may occur in the email, the
    username or the account's name (SPEC §9)."""
    scope = [account_scope_clause(filters.scope)]
    if filters.account_id is not None:
        scope.append(User.account_id == filters.account_id)
    if not filters.include_inactive:
        scope.append(User.active.is_(True))
    key = _sort_key(filters)
    # Every user (or every active one): the counts the database keeps (the sums of a few rows,
    # app/counters.py), not a count of all rows. `filter` narrows only `filtered-records`.
    kept = UserTotal.total if filters.include_inactive else UserTotal.active_total
    everyone = filters.scope.everything and filters.account_id is None
    return await find_counted(
        session,
        select(User).join(Account, Account.id == User.account_id),
        id_column=User.id,
        scope=scope,
        filters=match_terms(filters.terms, User.email, User.username, Account.name),
        order=[key] if key else [],
        page=page,
        total=select(func.sum(kept)).scalar_subquery() if everyone else None,
        options=[
            selectinload(User.roles),
            selectinload(User.account).selectinload(Account.account_roles),
        ],
    )
