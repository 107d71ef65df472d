"""The demo world: FlexMeasures' own test accounts and users. Loading it twice changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import repository as accounts_repository
from app.accounts import service as accounts_service
from app.users import repository as users_repository
from app.users import service as users_service
from app.users.models import DEFAULT_TIMEZONE, RoleName

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
    timezone: str = DEFAULT_TIMEZONE


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
        "supplier",
        "Test Supplier User",
        "test_supplier_user_4@seita.nl",
        "Test Supplier Account",
        timezone="America/New_York",
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
        timezone="Europe/London",
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
    # Beyond FlexMeasures' test world: an account-admin in the accounts that had none, a second
    # user in the multi-role account, and a spread of timezones (the Empty account stays empty).
    DemoUser(
        "supplier_admin",
        "Test Supplier Account Admin",
        "test_supplier_account_admin@seita.nl",
        "Test Supplier Account",
        (RoleName.ACCOUNT_ADMIN,),
        timezone="America/Chicago",
    ),
    DemoUser(
        "multi_role_admin",
        "Multi Role Account Admin",
        "multi_role_account_admin@seita.nl",
        "Multi Role Account",
        (RoleName.ACCOUNT_ADMIN,),
        timezone="Asia/Tokyo",
    ),
    DemoUser(
        "multi_role_user",
        "Multi Role User",
        "multi_role_user@seita.nl",
        "Multi Role Account",
        timezone="Europe/Berlin",
    ),
    DemoUser(
        "client_admin",
        "Test Consultant Client Account Admin",
        "test_consultant_client_admin@seita.nl",
        "Test ConsultancyClient Account",
        (RoleName.ACCOUNT_ADMIN,),
        timezone="Australia/Sydney",
    ),
)


async def load_demo(session: AsyncSession, password_hash: str) -> bool:
    """Create whatever of the demo world is missing, through the services (so every account
    and user gets its `Created` record, as the CLI's would); True if anything was."""
    created = False
    existing_roles = {
        role.name for role in await accounts_repository.get_roles_by_names(session, ACCOUNT_ROLES)
    }
    for name in ACCOUNT_ROLES:
        if name not in existing_roles:
            await accounts_service.create_account_role(session, name)
            created = True
    account_ids: dict[str, int] = {}
    for name, role_names, consultancy in ACCOUNTS:
        account = await accounts_repository.get_by_name(session, name)
        if account is None:
            draft = accounts_service.NewAccount(
                name=name,
                role_names=role_names,
                consultancy_account_id=account_ids[consultancy] if consultancy else None,
            )
            account = await accounts_service.insert_account(session, None, draft)
            created = True
        account_ids[name] = account.id
    # Every user role exists, in RoleName's order, so that their ids are known from the start.
    if await users_service.ensure_roles(session, list(RoleName)):
        created = True
    for user in USERS:
        if await users_repository.email_taken(session, user.email):
            continue
        await users_service.create_user_from_cli(
            session,
            username=user.username,
            email=user.email,
            account_id=account_ids[user.account],
            password_hash=password_hash,
            role_names=[str(role) for role in user.roles],
            timezone=user.timezone,
        )
        created = True
    return created


def print_logins() -> None:
    print(f"Demo log-ins (password for all: {DEMO_PASSWORD}):")
    for user in USERS:
        roles = f" [{', '.join(user.roles)}]" if user.roles else ""
        print(f"  {user.email:<58} {user.account}{roles}")


if __name__ == "__main__":
    print_logins()
