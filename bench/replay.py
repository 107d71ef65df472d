"""The floor's load: captured SQL replayed through an asyncpg pool, in worker processes.

Kept free of the app's imports so that a worker process starts quickly. Each worker serves
jobs from its inbox until it receives None; the harness kills it if it does not stop. A worker
keeps its event loop and its pool from job to job (as a service keeps its pool), so that the
server's backends live as long as the worker and their CPU time can be read.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import uvloop

#: (sql, parameters): the asyncpg dialect already renders `$n` placeholders. A parameter may be
#: a marker (below) that `bind` replaces by a value of its own on every replayed request.
Statement = tuple[str, tuple[Any, ...]]

#: Where a `Fresh` template takes the string unique to one request (the scenarios' bodies use
#: the same placeholder: bench/scenarios.py).
UNIQUE = "{unique}"


# --- markers: captured parameters that must differ from one replayed request to the next ----
# A replayed INSERT of the captured email would hit the unique constraint from its second
# request on. bench/floor.py puts a marker where the captured request had such a one-off value;
# `bind` turns every marker into its value for the request being replayed. Another kind of
# marker: a frozen dataclass with a `value(unique)` method, added to MARKERS.


@dataclass(frozen=True, slots=True)
class Fresh:
    """A string no other replayed request uses: `template` with UNIQUE replaced by the
    request's unique string, e.g. Fresh("bench-invite-{unique}@bench.example")."""

    template: str

    def value(self, unique: str) -> str:
        return self.template.replace(UNIQUE, unique)


#: Every kind of marker `bind` replaces.
MARKERS: tuple[type[Fresh], ...] = (Fresh,)


@dataclass(frozen=True, slots=True)
class FromRow:
    """A value the request read itself: `column` of the first row that its earlier statement
    number `statement` returned. A PATCH writes only at the version it read
    (app.accounts.repository.write_if_version): replayed with the captured version, every write
    after the first would find the account moved on and write nothing. Replayed with the
    version just read, it writes as the service does (an invitation's user id, taken from the
    sequence, is bound the same way, without `retry`); and when another replayed request wrote
    in between (the write returns no row), the statements from the read on run again, once, in
    a transaction, the read with `lock` appended, as the service reads the account again with
    its row locked and writes (`run_statements`)."""

    statement: int
    column: str
    lock: str = ""
    #: A write that checks this value: no row back means it found the row moved on.
    retry: bool = False


async def run_statements(conn: asyncpg.Connection, statements: tuple[Statement, ...]) -> None:
    """One replayed request's statements, `FromRow` parameters taken from its own rows."""
    rows_of: list[list[Any]] = []
    for index, (sql, parameters) in enumerate(statements):
        rows = await conn.fetch(sql, *_values(parameters, rows_of))
        sources = [p for p in parameters if isinstance(p, FromRow) and p.retry]
        if sources and not rows:
            source = sources[0]
            async with conn.transaction():
                read_sql, read_parameters = statements[source.statement]
                rows_of[source.statement] = await conn.fetch(
                    read_sql + source.lock, *_values(read_parameters, rows_of)
                )
                rows = await conn.fetch(sql, *_values(parameters, rows_of))
                for later_sql, later_parameters in statements[index + 1 :]:
                    rows_of.append(rows)
                    rows = await conn.fetch(later_sql, *_values(later_parameters, rows_of))
            return
        rows_of.append(rows)


def _values(parameters: tuple[Any, ...], rows_of: list[list[Any]]) -> list[Any]:
    return [rows_of[p.statement][0][p.column] if isinstance(p, FromRow) else p for p in parameters]


def has_markers(statements: tuple[Statement, ...]) -> bool:
    return any(isinstance(p, MARKERS) for _sql, parameters in statements for p in parameters)


def bind(statements: tuple[Statement, ...], unique: str) -> tuple[Statement, ...]:
    """One request's statements with every marker replaced by its value for that request;
    `unique` is a string no other replayed request gets (of any run, worker or job)."""
    return tuple(
        (sql, tuple(p.value(unique) if isinstance(p, MARKERS) else p for p in parameters))
        for sql, parameters in statements
    )


