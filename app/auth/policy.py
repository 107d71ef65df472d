"""Every access rule of SPEC §4, as plain functions of a Principal.

`can_…` answers; `authorize_…`, one per action of each resource, raises Forbidden (or, where
SPEC §4 orders a value check among them, InvalidInput); `visible_…` returns a scope (data, not
SQL) that a repository turns into a WHERE clause, so that a list and a single read can never
disagree.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from app.accounts.models import CONSULTANCY
from app.auth.principal import Principal
from app.errors import Forbidden, InvalidInput
from app.users.models import RoleName


class AccountLike(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def consultancy_account_id(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class AccountScope:
    """The accounts a principal may see: all of them, or one account plus its clients."""

    everything: bool = False
    account_id: int | None = None
    clients_of: int | None = None


def is_admin(who: Principal) -> bool:
    return who.has_role(RoleName.ADMIN)


def can_read_everything(who: Principal) -> bool:
    return who.has_role(RoleName.ADMIN) or who.has_role(RoleName.ADMIN_READER)


def is_member(who: Principal, account: AccountLike) -> bool:
    return who.account_id == account.id


def is_consultant_for(who: Principal, account: AccountLike) -> bool:
    """A `consultant` of the account's consultancy account acts for it."""
    return (
        who.has_role(RoleName.CONSULTANT)
        and account.consultancy_account_id is not None
        and account.consultancy_account_id == who.account_id
    )


def visible_accounts(who: Principal) -> AccountScope:
    if can_read_everything(who):
        return AccountScope(everything=True)
    clients_of = who.account_id if who.has_role(RoleName.CONSULTANT) else None
    return AccountScope(account_id=who.account_id, clients_of=clients_of)


def can_read_account(who: Principal, account: AccountLike) -> bool:
    return can_read_everything(who) or is_member(who, account) or is_consultant_for(who, account)


def can_update_account(who: Principal, account: AccountLike) -> bool:
    return is_admin(who) or is_member(who, account) or is_consultant_for(who, account)


def can_read_audit_log(who: Principal, account: AccountLike) -> bool:
    return (
        can_read_everything(who)
        or (is_member(who, account) and who.has_role(RoleName.ACCOUNT_ADMIN))
        or is_consultant_for(who, account)
    )


def can_create_account(who: Principal) -> bool:
    return is_admin(who) or (who.has_role(RoleName.CONSULTANT) and CONSULTANCY in who.account_roles)


def can_set_account_roles(who: Principal) -> bool:
    # FlexMeasures lets any member add roles to their own account; here only admins may (SPEC §10).
    return is_admin(who)


def may_assign_consultancies(who: Principal) -> bool:
    """Whether a non-admin may touch `consultancy_account_id` at all (first check of SPEC §4)."""
    return CONSULTANCY in who.account_roles and (
        who.has_role(RoleName.CONSULTANT) or who.has_role(RoleName.ACCOUNT_ADMIN)
    )


def can_assign_consultancy(who: Principal, consultancy_account_id: int | None) -> bool:
    """A non-admin may only name their own (consultancy) account, or none."""
    if is_admin(who):
        return True
    return consultancy_account_id is None or consultancy_account_id == who.account_id


def ensure(allowed: bool, message: str) -> None:
    if not allowed:
        raise Forbidden(message)


# --- accounts: one guard per action --------------------------------------------------------------
# list: visible_accounts · read: authorize_account_read · create: authorize_account_create (and
# authorize_consultancy for the value) · update: authorize_account_patch (and
# authorize_consultancy) · audit log: authorize_account_audit_log.


def authorize_account_read(who: Principal, account: AccountLike) -> None:
    ensure(can_read_account(who, account), f"You may not read account {account.id}.")


def authorize_account_create(who: Principal) -> None:
    ensure(can_create_account(who), "You may not create accounts.")


#: The fields of an account PATCH whose mere presence needs a permission (SPEC §4).
ACCOUNT_ROLES = "account_roles"
CONSULTANCY_ACCOUNT_ID = "consultancy_account_id"


def authorize_account_patch(who: Principal, account: AccountLike, fields: Collection[str]) -> None:
    """Whether `who` may send a PATCH with these `fields` to this account, in SPEC §4's order:
    update the account at all; `account_roles` (admins only); `consultancy_account_id` (a
    non-admin: only a consultant or account-admin of a Consultancy account). Decided before the
    body's values are validated; what the consultancy value may be is `authorize_consultancy`."""
    ensure(can_update_account(who, account), f"You may not update account {account.id}.")
    if ACCOUNT_ROLES in fields:
        # FlexMeasures lets any member add roles to their own account (SPEC §10).
        ensure(can_set_account_roles(who), "Only admins may change account roles.")
    if CONSULTANCY_ACCOUNT_ID in fields:
        _ensure_may_assign_consultancies(who)


def authorize_consultancy(
    who: Principal, account_id: int | None, consultancy_id: int | None, *, exists: bool
) -> None:
    """Whether `who` may make `consultancy_id` the consultancy of account `account_id` (None:
    an account being created), SPEC §4's order: may they set one at all (403); does it name an
    account (422); a non-admin only their own account or none (403); never the account itself
    (422)."""
    _ensure_may_assign_consultancies(who)
    if consultancy_id is not None and not exists:
        raise InvalidInput(
            "json", CONSULTANCY_ACCOUNT_ID, f"Account {consultancy_id} does not exist."
        )
    ensure(
        can_assign_consultancy(who, consultancy_id),
        "You may only name your own account as the consultancy.",
    )
    if account_id is not None and consultancy_id == account_id:
        raise InvalidInput(
            "json", CONSULTANCY_ACCOUNT_ID, "An account cannot be its own consultancy."
        )


