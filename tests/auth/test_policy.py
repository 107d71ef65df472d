"""The access rules of SPEC §4 as tables: plain Principals and account stand-ins, no database."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from app.auth import policy
from app.auth.policy import AccountScope
from app.auth.principal import Principal
from app.errors import Forbidden, InvalidInput


@dataclass(frozen=True)
class Acct:
    id: int
    consultancy_account_id: int | None = None


CONSULTANCY = Acct(1)  # has account role "Consultancy"
CLIENT = Acct(2, consultancy_account_id=1)
OTHER = Acct(3)
OTHERS_CLIENT = Acct(4, consultancy_account_id=3)
ACCOUNTS = (CONSULTANCY, CLIENT, OTHER, OTHERS_CLIENT)


def who(account_id: int, *roles: str, account_roles: tuple[str, ...] = ()) -> Principal:
    return Principal(
        user_id=100 + account_id,
        username="someone",
        account_id=account_id,
        roles=frozenset(roles),
        account_roles=frozenset(account_roles),
    )


PEOPLE = {
    "admin": who(3, "admin"),
    "admin_reader": who(3, "admin-reader"),
    "consultant": who(1, "consultant", account_roles=("Consultancy",)),
    "consultancy_account_admin": who(1, "account-admin", account_roles=("Consultancy",)),
    "consultancy_member": who(1, account_roles=("Consultancy",)),
    "client_member": who(2),
    "client_account_admin": who(2, "account-admin"),
    # A consultant whose account lacks the Consultancy role still acts for its client accounts.
    "other_consultant": who(3, "consultant"),
}


def table(rows: dict[str, tuple[bool, bool, bool, bool]]) -> list[tuple[str, Acct, bool]]:
    """Expand {person: (on CONSULTANCY, CLIENT, OTHER, OTHERS_CLIENT)} into test cases."""
    return [
        (person, account, allowed)
        for person, row in rows.items()
        for account, allowed in zip(ACCOUNTS, row, strict=True)
    ]


READ = {
    "admin": (True, True, True, True),
    "admin_reader": (True, True, True, True),
    "consultant": (True, True, False, False),
    "consultancy_account_admin": (True, False, False, False),
    "consultancy_member": (True, False, False, False),
    "client_member": (False, True, False, False),
    "client_account_admin": (False, True, False, False),
    "other_consultant": (False, False, True, True),
}

UPDATE = {
    "admin": (True, True, True, True),
    "admin_reader": (False, False, True, False),  # a member of its own account, no more
    "consultant": (True, True, False, False),
    "consultancy_account_admin": (True, False, False, False),
    "consultancy_member": (True, False, False, False),
    "client_member": (False, True, False, False),
    "client_account_admin": (False, True, False, False),
    "other_consultant": (False, False, True, True),
}

AUDIT_LOG = {
    "admin": (True, True, True, True),
    "admin_reader": (True, True, True, True),
    "consultant": (False, True, False, False),  # a plain member of its own account
    "consultancy_account_admin": (True, False, False, False),
    "consultancy_member": (False, False, False, False),
    "client_member": (False, False, False, False),
    "client_account_admin": (False, True, False, False),
    "other_consultant": (False, False, False, True),
}


@pytest.mark.parametrize(("person", "account", "allowed"), table(READ))
def test_can_read_account(person: str, account: Acct, allowed: bool) -> None:
    assert policy.can_read_account(PEOPLE[person], account) is allowed


@pytest.mark.parametrize(("person", "account", "allowed"), table(UPDATE))
def test_can_update_account(person: str, account: Acct, allowed: bool) -> None:
    assert policy.can_update_account(PEOPLE[person], account) is allowed


@pytest.mark.parametrize(("person", "account", "allowed"), table(AUDIT_LOG))
def test_can_read_audit_log(person: str, account: Acct, allowed: bool) -> None:
    assert policy.can_read_audit_log(PEOPLE[person], account) is allowed


@pytest.mark.parametrize(("person", "account", "allowed"), table(READ))
def test_authorize_account_read_raises_forbidden_exactly_when_not_allowed(
    person: str, account: Acct, allowed: bool
) -> None:
    if allowed:
        policy.authorize_account_read(PEOPLE[person], account)
    else:
        with pytest.raises(Forbidden):
            policy.authorize_account_read(PEOPLE[person], account)


@pytest.mark.parametrize(
    ("person", "allowed"),
    [
        ("admin", True),
        ("admin_reader", False),
        ("consultant", True),
        ("consultancy_account_admin", False),
        ("consultancy_member", False),
        ("client_member", False),
        ("client_account_admin", False),
        ("other_consultant", False),  # a consultant, but the account lacks the Consultancy role
    ],
)
def test_can_create_account(person: str, allowed: bool) -> None:
    assert policy.can_create_account(PEOPLE[person]) is allowed


@pytest.mark.parametrize(
    ("person", "scope"),
    [
        ("admin", AccountScope(everything=True)),
        ("admin_reader", AccountScope(everything=True)),
        ("consultant", AccountScope(account_id=1, clients_of=1)),
        ("consultancy_account_admin", AccountScope(account_id=1)),
        ("consultancy_member", AccountScope(account_id=1)),
        ("client_member", AccountScope(account_id=2)),
        ("other_consultant", AccountScope(account_id=3, clients_of=3)),
    ],
)
def test_visible_accounts(person: str, scope: AccountScope) -> None:
    assert policy.visible_accounts(PEOPLE[person]) == scope


@pytest.mark.parametrize("person", list(PEOPLE))
def test_visible_accounts_agrees_with_can_read_account(person: str) -> None:
    scope = policy.visible_accounts(PEOPLE[person])
    for account in ACCOUNTS:
        in_scope = (
            scope.everything
            or account.id == scope.account_id
            or (scope.clients_of is not None and account.consultancy_account_id == scope.clients_of)
        )
        assert in_scope is policy.can_read_account(PEOPLE[person], account), account


@pytest.mark.parametrize(
    ("person", "allowed"),
    [
        ("admin", True),
        ("admin_reader", False),
        ("consultant", False),
        ("consultancy_account_admin", False),
        ("client_account_admin", False),
    ],
)
def test_only_admins_set_account_roles(person: str, allowed: bool) -> None:
    assert policy.can_set_account_roles(PEOPLE[person]) is allowed


@pytest.mark.parametrize(
    ("person", "allowed"),
    [
        ("consultant", True),
        ("consultancy_account_admin", True),
        ("consultancy_member", False),  # neither consultant nor account-admin
        ("client_account_admin", False),  # the account lacks the Consultancy role
        ("other_consultant", False),
        ("admin_reader", False),
    ],
)
def test_who_may_assign_consultancies_at_all(person: str, allowed: bool) -> None:
    assert policy.may_assign_consultancies(PEOPLE[person]) is allowed


@pytest.mark.parametrize(
    ("person", "consultancy_account_id", "allowed"),
    [
        ("admin", None, True),
        ("admin", 3, True),
        ("admin", 1, True),
        ("consultant", None, True),
        ("consultant", 1, True),  # their own account
        ("consultant", 3, False),
        ("consultancy_account_admin", 1, True),
        ("consultancy_account_admin", 2, False),
    ],
)
def test_which_consultancy_a_non_admin_may_name(
    person: str, consultancy_account_id: int | None, allowed: bool
) -> None:
    assert policy.can_assign_consultancy(PEOPLE[person], consultancy_account_id) is allowed


# --- one guard per account action: the order of SPEC §4, straight from its table ---------------

#: (person, account, fields sent) -> None (allowed) or the error: the account first, then
#: `account_roles` (admins only), then `consultancy_account_id` (a non-admin: a consultant or
#: account-admin of a Consultancy account).
PATCH_CASES = [
    ("admin", OTHER, {"name", "account_roles", "consultancy_account_id"}, None),
    ("consultant", CLIENT, {"name"}, None),
    ("consultant", CLIENT, {"consultancy_account_id"}, None),
    ("consultant", CLIENT, {"account_roles"}, Forbidden),
    ("consultant", OTHER, {"name"}, Forbidden),
    # Not allowed to update the account at all: 403 whatever else is sent.
    ("consultant", OTHER, {"account_roles", "consultancy_account_id"}, Forbidden),
    ("consultancy_account_admin", CONSULTANCY, {"consultancy_account_id"}, None),
    ("consultancy_member", CONSULTANCY, {"name", "primary_color"}, None),
    ("consultancy_member", CONSULTANCY, {"consultancy_account_id"}, Forbidden),
    ("client_account_admin", CLIENT, {"consultancy_account_id"}, Forbidden),  # no Consultancy
    ("client_member", CLIENT, {"attributes", "logo_url"}, None),
    ("client_member", CLIENT, {"account_roles"}, Forbidden),
    ("other_consultant", OTHERS_CLIENT, {"name"}, None),
    ("other_consultant", OTHERS_CLIENT, {"consultancy_account_id"}, Forbidden),
    ("admin_reader", CLIENT, set(), Forbidden),  # reads everything, updates its own only
]


@pytest.mark.parametrize(("person", "account", "fields", "error"), PATCH_CASES)
def test_authorize_account_patch_follows_spec_order(
    person: str, account: Acct, fields: set[str], error: type[Exception] | None
) -> None:
    if error is None:
        policy.authorize_account_patch(PEOPLE[person], account, fields)
    else:
        with pytest.raises(error):
            policy.authorize_account_patch(PEOPLE[person], account, fields)


#: (person, account being changed (None: created), consultancy id, exists) -> outcome:
#: may they set one at all (403); does it name an account (422); a non-admin only their own
#: account or none (403); never the account itself (422).
CONSULTANCY_CASES = [
    ("consultancy_member", CLIENT.id, 999, False, Forbidden),  # permission before existence
    ("consultant", CLIENT.id, 999, False, InvalidInput),
    ("consultant", CLIENT.id, OTHER.id, True, Forbidden),
    ("consultant", CLIENT.id, CONSULTANCY.id, True, None),
    ("consultant", CLIENT.id, None, False, None),
    ("consultant", None, CONSULTANCY.id, True, None),
    ("consultant", CONSULTANCY.id, CONSULTANCY.id, True, InvalidInput),  # its own consultancy
    ("consultancy_account_admin", CLIENT.id, CONSULTANCY.id, True, None),
    ("admin", CLIENT.id, 999, False, InvalidInput),
    ("admin", CLIENT.id, OTHER.id, True, None),
    ("admin", None, OTHER.id, True, None),
    ("admin", OTHER.id, OTHER.id, True, InvalidInput),
    ("admin", OTHER.id, None, False, None),
]


@pytest.mark.parametrize(
    ("person", "account_id", "consultancy", "exists", "error"), CONSULTANCY_CASES
)
def test_authorize_consultancy_follows_spec_order(
    person: str,
    account_id: int | None,
    consultancy: int | None,
    exists: bool,
    error: type[Exception] | None,
) -> None:
    call = (PEOPLE[person], account_id, consultancy)
    if error is None:
        policy.authorize_consultancy(*call, exists=exists)
    else:
        with pytest.raises(error):
            policy.authorize_consultancy(*call, exists=exists)


@pytest.mark.parametrize(
    ("person", "allowed"),
    [
        ("admin", True),
        ("consultant", True),
        ("consultancy_member", False),
        ("other_consultant", False),
    ],
)
def test_authorize_account_create(person: str, allowed: bool) -> None:
    if allowed:
        policy.authorize_account_create(PEOPLE[person])
    else:
        with pytest.raises(Forbidden):
            policy.authorize_account_create(PEOPLE[person])


# --- users: one guard per action -------------------------------------------------------------


def target(user_id: int, account: Acct, *roles: str) -> policy.UserTarget:
    return policy.UserTarget(id=user_id, roles=frozenset(roles), account=account)


CLIENT_USER = target(500, CLIENT)
CLIENT_ACCOUNT_ADMIN = target(501, CLIENT, "account-admin")
OTHER_USER = target(502, OTHER)
OTHER_ADMIN_READER = target(503, OTHER, "admin-reader")
CONSULTANCY_USER = target(504, CONSULTANCY)


def me(person: str) -> policy.UserTarget:
    """The person themself as a target."""
    who_ = PEOPLE[person]
    account = next(account for account in ACCOUNTS if account.id == who_.account_id)
    return policy.UserTarget(id=who_.user_id, roles=who_.roles, account=account)


#: (person, target, fields) -> allowed, in SPEC §4's order: admin, self, account-admin of the
#: user's account, consultant of its consultancy; administrators by admins only (but their own
#: profile); nobody their own active or roles.
USER_PATCH_CASES = [
    ("admin", CLIENT_USER, {"active", "flexmeasures_roles"}, True),
    ("admin", OTHER_ADMIN_READER, {"active"}, True),
    ("client_member", CLIENT_USER, {"username"}, False),  # a plain member: no
    ("client_account_admin", CLIENT_USER, {"username", "active"}, True),
    ("client_account_admin", OTHER_USER, {"username"}, False),
    ("consultant", CLIENT_USER, {"active", "timezone"}, True),  # consultant of the consultancy
    ("consultant", OTHER_USER, {"timezone"}, False),
    ("consultancy_account_admin", CONSULTANCY_USER, {"email"}, True),
    ("consultancy_account_admin", CLIENT_USER, {"email"}, False),  # not a consultant
    ("other_consultant", OTHER_ADMIN_READER, {"username"}, False),  # administrators: admins only
    ("client_account_admin", CLIENT_ACCOUNT_ADMIN, {"email"}, True),
]


@pytest.mark.parametrize(("person", "user", "fields", "allowed"), USER_PATCH_CASES)
def test_authorize_user_patch(
    person: str, user: policy.UserTarget, fields: set[str], allowed: bool
) -> None:
    if allowed:
        policy.authorize_user_patch(PEOPLE[person], user, fields)
    else:
        with pytest.raises(Forbidden):
            policy.authorize_user_patch(PEOPLE[person], user, fields)


@pytest.mark.parametrize(
    ("person", "fields", "allowed"),
    [
        ("client_member", {"username", "email", "timezone"}, True),  # oneself
        ("client_member", {"active"}, False),
        ("admin", {"active"}, False),  # nobody, admins included
        ("admin", {"flexmeasures_roles"}, False),
        ("admin_reader", {"username", "timezone"}, True),  # an administrator: own profile
        ("admin_reader", {"username", "active"}, False),
    ],
)
def test_oneself(person: str, fields: set[str], allowed: bool) -> None:
    if allowed:
        policy.authorize_user_patch(PEOPLE[person], me(person), fields)
    else:
        with pytest.raises(Forbidden):
            policy.authorize_user_patch(PEOPLE[person], me(person), fields)


@pytest.mark.parametrize(
    ("person", "account", "role", "allowed"),
    [
        ("admin", CLIENT, "admin", False),  # never through the API
        ("admin", CLIENT, "admin-reader", True),
        ("client_account_admin", CLIENT, "admin-reader", False),
        ("admin", CLIENT, "account-admin", True),
        ("consultant", CLIENT, "account-admin", True),  # consultant of the consultancy
        ("client_account_admin", CLIENT, "account-admin", False),
        ("admin", CLIENT, "consultant", True),
        ("client_account_admin", CLIENT, "consultant", True),  # account-admin of the account
        ("consultant", CLIENT, "consultant", False),
        ("consultancy_account_admin", CLIENT, "consultant", False),  # not their account
        ("client_account_admin", CLIENT, "some-custom-role", True),
    ],
)
def test_authorize_role_changes(person: str, account: Acct, role: str, allowed: bool) -> None:
    if allowed:
        policy.authorize_role_changes(PEOPLE[person], account, {role})
    else:
        with pytest.raises(Forbidden):
            policy.authorize_role_changes(PEOPLE[person], account, {role})


@pytest.mark.parametrize(
    ("person", "account", "outcome"),
    [
        ("admin", CLIENT, None),
        ("admin", None, InvalidInput),  # an admin learns the account does not exist: 422
        ("consultant", None, Forbidden),  # anyone else: 403, no existence leak
        ("consultant", CLIENT, None),
        ("client_account_admin", CLIENT, None),
        ("client_member", CLIENT, Forbidden),
        ("client_account_admin", OTHER, Forbidden),
    ],
)
def test_authorize_user_create(
    person: str, account: Acct | None, outcome: type[Exception] | None
) -> None:
    if outcome is None:
        policy.authorize_user_create(PEOPLE[person], account, 987)
    else:
        with pytest.raises(outcome):
            policy.authorize_user_create(PEOPLE[person], account, 987)


@pytest.mark.parametrize(
    ("person", "user", "allowed"),
    [
        ("admin_reader", CLIENT_USER, True),
        ("client_account_admin", CLIENT_USER, True),
        ("client_member", CLIENT_USER, False),
        ("consultant", CLIENT_USER, True),
        ("other_consultant", CLIENT_USER, False),
    ],
)
def test_authorize_user_audit_log(person: str, user: policy.UserTarget, allowed: bool) -> None:
    if allowed:
        policy.authorize_user_audit_log(PEOPLE[person], user)
    else:
        with pytest.raises(Forbidden):
            policy.authorize_user_audit_log(PEOPLE[person], user)


def test_oneself_may_read_their_audit_log() -> None:
    policy.authorize_user_audit_log(PEOPLE["client_member"], me("client_member"))


@pytest.mark.parametrize(
    ("person", "user", "allowed"),
    [
        ("client_account_admin", CLIENT_USER, True),
        ("other_consultant", OTHER_ADMIN_READER, False),
        ("admin", OTHER_ADMIN_READER, True),
    ],
)
def test_authorize_user_password_reset(person: str, user: policy.UserTarget, allowed: bool) -> None:
    if allowed:
        policy.authorize_user_password_reset(PEOPLE[person], user)
    else:
        with pytest.raises(Forbidden):
            policy.authorize_user_password_reset(PEOPLE[person], user)
