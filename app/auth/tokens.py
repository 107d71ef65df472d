"""Signed access tokens: HS256 JWTs naming a user and their token version."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from jose import JWTError, jwt

from app.errors import Unauthorized

#: Pinned: a token that names any other algorithm, `none` included, is rejected.
ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    token_version: int


def issue_token(user_id: int, token_version: int, *, key: str, max_age: int) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "ver": token_version,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=max_age)).timestamp()),
    }
    return str(jwt.encode(claims, key, algorithm=ALGORITHM))


def bare_token(header: str) -> str | None:
    """The token in an `Authorization` header (`<token>` or `Bearer <token>`), or None."""
    parts = header.split()
    if len(parts) == 2 and parts[0].lower() == "bearer":
        return parts[1]
    if len(parts) == 1:
        return parts[0]
    return None


def read_token(token: str, *, key: str) -> TokenClaims:
    """Verify signature, algorithm and expiry; raise Unauthorized on anything wrong."""
    claims, expires_at = _verified(token, key)
    if expires_at <= time.time():
        raise Unauthorized("The token has expired.")
    return claims


@lru_cache(maxsize=4096)
def _verified(token: str, key: str) -> tuple[TokenClaims, int]:
    """The claims of a token whose signature and algorithm hold, with its expiry time.

    Cached: a signature that held once always holds (only expiry changes with time, and
    `read_token` checks it on every use), so a client's repeated requests skip python-jose's
    ~35 µs. Failures are not cached (lru_cache keeps only returned values). Revocation does not
    depend on this: the user's token version is checked in the database on every request.
    """
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise Unauthorized("The token is not valid.")
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            options={"require_exp": True, "require_sub": True, "verify_aud": False},
        )
        verified = TokenClaims(user_id=int(claims["sub"]), token_version=int(claims["ver"]))
        return verified, int(claims["exp"])
    except Unauthorized:
        raise
    except JWTError as exc:
        message = "The token has expired." if "expired" in str(exc).lower() else None
        raise Unauthorized(message or "The token is not valid.") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise Unauthorized("The token is not valid.") from exc
