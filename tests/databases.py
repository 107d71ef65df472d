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


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_database(backend: Backend) -> str:
    """A new, empty database; its SQLAlchemy URL."""
    if backend.server_url is None:
        path = os.path.join(tempfile.mkdtemp(prefix="accounts-test-"), "test.db")
        return f"sqlite+aiosqlite:///{path}"
    name = f"accounts_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(_asyncpg_dsn(backend.server_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(backend.server_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(backend: Backend, url: str) -> None:
    if backend.server_url is None:
        path = make_url(url).database
        if path:
            await asyncio.to_thread(shutil.rmtree, os.path.dirname(path), True)
        return
    name = make_url(url).database
    conn = await asyncpg.connect(_asyncpg_dsn(backend.server_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def migrate(url: str) -> None:
    # Alembic's env.py runs its own event loop, so it gets a thread of its own.
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
