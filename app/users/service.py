"""User use cases: reading users, and the user lifecycle that operators drive from the CLI."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import repository as accounts_repository
from app.auth import passwords, policy
from app.auth.principal import Principal
from app.errors import InvalidInput
from app.pagination import Counted, PageRequest, SortDir, split_filter
from app.users import repository as users_repository
from app.users.errors import UserNotFound
from app.users.models import User, UserRole
from app.users.repository import UserListFilters


async def get_user(session: AsyncSession, who: Principal, user_id: int) -> User:
    user = await users_repository.get_by_id(session, user_id)
    if user is None:
        raise UserNotFound(user_id)
    account = await accounts_repository.get_by_id(session, user.account_id)
    policy.ensure(policy.can_read_account(who, account), f"You may not read user {user_id}.")
    return user


async def list_users(
    session: AsyncSession,
    who: Principal,
    *,
    account_id: int | None,
    include_inactive: bool,
    text: str | None,
    sort_by: str | None,
    sort_dir: SortDir,
    page: PageRequest,
) -> Counted[User]:
    if account_id is not None:
        account = await accounts_repository.get_by_id(session, account_id)
        policy.authorize_account_read(who, account)
    filters = UserListFilters(
        scope=policy.visible_accounts(who),
        account_id=account_id,
        include_inactive=include_inactive,
        terms=split_filter(text),
        sort_by=sort_by,
        sort_dir=sort_dir,
    )
    return await users_repository.find_page(session, filters, page)


class UserInputError(InvalidInput):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__("json", field, reason)


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    email: str,
    account_id: int,
    password: str,
    role_names: Sequence[str] = (),
) -> User:
    """Create a user (operators only: the CLI); user roles are created on first use."""
    email = users_repository.normalize_email(email)
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        raise UserInputError("email", f"Not an email address: {email}.")
    if not username.strip():
        raise UserInputError("username", "A username is required.")
    if len(password) < 8:
        raise UserInputError("password", "A password needs at least 8 characters.")
    if await users_repository.email_taken(session, email):
        raise UserInputError("email", f"A user with email {email} already exists.")
    if not await accounts_repository.exists_by_id(session, account_id):
        raise UserInputError("account", f"Account {account_id} not found.")
    roles = await _roles_creating_missing(session, role_names)
    user = User(
        username=username.strip(),
        email=email,
        account_id=account_id,
        password_hash=await passwords.hash_password(password),
        active=True,
        token_version=1,
        roles=roles,
    )
    users_repository.add(session, user)
    await session.commit()
    return user


async def _roles_creating_missing(session: AsyncSession, names: Sequence[str]) -> list[UserRole]:
    wanted = list(dict.fromkeys(name.strip() for name in names if name.strip()))
    existing = {
        role.name: role for role in await users_repository.get_roles_by_name(session, wanted)
    }
    for name in wanted:
        if name not in existing:
            existing[name] = UserRole(name=name)
            users_repository.add(session, existing[name])
    return [existing[name] for name in wanted]


async def set_active(session: AsyncSession, email: str, *, active: bool) -> User:
    user = await _by_email(session, email)
    if user.active and not active:
        # Deactivation revokes every token issued so far; reactivation does not revive them.
        user.token_version += 1
    user.active = active
    await session.commit()
    return user


async def set_password(session: AsyncSession, email: str, password: str) -> User:
    if len(password) < 8:
        raise UserInputError("password", "A password needs at least 8 characters.")
    user = await _by_email(session, email)
    user.password_hash = await passwords.hash_password(password)
    user.token_version += 1  # a new password revokes every token issued before it
    await session.commit()
    return user


async def _by_email(session: AsyncSession, email: str) -> User:
    user = await users_repository.get_by_email(session, email)
    if user is None:
        raise UserInputError("email", f"No user has email {email}.")
    return user
