"""SPEC §4's user rows as one table: what every user action answers for every caller of the
world on every user of the world. Written from SPEC alone, deliberately *not* by importing
`app.auth.policy` (a second, independent reading of the contract, as tests/authz/matrix.py is for
accounts); the world's facts come from `app.demo`, which is data."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from app import demo

ADMIN, ADMIN_READER, ACCOUNT_ADMIN, CONSULTANT = (
    "admin",
    "admin-reader",
    "account-admin",
    "consultant",
)
ROLES = (ADMIN, ADMIN_READER, ACCOUNT_ADMIN, CONSULTANT)
_CONSULTANCY_OF = {name: consultancy for name, _roles, consultancy in demo.ACCOUNTS}


@dataclass(frozen=True, slots=True)
class Person:
    key: str
    account: str
    roles: frozenset[str]

    def has(self, role: str) -> bool:
        return role in self.roles


PEOPLE = tuple(Person(u.key, u.account, frozenset(map(str, u.roles))) for u in demo.USERS)


def is_consultant_of(caller: Person, target: Person) -> bool:
    """A consultant of the target's account's consultancy account acts for it."""
    return caller.has(CONSULTANT) and _CONSULTANCY_OF[target.account] == caller.account


def is_account_admin_of(caller: Person, target: Person) -> bool:
    return caller.has(ACCOUNT_ADMIN) and caller.account == target.account


def may_read(caller: Person, target: Person) -> bool:
    # "the users of the accounts the caller may read (admin, admin-reader: all users)"
    return (
        caller.has(ADMIN)
        or caller.has(ADMIN_READER)
        or caller.account == target.account
        or is_consultant_of(caller, target)
    )


def may_update(caller: Person, target: Person) -> bool:
    # "admin; the user themself; account-admin of the user's account; consultants of its
    # consultancy account"
    return (
        caller.has(ADMIN)
        or caller.key == target.key
        or is_account_admin_of(caller, target)
        or is_consultant_of(caller, target)
    )


def is_administrator(target: Person) -> bool:
    return target.has(ADMIN) or target.has(ADMIN_READER)


def may_change_fields(caller: Person, target: Person, *, profile_only: bool) -> bool:
    """May update, and "a user who has role admin or admin-reader: admin only (the user
    themself may still change their own username, email, timezone)"."""
    if not may_update(caller, target):
        return False
    if is_administrator(target) and not caller.has(ADMIN):
        return caller.key == target.key and profile_only
    return True


def role_rule(caller: Person, target: Person, role: str) -> bool:
    if role == ADMIN:
        return False  # "nobody through the API"
    if role == ADMIN_READER:
        return caller.has(ADMIN)
    if role == ACCOUNT_ADMIN:
        return caller.has(ADMIN) or is_consultant_of(caller, target)
    return caller.has(ADMIN) or is_account_admin_of(caller, target)  # consultant


@dataclass(frozen=True, slots=True)
class Cell:
    caller: str | None
    target: str
    action: str  # read, timezone, deactivate, password_reset, auditlog, role:<name>
    expected: int

    @property
    def id(self) -> str:
        return f"{self.caller or 'no_token'}-{self.action}-{self.target}"


def outcome(caller: Person, target: Person, action: str) -> int:
    allowed: bool
    if action == "read":
        allowed = may_read(caller, target)
    elif action == "timezone":
        allowed = may_change_fields(caller, target, profile_only=True)
    elif action == "deactivate":
        # "active or flexmeasures_roles of oneself: nobody"
        allowed = caller.key != target.key and may_change_fields(caller, target, profile_only=False)
    elif action == "password_reset":
        allowed = may_change_fields(caller, target, profile_only=False)
    elif action == "auditlog":
        allowed = (
            caller.has(ADMIN)
            or caller.has(ADMIN_READER)
            or caller.key == target.key
            or is_account_admin_of(caller, target)
            or is_consultant_of(caller, target)
        )
    else:
        role = action.removeprefix("role:")
        allowed = (
            caller.key != target.key
            and may_change_fields(caller, target, profile_only=False)
            and role_rule(caller, target, role)
        )
    return 200 if allowed else 403


ACTIONS = (
    "read",
    "timezone",
    "deactivate",
    "password_reset",
    "auditlog",
    *(f"role:{role}" for role in ROLES),
)
#: An account id that names no account, for POST /users.
UNKNOWN_ACCOUNT = "<unknown account>"


def create_outcome(caller: Person, account: str) -> int:
    """POST /users into `account`: "admin; account-admin of that account; consultants of its
    consultancy account. A non-admin naming an account that does not exist: 403 (no existence
    leak); an admin: 422"."""
    if account == UNKNOWN_ACCOUNT:
        return 422 if caller.has(ADMIN) else 403
    allowed = (
        caller.has(ADMIN)
        or (caller.has(ACCOUNT_ADMIN) and caller.account == account)
        or (caller.has(CONSULTANT) and _CONSULTANCY_OF[account] == caller.account)
    )
    return 201 if allowed else 403


def create_cells() -> Iterator[tuple[str | None, str, int]]:
    for account in (*(name for name, _roles, _consultancy in demo.ACCOUNTS), UNKNOWN_ACCOUNT):
        yield None, account, 401
        for caller in PEOPLE:
            yield caller.key, account, create_outcome(caller, account)


def cells() -> Iterator[Cell]:
    for target in PEOPLE:
        for action in ACTIONS:
            yield Cell(None, target.key, action, 401)
            for caller in PEOPLE:
                yield Cell(caller.key, target.key, action, outcome(caller, target, action))
