"""SPEC §4 as one table: what every action answers for every user of the world on every account.

The rules are written from SPEC.md alone, deliberately *not* by importing `app.auth.policy`: the
matrix is a second, independent reading of the contract that the policy is checked against.
The world's facts (who has which roles in which account) come from `app.demo`, which is data.
`python -m tests.authz.matrix` prints the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from app import demo

# --- the vocabulary of SPEC §4 ------------------------------------------------------------------

ADMIN: Final = "admin"
ADMIN_READER: Final = "admin-reader"
ACCOUNT_ADMIN: Final = "account-admin"
CONSULTANT: Final = "consultant"
CONSULTANCY: Final = "Consultancy"  # the special account role

#: Outcomes: HTTP statuses, and for list visibility whether the account is in the list.
LISTED: Final = "listed"
HIDDEN: Final = "hidden"
Outcome = int | str

#: A consultancy id that names no account (a value of a cell's body, never a world account).
UNKNOWN: Final = "<unknown id>"


# --- the world, as facts ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    roles: frozenset[str]  # account roles
    consultancy: str | None  # the consultancy account's name

    @property
    def label(self) -> str:
        return self.name.removeprefix("Test ").removesuffix(" Account")


@dataclass(frozen=True, slots=True)
class User:
    key: str | None  # demo key; None: a request without a token
    account: Account | None
    roles: frozenset[str]  # user roles

    @property
    def label(self) -> str:
        return self.key or "no_token"

    def has(self, role: str) -> bool:
        return role in self.roles


ACCOUNTS: tuple[Account, ...] = tuple(
    Account(name, frozenset(roles), consultancy) for name, roles, consultancy in demo.ACCOUNTS
)
_BY_NAME = {account.name: account for account in ACCOUNTS}
USERS: tuple[User, ...] = (
    *(User(u.key, _BY_NAME[u.account], frozenset(map(str, u.roles))) for u in demo.USERS),
    User(None, None, frozenset()),
)


# --- the rules, in the words of SPEC §4 -----------------------------------------------------------


def is_member(user: User, account: Account) -> bool:
    return user.account == account


def is_consultant_of(user: User, account: Account) -> bool:
    """A `consultant` of the account's consultancy account acts for it (a client account)."""
    return (
        user.has(CONSULTANT)
        and user.account is not None
        and account.consultancy == user.account.name
    )


def reads_everything(user: User) -> bool:
    return user.has(ADMIN) or user.has(ADMIN_READER)


def may_list(user: User, account: Account) -> bool:
    """admin, admin-reader: all. Others: own account, plus their account's clients if consultant."""
    return reads_everything(user) or is_member(user, account) or is_consultant_of(user, account)


def may_read(user: User, account: Account) -> bool:
    """admin, admin-reader; members of the account; consultants of its consultancy account."""
    return reads_everything(user) or is_member(user, account) or is_consultant_of(user, account)


def may_update(user: User, account: Account) -> bool:
    """admin; members of the account; consultants of its consultancy account."""
    return user.has(ADMIN) or is_member(user, account) or is_consultant_of(user, account)


def may_read_audit_log(user: User, account: Account) -> bool:
    """admin, admin-reader; account-admin of that account; consultants of its consultancy."""
    return (
        reads_everything(user)
        or (is_member(user, account) and user.has(ACCOUNT_ADMIN))
        or is_consultant_of(user, account)
    )


def may_create(user: User) -> bool:
    """admin; a consultant whose account has account role Consultancy."""
    return user.has(ADMIN) or (
        user.has(CONSULTANT) and user.account is not None and CONSULTANCY in user.account.roles
    )


def consultancy_check(user: User, value: str | None, target: Account | None) -> int | None:
    """`consultancy_account_id` := value (an account name, None or UNKNOWN), in SPEC's order.

    `target` is the account being patched (None for a POST). None means: allowed.
    """
    if not user.has(ADMIN):
        assert user.account is not None
        if CONSULTANCY not in user.account.roles or not (
            user.has(CONSULTANT) or user.has(ACCOUNT_ADMIN)
        ):
            return 403
        if value == UNKNOWN:
            return 422
        if value is not None and value != user.account.name:
            return 403
    elif value == UNKNOWN:
        return 422  # admin: any *existing* account or null
    if target is not None and value == target.name:
        return 422  # no account is its own consultancy: for anyone, after the permission checks
    return None


def created_consultancy(user: User, value: str | None) -> str | None:
    """The consultancy of an account created with `value`: a consultant's defaults to their own."""
    if user.has(ADMIN) or value is not None:
        return value
    assert user.account is not None
    return user.account.name


# --- the actions ------------------------------------------------------------------------------


def other_account(user: User, target: Account | None) -> Account:
    """An existing account that is neither the user's own nor the target."""
    return next(a for a in ACCOUNTS if a not in (user.account, target))


