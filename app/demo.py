"""The demo world: FlexMeasures' own test accounts and users. Loading it twice changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import repository as accounts_repository
from app.accounts.models import Account, AccountRole
from app.audit import events as audit_events
from app.audit import repository as audit_repository
from app.users import repository as users_repository
from app.users.models import RoleName, User, UserRole

DEMO_PASSWORD = "testtest"

ACCOUNT_ROLES = ("Prosumer", "Supplier", "Dummy", "Consultancy", "ConsultancyClient")

#: name, account roles, consultancy account name
ACCOUNTS: tuple[tuple[str, tuple[str, ...], str | None], ...] = (
    ("Test Prosumer Account", ("Prosumer",), None),
    ("Test Supplier Account", ("Supplier",), None),
    ("Test Dummy Account", ("Dummy",), None),
    ("Test Empty Account", (), None),
    ("Multi Role Account", ("Prosumer", "Supplier", "Dummy"), None),
    ("Test Consultancy Account", ("Consultancy",), None),
    ("Test ConsultancyClient Account", ("ConsultancyClient",), "Test Consultancy Account"),
)


@dataclass(frozen=True, slots=True)
class DemoUser:
    key: str
    username: str
    email: str
    account: str
    roles: tuple[str, ...] = ()


USERS: tuple[DemoUser, ...] = (
    DemoUser(
        "prosumer", "Test Prosumer User", "test_prosumer_user@seita.nl", "Test Prosumer Account"
    ),
    DemoUser(
        "prosumer_admin",
        "Test Prosumer User 2",
        "test_prosumer_user_2@seita.nl",
        "Test Prosumer Account",
        (RoleName.ACCOUNT_ADMIN,),
    ),
    DemoUser(
        "prosumer_3",
        "Test Prosumer User 3",
        "test_prosumer_user_3@seita.nl",
        "Test Prosumer Account",
    ),
    DemoUser("dummy", "Test Dummy User", "test_dummy_user_3@seita.nl", "Test Dummy Account"),
    DemoUser(
        "dummy_admin",
        "Test Dummy Account Admin",
        "test_dummy_account_admin@seita.nl",
        "Test Dummy Account",
        (RoleName.ACCOUNT_ADMIN,),
    ),
    DemoUser(
        "supplier", "Test Supplier User", "test_supplier_user_4@seita.nl", "Test Supplier Account"
    ),
    DemoUser(
        "admin",
        "Test Admin User",
        "test_admin_user@seita.nl",
        "Test Dummy Account",
        (RoleName.ADMIN,),
    ),
    DemoUser(
        "admin_reader",
        "Test Admin Reader User",
        "test_admin_reader_user@seita.nl",
        "Test Dummy Account",
        (RoleName.ADMIN_READER,),
    ),
    DemoUser(
        "consultant",
        "Test Consultant User",
        "test_consultant@seita.nl",
        "Test Consultancy Account",
        (RoleName.CONSULTANT,),
    ),
    DemoUser(
        "consultancy_user",
        "Test Consultancy User Without Consultant Access",
        "test_consultancy_user_without_consultant_access@seita.nl",
        "Test Consultancy Account",
    ),
    DemoUser(
        "client",
        "Test Consultant Client User",
        "test_consultant_client@seita.nl",
        "Test ConsultancyClient Account",
    ),
)


async def load_demo(session: AsyncSession, password_hash: str) -> bool:
    """Create whatever of the demo world is missing, in one transaction; True if anything was."""
    created = False
    roles: dict[str, AccountRole] = {
        role.name: role
        for role in await accounts_repository.get_roles_by_names(session, ACCOUNT_ROLES)
    }
    for name in ACCOUNT_ROLES:
        if name not in roles:
            roles[name] = AccountRole(name=name)
            accounts_repository.add(session, roles[name])
            created = True
    accounts: dict[str, Account] = {}
    for name, role_names, consultancy in ACCOUNTS:
        existing = await accounts_repository.get_by_name(session, name)
        if existing is not None:
            accounts[name] = existing
            continue
        account = Account(
            name=name,
            attributes={},
            version=1,
            account_roles=[roles[role] for role in role_names],
            consultancy_account_id=accounts[consultancy].id if consultancy else None,
        )
        accounts_repository.add(session, account)
        await session.flush()
        audit_repository.add(session, audit_events.account_created(None, account.id))
        accounts[name] = account
        created = True
    user_roles: dict[str, UserRole] = {
        role.name: role
        for role in await users_repository.get_roles_by_name(session, list(RoleName))
    }
    for role_name in RoleName:
        if role_name not in user_roles:
            user_roles[role_name] = UserRole(name=role_name)
            users_repository.add(session, user_roles[role_name])
    for demo in USERS:
        if await users_repository.email_taken(session, demo.email):
            continue
        users_repository.add(
            session,
            User(
                username=demo.username,
                email=demo.email,
                account_id=accounts[demo.account].id,
                password_hash=password_hash,
                active=True,
                token_version=1,
                roles=[user_roles[role] for role in demo.roles],
            ),
        )
        created = True
    await session.commit()
    return created


def print_logins() -> None:
    print(f"Demo log-ins (password for all: {DEMO_PASSWORD}):")
    for user in USERS:
        roles = f" [{', '.join(user.roles)}]" if user.roles else ""
        print(f"  {user.email:<58} {user.account}{roles}")


if __name__ == "__main__":
    print_logins()
