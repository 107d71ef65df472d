"""User use cases: read, list, invite, change, deactivate, reset passwords, and the one commit
of each change with its audit records (SPEC §6); the CLI's user commands go through here too."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app import etags
from app.accounts import repository as accounts_repository
from app.accounts.errors import AccountNotFound
from app.accounts.schemas import AccountRead
from app.audit import events as audit_events
from app.audit import repository as audit_repository
from app.audit.schemas import AuditRecordOut
from app.auth import passwords, policy, reset_tokens
from app.auth.principal import Principal
from app.db import unique_or
from app.errors import InvalidInput, PreconditionFailed
from app.mail import Mail, Mailer
from app.pagination import Counted, PageRequest, split_filter
from app.settings import Settings
from app.users import repository as users_repository
from app.users.errors import UserNotFound
from app.users.models import User, UserRole
from app.users.repository import UserListFilters
from app.users.schemas import UserCreate, UserListQuery, UserPatch


def target_of(user: User) -> policy.UserTarget:
    """A loaded user (with roles and account) as the access rules see them."""
    return policy.UserTarget(
        id=user.id, roles=frozenset(role.name for role in user.roles), account=user.account
    )


async def get_user(session: AsyncSession, who: Principal, user_id: int) -> User:
    user = await users_repository.get_by_id(session, user_id)
    policy.authorize_user_read(who, target_of(user))
    return user


async def list_users(
    session: AsyncSession, who: Principal, query: UserListQuery, page: PageRequest
) -> Counted[User]:
    if query.account_id is not None:
        # An account the caller may not read is 403; one that does not exist, 404 (SPEC §9).
        account = await accounts_repository.get_by_id(session, query.account_id)
        policy.authorize_account_read(who, account)
    filters = UserListFilters(
        scope=policy.visible_users(who),
        account_id=query.account_id,
        include_inactive=query.include_inactive,
        terms=split_filter(query.filter),
        sort_by=query.sort_by,
        sort_dir=query.sort_dir,
    )
    return await users_repository.find_page(session, filters, page)


def etag_of(user: User) -> str:
    return etags.etag("user-", user.id, user.version)


@dataclass(frozen=True, slots=True)
class Outbox:
    """How a change that sends a set-password mail reaches the user."""

    mailer: Mailer
    settings: Settings

    def set_password_mail(self, user: User) -> Mail:
        token = reset_tokens.issue(
            user.id,
            user.password_hash,
            key=self.settings.signing_key,
            max_age=self.settings.password_reset_max_age,
        )
        link = self.settings.password_reset_url.replace("{token}", token)
        hours = max(1, self.settings.password_reset_max_age // 3600)
        body = (
            f"Hello {user.username},\n\n"
            "To set the password of your account, open this link:\n\n"
            f"{link}\n\n"
            f"It works once, for {hours} hour(s). If you did not expect this mail, ignore it: "
            "nothing changes until the link is used.\n"
        )
        return Mail(to=user.email, subject="Set your password", body=body)


# --- create --------------------------------------------------------------------------------


async def authorize_create(
    session: AsyncSession, who: Principal, account_id: int | None
) -> AccountRead | None:
    """May `who` create a user in the account the body names? Asked before the body's values
    are validated: permission comes first (SPEC §4). Without an integer `account_id` in the
    body there is nothing to decide yet (validation answers it)."""
    if account_id is None:
        return None
    try:
        account: AccountRead | None = await accounts_repository.get_by_id(session, account_id)
    except AccountNotFound:
        account = None
    policy.authorize_user_create(who, account, account_id)
    return account


async def create_user(
    session: AsyncSession,
    who: Principal,
    account: AccountRead | None,
    body: UserCreate,
    outbox: Outbox,
) -> User:
    """Invite a user into `account` (as `authorize_create` found it for the body): no usable
    password until they set one through the mail's link. If the mail can't be handed over,
    nothing is stored (503)."""
    if account is None or account.id != body.account_id:
        account = await authorize_create(session, who, body.account_id)
    assert account is not None  # authorize_create raised otherwise
    roles = await _roles_by_ids(session, body.flexmeasures_roles)
    policy.authorize_role_changes(who, account, [role.name for role in roles])
    await _ensure_email_free(session, body.email)
    user = User(
        username=body.username,
        email=body.email,
        account_id=account.id,
        password_hash=passwords.unusable_hash(),
        active=True,
        token_version=1,
        timezone=body.timezone,
        version=1,
        roles=roles,
    )
    return await _insert(session, who, user, outbox)


async def _insert(
    session: AsyncSession, who: Principal | None, user: User, outbox: Outbox | None
) -> User:
    """Insert the user and its records; with an `outbox`, hand over its set-password mail first:
    if that fails, nothing is stored (503).

    The INSERT locks the account's row until the commit (its `user_count`, app/counters.py), so
    where the id can be taken beforehand (PostgreSQL's sequence) the mail goes out before the
    INSERT: no lock is held while the SMTP server takes it, and neither other invitations into
    the account nor a PATCH of it wait for a mail. A race for the email lost after the mail went
    out answers 422 as before; its link names a user that never came to be, and works for
    nobody. On SQLite the transaction holds the database's write lock from its first statement
    anyway, and the id comes from the INSERT."""
    mailed = False
    if outbox is not None:
        reserved = await users_repository.reserve_id(session)
        if reserved is not None:
            user.id = reserved
            await outbox.mailer.send(outbox.set_password_mail(user))
            mailed = True
    users_repository.add(session, user)
    async with unique_or(session, _email_taken(user.email)):
        await session.flush()  # the id, for the records and the link
        _audit(session, who, user, audit_events.USER_CREATED)
        for role in user.roles:
            _audit(session, who, user, audit_events.role_added(role.name))
        if outbox is not None:
            _audit(session, who, user, audit_events.PASSWORD_RESET_REQUESTED)
            if not mailed:
                await outbox.mailer.send(outbox.set_password_mail(user))
        await session.commit()
    return user


# --- update --------------------------------------------------------------------------------


async def authorize_update(
    session: AsyncSession, who: Principal, user_id: int, fields: Collection[str]
) -> User:
    """Load (and lock) the user a PATCH is about, once the caller may send these `fields`."""
    user = await users_repository.get_by_id(session, user_id, lock=True)
    policy.authorize_user_patch(who, target_of(user), fields)
    return user


#: The order in which `User Updated` names the changed fields (SPEC §6).
PROFILE_FIELDS = ("email", "username", "timezone")


async def update_user(
    session: AsyncSession,
    who: Principal,
    user: User,
    patch: UserPatch,
    if_match: str | None = None,
) -> User:
    """Apply a PATCH to a user loaded (and locked) by `authorize_update`. Any 4xx changes
    nothing; the changes and their records (one per change, SPEC §6's order) are committed
    together; a no-op writes nothing."""
    given = patch.model_fields_set
    if not etags.if_match_holds(if_match, etag_of(user)):
        raise PreconditionFailed()
    roles = None
    if patch.flexmeasures_roles is not None:
        roles = await _roles_by_ids(session, patch.flexmeasures_roles)
        changed_roles = {role.name for role in roles} ^ {role.name for role in user.roles}
        policy.authorize_role_changes(who, user.account, changed_roles)
    if patch.email is not None and patch.email != user.email:
        await _ensure_email_free(session, patch.email)

    events = []
    changed = [
        field
        for field in PROFILE_FIELDS
        if field in given and getattr(patch, field) != getattr(user, field)
    ]
    for field in changed:
        setattr(user, field, getattr(patch, field))
    if changed:
        events.append(audit_events.user_updated(changed))
    if patch.active is not None and patch.active != user.active:
        events.append(_set_active(user, patch.active))
    if roles is not None:
        events.extend(_set_roles(user, roles))
    if not events:
        return user
    user.version += 1
    for event in events:
        _audit(session, who, user, event)
    async with unique_or(session, _email_taken(user.email)):
        await session.commit()
    return user


def _set_active(user: User, active: bool) -> str:
    if not active:
        # Deactivation revokes every token issued so far; reactivation does not revive them.
        user.token_version += 1
    user.active = active
    return audit_events.USER_ACTIVATED if active else audit_events.USER_DEACTIVATED


def _set_roles(user: User, roles: list[UserRole]) -> list[str]:
    """Make `roles` the user's roles; one event per role added or removed, by role id."""
    before = {role.id: role for role in user.roles}
    after = {role.id: role for role in roles}
    events = []
    for role_id in sorted(before.keys() ^ after.keys()):
        if role_id in after:
            events.append(audit_events.role_added(after[role_id].name))
        else:
            events.append(audit_events.role_removed(before[role_id].name))
    if events:
        user.roles = sorted(roles, key=lambda role: role.id)
    return events


# --- passwords -----------------------------------------------------------------------------


async def authorize_password_reset(session: AsyncSession, who: Principal, user_id: int) -> User:
    user = await users_repository.get_by_id(session, user_id, lock=True)
    policy.authorize_user_password_reset(who, target_of(user))
    return user


async def reset_password(session: AsyncSession, who: Principal, user: User, outbox: Outbox) -> User:
    """Replace the password by an unusable one, end every token, send a set-password mail;
    if the mail can't be handed over, nothing changes (503)."""
    user.password_hash = passwords.unusable_hash()
    user.token_version += 1
    user.version += 1
    _audit(session, who, user, audit_events.PASSWORD_RESET_REQUESTED)
    await outbox.mailer.send(outbox.set_password_mail(user))
    await session.commit()
    return user


async def send_reset_link(session: AsyncSession, email: str, outbox: Outbox) -> bool:
    """A forgotten password: a set-password mail to the active user with this email, if any
    (the password stays as it is until the link is used). True if a mail went out."""
    user = await users_repository.get_by_email(session, email)
    if user is None or not user.active:
        return False
    await outbox.mailer.send(outbox.set_password_mail(user))
    _audit(session, None, user, audit_events.PASSWORD_RESET_REQUESTED)
    await session.commit()
    return True


async def set_password_with_link(
    session: AsyncSession, settings: Settings, token: str, password: str
) -> User | None:
    """The user whose set-password link this is, with the new password set and every earlier
    token ended; None for a bad, used, superseded or expired link, or an inactive user."""
    claims = reset_tokens.read(token, key=settings.signing_key)
    if claims is None:
        return None
    try:
        user = await users_repository.get_by_id(session, claims.user_id)
    except UserNotFound:
        return None
    if not user.active or not claims.matches(user.password_hash, settings.signing_key):
        return None
    _check_password(password, user.email)
    issued_for = user.password_hash
    # The new password is hashed (argon2id: tens of milliseconds) with nothing held: no
    # transaction, no row lock. Then the row is locked and the link checked again: used (or the
    # password changed) in the meantime, it no longer works.
    await session.rollback()
    password_hash = await passwords.hash_password(password)
    try:
        user = await users_repository.get_by_id(session, claims.user_id, lock=True)
    except UserNotFound:
        return None
    if not user.active or user.password_hash != issued_for:
        return None
    _apply_password(session, None, user, password_hash)
    user.last_login_at = user.last_seen_at = datetime.now(UTC)
    await session.commit()
    return user


def _check_password(password: str, email: str) -> None:
    problem = passwords.password_problem(password, email)
    if problem is not None:
        raise InvalidInput("json", "password", problem)


async def _set_password(
    session: AsyncSession, who: Principal | None, user: User, password: str
) -> None:
    _check_password(password, user.email)
    _apply_password(session, who, user, await passwords.hash_password(password))


def _apply_password(
    session: AsyncSession, who: Principal | None, user: User, password_hash: str
) -> None:
    user.password_hash = password_hash
    user.token_version += 1  # a new password revokes every token issued before it
    user.version += 1
    _audit(session, who, user, audit_events.PASSWORD_SET)


# --- audit log -----------------------------------------------------------------------------


async def get_audit_log(
    session: AsyncSession, who: Principal, user_id: int, text: str | None, page: PageRequest
) -> Counted[AuditRecordOut]:
    target = await users_repository.get_target(session, user_id)
    policy.authorize_user_audit_log(who, target)
    return await audit_repository.find_page(
        session, audit_repository.About.USER, user_id, split_filter(text), page
    )


# --- activity ------------------------------------------------------------------------------


async def record_seen(session: AsyncSession, user_id: int, last_seen_at: datetime | None) -> None:
    """Record an authenticated request, at most once a minute per user: most requests find
    `last_seen_at` recent and write nothing (SPEC §9)."""
    now = datetime.now(UTC)
    if last_seen_at is not None and now - last_seen_at < users_repository.SEEN_EVERY:
        return
    await users_repository.record_seen(session, user_id, now)
    await session.commit()


async def record_login(session: AsyncSession, user_id: int) -> None:
    await users_repository.record_login(session, user_id, datetime.now(UTC))
    await session.commit()


# --- the command line ----------------------------------------------------------------------


async def create_user_from_cli(
    session: AsyncSession,
    *,
    username: str,
    email: str,
    account_id: int,
    password: str | None = None,
    password_hash: str | None = None,
    role_names: Sequence[str] = (),
    timezone: str | None = None,
) -> User:
    """Create a user (operators: the CLI, the demo); user roles are created on first use.
    `password_hash` instead of a password: the demo's precomputed hash."""
    try:
        body = UserCreate(
            email=email,
            username=username,
            account_id=account_id,
            **({"timezone": timezone} if timezone else {}),
        )
    except ValueError as exc:
        raise _cli_input_error(exc) from exc
    if password is not None:
        problem = passwords.password_problem(password, body.email)
        if problem is not None:
            raise InvalidInput("json", "password", problem)
        password_hash = await passwords.hash_password(password)
    if password_hash is None:
        raise InvalidInput("json", "password", "A password is required.")
    await _ensure_email_free(session, body.email)
    if not await accounts_repository.exists_by_id(session, account_id):
        raise InvalidInput("json", "account", f"Account {account_id} not found.")
    user = User(
        username=body.username,
        email=body.email,
        account_id=account_id,
        password_hash=password_hash,
        active=True,
        token_version=1,
        timezone=body.timezone,
        version=1,
        roles=await _roles_creating_missing(session, role_names),
    )
    return await _insert(session, None, user, None)


def _cli_input_error(exc: ValueError) -> InvalidInput:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return InvalidInput("json", str(first["loc"][0]), str(first["msg"]))
    return InvalidInput("json", "user", str(exc))


async def set_active(session: AsyncSession, email: str, *, active: bool) -> User:
    user = await _by_email(session, email)
    if user.active != active:
        user.version += 1
        _audit(session, None, user, _set_active(user, active))
        await session.commit()
    return user


async def set_password(session: AsyncSession, email: str, password: str) -> User:
    user = await _by_email(session, email)
    await _set_password(session, None, user, password)
    await session.commit()
    return user


# --- shared --------------------------------------------------------------------------------


def _audit(session: AsyncSession, who: Principal | None, user: User, event: str) -> None:
    audit_repository.add(session, audit_events.user_event(who, user.id, event))


async def _roles_by_ids(session: AsyncSession, ids: Sequence[int]) -> list[UserRole]:
    roles = await users_repository.get_roles_by_ids(session, ids)
    unknown = sorted(set(ids) - {role.id for role in roles})
    if unknown:
        raise InvalidInput("json", "flexmeasures_roles", f"Unknown role id(s): {unknown}.")
    return roles


async def ensure_roles(session: AsyncSession, names: Sequence[str]) -> bool:
    """Create the user roles of `names` that do not exist yet, in that order; True if any."""
    existing = {role.name for role in await users_repository.get_roles_by_name(session, names)}
    missing = [name for name in names if name not in existing]
    for name in missing:
        users_repository.add(session, UserRole(name=name))
    if missing:
        await session.commit()
    return bool(missing)


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


async def _ensure_email_free(session: AsyncSession, email: str) -> None:
    if await users_repository.email_taken(session, email):
        raise _email_taken(email)


def _email_taken(email: str) -> InvalidInput:
    return InvalidInput("json", "email", f"A user with email {email} already exists.")


async def _by_email(session: AsyncSession, email: str) -> User:
    user = await users_repository.get_by_email(session, email)
    if user is None:
        raise InvalidInput("json", "email", f"No user has email {email}.")
    return user
