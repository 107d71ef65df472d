"""CPU per request of one scenario, in-process (httpx's ASGITransport), on a fresh PostgreSQL
database with the demo world (or on a database given, e.g. one bench/seed.py made): for A/B
comparisons of code versions, run from each checkout.

    python -m bench.inprocess --server postgresql+asyncpg://postgres@127.0.0.1:5432/postgres

It prints the median over rounds of CPU milliseconds per `GET /api/v3_0/accounts/{id}` (get_one),
per `GET /api/v3_0/users/{id}` (get_user) and per `GET /api/v3_0/accounts?page=1&per_page=10`
(list_page). The server keeps its durable defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr

from app import demo
from app.auth import passwords
from app.db import make_engine, make_sessionmaker
from app.main import create_app
from app.settings import Settings
from bench.scenarios import LOGINS
from tests.databases import Backend, create_database, drop_database, migrate

SECRET = "bench-secret-key-that-is-long-enough-for-hs256"
PATHS = ("get_one", "get_user", "list_page")


@asynccontextmanager
async def demo_database(server: str, given: str) -> AsyncIterator[str]:
    """`given` as it is, or a fresh database on `server` with the demo world (dropped after)."""
    if given:
        yield given
        return
    backend = Backend("postgresql", server)
    url = await create_database(backend)
    try:
        await migrate(url)
        engine = make_engine(url)
        async with make_sessionmaker(engine)() as session:
            await demo.load_demo(session, await passwords.hash_password(demo.DEMO_PASSWORD))
        await engine.dispose()
        yield url
    finally:
        await drop_database(backend, url)


async def measure(
    server: str,
    requests: int,
    rounds: int,
    api_rate_limit: str,
    only: str = "",
    *,
    database: str = "",
    role: str = "user",
    storage: str = "memory://",
) -> dict[str, float]:
    async with demo_database(server, database) as url:
        settings = Settings(
            app_env="test",
            database_url=url,
            secret_key=SecretStr(SECRET),
            log_level="WARNING",
            login_failure_limit="100000/minute",
            api_rate_limit=api_rate_limit,
            rate_limit_storage_url=storage,
        )
        app = create_app(settings)
        # Importing app.main built its module-level app first, whose logging.basicConfig (the
        # default LOG_LEVEL, INFO) made this one's a no-op: without this, every request here
        # would format and write two log lines (the app's and httpx's) that a served worker
        # at LOG_LEVEL=WARNING does not.
        logging.getLogger().setLevel(settings.log_level)
        results: dict[str, list[float]] = {name: [] for name in PATHS}
        async with app.router.lifespan_context(app):
            transport = ASGITransport(app=app)
            async with AsyncClient(transport=transport, base_url="http://bench") as http:
                login = await http.post(
                    "/api/requestAuthToken",
                    json={"email": LOGINS[role], "password": demo.DEMO_PASSWORD},
                )
                body = login.json()
                headers = {"Authorization": body["auth_token"]}
                paths = {
                    "get_one": "/api/v3_0/accounts/1",
                    "get_user": f"/api/v3_0/users/{body['user_id']}",
                    "list_page": "/api/v3_0/accounts?page=1&per_page=10",
                }
                if only:
                    paths = {only: paths[only]}
                for _ in range(rounds):
                    for name, path in paths.items():
                        for _ in range(50):  # warm
                            await http.get(path, headers=headers)
                        start = time.process_time()
                        for _ in range(requests):
                            response = await http.get(path, headers=headers)
                            assert response.status_code == 200, response.text
                        results[name].append((time.process_time() - start) / requests * 1000)
        return {name: statistics.median(values) for name, values in results.items() if values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", required=True)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--api-rate-limit",
        default="100000000/minute",
        help="API_RATE_LIMIT (in memory); 'unlimited' to leave the limiter out",
    )
    parser.add_argument("--only", choices=PATHS, default="", help="one path")
    parser.add_argument(
        "--database", default="", help="a database to use as it is (e.g. seeded by bench/seed.py)"
    )
    parser.add_argument("--as", dest="role", choices=sorted(LOGINS), default="user")
    parser.add_argument(
        "--storage", default="memory://", help="RATE_LIMIT_STORAGE_URL (e.g. redis://…)"
    )
    args = parser.parse_args()
    results = asyncio.run(
        measure(
            args.server,
            args.requests,
            args.rounds,
            args.api_rate_limit,
            args.only,
            database=args.database,
            role=args.role,
            storage=args.storage,
        )
    )
    for name, ms in results.items():
        print(f"{name}: {ms:.3f} ms CPU per request")


if __name__ == "__main__":
    main()