def consultancy_value(variant: str, user: User, target: Account | None) -> str | None:
    """Which consultancy an action sends: an account name, None (null) or UNKNOWN."""
    if variant == "own":  # no token: no account of one's own, so null
        return user.account.name if user.account else None
    if variant == "other":
        return other_account(user, target).name
    if variant == "self":
        assert target is not None
        return target.name
    if variant == "unknown":
        return UNKNOWN
    return None  # "null", and a POST that leaves it out


def _status(allowed: bool) -> int:
    return 200 if allowed else 403


def _patch_consultancy(variant: str) -> Callable[[User, Account], Outcome]:
    def rule(user: User, account: Account) -> Outcome:
        if not may_update(user, account):
            return 403
        value = consultancy_value(variant, user, account)
        return consultancy_check(user, value, account) or 200

    return rule


def _patch_roles(user: User, account: Account) -> Outcome:
    return _status(may_update(user, account) and user.has(ADMIN))  # account_roles: admin only


def _patch_id(user: User, account: Account) -> Outcome:
    return 422 if may_update(user, account) else 403  # `id`: an unknown field, after permission


#: Per-account actions: name -> rule(user, account). No token is 401 before any rule.
ACCOUNT_ACTIONS: dict[str, Callable[[User, Account], Outcome]] = {
    "list": lambda user, account: LISTED if may_list(user, account) else HIDDEN,
    "read": lambda user, account: _status(may_read(user, account)),
    "update": lambda user, account: _status(may_update(user, account)),
    "update_account_roles": _patch_roles,
    "update_id": _patch_id,
    "update_consultancy_null": _patch_consultancy("null"),
    "update_consultancy_own": _patch_consultancy("own"),
    "update_consultancy_other": _patch_consultancy("other"),
    "update_consultancy_self": _patch_consultancy("self"),
    "update_consultancy_unknown": _patch_consultancy("unknown"),
    "auditlog": lambda user, account: _status(may_read_audit_log(user, account)),
    "users": lambda user, account: _status(may_read(user, account)),
}


def _create(variant: str) -> Callable[[User], Outcome]:
    def rule(user: User) -> Outcome:
        if not may_create(user):
            return 403
        return consultancy_check(user, consultancy_value(variant, user, None), None) or 201

    return rule


#: POST /accounts: name -> rule(user). "create" leaves `consultancy_account_id` out.
CREATE_ACTIONS: dict[str, Callable[[User], Outcome]] = {
    "create": _create("absent"),
    "create_consultancy_null": _create("null"),
    "create_consultancy_own": _create("own"),
    "create_consultancy_other": _create("other"),
    "create_consultancy_unknown": _create("unknown"),
}


# --- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cell:
    user: User
    account: Account | None  # None: a create
    action: str
    expected: Outcome

    @property
    def id(self) -> str:
        where = self.account.name if self.account else "new account"
        return f"{self.user.label}-{where}-{self.action}"

    @property
    def variant(self) -> str:
        return variant_of(self.action)


def variant_of(action: str) -> str:
    """What an action sends as consultancy: "null", "own", "other", "self", "unknown"; or
    "absent" when it sends none."""
    return action.partition("consultancy_")[2] or "absent"


def expect(user: User, account: Account | None, action: str) -> Outcome:
    if user.key is None:
        return 401
    if account is None:
        return CREATE_ACTIONS[action](user)
    return ACCOUNT_ACTIONS[action](user, account)


def cells() -> Iterator[Cell]:
    for user in USERS:
        for action in ACCOUNT_ACTIONS:
            for account in ACCOUNTS:
                yield Cell(user, account, action, expect(user, account, action))
        for action in CREATE_ACTIONS:
            yield Cell(user, None, action, expect(user, None, action))


CELLS: tuple[Cell, ...] = tuple(cells())


def render() -> str:
    """The table: one block per action, users down, accounts (or the create variants) across."""
    blocks = [
        _block(
            action,
            [a.label for a in ACCOUNTS],
            [[expect(u, a, action) for a in ACCOUNTS] for u in USERS],
        )
        for action in ACCOUNT_ACTIONS
    ]
    variants = [variant_of(action) for action in CREATE_ACTIONS]
    rows = [[expect(user, None, action) for action in CREATE_ACTIONS] for user in USERS]
    blocks.append(_block("create", variants, rows))
    return "\n\n".join(blocks)


def _block(title: str, columns: list[str], rows: list[list[Outcome]]) -> str:
    shown: dict[Outcome, str] = {LISTED: "yes", HIDDEN: "-"}
    first = max(len(user.label) for user in USERS)
    lines = [title, " " * first + "".join(f"  {column}" for column in columns)]
    for user, row in zip(USERS, rows, strict=True):
        cells = (f"  {shown.get(o, str(o)):>{len(c)}}" for c, o in zip(columns, row, strict=True))
        lines.append(f"{user.label:<{first}}" + "".join(cells))
    return "\n".join(lines)


if __name__ == "__main__":
    print(render())
