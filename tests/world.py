"""FlexMeasures' test world (the demo world), seeded once per session, with handy lookups."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app import demo
from app.accounts.models import Account, AccountRole
from app.auth import passwords
from app.db import make_sessionmaker
from app.users.models import User

PASSWORD = demo.DEMO_PASSWORD


@dataclass(frozen=True, slots=True)
class WorldUser:
    id: int
    email: str
    username: str
    account_id: int


@dataclass(frozen=True, slots=True)
class World:
    accounts: dict[str, int]  # account name -> id
    account_roles: dict[str, int]  # account role name -> id
    users: dict[str, WorldUser]  # demo key ("prosumer", "consultant", ...) -> user

    def account(self, name: str) -> int:
        return self.accounts[name]

    def user(self, key: str) -> WorldUser:
        return self.users[key]


async def seed(engine: AsyncEngine) -> World:
    password_hash = await passwords.hash_password(PASSWORD)  # one hash for every user
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        await demo.load_demo(session, password_hash)
    async with sessions() as session:
        accounts = {a.name: a.id for a in (await session.execute(select(Account))).scalars()}
        roles = {r.name: r.id for r in (await session.execute(select(AccountRole))).scalars()}
        by_email = {u.email: u for u in (await session.execute(select(User))).scalars()}
    users = {
        spec.key: WorldUser(
            id=by_email[spec.email].id,
            email=spec.email,
            username=spec.username,
            account_id=by_email[spec.email].account_id,
        )
        for spec in demo.USERS
    }
    return World(accounts=accounts, account_roles=roles, users=users)
