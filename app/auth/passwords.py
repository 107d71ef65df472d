"""Password hashing with argon2id, always off the event loop."""

from __future__ import annotations

import asyncio
from functools import lru_cache

from pwdlib import PasswordHash


@lru_cache
def _hasher() -> PasswordHash:
    return PasswordHash.recommended()


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher().hash, password)


async def verify_password(password: str, password_hash: str) -> bool:
    return await asyncio.to_thread(_hasher().verify, password, password_hash)


@lru_cache
def dummy_hash() -> str:
    """A real hash of nothing in particular: verifying against it costs what a real check costs,
    so an unknown email takes as long as a wrong password."""
    return _hasher().hash("no user has this password")
