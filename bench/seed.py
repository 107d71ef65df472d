"""A dedicated PostgreSQL database, migrated with Alembic and seeded in bulk (COPY) for the bench.

The demo world comes first (through `app.demo.load_demo`, so its log-ins work and its accounts
have the small ids), then N generated accounts with users, account roles, consultancy links and
audit records, all inserted with asyncpg's COPY. Every user's password is the demo password:
one argon2 hash, computed once, is shared by all rows.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from app import demo
from app.auth import passwords
from app.db import make_engine, make_sessionmaker
from app.users.models import RoleName
from bench.names import CITIES, company_names, domain_of, person
from tests.databases import (
    asyncpg_dsn,
    create_server_database,
    drop_server_database,
    migrate,
)

#: The seeded consultant of the biggest consultancy (password: the demo password).
CONSULTANT_EMAIL = "bench_consultant@bench.example"
#: The account whose audit log the bench reads; its account-admin is a demo user.
AUDITED_ACCOUNT = "Test Prosumer Account"
AUDIT_RECORDS_OF_AUDITED = 40
#: The two terms of the list_filter scenario (shell-split by the service).
FILTER_TERMS = ("sol", "coop")
PATCH_ACCOUNTS = 64
SAMPLE_ACCOUNTS = 100
SEED = 20260131

Row = tuple[Any, ...]


@dataclass(slots=True)
class Rows:
    password_hash: str
    accounts: list[Row] = field(default_factory=list)
    account_roles: list[Row] = field(default_factory=list)
    users: list[Row] = field(default_factory=list)
    user_roles: list[Row] = field(default_factory=list)
    audit: list[Row] = field(default_factory=list)
    consultancy_clients: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SeedInfo:
    """What the scenarios need to know about the seeded database."""

    n: int
    database_url: str
    accounts: int
    users: int
    audit_records: int
    consultancies: int
    biggest_consultancy_id: int
    biggest_consultancy_clients: int
    user_account_id: int
    audited_account_id: int
    #: The account-admin of that account (a demo user): the user audit log the bench reads.
    audited_user_id: int
    sample_ids: tuple[int, ...]
    patch_ids: tuple[int, ...]
    #: The account the invite scenario adds its users to (no other scenario writes to it).
    invite_account_id: int
    filter_matches: int
    seconds: dict[str, float]


async def load_demo_world(url: str, password_hash: str) -> None:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            await demo.load_demo(session, password_hash)
    finally:
        await engine.dispose()


def _pick_count(rng: random.Random) -> int:
    return rng.choices((1, 2, 3, 4, 5), weights=(40, 25, 15, 10, 10))[0]


def _role_names(rng: random.Random) -> tuple[str, ...]:
    return rng.choices(
        (("Prosumer",), ("Supplier",), ("Dummy",), ("Prosumer", "Supplier"), ()),
        weights=(55, 15, 5, 5, 20),
    )[0]


def _color(rng: random.Random) -> str | None:
    return None if rng.random() < 0.4 else f"#{rng.randrange(0x1000000):06x}"


def generate(
    n: int,
    *,
    first_account_id: int,
    first_user_id: int,
    first_audit_id: int,
    taken_names: set[str],
    account_role_ids: dict[str, int],
    user_role_ids: dict[str, int],
    password_hash: str,
    now: datetime,
) -> Rows:
    """The rows of N accounts: pure, deterministic (seeded) and independent of the database."""
    rng = random.Random(SEED)
    rows = Rows(password_hash)
    names = company_names(n, rng, taken_names)
    ids = list(range(first_account_id, first_account_id + n))
    consultancies = ids[: max(3, n // 200)]
    consultancy_set = set(consultancies)
    # Zipf-like: the first consultancy has the most clients, the tail a handful each.
    weights = [1.0 / (rank + 1) for rank in range(len(consultancies))]
    consultancy_of: dict[int, int | None] = {}
    for account_id in ids[len(consultancies) :]:
        if rng.random() < 0.3:
            chosen = rng.choices(consultancies, weights=weights)[0]
            consultancy_of[account_id] = chosen
            rows.consultancy_clients[chosen] = rows.consultancy_clients.get(chosen, 0) + 1
    user_id = first_user_id
    audit_id = first_audit_id
    for account_id, name in zip(ids, names, strict=True):
        consultancy = consultancy_of.get(account_id)
        is_consultancy = account_id in consultancy_set
        roles = ("Consultancy",) if is_consultancy else _role_names(rng)
        if consultancy is not None:
            roles = (*roles, "ConsultancyClient")
        rows.account_roles.extend((account_id, account_role_ids[role]) for role in roles)
        members = _users(rng, rows, (account_id, name, is_consultancy), user_id, user_role_ids)
        if account_id == consultancies[0]:  # the bench logs in as this one: known, active
            first = rows.users[-len(members)]
            rows.users[-len(members)] = (
                first[0],
                CONSULTANT_EMAIL,
                first[2],
                first[3],
                True,
                *first[5:],
            )
        user_id += len(members)
        created = now - timedelta(days=rng.uniform(30, 730))
        history: list[tuple[datetime, str, int | None, str | None]] = [
            (created, "Account Created", None, None)
        ]
        if rng.random() < 0.25:
            moment = created
            for _ in range(rng.randint(1, 6)):
                moment += timedelta(days=rng.uniform(0.1, 20))
                fields = rng.sample(("name", "primary_color", "logo_url", "attributes"), 2)
                actor = rng.choice(members)
                history.append((moment, f"Account Updated, Field: {', '.join(fields)}", *actor))
        for record in history:
            rows.audit.append((audit_id, *record, None, account_id))
            audit_id += 1
        attributes = {} if rng.random() < 0.7 else {"city": rng.choice(CITIES)}
        logo = None if rng.random() < 0.5 else f"https://{domain_of(name)}/logo.png"
        colors = (_color(rng), _color(rng))
        version = len(history)
        account = (account_id, name, *colors, logo, json.dumps(attributes), consultancy, version)
        rows.accounts.append(account)
    return rows


def _users(
    rng: random.Random,
    rows: Rows,
    account: tuple[int, str, bool],
    first_id: int,
    role_ids: dict[str, int],
) -> list[tuple[int, str]]:
    """1-5 users of an account (the first maybe its account-admin); their (id, name)."""
    account_id, company, is_consultancy = account
    domain = domain_of(company)
    members: list[tuple[int, str]] = []
    for index in range(_pick_count(rng)):
        user_id = first_id + index
        username, local = person(rng)
        active = rng.random() >= 0.03
        email = f"{local}.{user_id}@{domain}"
        rows.users.append((user_id, email, username, rows.password_hash, active, account_id, 1))
        if index == 0 and (is_consultancy or rng.random() < 0.5):
            rows.user_roles.append((user_id, role_ids[RoleName.ACCOUNT_ADMIN]))
        if index == 0 and is_consultancy:
            rows.user_roles.append((user_id, role_ids[RoleName.CONSULTANT]))
        members.append((user_id, username))
    return members


def _audit_of_audited(
    account_id: int, first_audit_id: int, admin: tuple[int, str], now: datetime
) -> list[Row]:
    moment = now - timedelta(days=400)
    records = []
    for offset in range(AUDIT_RECORDS_OF_AUDITED):
        moment += timedelta(days=9, minutes=offset)
        event = "Account Updated, Field: " + ("primary_color" if offset % 2 else "name, logo_url")
        records.append((first_audit_id + offset, moment, event, *admin, None, account_id))
    return records


#: Rows per COPY transaction. Triggers that update one row per inserted row (a maintained
#: count) make one huge transaction quadratic: each update walks the chain of versions the
#: transaction left behind; a commit every few thousand rows lets PostgreSQL prune them.
COPY_CHUNK = 5000


async def _copy(
    conn: asyncpg.Connection,
    table: str,
    columns: tuple[str, ...],
    rows: list[Row],
    seconds: dict[str, float],
) -> None:
    started = time.perf_counter()
    for start in range(0, len(rows), COPY_CHUNK):
        async with conn.transaction():
            await conn.copy_records_to_table(
                table, records=rows[start : start + COPY_CHUNK], columns=columns, timeout=600
            )
    seconds[f"copy {table}"] = time.perf_counter() - started


ACCOUNT_COLUMNS = (
    "id", "name", "primary_color", "secondary_color", "logo_url", "attributes",
    "consultancy_account_id", "version",
)  # fmt: skip
USER_COLUMNS = ("id", "email", "username", "password_hash", "active", "account_id", "token_version")
AUDIT_COLUMNS = (
    "id", "event_datetime", "event", "active_user_id", "active_user_name", "affected_user_id",
    "affected_account_id",
)  # fmt: skip


async def bulk_insert(
    conn: asyncpg.Connection, n: int, password_hash: str, seconds: dict[str, float]
) -> Rows:
    """Generate and COPY N accounts and everything around them; fix the id sequences.

    The schema's own triggers fire as they would for any insert (the time per table shows
    what they cost). The database is new and dropped if this fails: no need for one
    transaction around it all."""
    account_role_ids = dict(await conn.fetch("SELECT name, id FROM account_role"))
    user_role_ids = dict(await conn.fetch("SELECT name, id FROM user_role"))
    taken = {row["name"] for row in await conn.fetch("SELECT name FROM account")}
    first_account = await conn.fetchval("SELECT coalesce(max(id), 0) + 1 FROM account")
    first_user = await conn.fetchval('SELECT coalesce(max(id), 0) + 1 FROM "user"')
    first_audit = await conn.fetchval("SELECT coalesce(max(id), 0) + 1 FROM audit_log")
    now = datetime.now(UTC)
    rows = generate(
        n,
        first_account_id=first_account,
        first_user_id=first_user,
        first_audit_id=first_audit + AUDIT_RECORDS_OF_AUDITED,
        taken_names=taken,
        account_role_ids=account_role_ids,
        user_role_ids=user_role_ids,
        password_hash=password_hash,
        now=now,
    )
    audited = await conn.fetchval("SELECT id FROM account WHERE name = $1", AUDITED_ACCOUNT)
    admin = await conn.fetchrow(
        'SELECT id, username FROM "user" WHERE email = $1', "test_admin_user@seita.nl"
    )
    rows.audit.extend(_audit_of_audited(audited, first_audit, (admin[0], admin[1]), now))
    await _copy(conn, "account", ACCOUNT_COLUMNS, rows.accounts, seconds)
    role_columns = ("account_id", "account_role_id")
    await _copy(conn, "account_account_role", role_columns, rows.account_roles, seconds)
    await _copy(conn, "user", USER_COLUMNS, rows.users, seconds)
    await _copy(conn, "user_user_role", ("user_id", "user_role_id"), rows.user_roles, seconds)
    await _copy(conn, "audit_log", AUDIT_COLUMNS, rows.audit, seconds)
    for table in ("account", "user", "audit_log"):
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
            f'(SELECT max(id) FROM "{table}"))'
        )
    return rows


def _spread(ids: list[int], count: int) -> tuple[int, ...]:
    step = max(1, len(ids) // count)
    return tuple(ids[::step][:count])


async def seed(server_url: str, name: str, n: int) -> SeedInfo:
    """Create database `name` on the server, migrate it, load the demo world, COPY N accounts."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    await drop_server_database(server_url, name)  # a database kept by BENCH_KEEP_DB
    url = await create_server_database(server_url, name)
    await migrate(url)
    seconds["migrate"] = time.perf_counter() - started
    password_hash = await passwords.hash_password(demo.DEMO_PASSWORD)
    mark = time.perf_counter()
    await load_demo_world(url, password_hash)
    seconds["demo"] = time.perf_counter() - mark
    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        mark = time.perf_counter()
        rows = await bulk_insert(conn, n, password_hash, seconds)
        seconds["copy"] = time.perf_counter() - mark
        mark = time.perf_counter()
        # Triggers (e.g. a maintained per-account count) may have updated rows many times over
        # during the load: compact the tables as a long-lived database would be, then ANALYZE.
        await conn.execute("VACUUM (FULL)", timeout=600)
        await conn.execute("VACUUM (ANALYZE)", timeout=600)  # also sets the visibility map
        seconds["vacuum_analyze"] = time.perf_counter() - mark
        info = await _describe(conn, url, n, rows, seconds)
    finally:
        await conn.close()
    seconds["total"] = time.perf_counter() - started
    return info


