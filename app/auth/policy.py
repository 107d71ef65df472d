"""Every access rule of SPEC §4, as plain functions of a Principal.

`can_…` answers, `ensure_…` raises Forbidden, `visible_…` returns a scope (data, not SQL) that a
repository turns into a WHERE clause, so that a list and a single read can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from app.accounts.models import CONSULTANCY
from app.auth.principal import Principal
from app.errors import Forbidden
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


def ensure_can_read_account(who: Principal, account: AccountLike) -> None:
    ensure(can_read_account(who, account), f"You may not read account {account.id}.")


def ensure_can_update_account(who: Principal, account: AccountLike) -> None:
    ensure(can_update_account(who, account), f"You may not update account {account.id}.")


def ensure_can_read_audit_log(who: Principal, account: AccountLike) -> None:
    ensure(
        can_read_audit_log(who, account), f"You may not read the audit log of account {account.id}."
    )


def ensure_can_create_account(who: Principal) -> None:
    ensure(can_create_account(who), "You may not create accounts.")


def ensure_can_set_account_roles(who: Principal) -> None:
    ensure(can_set_account_roles(who), "Only admins may change account roles.")


def ensure_may_assign_consultancies(who: Principal) -> None:
    ensure(
        is_admin(who) or may_assign_consultancies(who),
        "Only consultants and account admins of a consultancy account may set a consultancy.",
    )


def ensure_can_assign_consultancy(who: Principal, consultancy_account_id: int | None) -> None:
    ensure(
        can_assign_consultancy(who, consultancy_account_id),
        "You may only name your own account as the consultancy.",
    )
