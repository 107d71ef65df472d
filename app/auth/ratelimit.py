"""Brute-force protection for log-in: failures are counted per email and per client address.

Storage is `limits`' (in memory by default; Redis, e.g. `redis://host:6379`, when several
workers or machines must share the counts).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string


def _async_storage_url(url: str) -> str:
    return url if url.startswith("async+") else f"async+{url}"


@dataclass
class LoginLimiter:
    limiter: MovingWindowRateLimiter
    limit: RateLimitItem

    @classmethod
    def from_settings(cls, storage_url: str, limit: str) -> LoginLimiter:
        storage = storage_from_string(_async_storage_url(storage_url))
        return cls(MovingWindowRateLimiter(storage), parse(limit))

    @staticmethod
    def _keys(email: str, client_address: str) -> tuple[str, str]:
        # Hashed: the storage (maybe a shared Redis) never holds email addresses in clear.
        digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
        return f"email:{digest}", f"address:{client_address}"

    async def retry_after(self, email: str, client_address: str) -> int | None:
        """Seconds until another attempt is allowed, or None if one is allowed now."""
        waits = []
        for key in self._keys(email, client_address):
            if not await self.limiter.test(self.limit, "login-failures", key):
                stats = await self.limiter.get_window_stats(self.limit, "login-failures", key)
                waits.append(max(1, math.ceil(stats.reset_time - time.time())))
        return max(waits) if waits else None

    async def failed(self, email: str, client_address: str) -> None:
        for key in self._keys(email, client_address):
            await self.limiter.hit(self.limit, "login-failures", key)
