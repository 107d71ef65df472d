"""Password hashing with argon2id, always off the event loop."""

from __future__ import annotations

import asyncio
import secrets
from functools import lru_cache

from pwdlib import PasswordHash


@lru_cache
def _hasher() -> PasswordHash:
    return PasswordHash.recommended()


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher().hash, password)


#: Marks a stored password that no password matches (an invited user, a reset password).
UNUSABLE_PREFIX = "!"
MIN_LENGTH = 8
MAX_LENGTH = 128


def unusable_hash() -> str:
    """A stored password no password matches, different every time: a set-password link is
    bound to the stored password, so a new unusable one ends the links issued before it."""
    return UNUSABLE_PREFIX + secrets.token_urlsafe(32)


def is_usable(password_hash: str) -> bool:
    return not password_hash.startswith(UNUSABLE_PREFIX)


async def verify_password(password: str, password_hash: str) -> bool:
    if not is_usable(password_hash):
        # The same cost as a real check, so the answer's timing says nothing about the user.
        await asyncio.to_thread(_hasher().verify, password, dummy_hash())
        return False
    return await asyncio.to_thread(_hasher().verify, password, password_hash)


def password_problem(password: str, email: str) -> str | None:
    """Why a new password is not acceptable (SPEC: 8 to 128 characters, not the email), or None."""
    if len(password) < MIN_LENGTH:
        return f"A password needs at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"A password may have at most {MAX_LENGTH} characters."
    if password.strip().lower() == email.strip().lower():
        return "The password cannot be the email address."
    return None


@lru_cache
def dummy_hash() -> str:
    """A real hash of nothing in particular: verifying against it costs what a real check costs,
    so an unknown email takes as long as a wrong password."""
    return _hasher().hash("no user has this password")
