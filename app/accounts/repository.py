"""Queries on accounts and account roles."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.accounts.errors import AccountNotFound
from app.accounts.models import Account, AccountRole, AccountTotal, account_account_role
from app.accounts.schemas import AccountRead, AccountRoleOut
from app.accounts.scope import account_scope_clause
from app.audit.models import AuditRecord
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
from app.rawrows import DriverQuery, NamedRow


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
    return _account_of(rows)


def _account_of(rows: Sequence[NamedRow]) -> AccountRead:
    """The account of `_ACCOUNT`'s rows: one per role (or one with no role)."""
    return _account(
        rows[0],
        [
            AccountRoleOut.model_construct(id=row["role_id"], name=row["role_name"])
            for row in rows
            if row["role_id"] is not None
        ],
    )


def _account(row: NamedRow, roles: list[AccountRoleOut]) -> AccountRead:
    # Built without validation: the values are the database's, already of the right types.
    return AccountRead.model_construct(
        **{name: row[name] for name in _ACCOUNT_FIELDS}, account_roles=roles
    )


# What a write answers: the account's columns as written (its roles are the caller's to add).
_WRITTEN = tuple(getattr(Account, name) for name in _ACCOUNT_FIELDS)
# The audit record's columns that come from the record itself; its account is the written row.
_AUDIT_COLUMNS = (
    "event",
    "event_datetime",
    "active_user_id",
    "active_user_name",
    "affected_user_id",
)


async def write_if_version(
    session: AsyncSession,
    account: AccountRead,
    values: Mapping[str, Any],
    roles: Sequence[AccountRole] | None,
    record: AuditRecord,
) -> AccountRead | None:
    """Set `values` (and `roles`, when given) on the account, bump its version and add its
    audit `record`, if its version is still the one `account` was read at; then the account as
    written. None when the account changed since it was read (nothing is written then).

    On PostgreSQL the change and its record are one statement (a data-modifying CTE) run on the
    driver: when the request's statements before it ran there too (its reads do), no transaction
    is open, and the statement is its own: the row is locked for that statement and its commit's
    WAL flush only, with no round trip and no Python in between. SQLite takes its write lock
    with the transaction's first statement (`app.db`): the version cannot move there.
    """
    if session.get_bind().dialect.name == "postgresql":
        row = await _write_in_one_statement(session, account, values, record)
    else:
        row = await _write_in_steps(session, account, values, record)
    if row is None:
        return None
    if roles is None:
        return _account(row, account.account_roles)
    await _replace_roles(session, account.id, [role.id for role in roles])
    return _account(row, [AccountRoleOut.model_construct(id=r.id, name=r.name) for r in roles])


async def _write_in_one_statement(
    session: AsyncSession, account: AccountRead, values: Mapping[str, Any], record: AuditRecord
) -> NamedRow | None:
    rows = await _one_statement_write(tuple(values)).rows(
        session,
        account_id=account.id,
        read_version=account.version,
        **{f"new_{name}": value for name, value in values.items()},
        **{f"audit_{name}": getattr(record, name) for name in _AUDIT_COLUMNS},
    )
    return rows[0] if rows else None


@functools.cache
def _one_statement_write(columns: tuple[str, ...]) -> DriverQuery:
    """The write of these columns as one statement, built and compiled once per set of columns
    (at most 2**6 of them), on the driver as every request's reads are (app.rawrows).

    written: the change, only if the row is still at the version read; audited: its record,
    only if written. The final SELECT returns the written row (both run whatever it reads)."""
    table = AuditRecord.__table__
    written = (
        update(Account)
        .where(Account.id == bindparam("account_id"), Account.version == bindparam("read_version"))
        .values(
            {
                **{
                    name: bindparam(f"new_{name}", type_=Account.__table__.c[name].type)
                    for name in columns
                },
                "version": Account.version + literal_column("1", Integer),
            }
        )
        .returning(*_WRITTEN)
        .cte("written")
    )
    audited = (
        insert(AuditRecord)
        .from_select(
            [*_AUDIT_COLUMNS, "affected_account_id"],
            select(
                *(
                    bindparam(f"audit_{name}", type_=table.c[name].type).label(name)
                    for name in _AUDIT_COLUMNS
                ),
                written.c.id,
            ),
        )
        .cte("audited")
    )
    return DriverQuery(
        select(*(written.c[name].label(name) for name in _ACCOUNT_FIELDS)).add_cte(audited)
    )


async def _write_in_steps(
    session: AsyncSession, account: AccountRead, values: Mapping[str, Any], record: AuditRecord
) -> NamedRow | None:
    statement = (
        update(Account)
        .where(Account.id == account.id, Account.version == account.version)
        .values(**values, version=Account.version + 1)
        .returning(*_WRITTEN)
    )
    row = (await session.execute(statement)).mappings().one_or_none()
    if row is not None:
        await session.execute(
            insert(AuditRecord).values(
                **{name: getattr(record, name) for name in _AUDIT_COLUMNS},
                affected_account_id=account.id,
            )
        )
    return row


async def _replace_roles(session: AsyncSession, account_id: int, role_ids: Sequence[int]) -> None:
    await session.execute(
        delete(account_account_role).where(account_account_role.c.account_id == account_id)
    )
    if role_ids:
        await session.execute(
            insert(account_account_role),
            [{"account_id": account_id, "account_role_id": role_id} for role_id in role_ids],
        )


# The same read with the account's row locked (not the roles': the nullable side of a join).
_ACCOUNT_LOCKED = _ACCOUNT.statement.with_for_update(of=Account)


async def get_for_update(session: AsyncSession, account_id: int) -> AccountRead:
    """One account with its roles, its row locked until the transaction ends: through
    SQLAlchemy's Core, which opens the transaction first (app.rawrows)."""
    rows = (await session.execute(_ACCOUNT_LOCKED, {"account_id": account_id})).mappings().all()
    if not rows:
        raise AccountNotFound(account_id)
    return _account_of(rows)


async def exists_by_id(session: AsyncSession, account_id: int) -> bool:
    if not storable_id(account_id):
        return False
    statement = select(exists().where(Account.id == account_id))
    return bool((await session.execute(statement)).scalar())


_NAME_TAKEN = DriverQuery(select(exists().where(Account.name == bindparam("name")).label("taken")))


async def name_taken(session: AsyncSession, name: str) -> bool:
    """Whether an account has this name (a new account's name is checked; the unique
    constraint decides races). On the driver."""
    (row,) = await _NAME_TAKEN.rows(session, name=name)
    return bool(row["taken"])


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
