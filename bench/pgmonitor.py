"""A side connection to the bench database: server processes and sessions opened, for the report."""

from __future__ import annotations

import asyncio
import time
from types import TracebackType

import asyncpg  # type: ignore[import-untyped]

from bench.server import descendants, parent_of


class PgMonitor:
    """One connection, on an event loop of its own, kept open for the run of one N."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.runner = asyncio.Runner()
        self.conn: asyncpg.Connection | None = None
        self.postmaster: int | None = None

    def __enter__(self) -> PgMonitor:
        try:
            self.conn = self.runner.run(asyncpg.connect(self.dsn, timeout=10))
            backend = int(self.runner.run(self.conn.fetchval("SELECT pg_backend_pid()")))
        except BaseException:
            self.runner.close()
            raise
        # The server's main process, if it runs on this machine: the parent of our backend.
        self.postmaster = parent_of(backend)
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        try:
            if self.conn is not None:
                self.runner.run(self.conn.close(timeout=5))
        finally:
            self.runner.close()

    def pids(self) -> list[int]:
        """The server's processes (empty when it runs elsewhere)."""
        return [self.postmaster, *descendants(self.postmaster)] if self.postmaster else []

    def sessions(self) -> int | None:
        """Sessions ever opened on this database (pg_stat_database.sessions, PostgreSQL 14+)."""
        assert self.conn is not None
        time.sleep(0.2)  # let backends that just ended report their statistics
        try:
            self.runner.run(self.conn.execute("SELECT pg_stat_clear_snapshot()"))
            value = self.runner.run(
                self.conn.fetchval(
                    "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
                )
            )
        except asyncpg.UndefinedColumnError:  # before PostgreSQL 14
            return None
        return int(value or 0)
