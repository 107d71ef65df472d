"""The command line of SPEC §2, run as operators run it: `python -m app.cli …` in a subprocess.

The module gets a database of its own, migrated by the CLI itself; it is not rolled back, so every
test makes the rows it needs under names of its own and never relies on another test's rows.
"""

from __future__ import annotations

import asyncio
import os
import pty
import re
import select as io_select
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app import demo
from app.accounts.models import Account, AccountRole, account_account_role
from app.audit.models import AuditRecord
from app.main import create_app
from app.settings import Settings
from app.users.models import User, UserRole, user_user_role
from tests.conftest import SECRET
from tests.databases import Backend, create_database, drop_database

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60
OPERATOR_EMAIL = "operator@cli.example"
OPERATOR_PASSWORD = "operator-password"
COUNTED: dict[str, Any] = {
    "account": Account,
    "account_role": AccountRole,
    "account_account_role": account_account_role,
    "user": User,
    "user_role": UserRole,
    "user_user_role": user_user_role,
    "audit_log": AuditRecord,
}


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def new_id(self) -> int:
        found = re.search(r"ID: (\d+)", self.stdout)
        assert found, self
        return int(found.group(1))

    def assert_failed_in_one_line(self) -> str:
        assert self.returncode != 0, self
        assert "Traceback" not in self.stderr
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1, self.stderr
        assert lines[0].startswith("Error: ")
        return lines[0]