def _ensure_may_assign_consultancies(who: Principal) -> None:
    ensure(
        is_admin(who) or may_assign_consultancies(who),
        "Only consultants and account admins of a consultancy account may set a consultancy.",
    )


def authorize_account_audit_log(who: Principal, account: AccountLike) -> None:
    ensure(
        can_read_audit_log(who, account), f"You may not read the audit log of account {account.id}."
    )


# --- users ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserTarget:
    """The user an action is about, as the rules need it: who they are, their role names, and
    their account (for its consultancy)."""

    id: int
    roles: frozenset[str]
    account: AccountLike


def visible_users(who: Principal) -> AccountScope:
    """The users of the accounts `who` may read (admins and admin-readers: every user)."""
    return visible_accounts(who)


def is_self(who: Principal, target: UserTarget) -> bool:
    return who.user_id == target.id


def is_account_admin_of(who: Principal, account: AccountLike) -> bool:
    return who.has_role(RoleName.ACCOUNT_ADMIN) and is_member(who, account)


def can_manage_users_of(who: Principal, account: AccountLike) -> bool:
    """Admin, an account-admin of the account, or a consultant of its consultancy (SPEC §4)."""
    return is_admin(who) or is_account_admin_of(who, account) or is_consultant_for(who, account)


def can_update_user(who: Principal, target: UserTarget) -> bool:
    return is_admin(who) or is_self(who, target) or can_manage_users_of(who, target.account)


def is_administrator(target: UserTarget) -> bool:
    return RoleName.ADMIN in target.roles or RoleName.ADMIN_READER in target.roles


#: What a non-admin administrator (an admin-reader) may still change of themself.
OWN_PROFILE_FIELDS = frozenset({"email", "username", "timezone"})
#: What nobody changes of themself.
OWN_LOCKED_FIELDS = frozenset({"active", "flexmeasures_roles"})


def authorize_user_read(who: Principal, target: UserTarget) -> None:
    ensure(can_read_account(who, target.account), f"You may not read user {target.id}.")


def authorize_user_create(who: Principal, account: AccountLike | None, account_id: int) -> None:
    """Whether `who` may create a user in `account` (None: no such account). A non-admin
    learns nothing of accounts they may not manage: an unknown one is 403 too; an admin's is 422
    (SPEC §4)."""
    if account is None:
        if is_admin(who):
            raise InvalidInput("json", "account_id", f"Account {account_id} does not exist.")
        raise Forbidden(f"You may not create users in account {account_id}.")
    ensure(can_manage_users_of(who, account), f"You may not create users in account {account.id}.")


def authorize_user_patch(who: Principal, target: UserTarget, fields: Collection[str]) -> None:
    """Whether `who` may send a PATCH with these `fields` to this user, in SPEC §4's order:
    admin, the user themself, account-admin of their account, consultant of its consultancy;
    an administrator (admin or admin-reader) only by an admin, but for their own profile
    fields; nobody their own `active` or roles. Which roles may change is `authorize_role_changes`,
    once the role ids are known."""
    ensure(can_update_user(who, target), f"You may not update user {target.id}.")
    if is_administrator(target) and not is_admin(who):
        ensure(
            is_self(who, target) and set(fields) <= OWN_PROFILE_FIELDS,
            "Only admins may change an administrator.",
        )
    if is_self(who, target):
        locked = sorted(OWN_LOCKED_FIELDS & set(fields))
        ensure(not locked, f"Nobody may change their own {' or '.join(locked)}.")


def authorize_user_password_reset(who: Principal, target: UserTarget) -> None:
    """Who may update a user may reset their password; an administrator's only an admin."""
    ensure(can_update_user(who, target), f"You may not reset the password of user {target.id}.")
    ensure(
        is_admin(who) or not is_administrator(target),
        "Only admins may reset an administrator's password.",
    )


def authorize_role_changes(who: Principal, account: AccountLike, changed: Collection[str]) -> None:
    """Whether `who` may add or remove each of the role names `changed` for a user of
    `account` (SPEC §4): `admin` nobody (the CLI only); `admin-reader` admins; `account-admin`
    admins and consultants of the account's consultancy; `consultant` admins and account-admins
    of the account. Other roles: whoever may update the user."""
    for role in sorted(changed):
        if role == RoleName.ADMIN:
            allowed = False
        elif role == RoleName.ADMIN_READER:
            allowed = is_admin(who)
        elif role == RoleName.ACCOUNT_ADMIN:
            allowed = is_admin(who) or is_consultant_for(who, account)
        elif role == RoleName.CONSULTANT:
            allowed = is_admin(who) or is_account_admin_of(who, account)
        else:
            allowed = True
        ensure(allowed, f"You may not add or remove the role {role}.")


def authorize_user_audit_log(who: Principal, target: UserTarget) -> None:
    ensure(
        can_read_everything(who)
        or is_self(who, target)
        or is_account_admin_of(who, target.account)
        or is_consultant_for(who, target.account),
        f"You may not read the audit log of user {target.id}.",
    )
