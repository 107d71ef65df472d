"""Set-password links: signed tokens that work once, for a while, and only while the user's
stored password is the one they were issued against.

A token is an HS256 JWT signed with a key of its own (derived from SECRET_KEY, so it can
never pass as an access token, nor an access token as it), naming the user, an expiry
(`PASSWORD_RESET_MAX_AGE`) and a fingerprint of the stored password hash. Setting a password
changes the hash: the link that did it, and every older link, stops working. A new set-password
mail for a user whose password was replaced by an unusable one (an invitation, an admin's reset)
is bound to that unusable one. Tokens are never logged and never part of an error.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from jose import JWTError, jwt

from app.auth.tokens import ALGORITHM

PURPOSE = "password-reset"


def _key(signing_key: str) -> str:
    return hmac.new(signing_key.encode(), PURPOSE.encode(), hashlib.sha256).hexdigest()


def fingerprint(password_hash: str, signing_key: str) -> str:
    """Identifies a stored password without revealing anything of it."""
    digest = hmac.new(_key(signing_key).encode(), password_hash.encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def issue(user_id: int, password_hash: str, *, key: str, max_age: int) -> str:
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "pur": PURPOSE,
        "pwd": fingerprint(password_hash, key),
        "iat": now,
        "exp": now + max_age,
        "jti": secrets.token_urlsafe(12),  # every link its own, even within one second
    }
    return str(jwt.encode(claims, _key(key), algorithm=ALGORITHM))


@dataclass(frozen=True, slots=True)
class ResetClaims:
    user_id: int
    password_fingerprint: str

    def matches(self, password_hash: str, key: str) -> bool:
        return hmac.compare_digest(self.password_fingerprint, fingerprint(password_hash, key))


def read(token: str, *, key: str) -> ResetClaims | None:
    """The claims of a token whose signature, algorithm, purpose and expiry hold; else None."""
    try:
        if jwt.get_unverified_header(token).get("alg") != ALGORITHM:
            return None
        claims = jwt.decode(
            token,
            _key(key),
            algorithms=[ALGORITHM],
            options={"require_exp": True, "require_sub": True, "verify_aud": False},
        )
        if claims.get("pur") != PURPOSE or not isinstance(claims.get("pwd"), str):
            return None
        return ResetClaims(user_id=int(claims["sub"]), password_fingerprint=claims["pwd"])
    except (JWTError, KeyError, TypeError, ValueError):
        return None