def cli_env(url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": url}


async def cli(url: str, *args: str, stdin: str | None = None) -> Run:
    """Run the CLI in a new session (no controlling terminal, so no prompt can reach ours)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        *args,
        cwd=ROOT,
        env=cli_env(url),
        stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    out, err = await asyncio.wait_for(
        process.communicate(None if stdin is None else stdin.encode()), TIMEOUT
    )
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


def in_terminal(url: str, args: list[str], answers: list[str]) -> tuple[int, str]:
    """Run the CLI on a pseudo-terminal and type each answer once its prompt has appeared.

    Typing before the prompt would be flushed (getpass sets the terminal with TCSAFLUSH), and
    waiting for it also proves the echo was off while the answer was typed.
    """
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=cli_env(url),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    output = b""
    typed = 0
    try:
        while True:
            ready, _, _ = io_select.select([master], [], [], TIMEOUT)
            assert ready, f"the CLI went quiet: {output!r}"
            try:
                chunk = os.read(master, 1024)
            except OSError:  # EIO: every end of the terminal is closed, the CLI is done
                break
            if not chunk:
                break
            output += chunk
            if typed < len(answers) and output.count(b"assword: ") > typed:
                os.write(master, answers[typed].encode() + b"\n")
                typed += 1
    finally:
        os.close(master)
        returncode = process.wait(timeout=TIMEOUT)
    return returncode, output.decode(errors="replace")


@pytest.fixture(scope="module")
async def url(backend: Backend) -> AsyncIterator[str]:
    url = await create_database(backend)
    migrated = await cli(url, "db", "upgrade")
    assert migrated.returncode == 0, migrated
    yield url
    await drop_database(backend, url)


@pytest.fixture(scope="module")
async def service(url: str) -> AsyncIterator[FastAPI]:
    """The app on the CLI's database, with no dependency override: what a deployment runs."""
    app = create_app(Settings(app_env="test", database_url=url, secret_key=SecretStr(SECRET)))
    yield app
    await app.state.engine.dispose()


@pytest.fixture
async def http(service: FastAPI) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(transport=ASGITransport(app=service), base_url="http://test") as client:
        yield client


@pytest.fixture(scope="module")
async def operator(url: str) -> dict[str, int]:
    """An admin in an account of its own, created through the CLI."""
    account = await cli(url, "add", "account", "--name", "Operators")
    assert account.returncode == 0, account
    user = await cli(
        url,
        "add",
        "user",
        "--username",
        "Operator",
        "--email",
        OPERATOR_EMAIL,
        "--account",
        str(account.new_id),
        "--roles",
        "admin",
        "--password",
        OPERATOR_PASSWORD,
    )
    assert user.returncode == 0, user
    return {"account_id": account.new_id, "user_id": user.new_id}


async def counts(service: FastAPI) -> dict[str, int]:
    engine: AsyncEngine = service.state.engine
    async with engine.connect() as conn:
        return {
            name: int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
            for name, table in COUNTED.items()
        }


async def log_in(http: AsyncClient, email: str, password: str) -> tuple[int, str | None]:
    response = await http.post("/api/requestAuthToken", json={"email": email, "password": password})
    return response.status_code, response.json().get("auth_token")


async def admin_headers(http: AsyncClient, operator: dict[str, int]) -> dict[str, str]:
    status, token = await log_in(http, OPERATOR_EMAIL, OPERATOR_PASSWORD)
    assert status == 200
    assert token
    return {"Authorization": token}


async def test_db_upgrade_twice_is_harmless(url: str) -> None:
    again = await cli(url, "db", "upgrade")
    assert again.returncode == 0, again


async def test_add_account_role_and_an_account_with_everything(
    url: str, http: AsyncClient, operator: dict[str, int]
) -> None:
    role = await cli(url, "add", "account-role", "--name", "Grid", "--description", "DSO")
    assert role.returncode == 0, role
    assert role.new_id > 0
    created = await cli(
        url,
        "add",
        "account",
        "--name",
        "Grid Operator",
        "--roles",
        "Grid",
        "--consultancy",
        str(operator["account_id"]),
        "--primary-color",
        "#1a3443",
        "--secondary-color",
        "#F1A122",
        "--logo-url",
        "https://example.com/logo.png",
    )
    assert created.returncode == 0, created
    assert created.stderr == ""

    response = await http.get(
        f"/api/v3_0/accounts/{created.new_id}", headers=await admin_headers(http, operator)
    )
    assert response.status_code == 200
    assert response.json() == {
        "id": created.new_id,
        "name": "Grid Operator",
        "account_roles": [{"id": role.new_id, "name": "Grid"}],
        "consultancy_account_id": operator["account_id"],
        "primary_color": "#1a3443",
        "secondary_color": "#F1A122",
        "logo_url": "https://example.com/logo.png",
        "attributes": {},
    }
    log = await http.get(
        f"/api/v3_0/accounts/{created.new_id}/auditlog",
        headers=await admin_headers(http, operator),
    )
    assert [record["event"] for record in log.json()] == ["Account Created"]


async def test_a_duplicate_account_role_is_an_error(url: str, service: FastAPI) -> None:
    first = await cli(url, "add", "account-role", "--name", "Twice")
    assert first.returncode == 0, first
    before = await counts(service)
    second = await cli(url, "add", "account-role", "--name", "Twice")
    assert "Twice" in second.assert_failed_in_one_line()
    assert second.stdout == ""
    assert await counts(service) == before


@pytest.mark.parametrize(
    ("options", "mentioned"),
    [
        (["--name", "Ghost Role Co", "--roles", "NoSuchRole"], "NoSuchRole"),
        (["--name", "Ghost Consultancy Co", "--consultancy", "987654"], "987654"),
        (["--name", "Bad Colour Co", "--primary-color", "red"], "--primary-color"),
        (["--name", "Bad Logo Co", "--logo-url", "ftp://example.com/x.png"], "--logo-url"),
        (["--name", "Operators"], "Operators"),  # the operator's account already has it
        (["--name", "   "], "--name"),
    ],
    ids=["unknown-role", "unknown-consultancy", "bad-colour", "bad-logo", "duplicate", "blank"],
)
async def test_add_account_errors_write_nothing(
    url: str,
    service: FastAPI,
    operator: dict[str, int],
    options: list[str],
    mentioned: str,
) -> None:
    before = await counts(service)
    run = await cli(url, "add", "account", *options)
    assert mentioned in run.assert_failed_in_one_line()
    assert "ID:" not in run.stdout
    assert await counts(service) == before


async def test_add_user_with_a_password_and_new_roles(
    url: str, service: FastAPI, http: AsyncClient, operator: dict[str, int]
) -> None:
    before = await counts(service)
    run = await cli(
        url,
        "add",
        "user",
        "--username",
        "Rolf",
        "--email",
        "Rolf@CLI.example",
        "--account",
        str(operator["account_id"]),
        "--roles",
        "consultant,fresh-role-1,fresh-role-2",
        "--password",
        "rolfs-password",
    )
    assert run.returncode == 0, run
    after = await counts(service)
    assert after["user"] == before["user"] + 1
    assert after["user_user_role"] == before["user_user_role"] + 3
    # "consultant" may already exist (other tests, demo); the fresh roles cannot.
    assert after["user_role"] - before["user_role"] in (2, 3)

    status, token = await log_in(http, "rolf@cli.example", "rolfs-password")
    assert status == 200
    user = await http.get(
        f"/api/v3_0/users/{run.new_id}", headers=await admin_headers(http, operator)
    )
    body = user.json()
    assert body["email"] == "rolf@cli.example"
    assert body["username"] == "Rolf"
    assert body["account_id"] == operator["account_id"]
    assert body["active"] is True
    assert len(body["flexmeasures_roles"]) == 3
    own = await http.get(f"/api/v3_0/users/{run.new_id}", headers={"Authorization": str(token)})
    assert own.status_code == 200


@pytest.mark.parametrize(
    ("email", "account", "mentioned"),
    [
        (OPERATOR_EMAIL, None, OPERATOR_EMAIL),
        ("OPERATOR@cli.example", None, OPERATOR_EMAIL),  # emails are case-insensitive
        ("nobody-home@cli.example", "987654", "987654"),
    ],
    ids=["duplicate-email", "duplicate-email-other-case", "unknown-account"],
)
async def test_add_user_errors_write_nothing(
    url: str,
    service: FastAPI,
    operator: dict[str, int],
    email: str,
    account: str | None,
    mentioned: str,
) -> None:
    before = await counts(service)
    run = await cli(
        url,
        "add",
        "user",
        "--username",
        "Someone",
        "--email",
        email,
        "--account",
        account or str(operator["account_id"]),
        "--roles",
        "never-created-role",
        "--password",
        "long-enough-password",
    )
    assert mentioned in run.assert_failed_in_one_line()
    assert await counts(service) == before


async def test_add_user_prompts_twice_for_a_hidden_password(
    url: str, http: AsyncClient, operator: dict[str, int]
) -> None:
    args = ["add", "user", "--username", "Tess", "--email", "tess@cli.example"]
    args += ["--account", str(operator["account_id"])]
    returncode, output = await asyncio.to_thread(
        in_terminal, url, args, ["tess-typed-this", "tess-typed-this"]
    )
    assert returncode == 0, output
    assert "Password: " in output
    assert "Repeat password: " in output
    assert "tess-typed-this" not in output  # not echoed
    assert re.search(r"ID: \d+", output)
    status, _ = await log_in(http, "tess@cli.example", "tess-typed-this")
    assert status == 200


async def test_add_user_with_two_different_passwords_writes_nothing(
    url: str, service: FastAPI, operator: dict[str, int]
) -> None:
    before = await counts(service)
    args = ["add", "user", "--username", "Ursula", "--email", "ursula@cli.example"]
    args += ["--account", str(operator["account_id"])]
    returncode, output = await asyncio.to_thread(
        in_terminal, url, args, ["first-password", "second-password"]
    )
    assert returncode != 0
    assert "Error: the two passwords differ" in output
    assert "Traceback" not in output
    assert await counts(service) == before


async def test_add_demo_twice_changes_nothing(url: str, service: FastAPI) -> None:
    before = await counts(service)
    first = await cli(url, "add", "demo")
    assert first.returncode == 0, first
    loaded = await counts(service)
    assert loaded["user"] == before["user"] + len(demo.USERS)
    assert loaded["account"] == before["account"] + len(demo.ACCOUNTS)

    second = await cli(url, "add", "demo")
    assert second.returncode == 0, second
    assert await counts(service) == loaded
    assert first.stdout != second.stdout  # the second run says it found everything there


@pytest.mark.parametrize(
    "command",
    [
        ["user", "deactivate"],
        ["user", "activate"],
        ["user", "set-password", "--password", "whatever-password"],
    ],
    ids=["deactivate", "activate", "set-password"],
)
async def test_lifecycle_commands_reject_an_unknown_email(url: str, command: list[str]) -> None:
    run = await cli(url, *command, "--email", "ghost@cli.example")
    assert "ghost@cli.example" in run.assert_failed_in_one_line()


async def test_password_change_deactivation_and_activation_through_http(
    url: str, http: AsyncClient, operator: dict[str, int]
) -> None:
    email = "vera@cli.example"
    added = await cli(
        url,
        "add",
        "user",
        "--username",
        "Vera",
        "--email",
        email,
        "--account",
        str(operator["account_id"]),
        "--password",
        "old-password",
    )
    assert added.returncode == 0, added

    async def works(token: str | None) -> bool:
        response = await http.get("/api/v3_0/accounts", headers={"Authorization": str(token)})
        assert response.status_code in (200, 401)
        return response.status_code == 200

    status, first = await log_in(http, email, "old-password")
    assert status == 200
    assert await works(first)

    changed = await cli(url, "user", "set-password", "--email", email, "--password", "new-password")
    assert changed.returncode == 0, changed
    assert (await log_in(http, email, "old-password"))[0] == 401
    status, second = await log_in(http, email, "new-password")
    assert status == 200
    assert not await works(first)
    assert await works(second)

    deactivated = await cli(url, "user", "deactivate", "--email", email)
    assert deactivated.returncode == 0, deactivated
    assert (await log_in(http, email, "new-password"))[0] == 401
    assert not await works(second)

    activated = await cli(url, "user", "activate", "--email", email)
    assert activated.returncode == 0, activated
    assert not await works(second)  # the user logs in again
    status, third = await log_in(http, email, "new-password")
    assert status == 200
    assert await works(third)

    # The same records as the API writes, with no acting user (SPEC §6).
    admin_status, admin = await log_in(http, OPERATOR_EMAIL, OPERATOR_PASSWORD)
    assert admin_status == 200
    log = await http.get(
        f"/api/v3_0/users/{added.new_id}/auditlog", headers={"Authorization": str(admin)}
    )
    assert log.status_code == 200, log.text
    assert [(r["event"], r["active_user_id"]) for r in log.json()] == [
        ("User Created", None),
        ("Password Set", None),
        ("User Deactivated", None),
        ("User Activated", None),
    ]


async def test_a_password_equal_to_the_email_is_refused(url: str, operator: dict[str, int]) -> None:
    run = await cli(
        url, "user", "set-password", "--email", OPERATOR_EMAIL, "--password", OPERATOR_EMAIL.upper()
    )
    assert "email" in run.assert_failed_in_one_line()


async def test_set_password_reads_a_piped_password_twice(
    url: str, http: AsyncClient, operator: dict[str, int]
) -> None:
    email = "walt@cli.example"
    added = await cli(
        url,
        "add",
        "user",
        "--username",
        "Walt",
        "--email",
        email,
        "--account",
        str(operator["account_id"]),
        "--password",
        "walts-first-password",
    )
    assert added.returncode == 0, added
    # No terminal at all: getpass falls back to reading stdin (and warns about the echo).
    run = await cli(url, "user", "set-password", "--email", email, stdin="piped-pass\npiped-pass\n")
    assert run.returncode == 0, run
    assert run.new_id == added.new_id
    assert (await log_in(http, email, "piped-pass"))[0] == 200
    assert (await log_in(http, email, "walts-first-password"))[0] == 401


async def test_a_prompt_without_input_fails_in_one_line(url: str, operator: dict[str, int]) -> None:
    run = await cli(url, "user", "set-password", "--email", OPERATOR_EMAIL)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert (
        run.stderr.strip().splitlines()[-1].endswith("Error: no password given (the input ended).")
    )


async def test_a_too_short_password_is_refused(url: str, operator: dict[str, int]) -> None:
    run = await cli(url, "user", "set-password", "--email", OPERATOR_EMAIL, "--password", "short")
    assert "password" in run.assert_failed_in_one_line()


async def test_an_unmigrated_database_fails_in_one_line(backend: Backend) -> None:
    empty = await create_database(backend)
    try:
        run = await cli(empty, "add", "account-role", "--name", "Anything")
    finally:
        await drop_database(backend, empty)
    run.assert_failed_in_one_line()


async def test_an_unreachable_database_fails_in_one_line() -> None:
    run = await cli("postgresql+asyncpg://nobody@127.0.0.1:1/none", "add", "demo")
    assert "cannot reach the database" in run.assert_failed_in_one_line()
