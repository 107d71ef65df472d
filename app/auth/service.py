"""Log-in: email and password in, a signed token out."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import passwords, tokens
from app.auth.ratelimit import LoginLimiter
from app.errors import TooManyRequests, Unauthorized
from app.settings import Settings
from app.users import repository as users_repository
from app.users import service as users_service

# One sentence for every failure: FlexMeasures answers 404 for an unknown email, which tells an
# attacker who has an account; 401 with the same words keeps emails private (SPEC §3).
LOGIN_FAILED = "Wrong email or password, or the user is not active."


async def request_token(
    session: AsyncSession,
    settings: Settings,
    limiter: LoginLimiter,
    *,
    email: str,
    password: str,
    client_address: str,
) -> tuple[str, int]:
    wait = await limiter.retry_after(email, client_address)
    if wait is not None:
        raise TooManyRequests(wait)
    user = await users_repository.get_by_email(session, email)
    # What the rest needs, read before the rollback below expires the row.
    user_id, token_version = (user.id, user.token_version) if user else (0, 0)
    password_hash = user.password_hash if user else passwords.dummy_hash()  # same cost as a miss
    usable = user is not None and user.active
    # Nothing is held while the password is checked (argon2id: tens of milliseconds in a
    # thread): no transaction, no pooled connection and, behind PgBouncer, no server connection.
    # Held, a burst of log-ins would take every server connection for its hashing time.
    await session.rollback()
    verified = await passwords.verify_password(password, password_hash)
    if not (usable and verified):
        await limiter.failed(email, client_address)
        raise Unauthorized(LOGIN_FAILED)
    await users_service.record_login(session, user_id)
    return _token_for(settings, user_id, token_version), user_id


def _token_for(settings: Settings, user_id: int, token_version: int) -> str:
    return tokens.issue_token(
        user_id, token_version, key=settings.signing_key, max_age=settings.token_max_age
    )


async def count_reset_request(limiter: LoginLimiter, email: str, client_address: str) -> None:
    """A password-reset request counts as a failed log-in (SPEC §3): over the limit, 429."""
    wait = await limiter.retry_after(email, client_address)
    if wait is not None:
        raise TooManyRequests(wait)
    await limiter.failed(email, client_address)


#: One sentence for every link that does not work: which of the reasons it was is nobody's
#: business but the link's owner's, who can ask for a new one.
LINK_FAILED = "This link to set a password does not work (any more): ask for a new one."


async def reset_password(
    session: AsyncSession, settings: Settings, *, token: str, password: str
) -> tuple[str, int]:
    user = await users_service.set_password_with_link(session, settings, token, password)
    if user is None:
        raise Unauthorized(LINK_FAILED)
    return _token_for(settings, user.id, user.token_version), user.id
