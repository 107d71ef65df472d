"""Signed access tokens: HS256 JWTs naming a user and their token version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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


def read_token(token: str, *, key: str) -> TokenClaims:
    """Verify signature, algorithm and expiry; raise Unauthorized on anything wrong."""
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
        return TokenClaims(user_id=int(claims["sub"]), token_version=int(claims["ver"]))
    except Unauthorized:
        raise
    except JWTError as exc:
        message = "The token has expired." if "expired" in str(exc).lower() else None
        raise Unauthorized(message or "The token is not valid.") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise Unauthorized("The token is not valid.") from exc
