"""A real uvicorn process on a database of its own, migrated and seeded through the CLI."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx

from tests.databases import Backend, create_database, drop_database

LIVE_SECRET = "live-server-secret-key-for-tests-only"


@dataclass(frozen=True, slots=True)
class LiveServer:
    base_url: str
    host: str
    port: int
    database_url: str
    env: dict[str, str]
    # The uvicorn process itself, for tests that signal it or check how it exited.
    process: asyncio.subprocess.Process | None = field(default=None, compare=False, repr=False)

    async def token(self, email: str, password: str) -> str:
        async with httpx.AsyncClient(base_url=self.base_url) as http:
            response = await http.post(
                "/api/requestAuthToken", json={"email": email, "password": password}
            )
            response.raise_for_status()
            return str(response.json()["auth_token"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run_cli(env: dict[str, str], *args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"cli {args} failed: {out.decode()} {err.decode()}")


async def _wait_until_up(base_url: str, process: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=1.0) as http:
        for _ in range(200):  # at most ~20 s
            if process.returncode is not None:
                raise RuntimeError("the server exited during start-up")
            try:
                if (await http.get("/api/")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the server at {base_url} did not come up")


@asynccontextmanager
async def live_server(
    backend: Backend,
    *extra_args: str,
    extra_env: Mapping[str, str] | None = None,
    port: int | None = None,
    server: str = "uvicorn",
) -> AsyncIterator[LiveServer]:
    """Serve a fresh seeded database; `extra_args` go to uvicorn, `extra_env` to the app;
    `port`: a free port chosen beforehand (for settings that name the server's own address);
    `server`: the module run with `python -m` (uvicorn itself, or `app.serve`)."""
    database_url = await create_database(backend)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": LIVE_SECRET,
        "APP_ENV": "test",
        "LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    await run_cli(env, "db", "upgrade")
    await run_cli(env, "add", "demo")
    port = port or free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        server,
        "app.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        *extra_args,
        env=env,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        await _wait_until_up(base_url, process)
        yield LiveServer(base_url, "127.0.0.1", port, database_url, env, process)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        await drop_database(backend, database_url)
