"""Account use cases: who may see what, and the one commit of each change."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app import etags
from app.accounts import repository as accounts_repository
from app.accounts.models import Account, AccountRole
from app.accounts.repository import AccountListFilters
from app.accounts.schemas import AccountCreate, AccountListQuery, AccountPatch, AccountRead
from app.audit import events as audit_events
from app.audit import repository as audit_repository
from app.audit.schemas import AuditRecordOut
from app.auth import policy
from app.auth.principal import Principal
from app.db import unique_or
from app.errors import InvalidInput, PreconditionFailed
from app.pagination import Counted, PageRequest, split_filter


async def get_account(session: AsyncSession, who: Principal, account_id: int) -> AccountRead:
    account = await accounts_repository.get_by_id(session, account_id)
    policy.authorize_account_read(who, account)
    return account


async def list_accounts(
    session: AsyncSession, who: Principal, query: AccountListQuery, page: PageRequest
) -> Counted[Account]:
    """The accounts the caller may see, filtered and ordered; counted when a page is asked."""
    role_id = None
    if query.role is not None:
        role = await accounts_repository.get_role_by_name(session, query.role)
        if role is None:
            raise InvalidInput("query", "role", f"Unknown account role: {query.role}.")
        role_id = role.id
    filters = AccountListFilters(
        scope=policy.visible_accounts(who),
        terms=split_filter(query.filter),
        role_id=role_id,
        sort_by=query.sort_by,
        sort_dir=query.sort_dir,
    )
    return await accounts_repository.find_page(session, filters, page)


def etag_of(account: Account | AccountRead) -> str:
    return etags.etag("", account.id, account.version)


async def authorize_update(
    session: AsyncSession, who: Principal, account_id: int, fields: Collection[str]
) -> AccountRead:
    """Read the account a PATCH is about and check that the caller may send it these `fields`
    at all: before the body's values are validated (SPEC §4). Nothing is locked: the write
    checks that the account is still as read (`update_account`)."""
    account = await accounts_repository.get_by_id(session, account_id)
    policy.authorize_account_patch(who, account, fields)
    return account


async def create_account(session: AsyncSession, who: Principal, body: AccountCreate) -> Account:
    policy.authorize_account_create(who)
    consultancy_id = body.consultancy_account_id
    if consultancy_id is None and not policy.is_admin(who):
        # A consultant's new account is their client: their own account is its consultancy,
        # also when they send null (SPEC §4).
        consultancy_id = who.account_id
    draft = NewAccount(name=body.name, consultancy_account_id=consultancy_id)
    return await insert_account(session, who, draft)


async def _authorize_consultancy(
    session: AsyncSession, who: Principal | None, account_id: int | None, consultancy_id: int | None
) -> None:
    exists = consultancy_id is not None and await accounts_repository.exists_by_id(
        session, consultancy_id
    )
    if who is None:  # an operator at the command line: only that it exists
        if consultancy_id is not None and not exists:
            raise _unknown_consultancy(consultancy_id)
        return
    policy.authorize_consultancy(who, account_id, consultancy_id, exists=exists)


@dataclass(frozen=True, slots=True)
class NewAccount:
    name: str
    consultancy_account_id: int | None = None
    role_names: Sequence[str] = ()
    primary_color: str | None = None
    secondary_color: str | None = None
    logo_url: str | None = None


async def insert_account(
    session: AsyncSession, who: Principal | None, draft: NewAccount
) -> Account:
    """Insert an account and its `Account Created` record in one transaction.

    `who` is None when an operator creates it from the command line.
    """
    if draft.consultancy_account_id is not None:
        await _authorize_consultancy(session, who, None, draft.consultancy_account_id)
    await _ensure_name_free(session, draft.name)
    roles = await accounts_repository.get_roles_by_names(session, draft.role_names)
    missing = sorted(set(draft.role_names) - {role.name for role in roles})
    if missing:
        raise InvalidInput(
            "json", "account_roles", f"Unknown account role(s): {', '.join(missing)}."
        )
    account = Account(
        name=draft.name,
        consultancy_account_id=draft.consultancy_account_id,
        primary_color=draft.primary_color,
        secondary_color=draft.secondary_color,
        logo_url=draft.logo_url,
        attributes={},
        version=1,
        account_roles=roles,
    )
    accounts_repository.add(session, account)
    async with _unique_name(session, draft.name):
        await session.flush()  # the id, for the audit record
        audit_repository.add(session, audit_events.account_created(who, account.id))
        await session.commit()
    return account


async def update_account(
    session: AsyncSession,
    who: Principal,
    account: AccountRead,
    patch: AccountPatch,
    if_match: str | None = None,
) -> AccountRead:
    """Apply a PATCH to an account read by `authorize_update`.

    Any 4xx leaves the account as it was; an effective change and its audit record are
    committed together, a no-op writes nothing. Everything is checked without a lock. Then, on
    PostgreSQL, a PATCH of plain columns is decided and written by one statement on the row as
    it is when locked (`_update_decided_in_sql`); otherwise (roles, attributes, SQLite) the
    write applies only if the account is still at the version read, and if it has moved on the
    account is read again with its row locked and the PATCH decided again (access,
    `If-Match`, what changes), which no other writer can race any more.
    """
    given = patch.model_fields_set
    if not etags.if_match_holds(if_match, etag_of(account)):
        raise PreconditionFailed()
    if "consultancy_account_id" in given:
        await _authorize_consultancy(session, who, account.id, patch.consultancy_account_id)
    roles = None
    if "account_roles" in given and patch.account_roles is not None:
        roles = await accounts_repository.get_roles_by_ids(session, patch.account_roles)
        unknown = sorted(set(patch.account_roles) - {role.id for role in roles})
        if unknown:
            raise InvalidInput("json", "account_roles", f"Unknown account role id(s): {unknown}.")
    # A name another account has is not checked for first: the write meets the unique
    # constraint, which `_unique_name` answers with the 422, and writes nothing. (A check before
    # it would cost a round trip on every rename and still leave the constraint to decide races.)
    if accounts_repository.decides_in_sql(session, given):
        return await _update_decided_in_sql(session, who, account, patch, if_match)
    return await _update_at_version(session, who, account, patch, roles, if_match)


async def _update_decided_in_sql(
    session: AsyncSession,
    who: Principal,
    account: AccountRead,
    patch: AccountPatch,
    if_match: str | None,
) -> AccountRead:
    """A PATCH of plain columns on PostgreSQL: one statement locks the row, writes the values
    that differ from it and audits them, if the account's consultancy (and with If-Match its
    version) is still as read; a PATCH that changes nothing on the account as read writes
    nothing. A concurrent PATCH is no conflict: the statement decides on what it wrote."""
    _values, changed = _changes(account, patch, None)
    if not changed:
        return account
    given = patch.model_fields_set
    values = {field: getattr(patch, field) for field in AUDITED_FIELDS if field in given}
    record = audit_events.account_updated(who, account.id, list(values))
    name = values.get("name", account.name)
    async with _unique_name(session, name):
        outcome = await accounts_repository.write_decided(
            session, account, values, record, same_version=if_match is not None
        )
        if outcome.written is not None:
            await session.commit()
            return outcome.written
    if outcome.premise_held:  # nothing differs from the account as it is now
        return outcome.current
    if if_match is not None and not etags.if_match_holds(if_match, etag_of(outcome.current)):
        raise PreconditionFailed()
    # Its consultancy moved since the read, and who may change the account with it: decide
    # again on the account as it is now (written only at that version, else under its lock).
    policy.authorize_account_patch(who, outcome.current, given)
    return await _update_at_version(session, who, outcome.current, patch, None, if_match)


async def _update_at_version(
    session: AsyncSession,
    who: Principal,
    account: AccountRead,
    patch: AccountPatch,
    roles: list[AccountRole] | None,
    if_match: str | None,
) -> AccountRead:
    """Write the PATCH only if the account is still at the version read; if it has moved on,
    read it again with its row locked and decide again (access, If-Match, what changes)."""
    given = patch.model_fields_set
    for _attempt in range(2):
        values, changed = _changes(account, patch, roles)
        if not changed:
            return account
        record = audit_events.account_updated(who, account.id, changed)
        new_roles = roles if "account_roles" in changed else None
        async with _unique_name(session, values.get("name", account.name)):
            written = await accounts_repository.write_if_version(
                session, account, values, new_roles, record
            )
            if written is not None:
                await session.commit()
                return written
        # Changed since it was read: lock it, and decide again on what it is.
        account = await accounts_repository.get_for_update(session, account.id)
        policy.authorize_account_patch(who, account, given)
        if not etags.if_match_holds(if_match, etag_of(account)):
            raise PreconditionFailed()
    # Unreachable: the second write finds the version it read under the lock.
    raise RuntimeError(f"account {account.id} changed while locked")


# The order in which the audit event names changed fields (SPEC §6).
AUDITED_FIELDS = (
    "name",
    "primary_color",
    "secondary_color",
    "logo_url",
    "consultancy_account_id",
    "attributes",
)


def _changes(
    account: AccountRead, patch: AccountPatch, roles: list[AccountRole] | None
) -> tuple[dict[str, Any], list[str]]:
    """The columns whose value really changes, and the names of the changed fields in audit
    order (`account_roles` last)."""
    values: dict[str, Any] = {}
    for field in AUDITED_FIELDS:
        if field in patch.model_fields_set:
            value = getattr(patch, field)
            if getattr(account, field) != value:
                values[field] = value
    changed = list(values)
    if roles is not None and {role.id for role in roles} != {
        role.id for role in account.account_roles
    }:
        changed.append("account_roles")
    return values, changed


async def get_audit_log(
    session: AsyncSession, who: Principal, account_id: int, text: str | None, page: PageRequest
) -> Counted[AuditRecordOut]:
    account = await accounts_repository.get_by_id(session, account_id)
    policy.authorize_account_audit_log(who, account)
    return await audit_repository.find_page(
        session, audit_repository.About.ACCOUNT, account_id, split_filter(text), page
    )


def _name_taken(name: str) -> InvalidInput:
    return InvalidInput("json", "name", f"An account named {name!r} already exists.")


def _unknown_consultancy(account_id: int) -> InvalidInput:
    return InvalidInput("json", "consultancy_account_id", f"Account {account_id} does not exist.")


async def _ensure_name_free(session: AsyncSession, name: str) -> None:
    """That no account has `name`."""
    if await accounts_repository.name_taken(session, name):
        raise _name_taken(name)


def _unique_name(session: AsyncSession, name: str) -> AbstractAsyncContextManager[None]:
    # The check above answers the common case; the unique constraint decides races between two
    # requests: the loser gets the same 422.
    return unique_or(session, _name_taken(name))


async def create_account_role(
    session: AsyncSession, name: str, description: str | None = None
) -> AccountRole:
    """Create an account role (operators only: the CLI)."""
    name = name.strip()
    if not name:
        raise InvalidInput("json", "name", "A role name cannot be empty.")
    if await accounts_repository.get_roles_by_names(session, [name]):
        raise _role_taken(name)
    role = AccountRole(name=name, description=description)
    accounts_repository.add(session, role)
    async with unique_or(session, _role_taken(name)):
        await session.commit()
    return role


def _role_taken(name: str) -> InvalidInput:
    return InvalidInput("json", "name", f"An account role named {name!r} already exists.")
