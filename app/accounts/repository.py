"""Queries on accounts and account roles."""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.accounts.errors import AccountNotFound
from app.accounts.models import Account, AccountRole, AccountTotal, account_account_role
from app.accounts.schemas import AccountRead, AccountRoleOut
from app.accounts.scope import account_scope_clause
from app.audit import events as audit_events
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


def _account(row: NamedRow, roles: list[AccountRoleOut], prefix: str = "") -> AccountRead:
    """The account of a row holding its columns, each labelled `prefix` + the column's name."""
    # Validated in pydantic's core, which costs fewer instructions than model_construct's
    # Python (docs/BENCHMARKS.md); the output schema has no constraints a stored value could miss.
    values = {name: row[prefix + name] for name in _ACCOUNT_FIELDS}
    values["account_roles"] = roles
    return AccountRead.model_validate(values)


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


#: The columns a PATCH may change that the one-statement decided write compares in SQL (the
#: JSON attributes and the roles take the version-checked write).
DECIDED_IN_SQL = frozenset(
    {"name", "primary_color", "secondary_color", "logo_url", "consultancy_account_id"}
)


@dataclass(frozen=True, slots=True)
class DecidedWrite:
    """What the decided write found: the account as it was when its row was locked, whether
    the premises the PATCH was authorised on still held, and the account as written, if
    anything changed."""

    current: AccountRead
    premise_held: bool
    written: AccountRead | None


def decides_in_sql(session: AsyncSession, fields: Collection[str]) -> bool:
    """Whether a PATCH of these fields is written by `write_decided` (on PostgreSQL)."""
    return session.get_bind().dialect.name == "postgresql" and set(fields) <= DECIDED_IN_SQL


async def write_decided(
    session: AsyncSession,
    read: AccountRead,
    values: Mapping[str, Any],
    record: AuditRecord,
    *,
    same_version: bool,
) -> DecidedWrite:
    """Set `values` (in the order the audit record names fields) on the account as it is now,
    in one statement: it locks the row, compares
    each value with the row's own, writes those that differ (and bumps the version) and adds
    the audit record naming them, all only if the premises the caller checked on `read` still
    hold: the account's consultancy (access may hang on it) and, with `same_version`, its
    version (an If-Match). `record` gives the audit record's author and time; its event is
    worded again in SQL from the fields that change (`audit_events.ACCOUNT_UPDATED`).

    There is nothing to retry when another PATCH committed since `read`: the statement decides
    on what that one wrote. The row is locked for this statement and its commit only (on the
    driver, as every request's reads are, it is its own transaction: app.rawrows).
    """
    rows = await _decided_write(tuple(values), same_version).rows(
        session,
        account_id=read.id,
        read_consultancy=read.consultancy_account_id,
        read_version=read.version,
        **{f"new_{name}": value for name, value in values.items()},
        **{f"audit_{name}": getattr(record, name) for name in _AUDIT_COLUMNS if name != "event"},
    )
    if not rows:
        raise AccountNotFound(read.id)
    (row,) = rows
    current = _account(row, read.account_roles, prefix="old_")
    premise_held = current.consultancy_account_id == read.consultancy_account_id and (
        not same_version or current.version == read.version
    )
    written = _account(row, read.account_roles) if row["id"] is not None else None
    return DecidedWrite(current, premise_held, written)


@functools.cache
def _decided_write(columns: tuple[str, ...], same_version: bool) -> DriverQuery:
    """`write_decided`'s statement for these columns, built and compiled once per set of them.

    old: the row, locked (FOR UPDATE: after a concurrent writer's commit, its version);
    written: the values that differ from old's, only if the premises hold and one differs;
    audited: the record naming those fields, only if written. The final SELECT returns old and,
    if written, the row as written."""
    table = Account.__table__
    old = (
        select(*(table.c[name] for name in _ACCOUNT_FIELDS))
        .where(table.c.id == bindparam("account_id"))
        .with_for_update()
        .cte("old")
    )
    new = {name: bindparam(f"new_{name}", type_=table.c[name].type) for name in columns}
    differs = {name: old.c[name].is_distinct_from(new[name]) for name in columns}
    premises = [
        old.c.consultancy_account_id.is_not_distinct_from(
            bindparam("read_consultancy", type_=table.c.consultancy_account_id.type)
        )
    ]
    if same_version:
        premises.append(old.c.version == bindparam("read_version", type_=table.c.version.type))
    event = literal(audit_events.ACCOUNT_UPDATED) + func.concat_ws(
        audit_events.FIELD_SEPARATOR,
        *(case((differs[name], literal(name)), else_=None) for name in columns),
    )
    written = (
        update(Account)
        .where(Account.id == old.c.id, *premises, or_(*differs.values()))
        .values({**new, "version": Account.version + literal_column("1", Integer)})
        .returning(*_WRITTEN, event.label("event"))
        .cte("written")
    )
    audit = AuditRecord.__table__
    audited = (
        insert(AuditRecord)
        .from_select(
            [*_AUDIT_COLUMNS, "affected_account_id"],
            select(
                written.c.event,
                *(
                    bindparam(f"audit_{name}", type_=audit.c[name].type).label(name)
                    for name in _AUDIT_COLUMNS
                    if name != "event"
                ),
                written.c.id,
            ),
        )
        .cte("audited")
    )
    return DriverQuery(
        select(
            *(old.c[name].label(f"old_{name}") for name in _ACCOUNT_FIELDS),
            *(written.c[name].label(name) for name in _ACCOUNT_FIELDS),
        )
        .select_from(old.outerjoin(written, true()))
        .add_cte(audited)
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
