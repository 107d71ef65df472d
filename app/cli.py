"""Command line for operators, scripts and tests: `python -m app.cli …` (or `accounts-cli`).

Every command calls services, never HTTP; it exits 0 on success and 1 with a one-line error.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import SecretStr, TypeAdapter, ValidationError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from app import demo, faults
from app.accounts import service as accounts_service
from app.accounts.schemas import AccountName, Color, LogoUrl
from app.auth import passwords
from app.db import make_engine, make_sessionmaker
from app.errors import AppError
from app.settings import Settings
from app.users import service as users_service


class CommandError(Exception):
    """A one-line reason for a non-zero exit."""


def _settings() -> Settings:
    # The CLI signs no tokens; don't warn about a missing SECRET_KEY here.
    return Settings(secret_key=SecretStr("cli-signs-no-tokens"))


async def _with_session(work: Callable[[AsyncSession], Awaitable[str]]) -> str:
    settings = _settings()
    engine = make_engine(settings.database_url, connect_timeout=settings.db_connect_timeout)
    try:
        async with make_sessionmaker(engine)() as session:
            return await work(session)
    finally:
        await engine.dispose()


def _validated(adapter: TypeAdapter[Any], value: str | None, option: str) -> Any:
    if value is None:
        return None
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise CommandError(f"{option}: {reason}") from exc


def _names(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _password(given: str | None) -> str:
    if given is not None:
        return given
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise CommandError("the two passwords differ")
    return first


def db_upgrade(_args: argparse.Namespace) -> str:
    from alembic import command
    from alembic.config import Config

    from app.migrations import alembic_config

    config: Config = alembic_config(_settings().database_url)
    command.upgrade(config, "head")
    return "Database is up to date."


def add_account_role(args: argparse.Namespace) -> str:
    async def work(session: AsyncSession) -> str:
        role = await accounts_service.create_account_role(session, args.name, args.description)
        return f"Account role {role.name!r} created. ID: {role.id}"

    return asyncio.run(_with_session(work))


def add_account(args: argparse.Namespace) -> str:
    draft = accounts_service.NewAccount(
        name=_validated(TypeAdapter(AccountName), args.name, "--name"),
        role_names=_names(args.roles),
        consultancy_account_id=args.consultancy,
        primary_color=_validated(TypeAdapter(Color), args.primary_color, "--primary-color"),
        secondary_color=_validated(TypeAdapter(Color), args.secondary_color, "--secondary-color"),
        logo_url=_validated(TypeAdapter(LogoUrl), args.logo_url, "--logo-url"),
    )

    async def work(session: AsyncSession) -> str:
        account = await accounts_service.insert_account(session, None, draft)
        return f"Account {account.name!r} created. ID: {account.id}"

    return asyncio.run(_with_session(work))


def add_user(args: argparse.Namespace) -> str:
    password = _password(args.password)

    async def work(session: AsyncSession) -> str:
        user = await users_service.create_user_from_cli(
            session,
            username=args.username,
            email=args.email,
            account_id=args.account,
            password=password,
            role_names=_names(args.roles),
        )
        return f"User {user.email} created. ID: {user.id}"

    return asyncio.run(_with_session(work))


def add_demo(_args: argparse.Namespace) -> str:
    async def work(session: AsyncSession) -> str:
        password_hash = await passwords.hash_password(demo.DEMO_PASSWORD)
        created = await demo.load_demo(session, password_hash)
        return "Demo world loaded." if created else "Demo world already there; nothing changed."

    return asyncio.run(_with_session(work))


def _set_active(active: bool) -> Callable[[argparse.Namespace], str]:
    def command(args: argparse.Namespace) -> str:
        async def work(session: AsyncSession) -> str:
            user = await users_service.set_active(session, args.email, active=active)
            state = "activated" if active else "deactivated; its tokens no longer work"
            return f"User {user.email} {state}. ID: {user.id}"

        return asyncio.run(_with_session(work))

    return command


def set_password(args: argparse.Namespace) -> str:
    password = _password(args.password)

    async def work(session: AsyncSession) -> str:
        user = await users_service.set_password(session, args.email, password)
        return f"Password of {user.email} set; earlier tokens no longer work. ID: {user.id}"

    return asyncio.run(_with_session(work))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accounts-cli", description=__doc__)
    groups = parser.add_subparsers(dest="group", required=True)

    db = groups.add_parser("db", help="database schema").add_subparsers(dest="cmd", required=True)
    db.add_parser("upgrade", help="apply all migrations").set_defaults(run=db_upgrade)

    add = groups.add_parser("add", help="create rows").add_subparsers(dest="cmd", required=True)
    role = add.add_parser("account-role", help="create an account role")
    role.add_argument("--name", required=True)
    role.add_argument("--description")
    role.set_defaults(run=add_account_role)

    account = add.add_parser("account", help="create an account")
    account.add_argument("--name", required=True)
    account.add_argument("--roles", help="account role names, comma-separated")
    account.add_argument("--consultancy", type=int, metavar="ACCOUNT_ID")
    account.add_argument("--primary-color")
    account.add_argument("--secondary-color")
    account.add_argument("--logo-url")
    account.set_defaults(run=add_account)

    user = add.add_parser("user", help="create a user")
    user.add_argument("--username", required=True)
    user.add_argument("--email", required=True)
    user.add_argument("--account", required=True, type=int, metavar="ACCOUNT_ID")
    user.add_argument("--roles", help="user role names, comma-separated")
    user.add_argument("--password", help="prompted for (twice, hidden) when left out")
    user.set_defaults(run=add_user)

    add.add_parser("demo", help="load the demo world (idempotent)").set_defaults(run=add_demo)

    users = groups.add_parser("user", help="user lifecycle").add_subparsers(
        dest="cmd", required=True
    )
    for name, active in (("deactivate", False), ("activate", True)):
        lifecycle = users.add_parser(name, help=f"{name} a user")
        lifecycle.add_argument("--email", required=True)
        lifecycle.set_defaults(run=_set_active(active))
    password = users.add_parser("set-password", help="set a user's password")
    password.add_argument("--email", required=True)
    password.add_argument("--password", help="prompted for (twice, hidden) when left out")
    password.set_defaults(run=set_password)
    return parser


def _one_line(error: AppError) -> str:
    if isinstance(error.message, dict):
        reasons = [
            f"{field}: {'; '.join(messages)}"
            for fields in error.message.values()
            for field, messages in fields.items()
        ]
        return " ".join(reasons)
    return str(error.message)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        print(args.run(args))
    except (CommandError, AppError) as exc:
        message = _one_line(exc) if isinstance(exc, AppError) else str(exc)
        print(f"Error: {message}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        if faults.is_database_fault(exc):
            cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
            print(f"Error: cannot reach the database ({_root_cause_name(cause)}).", file=sys.stderr)
            return 1
        # An unmigrated database, an unwritable SQLite path, ...: still one line, no traceback.
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        print(f"Error: database error: {reason}", file=sys.stderr)
        return 1
    except EOFError:
        print("Error: no password given (the input ended).", file=sys.stderr)
        return 1
    return 0


def _root_cause_name(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
