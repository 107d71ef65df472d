"""Fresh, migrated databases for a test session: a new PostgreSQL database or a SQLite file."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass

import asyncpg
from alembic import command
from sqlalchemy.engine import make_url

from app.migrations import alembic_config


@dataclass(frozen=True, slots=True)
class Backend:
    name: str  # "postgresql" or "sqlite"
    server_url: str | None  # PostgreSQL: where to create databases


def selected_backend() -> Backend:
    url = os.environ.get("TEST_DATABASE_URL", "sqlite")
    if url.startswith("postgresql"):
        return Backend("postgresql", url)
    return Backend("sqlite", None)


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy URL (`postgresql+asyncpg://…`) as a plain libpq DSN for asyncpg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _execute_on_server(server_url: str, sql: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(server_url), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_server_database(server_url: str, name: str) -> str:
    """A new, empty database `name` on a PostgreSQL server; its SQLAlchemy URL."""
    await _execute_on_server(server_url, f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def drop_server_database(server_url: str, name: str) -> None:
    """Drop database `name` on a PostgreSQL server, if it exists, whoever is connected."""
    await _execute_on_server(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def create_database(backend: Backend) -> str:
    """A new, empty database; its SQLAlchemy URL."""
    if backend.server_url is None:
        path = os.path.join(tempfile.mkdtemp(prefix="accounts-test-"), "test.db")
        return f"sqlite+aiosqlite:///{path}"
    return await create_server_database(
        backend.server_url, f"accounts_test_{uuid.uuid4().hex[:12]}"
    )


async def drop_database(backend: Backend, url: str) -> None:
    if backend.server_url is None:
        path = make_url(url).database
        if path:
            await asyncio.to_thread(shutil.rmtree, os.path.dirname(path), True)
        return
    name = make_url(url).database
    assert name is not None
    await drop_server_database(backend.server_url, name)


async def migrate(url: str) -> None:
    # Alembic's env.py runs its own event loop, so it gets a thread of its own.
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
