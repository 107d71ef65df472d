"""Rate-limit counting that survives its own storage: `limits` on the configured storage (memory,
or Redis shared by every worker and machine), falling back to this process's memory while that
storage can't be reached. One limiter holds both kinds of count: failed log-ins (a moving window:
exact, and off the hot path) and every API request (`count`: a fixed window counter, one
storage round trip per request; on a plain `redis://` URL through `app.rediscount`'s lean
client, on the same keys).

A storage call is bounded by a short timeout. When one fails or times out, counting moves to
memory for `RETRY_STORAGE_AFTER` seconds, a warning is logged (at most once a minute) and the
`on_fallback` callback counts it (a Prometheus counter); then the storage is tried again, so
counting returns to it by itself when it is back. Callers never see the storage's errors: a
limiter outage is never a 5xx, and never "the database cannot be reached".
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from coredis.exceptions import ConnectionError as RedisConnectionError
from coredis.retry import ConstantRetryPolicy
from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from app.rediscount import RedisCounter, lean_url

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
        # A dropped connection (Redis restarted, or it closed ours: coredis's ConnectionError,
        # or the socket's own error when a write meets the closed connection) is retried at
        # once; a Redis that stays away is covered by the fallback, each call bounded by the
        # timeout.
        dropped = (RedisConnectionError, BrokenPipeError, ConnectionResetError)
        options = {
            "retry_policy": ConstantRetryPolicy(dropped, 2, 0.01),
            "connect_timeout": timeout,
            "stream_timeout": timeout,
        }
    storage: Storage = storage_from_string(async_storage_url(url), **options)  # type: ignore[assignment]
    return storage


@dataclass(frozen=True, slots=True)
class Counting:
    """One place counts can go: a storage, the moving-window strategy on it, and the fixed
    window's `incr` (the storage's own, or on Redis the lean client of `app.rediscount`, which
    counts on the same keys)."""

    storage: Storage
    moving_window: MovingWindowRateLimiter
    incr: Callable[[str, int], Awaitable[int]]

    @classmethod
    def on(
        cls, storage: Storage, incr: Callable[[str, int], Awaitable[int]] | None = None
    ) -> Counting:
        return cls(storage, MovingWindowRateLimiter(storage), incr or storage.incr)


@dataclass(frozen=True, slots=True)
class WindowCount:
    """A request counted in its fixed window: how many the window allows, how many are left
    (0 when over), and when (UNIX seconds) the window ends."""

    limit: int
    used: int
    reset_at: int

    @property
    def allowed(self) -> bool:
        return self.used <= self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def retry_after(self, now: float) -> int:
        return max(1, math.ceil(self.reset_at - now))


class ResilientLimiter:
    """`limits` on a shared storage, with this process's memory as the fallback."""

    def __init__(
        self,
        storage_url: str,
        *,
        timeout: float = STORAGE_TIMEOUT,
        on_fallback: Callable[[], None] | None = None,
    ) -> None:
        self.memory = Counting.on(MemoryStorage())
        self.counter: RedisCounter | None = None
        self.shared: Counting | None = None
        if not storage_url.startswith("memory"):
            if lean_url(storage_url):
                self.counter = RedisCounter(storage_url, connect_timeout=timeout)
            self.shared = Counting.on(
                _shared_storage(storage_url, timeout),
                self.counter.incr if self.counter is not None else None,
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

    async def run(self, call: Callable[[Counting], Awaitable[T]]) -> T:
        """`call` on the shared storage, or on this process's memory while that is down."""
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
        """A moving-window hit (exact; two storage calls with `test`, so kept off the hot path)."""
        return await self.run(lambda counting: counting.moving_window.hit(item, *identifiers))

    async def test(self, item: RateLimitItem, *identifiers: str) -> bool:
        return await self.run(lambda counting: counting.moving_window.test(item, *identifiers))

    async def reset_time(self, item: RateLimitItem, *identifiers: str) -> float:
        stats = await self.run(
            lambda counting: counting.moving_window.get_window_stats(item, *identifiers)
        )
        return float(stats.reset_time)

    async def count(self, item: RateLimitItem, *identifiers: str) -> WindowCount:
        """Count one request in `item`'s current fixed window and say where it stands.

        Windows are aligned to the clock (the window's number is part of the key), so every
        worker and machine agrees on when a window ends without asking the storage: one
        `INCRBY` per request on Redis, plus an `EXPIRE` on a window's first request. Rejected
        requests count too. At a window's edge a client may get up to twice the limit within one
        period (the price of one round trip; a moving window would cost two and a sorted set).
        """
        period = item.get_expiry()
        now = time.time()
        window = int(now // period)
        reset_at = (window + 1) * period
        key = item.key_for(*identifiers, str(window))
        expiry = math.ceil(reset_at - now) + 1
        used = await self.run(lambda counting: counting.incr(key, expiry))
        return WindowCount(limit=item.amount, used=used, reset_at=reset_at)

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
