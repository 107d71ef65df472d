"""Concurrent writes against the trigger-kept counts (app/counters.py), straight on asyncpg.

    python -m bench.counters --server postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
    python -m bench.counters --revision 0003          # the schema as migration 0003 left it

For each shape, --connections connections write for --seconds, each in transactions of its own,
on a fresh database migrated to --revision (dropped afterwards); a side connection samples
pg_stat_activity every 10 ms for what the writers wait on. Shapes:

- `accounts`: what the service's account creation does: BEGIN, INSERT an account, INSERT its
  audit record, COMMIT (the counters' row locks are held from the INSERT until the COMMIT).
- `bare-accounts`: one INSERT of an account per transaction (autocommit).
- `users-one-account`: one INSERT of a user per transaction, all into one account (whose
  `user_count` row every insert updates).

The server's durability settings are used as they are (fsync, synchronous_commit: the report
shows them); that is the point, since a row lock held through a commit's WAL flush is what
serialises writers. So there is no throwaway cluster here: tests/postgres.py starts its own with
fsync off, and BENCH_DATABASE_URL or --server must name a server.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from alembic import command

from app.migrations import alembic_config
from tests.databases import asyncpg_dsn, create_server_database, drop_server_database

SAMPLE_EVERY = 0.01

Write = Callable[[asyncpg.Connection, int, int], Awaitable[None]]


async def write_account(conn: asyncpg.Connection, worker: int, i: int) -> None:
    async with conn.transaction():
        account_id = await conn.fetchval(
            "INSERT INTO account (name, attributes) VALUES ($1, '{}') RETURNING id",
            f"Bench {worker} {i}",
        )
        await conn.execute(
            "INSERT INTO audit_log (event_datetime, event, affected_account_id) "
            "VALUES (now(), 'Account Created', $1)",
            account_id,
        )


async def write_bare_account(conn: asyncpg.Connection, worker: int, i: int) -> None:
    await conn.execute(
        "INSERT INTO account (name, attributes) VALUES ($1, '{}')", f"Bench {worker} {i}"
    )


async def write_user(conn: asyncpg.Connection, worker: int, i: int) -> None:
    await conn.execute(
        'INSERT INTO "user" (email, username, password_hash, account_id) '
        "VALUES ($1, $1, 'x', (SELECT min(id) FROM account))",
        f"bench{worker}.{i}@bench.example",
    )


SHAPES: dict[str, Write] = {
    "accounts": write_account,
    "bare-accounts": write_bare_account,
    "users-one-account": write_user,
}


@dataclass(frozen=True, slots=True)
class Result:
    shape: str
    revision: str
    connections: int
    seconds: float
    transactions: int
    per_second: float
    p50_ms: float
    p99_ms: float
    #: Writers waiting for a lock (a row another transaction holds), mean over the samples.
    waiting_on_locks: float
    #: Mean writers per wait event ("Lock:transactionid", "IO:WALSync", ...), the top few.
    waits: dict[str, float]
    #: The counts as kept, and as counted, afterwards.
    account_total: int | None
    accounts: int
    user_count: int
    users: int


async def _writer(
    conn: asyncpg.Connection, write: Write, worker: int, stop: float, latencies: list[float]
) -> None:
    i = 0
    while time.monotonic() < stop:
        began = time.perf_counter()
        await write(conn, worker, i)
        latencies.append(time.perf_counter() - began)
        i += 1


async def _sample(monitor: asyncpg.Connection, done: asyncio.Event) -> list[list[str]]:
    samples = []
    while not done.is_set():
        rows = await monitor.fetch(
            "SELECT wait_event_type || ':' || wait_event AS wait FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND state = 'active' AND wait_event IS NOT NULL"
        )
        samples.append([row["wait"] for row in rows])
        await asyncio.sleep(SAMPLE_EVERY)
    return samples


async def _counts(conn: asyncpg.Connection) -> dict[str, Any]:
    has_total = await conn.fetchval("SELECT to_regclass('account_total') IS NOT NULL")
    first = await conn.fetchval("SELECT min(id) FROM account")
    return {
        # Whether one row or several, the total is their sum.
        "account_total": await conn.fetchval("SELECT sum(total) FROM account_total")
        if has_total
        else None,
        "accounts": await conn.fetchval("SELECT count(*) FROM account"),
        "user_count": await conn.fetchval("SELECT user_count FROM account WHERE id = $1", first),
        "users": await conn.fetchval('SELECT count(*) FROM "user" WHERE account_id = $1', first),
    }


async def run_shape(
    server: str, revision: str, shape: str, connections: int, seconds: float
) -> Result:
    name = f"bench_counters_{uuid.uuid4().hex[:12]}"
    url = await create_server_database(server, name)
    try:
        await asyncio.to_thread(command.upgrade, alembic_config(url), revision)
        dsn = asyncpg_dsn(url)
        monitor = await asyncpg.connect(dsn, timeout=10)
        writers = [await asyncpg.connect(dsn, timeout=10) for _ in range(connections)]
        try:
            # The account the users go into, there before the clock starts.
            await monitor.execute("INSERT INTO account (name, attributes) VALUES ('Bench', '{}')")
            latencies: list[float] = []
            done = asyncio.Event()
            sampler = asyncio.create_task(_sample(monitor, done))
            began = time.monotonic()
            await asyncio.gather(
                *(
                    _writer(conn, SHAPES[shape], worker, began + seconds, latencies)
                    for worker, conn in enumerate(writers)
                )
            )
            elapsed = time.monotonic() - began
            done.set()
            samples = await sampler
            counts = await _counts(monitor)
        finally:
            for conn in [monitor, *writers]:
                await conn.close()
    finally:
        await drop_server_database(server, name)
    waits: collections.Counter[str] = collections.Counter()
    for sample in samples:
        waits.update(sample)
    mean = {wait: n / len(samples) for wait, n in waits.most_common(4)}
    quantiles = statistics.quantiles(latencies, n=100)
    return Result(
        shape=shape,
        revision=revision,
        connections=connections,
        seconds=round(elapsed, 2),
        transactions=len(latencies),
        per_second=round(len(latencies) / elapsed, 1),
        p50_ms=round(quantiles[49] * 1000, 2),
        p99_ms=round(quantiles[98] * 1000, 2),
        waiting_on_locks=round(
            sum(n for wait, n in waits.items() if wait.startswith("Lock:")) / len(samples), 2
        ),
        waits={wait: round(n, 2) for wait, n in mean.items()},
        **counts,
    )


async def _settings(server: str) -> dict[str, str]:
    conn = await asyncpg.connect(asyncpg_dsn(server), timeout=10)
    try:
        names = ("server_version", "fsync", "synchronous_commit", "wal_sync_method", "commit_delay")
        return {name: await conn.fetchval(f"SHOW {name}") for name in names}
    finally:
        await conn.close()


def _line(result: Result) -> str:
    waits = ", ".join(f"{wait} {n}" for wait, n in result.waits.items())
    exact = result.account_total in (None, result.accounts) and result.user_count == result.users
    return (
        f"{result.shape:<18} {result.revision:<6} {result.per_second:>9,.0f}/s "
        f"p50 {result.p50_ms:>6.2f} ms  p99 {result.p99_ms:>7.2f} ms  "
        f"waiting on locks {result.waiting_on_locks:>5.2f} of {result.connections}  "
        f"counts {'exact' if exact else 'WRONG'}  [{waits}]"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.counters", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "--server",
        default=os.environ.get("BENCH_DATABASE_URL", ""),
        help="postgresql+asyncpg:// URL of the server (default: BENCH_DATABASE_URL)",
    )
    parser.add_argument("--revision", default="head", help="Alembic revision (default: head)")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if not args.server.startswith("postgresql"):
        parser.error("give --server (or BENCH_DATABASE_URL): a postgresql+asyncpg:// URL")
    unknown = set(args.shapes.split(",")) - set(SHAPES)
    if unknown:
        parser.error(f"unknown shapes: {', '.join(sorted(unknown))}")
    return args


async def _main(args: argparse.Namespace) -> list[Result]:
    settings = await _settings(args.server)
    print(" ".join(f"{name}={value}" for name, value in settings.items()), flush=True)
    results = []
    for shape in args.shapes.split(","):
        result = await run_shape(args.server, args.revision, shape, args.connections, args.seconds)
        print(_line(result), flush=True)
        results.append(result)
    if args.json:
        args.json.write_text(
            json.dumps({"settings": settings, "results": [asdict(r) for r in results]}, indent=2)
        )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    results = asyncio.run(_main(parse_args(argv)))
    wrong = [
        r for r in results if r.account_total not in (None, r.accounts) or r.user_count != r.users
    ]
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
