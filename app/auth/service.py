"""Log-in: email and password in, a signed token out."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import passwords, tokens
from app.auth.ratelimit import LoginLimiter
from app.errors import TooManyRequests, Unauthorized
from app.settings import Settings
from app.users import repository as users_repository

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
    if user is None:
        await passwords.verify_password(password, passwords.dummy_hash())  # same cost as a miss
        verified = False
    else:
        verified = await passwords.verify_password(password, user.password_hash)
    if user is None or not verified or not user.active:
        await limiter.failed(email, client_address)
        raise Unauthorized(LOGIN_FAILED)
    token = tokens.issue_token(
        user.id, user.token_version, key=settings.signing_key, max_age=settings.token_max_age
    )
    return token, user.id
