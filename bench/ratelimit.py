"""What the API rate limit costs a request: the limiter's `count` alone, in memory and on a real
Redis (a redis-server of its own on loopback), and a whole `GET /api/` in-process with the limit
off, in memory and on Redis.

    python -m bench.ratelimit [--requests 5000] [--rounds 5]

Prints the median over rounds of microseconds per call, wall clock (one call at a time, so a
Redis figure is one loopback round trip plus the client's work) and this process's CPU (what a
worker spends: the rest of the wall time it can serve other requests).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from httpx import ASGITransport, AsyncClient
from limits import parse
from pydantic import SecretStr

from app.main import create_app
from app.ratelimit import ResilientLimiter
from app.settings import Settings
from tests.redisserver import redis_server

SECRET = "bench-secret-key-that-is-long-enough-for-hs256"


async def per_call(
    call: Callable[[], Awaitable[object]], n: int, rounds: int
) -> tuple[float, float]:
    for _ in range(min(n, 200)):  # warm up: connections, caches
        await call()
    wall, cpu = [], []
    for _ in range(rounds):
        started, used = time.perf_counter(), time.process_time()
        for _ in range(n):
            await call()
        wall.append((time.perf_counter() - started) / n * 1e6)
        cpu.append((time.process_time() - used) / n * 1e6)
    return statistics.median(wall), statistics.median(cpu)


async def count_cost(storage_url: str, n: int, rounds: int) -> tuple[float, float]:
    limiter = ResilientLimiter(storage_url)
    item = parse("100000000/minute")
    return await per_call(lambda: limiter.count(item, "api", "user:1"), n, rounds)


async def request_cost(limit: str, storage_url: str, n: int, rounds: int) -> tuple[float, float]:
    settings = Settings(
        app_env="test",
        database_url="sqlite+aiosqlite:///:memory:",
        secret_key=SecretStr(SECRET),
        log_level="WARNING",
        api_rate_limit=limit,
        rate_limit_storage_url=storage_url,
    )
    app = create_app(settings)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://bench") as http:
        return await per_call(lambda: http.get("/api/"), n, rounds)


async def main(n: int, rounds: int) -> None:
    with redis_server() as redis:
        rows = [
            ("count, memory", await count_cost("memory://", n, rounds)),
            ("count, Redis", await count_cost(redis.url, n, rounds)),
            ("GET /api/, limit off", await request_cost("unlimited", "memory://", n, rounds)),
            ("GET /api/, memory", await request_cost("100000000/minute", "memory://", n, rounds)),
            ("GET /api/, Redis", await request_cost("100000000/minute", redis.url, n, rounds)),
        ]
    print("| what | µs per call, wall | µs per call, CPU |")
    print("| --- | --- | --- |")
    for name, (wall, cpu) in rows:
        print(f"| {name} | {wall:.0f} | {cpu:.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
