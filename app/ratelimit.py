"""Rate-limit counting that survives its own storage: `limits` on the configured storage (memory,
or Redis shared by every worker and machine), falling back to this process's memory while that
storage can't be reached.

A storage call is bounded by a short timeout. When one fails or times out, counting moves to
memory for `RETRY_STORAGE_AFTER` seconds, a warning is logged (at most once a minute) and the
`on_fallback` callback counts it (a Prometheus counter); then the storage is tried again, so
counting returns to it by itself when it is back. Callers never see the storage's errors: a
limiter outage is never a 5xx, and never "the database cannot be reached".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from coredis.exceptions import ConnectionError
from coredis.retry import ConstantRetryPolicy
from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter, RateLimiter
from limits.storage import storage_from_string

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds a storage call may take before it counts as failed.
STORAGE_TIMEOUT = 0.25
#: Seconds counting stays in memory after the storage failed, before it is tried again.
RETRY_STORAGE_AFTER = 5.0
#: At most one warning about the storage per this many seconds.
WARN_EVERY = 60.0


def async_storage_url(url: str) -> str:
    return url if url.startswith("async+") else f"async+{url}"


def _shared_storage(url: str, timeout: float) -> Storage:
    options: dict[str, Any] = {}
    if "redis" in url.split("://", 1)[0]:
        # A dropped connection (Redis restarted) is retried at once; a Redis that stays away
        # is covered by the fallback, each call bounded by the timeout.
        options = {
            "retry_policy": ConstantRetryPolicy((ConnectionError,), 2, 0.01),
            "connect_timeout": timeout,
            "stream_timeout": timeout,
        }
    storage: Storage = storage_from_string(async_storage_url(url), **options)  # type: ignore[assignment]
    return storage


class ResilientLimiter:
    """A `limits` strategy on a shared storage, with this process's memory as the fallback."""

    def __init__(
        self,
        storage_url: str,
        *,
        strategy: type[RateLimiter] = MovingWindowRateLimiter,
        timeout: float = STORAGE_TIMEOUT,
        on_fallback: Callable[[], None] | None = None,
    ) -> None:
        memory = MemoryStorage()
        self.memory = strategy(memory)
        self.shared: RateLimiter | None = (
            None
            if storage_url.startswith("memory")
            else strategy(_shared_storage(storage_url, timeout))
        )
        self.timeout = timeout
        self.on_fallback = on_fallback
        self._storage_down = False
        self._retry_at = 0.0
        self._warned_at = -WARN_EVERY

    @property
    def counting_in_memory(self) -> bool:
        """Whether counts go to this process's memory now (no shared storage, or it is down)."""
        return self.shared is None or self._storage_down

    async def run(self, call: Callable[[RateLimiter], Awaitable[T]]) -> T:
        """`call` on the shared storage's limiter, or on the memory one while that is down."""
        if self.shared is not None and (
            not self._storage_down or time.monotonic() >= self._retry_at
        ):
            try:
                async with asyncio.timeout(self.timeout):
                    result = await call(self.shared)
            except Exception as exc:  # any failure of the storage: count in memory instead
                self._storage_failed(exc)
            else:
                if self._storage_down:
                    logger.warning("rate-limit storage reachable again: counting there")
                self._storage_down = False
                return result
        return await call(self.memory)

    async def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        return await self.run(lambda limiter: limiter.hit(item, *identifiers))

    async def test(self, item: RateLimitItem, *identifiers: str) -> bool:
        return await self.run(lambda limiter: limiter.test(item, *identifiers))

    async def reset_time(self, item: RateLimitItem, *identifiers: str) -> float:
        stats = await self.run(lambda limiter: limiter.get_window_stats(item, *identifiers))
        return float(stats.reset_time)

    def _storage_failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._storage_down = True
        self._retry_at = now + RETRY_STORAGE_AFTER
        if self.on_fallback is not None:
            self.on_fallback()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            logger.warning(
                "rate-limit storage unreachable (%s): counting in this process's memory; "
                "retrying every %.0f s",
                type(exc).__name__,
                RETRY_STORAGE_AFTER,
            )