async def _describe(
    conn: asyncpg.Connection, url: str, n: int, rows: Rows, seconds: dict[str, float]
) -> SeedInfo:
    ids = [row["id"] for row in await conn.fetch("SELECT id FROM account ORDER BY id")]
    pattern = [f"%{term}%" for term in FILTER_TERMS]
    matches = await conn.fetchval(
        "SELECT count(*) FROM account WHERE name ILIKE $1 AND name ILIKE $2", *pattern
    )
    # The consultant sits in the first consultancy, which the Zipf weights make the biggest.
    biggest = await conn.fetchval(
        'SELECT account_id FROM "user" WHERE email = $1', CONSULTANT_EMAIL
    )
    clients = rows.consultancy_clients.get(biggest, 0)
    user_account = await conn.fetchval(
        'SELECT account_id FROM "user" WHERE email = $1', "test_prosumer_user@seita.nl"
    )
    audited = await conn.fetchval("SELECT id FROM account WHERE name = $1", AUDITED_ACCOUNT)
    seeded = [row[0] for row in rows.accounts]
    return SeedInfo(
        n=n,
        database_url=url,
        accounts=len(ids),
        users=int(await conn.fetchval('SELECT count(*) FROM "user"')),
        audit_records=int(await conn.fetchval("SELECT count(*) FROM audit_log")),
        consultancies=len(rows.consultancy_clients),
        biggest_consultancy_id=int(biggest),
        biggest_consultancy_clients=clients,
        user_account_id=int(user_account),
        audited_account_id=int(audited),
        audited_user_id=int(
            await conn.fetchval(
                'SELECT id FROM "user" WHERE email = $1', "test_prosumer_user_2@seita.nl"
            )
        ),
        sample_ids=_spread(ids, SAMPLE_ACCOUNTS),
        # Accounts only the PATCH scenario touches: no other scenario depends on their names.
        patch_ids=tuple(seeded[-PATCH_ACCOUNTS:]),
        invite_account_id=int(seeded[-PATCH_ACCOUNTS - 1]),
        filter_matches=int(matches),
        seconds=seconds,
    )