@dataclass(frozen=True, slots=True)
class Job:
    dsn: str
    #: One statement list per request variant (path or patched account); cycled through.
    variants: tuple[tuple[Statement, ...], ...]
    #: The request committed: replay it inside a transaction (its FOR UPDATE needs one).
    transactional: bool
    concurrency: int
    duration: float
    #: Wall-clock time (time.time()) at which every worker starts its clock.
    start_at: float
    #: Where this worker starts in the variants, so that workers interleave.
    offset: int = 0
    #: (password, hash): one argon2 verify per request after its SQL (the log-in's cost).
    verify: tuple[str, str] | None = None


@dataclass(slots=True)
class Tally:
    requests: int = 0
    errors: int = 0
    first_error: str | None = None
    latencies: list[float] = field(default_factory=list)


#: A worker never runs longer than this per job, whatever the job says.
MAX_JOB_SECONDS = 600.0


async def keep_session(_connection: asyncpg.Connection) -> None:
    """A pool's `reset`: nothing beyond asyncpg's own rollback of a transaction left open.

    asyncpg's default sends a reset query (`SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`) each time a connection goes back to its pool: a round trip per
    replayed request that the service, whose pool only rolls back, never makes."""


class Replayer:
    """One worker's event loop and pool (reopened when a job needs another size or database)."""

    def __init__(self) -> None:
        self.pool: asyncpg.Pool | None = None
        self.key: tuple[str, int] | None = None

    async def pool_for(self, job: Job) -> asyncpg.Pool:
        if self.pool is None or self.key != (job.dsn, job.concurrency):
            await self.close()
            self.pool = await asyncpg.create_pool(
                job.dsn,
                min_size=job.concurrency,
                max_size=job.concurrency,
                timeout=10,
                reset=keep_session,
            )
            self.key = (job.dsn, job.concurrency)
        assert self.pool is not None
        return self.pool

    async def close(self) -> None:
        """Close the pool; its database may be gone already (dropped after its N)."""
        if self.pool is None:
            return
        pool, self.pool = self.pool, None
        try:
            await asyncio.wait_for(pool.close(), 10)
        except (asyncpg.PostgresError, OSError, TimeoutError):
            pool.terminate()

    async def run(self, job: Job) -> Tally:
        tally = Tally()
        verify_password = None
        if job.verify is not None:
            from pwdlib import PasswordHash

            verify_password = PasswordHash.recommended().verify
        pool = await self.pool_for(job)
        await asyncio.sleep(max(0.0, job.start_at - time.time()))
        deadline = time.perf_counter() + min(job.duration, MAX_JOB_SECONDS)
        sequence = iter(range(job.offset, job.offset + 10**9))
        # Variants without markers are replayed as captured, with no per-request work.
        marked = [has_markers(variant) for variant in job.variants]
        run_nonce = secrets.token_hex(6)  # this job in this worker: unique across runs
        count = iter(range(10**9))

        async def client() -> None:
            while time.perf_counter() < deadline:
                index = next(sequence) % len(job.variants)
                statements = job.variants[index]
                if marked[index]:
                    statements = bind(statements, f"floor-{run_nonce}-{next(count)}")
                started = time.perf_counter()
                try:
                    async with pool.acquire() as conn:
                        if job.transactional:
                            async with conn.transaction():
                                await run_statements(conn, statements)
                        else:
                            await run_statements(conn, statements)
                    if verify_password is not None and job.verify is not None:
                        await asyncio.to_thread(verify_password, *job.verify)
                except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
                    tally.errors += 1
                    tally.first_error = tally.first_error or f"{type(exc).__name__}: {exc}"
                    continue
                tally.latencies.append(time.perf_counter() - started)
                tally.requests += 1

        await asyncio.gather(*(client() for _ in range(job.concurrency)))
        return tally


def worker_main(inbox: Queue[Job | None], outbox: Queue[Tally]) -> None:
    """A worker process: run jobs from the inbox, answer each with its tally."""
    replayer = Replayer()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        try:
            for _ in range(10_000):
                job = inbox.get(timeout=3600)
                if job is None:
                    return
                try:
                    tally = runner.run(replayer.run(job))
                except Exception as exc:  # reported, not raised: the harness decides
                    tally = Tally(errors=1, first_error=f"{type(exc).__name__}: {exc}")
                with contextlib.suppress(Exception):
                    outbox.put(tally)
        finally:
            with contextlib.suppress(Exception):
                runner.run(replayer.close())
