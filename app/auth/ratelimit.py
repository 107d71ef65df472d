"""Brute-force protection for log-in: failures are counted per email and per client address.

Counted by `app.ratelimit` (in memory by default; Redis, e.g. `redis://host:6379`, when several
workers or machines must share the counts; memory again while that Redis is unreachable).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse

from app.ratelimit import ResilientLimiter

NAMESPACE = "login-failures"


@dataclass
class LoginLimiter:
    limiter: ResilientLimiter
    limit: RateLimitItem

    @classmethod
    def from_settings(cls, limiter: ResilientLimiter, limit: str) -> LoginLimiter:
        return cls(limiter, parse(limit))

    @staticmethod
    def _keys(email: str, client_address: str) -> tuple[str, str]:
        # Hashed: the storage (maybe a shared Redis) never holds email addresses in clear.
        digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
        return f"email:{digest}", f"address:{client_address}"

    async def retry_after(self, email: str, client_address: str) -> int | None:
        """Seconds until another attempt is allowed, or None if one is allowed now."""
        waits = []
        for key in self._keys(email, client_address):
            if not await self.limiter.test(self.limit, NAMESPACE, key):
                reset = await self.limiter.reset_time(self.limit, NAMESPACE, key)
                waits.append(max(1, math.ceil(reset - time.time())))
        return max(waits) if waits else None

    async def failed(self, email: str, client_address: str) -> None:
        for key in self._keys(email, client_address):
            await self.limiter.hit(self.limit, NAMESPACE, key)
