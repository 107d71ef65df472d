"""The benchmark scenarios: which request, as whom, over which seeded rows."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from urllib.parse import quote

from app import demo
from bench.replay import UNIQUE
from bench.seed import CONSULTANT_EMAIL, FILTER_TERMS, SeedInfo

ACCOUNTS = "/api/v3_0/accounts"
USERS = "/api/v3_0/users"
TOKEN_PATH = "/api/requestAuthToken"
#: The unpaginated list answers every account: only benched up to this many (as admin).
LIST_ALL_MAX_N = 1000

#: Who the scenarios log in as (password: the demo password for all of them).
LOGINS: dict[str, str] = {
    "admin": "test_admin_user@seita.nl",
    "user": "test_prosumer_user@seita.nl",
    "account-admin": "test_prosumer_user_2@seita.nl",
    "consultant": CONSULTANT_EMAIL,
}

#: The scenarios whose latency should not grow with N; `make bench` reports their scaling.
SCALING = (
    "list_page",
    "list_page_deep",
    "list_filter",
    "list_sort_users",
    "users_page",
    "user_auditlog",
    "auditlog",
)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One request shape. `paths` are cycled through; a PATCH cycles over `patch_ids` instead,
    alternating each account's name between two values. A `body` holding UNIQUE gets a string
    of its own there in every request (`unique_body`; the Lua script does the same)."""

    name: str
    role: str
    method: str = "GET"
    paths: tuple[str, ...] = ()
    body: str | None = None
    patch_ids: tuple[int, ...] = ()
    #: The floor adds one argon2 verify to the SQL (the log-in's designed cost).
    floor_verifies_password: bool = False
    #: Seconds at least (wrk counts only requests that finish within its run).
    min_duration: float = 0.0
    #: Every request sends a mail: the harness counts those that reach its SMTP sink.
    sends_mail: bool = False

    @property
    def key(self) -> str:
        return f"{self.name}/{self.role}"


def patch_name(account_id: int, parity: int) -> str:
    """The two names the PATCH scenario alternates between (the Lua script builds the same)."""
    return f"Bench Patch {account_id} {'AB'[parity % 2]}"


def patch_body(account_id: int, parity: int) -> str:
    return json.dumps({"name": patch_name(account_id, parity)})


def unique_body(scenario: Scenario, unique: str) -> str | None:
    """The scenario's body for one request outside wrk (the probe, the floor's capture), with
    UNIQUE replaced by `unique`, a string no other request of the bench uses."""
    return None if scenario.body is None else scenario.body.replace(UNIQUE, unique)


def invite_body(account_id: int) -> str:
    """A new user per request (POST /users; SPEC §9): the email is unique by UNIQUE."""
    return json.dumps(
        {
            "email": f"bench-invite-{UNIQUE}@bench.example",
            "username": "Bench Invitee",
            "account_id": account_id,
        }
    )


def build(info: SeedInfo) -> tuple[list[Scenario], list[str]]:
    """The scenarios for one seeded database, and notes on those left out."""
    notes: list[str] = []
    last_page = max(1, math.ceil(info.accounts / 10) - 1)
    consultant_visible = info.biggest_consultancy_clients + 1
    consultant_last_page = max(1, math.ceil(consultant_visible / 10) - 1)
    terms = quote(" ".join(FILTER_TERMS))
    page = "page=1&per_page=10"
    credentials = json.dumps({"email": LOGINS["admin"], "password": demo.DEMO_PASSWORD})
    scenarios = [
        # argon2 costs ~0.1 s of CPU by design: at 16 connections a log-in waits ~1-3 s (more
        # when the machine is busy), so a shorter window may see no log-in finish at all.
        Scenario(
            "token",
            "admin",
            "POST",
            (TOKEN_PATH,),
            credentials,
            floor_verifies_password=True,
            min_duration=6.0,
        )
    ]
    if info.n <= LIST_ALL_MAX_N:
        scenarios.append(Scenario("list_all", "admin", paths=(ACCOUNTS,)))
    else:
        notes.append(
            f"list_all/admin skipped: N={info.n} > {LIST_ALL_MAX_N} (the bare list answers "
            f"all {info.accounts} accounts in one response)."
        )
    scenarios += [
        Scenario("list_all", "user", paths=(ACCOUNTS,)),
        Scenario("list_page", "admin", paths=(f"{ACCOUNTS}?{page}",)),
        Scenario("list_page", "user", paths=(f"{ACCOUNTS}?{page}",)),
        Scenario("list_page", "consultant", paths=(f"{ACCOUNTS}?{page}",)),
        Scenario("list_page_deep", "admin", paths=(f"{ACCOUNTS}?page={last_page}&per_page=10",)),
        Scenario(
            "list_page_deep",
            "consultant",
            paths=(f"{ACCOUNTS}?page={consultant_last_page}&per_page=10",),
        ),
        Scenario("list_filter", "admin", paths=(f"{ACCOUNTS}?filter={terms}&sort_by=name&{page}",)),
        Scenario("list_filter", "user", paths=(f"{ACCOUNTS}?filter={terms}&sort_by=name&{page}",)),
        Scenario(
            "list_filter", "consultant", paths=(f"{ACCOUNTS}?filter={terms}&sort_by=name&{page}",)
        ),
        Scenario(
            "list_sort_users",
            "admin",
            paths=(f"{ACCOUNTS}?sort_by=users&sort_dir=desc&{page}",),
        ),
        Scenario(
            "list_sort_users",
            "consultant",
            paths=(f"{ACCOUNTS}?sort_by=users&sort_dir=desc&{page}",),
        ),
        Scenario("get_one", "admin", paths=tuple(f"{ACCOUNTS}/{i}" for i in info.sample_ids)),
        Scenario("get_one", "user", paths=(f"{ACCOUNTS}/{info.user_account_id}",)),
        # 16 clients on one account (they queue on its row lock), and spread over 64.
        Scenario(
            "patch",
            "admin",
            "PATCH",
            paths=(f"{ACCOUNTS}/{info.patch_ids[0]}",),
            patch_ids=info.patch_ids[:1],
        ),
        Scenario(
            "patch_spread",
            "admin",
            "PATCH",
            paths=tuple(f"{ACCOUNTS}/{i}" for i in info.patch_ids),
            patch_ids=info.patch_ids,
        ),
        Scenario("users_page", "admin", paths=(f"{USERS}?{page}",)),
        Scenario("user_auditlog", "admin", paths=(f"{USERS}/{info.audited_user_id}/auditlog",)),
        Scenario("auditlog", "admin", paths=(f"{ACCOUNTS}/{info.audited_account_id}/auditlog",)),
        Scenario(
            "auditlog",
            "account-admin",
            paths=(f"{ACCOUNTS}/{info.audited_account_id}/auditlog",),
        ),
        # Last: the users it adds (thousands, into one account) are then in no other's way.
        Scenario(
            "invite",
            "admin",
            "POST",
            (USERS,),
            invite_body(info.invite_account_id),
            sends_mail=True,
        ),
    ]
    return scenarios, notes
