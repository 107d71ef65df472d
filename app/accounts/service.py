"""Account use cases: who may see what, and the one commit of each change."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import repository as accounts_repository
from app.accounts.models import Account, AccountRole
from app.accounts.repository import AccountListFilters, AccountView
from app.accounts.schemas import AccountCreate, AccountListQuery, AccountPatch
from app.audit import events as audit_events
from app.audit import repository as audit_repository
from app.audit.models import AuditRecord
from app.auth import policy
from app.auth.principal import Principal
from app.errors import InvalidInput, PreconditionFailed
from app.pagination import PageRequest, split_filter


async def get_account(session: AsyncSession, who: Principal, account_id: int) -> AccountView:
    account = await accounts_repository.get_by_id(session, account_id)
    policy.ensure_can_read_account(who, account)
    return account


async def list_accounts(
    session: AsyncSession, who: Principal, query: AccountListQuery, page: PageRequest
) -> tuple[list[Account], int, int]:
    """The accounts the caller may see, filtered and ordered, with (total, filtered) counts.

    The counts are only computed when a page is asked for.
    """
    terms = split_filter(query.filter)
    role_id = None
    if query.role is not None:
        role = await accounts_repository.get_role_by_name(session, query.role)
        if role is None:
            raise InvalidInput("query", "role", f"Unknown account role: {query.role}.")
        role_id = role.id
    filters = AccountListFilters(
        scope=policy.visible_accounts(who),
        terms=terms,
        role_id=role_id,
        sort_by=query.sort_by,
        sort_dir=query.sort_dir,
    )
    if page.page is None:
        accounts = await accounts_repository.find_accounts(session, filters, page)
        return accounts, len(accounts), len(accounts)
    # Counted first: knowing how many match lets a page near the end be read from the end.
    total, filtered = await accounts_repository.count_accounts(session, filters)
    accounts = await accounts_repository.find_accounts(session, filters, page, matching=filtered)
    return accounts, total, filtered


def etag_of(account: Account | AccountView) -> str:
    """A strong ETag: changes with every effective change of the account (its version)."""
    return f'"{account.id}-{account.version}"'


def if_match_holds(if_match: str | None, account: Account) -> bool:
    if if_match is None:
        return True
    tags = {tag.strip() for tag in if_match.split(",")}
    return "*" in tags or etag_of(account) in tags


async def authorize_update(
    session: AsyncSession, who: Principal, account_id: int, fields: Collection[str] = ()
) -> Account:
    """Load (and lock) the account a PATCH is about and check that the caller may update it,
    and may send the `fields` named in the body at all.

    Runs before the body is validated: permission checks come before validation (SPEC §4).
    """
    account = await accounts_repository.get_for_update(session, account_id)
    policy.ensure_can_update_account(who, account)
    if "account_roles" in fields:
        policy.ensure_can_set_account_roles(who)
    if "consultancy_account_id" in fields and not policy.is_admin(who):
        policy.ensure_may_assign_consultancies(who)
    return account


def authorize_create(who: Principal) -> None:
    policy.ensure_can_create_account(who)


async def create_account(session: AsyncSession, who: Principal, body: AccountCreate) -> Account:
    policy.ensure_can_create_account(who)
    consultancy_id = body.consultancy_account_id
    if not policy.is_admin(who):
        # A consultant's new account is their client: their own account is its consultancy,
        # also when they send null (SPEC §4).
        if consultancy_id is None:
            consultancy_id = who.account_id
        elif not await accounts_repository.exists_by_id(session, consultancy_id):
            raise _unknown_consultancy(consultancy_id)
        policy.ensure_can_assign_consultancy(who, consultancy_id)
    draft = NewAccount(name=body.name, consultancy_account_id=consultancy_id)
    return await insert_account(session, who, draft)


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
    if await accounts_repository.get_by_name(session, draft.name) is not None:
        raise _name_taken(draft.name)
    consultancy_id = draft.consultancy_account_id
    if consultancy_id is not None and not await accounts_repository.exists_by_id(
        session, consultancy_id
    ):
        raise _unknown_consultancy(consultancy_id)
    roles = await accounts_repository.get_roles_by_names(session, draft.role_names)
    missing = sorted(set(draft.role_names) - {role.name for role in roles})
    if missing:
        raise InvalidInput(
            "json", "account_roles", f"Unknown account role(s): {', '.join(missing)}."
        )
    account = Account(
        name=draft.name,
        consultancy_account_id=consultancy_id,
        primary_color=draft.primary_color,
        secondary_color=draft.secondary_color,
        logo_url=draft.logo_url,
        attributes={},
        version=1,
        account_roles=roles,
    )
    accounts_repository.add(session, account)
    await _flush_unique_name(session, draft.name)
    audit_repository.add(session, audit_events.account_created(who, account.id))
    await _commit_unique_name(session, draft.name)
    return account


async def update_account(
    session: AsyncSession,
    who: Principal,
    account: Account,
    patch: AccountPatch,
    if_match: str | None = None,
) -> Account:
    """Apply a PATCH to an account loaded (and locked) by `authorize_update`.

    Any 4xx leaves the account as it was; an effective change and its audit record are
    committed together, a no-op writes nothing.
    """
    given = patch.model_fields_set
    if not if_match_holds(if_match, account):
        raise PreconditionFailed()
    if "account_roles" in given:
        policy.ensure_can_set_account_roles(who)
    if "consultancy_account_id" in given:
        await _check_consultancy(session, who, account, patch.consultancy_account_id)
    roles = None
    if "account_roles" in given and patch.account_roles is not None:
        roles = await accounts_repository.get_roles_by_ids(session, patch.account_roles)
        unknown = sorted(set(patch.account_roles) - {role.id for role in roles})
        if unknown:
            raise InvalidInput("json", "account_roles", f"Unknown account role id(s): {unknown}.")
    if "name" in given and patch.name is not None and patch.name != account.name:
        other = await accounts_repository.get_by_name(session, patch.name)
        if other is not None and other.id != account.id:
            raise _name_taken(patch.name)

    changed = _apply(account, patch, roles)
    if not changed:
        return account
    account.version += 1
    audit_repository.add(session, audit_events.account_updated(who, account.id, changed))
    await _commit_unique_name(session, account.name)
    return account


async def _check_consultancy(
    session: AsyncSession, who: Principal, account: Account, consultancy_id: int | None
) -> None:
    # The order of these checks is SPEC §4's: permission, existence, whose account, self.
    if not policy.is_admin(who):
        policy.ensure_may_assign_consultancies(who)
    if consultancy_id is not None and not await accounts_repository.exists_by_id(
        session, consultancy_id
    ):
        raise _unknown_consultancy(consultancy_id)
    policy.ensure_can_assign_consultancy(who, consultancy_id)
    if consultancy_id == account.id:
        raise InvalidInput(
            "json", "consultancy_account_id", "An account cannot be its own consultancy."
        )


# The order in which the audit event names changed fields (SPEC §6).
AUDITED_FIELDS = (
    "name",
    "primary_color",
    "secondary_color",
    "logo_url",
    "consultancy_account_id",
    "attributes",
)


def _apply(account: Account, patch: AccountPatch, roles: list[AccountRole] | None) -> list[str]:
    """Set the fields whose value really changes; return their names in audit order."""
    changed = []
    for field in AUDITED_FIELDS:
        if field in patch.model_fields_set:
            value = getattr(patch, field)
            if getattr(account, field) != value:
                setattr(account, field, value)
                changed.append(field)
    if roles is not None and {role.id for role in roles} != {
        role.id for role in account.account_roles
    }:
        account.account_roles = roles
        changed.append("account_roles")
    return changed


async def get_audit_log(
    session: AsyncSession, who: Principal, account_id: int, text: str | None, page: PageRequest
) -> tuple[list[AuditRecord], int, int]:
    account = await accounts_repository.get_by_id(session, account_id)
    policy.ensure_can_read_audit_log(who, account)
    terms = split_filter(text)
    return await audit_repository.find_for_account(session, account_id, terms, page)


def _name_taken(name: str) -> InvalidInput:
    return InvalidInput("json", "name", f"An account named {name!r} already exists.")


def _unknown_consultancy(account_id: int) -> InvalidInput:
    return InvalidInput("json", "consultancy_account_id", f"Account {account_id} does not exist.")


async def _flush_unique_name(session: AsyncSession, name: str) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        await session.rollback()
        raise _name_taken(name) from exc


async def _commit_unique_name(session: AsyncSession, name: str) -> None:
    # The unique constraint decides races between two requests: the loser gets a 422.
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise _name_taken(name) from exc


async def create_account_role(
    session: AsyncSession, name: str, description: str | None = None
) -> AccountRole:
    """Create an account role (operators only: the CLI)."""
    name = name.strip()
    if not name:
        raise InvalidInput("json", "name", "A role name cannot be empty.")
    if await accounts_repository.get_roles_by_names(session, [name]):
        raise InvalidInput("json", "name", f"An account role named {name!r} already exists.")
    role = AccountRole(name=name, description=description)
    accounts_repository.add(session, role)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise InvalidInput(
            "json", "name", f"An account role named {name!r} already exists."
        ) from exc
    return role
