"""GET /api/v3_0/accounts/{id}/auditlog: who may read it, what is recorded, order, pages, filter."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient, Response

from tests.assertions import assert_error
from tests.world import World

URL = "/api/v3_0/accounts"
Headers = Callable[[str | None], dict[str, str]]

PROSUMER = "Test Prosumer Account"
SUPPLIER = "Test Supplier Account"
CONSULTANCY = "Test Consultancy Account"
CLIENT = "Test ConsultancyClient Account"
UNKNOWN_ID = 999_999
UTC_OFFSET = re.compile(r"(Z|\+00:00)$")


def log_url(account_id: int) -> str:
    return f"{URL}/{account_id}/auditlog"


async def read_log(
    client: AsyncClient, headers_for: Headers, account_id: int, **params: Any
) -> Any:
    response = await client.get(log_url(account_id), params=params, headers=headers_for("admin"))
    assert response.status_code == 200, response.text
    return response.json()


async def events(client: AsyncClient, headers_for: Headers, account_id: int) -> list[str]:
    return [record["event"] for record in await read_log(client, headers_for, account_id)]


async def patch(
    client: AsyncClient, headers_for: Headers, user: str, account_id: int, body: dict[str, Any]
) -> Response:
    return await client.patch(f"{URL}/{account_id}", json=body, headers=headers_for(user))


# --- who may read it --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "account", "expected"),
    [
        (None, PROSUMER, 401),
        ("prosumer", PROSUMER, 403),
        ("prosumer_3", PROSUMER, 403),
        ("prosumer_admin", PROSUMER, 200),
        ("dummy_admin", PROSUMER, 403),
        ("supplier", PROSUMER, 403),
        ("admin", PROSUMER, 200),
        ("admin_reader", PROSUMER, 200),
        ("consultant", PROSUMER, 403),
        ("consultant", CLIENT, 200),
        ("consultancy_user", CLIENT, 403),
        ("client", CLIENT, 403),
    ],
)
async def test_who_may_read_an_audit_log(
    client: AsyncClient,
    headers_for: Headers,
    world: World,
    user: str | None,
    account: str,
    expected: int,
) -> None:
    response = await client.get(log_url(world.account(account)), headers=headers_for(user))
    if expected == 200:
        assert response.status_code == 200
        assert [record["event"] for record in response.json()] == ["Account Created"]
    else:
        assert_error(response, expected, {401: "UNAUTHORIZED", 403: "INVALID_SENDER"}[expected])


async def test_unknown_account_is_404(client: AsyncClient, headers_for: Headers) -> None:
    response = await client.get(log_url(UNKNOWN_ID), headers=headers_for("admin"))
    assert_error(response, 404, "NOT_FOUND")
    assert response.json()["message"] == f"Account {UNKNOWN_ID} not found"


async def test_non_integer_id_is_422_in_the_path(client: AsyncClient, headers_for: Headers) -> None:
    response = await client.get(f"{URL}/abc/auditlog", headers=headers_for("admin"))
    assert response.status_code == 422
    assert list(response.json()["message"]) == ["path"]
    assert list(response.json()["message"]["path"]) == ["id"]


# --- what is recorded -------------------------------------------------------------------------


async def test_a_patch_names_exactly_the_fields_it_changed(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    body = {"name": "Logged", "logo_url": "https://example.com/logo.png"}
    assert (await patch(client, headers_for, "prosumer", account_id, body)).status_code == 200
    assert await events(client, headers_for, account_id) == [
        "Account Created",
        "Account Updated, Field: name, logo_url",
    ]


async def test_fields_are_named_in_spec_order_whatever_the_body_order(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    body = {  # deliberately the reverse of SPEC §6's order
        "account_roles": [world.account_roles["Supplier"]],
        "attributes": {"a": 1},
        "consultancy_account_id": world.account(CONSULTANCY),
        "logo_url": "https://example.com/logo.png",
        "secondary_color": "#222",
        "primary_color": "#111",
        "name": "Everything Changed",
    }
    assert (await patch(client, headers_for, "admin", account_id, body)).status_code == 200
    assert (await events(client, headers_for, account_id))[-1] == (
        "Account Updated, Field: name, primary_color, secondary_color, logo_url, "
        "consultancy_account_id, attributes, account_roles"
    )


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        ({"name": "Same Name", "primary_color": "#abcdef"}, "primary_color"),
        ({"name": "Same Name", "logo_url": "http://x.io/l.png"}, "logo_url"),
        ({"attributes": '{"k": "v"}', "secondary_color": "#fff"}, "secondary_color"),
        ({"attributes": {"k": "w"}, "primary_color": "#123"}, "attributes"),
        ({"name": "Other Name", "attributes": {"k": "v"}}, "name"),
    ],
)
async def test_resent_unchanged_values_are_not_named(
    client: AsyncClient,
    headers_for: Headers,
    world: World,
    second: dict[str, Any],
    expected: str,
) -> None:
    account_id = world.account(PROSUMER)
    first = {"name": "Same Name", "primary_color": "#123", "attributes": {"k": "v"}}
    assert (await patch(client, headers_for, "prosumer", account_id, first)).status_code == 200
    assert (await patch(client, headers_for, "prosumer", account_id, second)).status_code == 200
    assert (await events(client, headers_for, account_id))[-2:] == [
        "Account Updated, Field: name, primary_color, attributes",
        f"Account Updated, Field: {expected}",
    ]


async def test_account_roles_in_another_order_are_no_change(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account("Multi Role Account")
    roles = [world.account_roles[name] for name in ("Dummy", "Supplier", "Prosumer")]
    response = await patch(client, headers_for, "admin", account_id, {"account_roles": roles})
    assert response.status_code == 200
    assert await events(client, headers_for, account_id) == ["Account Created"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": PROSUMER},
        {"primary_color": None, "logo_url": None, "attributes": {}},
        {"consultancy_account_id": None},
        {"attributes": "{}"},
    ],
)
async def test_a_no_op_patch_writes_no_record(
    client: AsyncClient, headers_for: Headers, world: World, body: dict[str, Any]
) -> None:
    account_id = world.account(PROSUMER)
    response = await patch(client, headers_for, "admin", account_id, body)
    assert response.status_code == 200
    assert await events(client, headers_for, account_id) == ["Account Created"]


async def test_failed_patches_write_no_record(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    etag = (await client.get(f"{URL}/{account_id}", headers=headers_for("admin"))).headers["ETag"]
    assert (
        await patch(client, headers_for, "admin", account_id, {"name": "V2"})
    ).status_code == 200
    failures = [
        ("prosumer", {"name": "Bad", "primary_color": "#12"}, 422),
        ("prosumer", {"name": SUPPLIER}, 422),
        ("admin", {"name": "Bad", "consultancy_account_id": account_id}, 422),
        ("admin", {"name": "Bad", "account_roles": [UNKNOWN_ID]}, 422),
        ("prosumer", {"name": "Bad", "account_roles": []}, 403),
        ("supplier", {"name": "Bad"}, 403),
    ]
    for user, body, status in failures:
        assert (await patch(client, headers_for, user, account_id, body)).status_code == status
    stale = await client.patch(
        f"{URL}/{account_id}",
        json={"name": "Bad"},
        headers={**headers_for("admin"), "If-Match": etag},
    )
    assert stale.status_code == 412
    assert await events(client, headers_for, account_id) == [
        "Account Created",
        "Account Updated, Field: name",
    ]


async def test_records_name_the_acting_user(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(CLIENT)
    await patch(client, headers_for, "consultant", account_id, {"primary_color": "#111"})
    await patch(client, headers_for, "client", account_id, {"primary_color": "#222"})
    await patch(client, headers_for, "admin", account_id, {"primary_color": "#333"})
    records = (await read_log(client, headers_for, account_id))[1:]
    assert [(r["active_user_id"], r["active_user_name"]) for r in records] == [
        (world.user(key).id, world.user(key).username) for key in ("consultant", "client", "admin")
    ]


async def test_a_record_has_exactly_the_documented_keys(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    await patch(client, headers_for, "prosumer", account_id, {"name": "Shape"})
    record = (await read_log(client, headers_for, account_id))[-1]
    assert set(record) == {"event", "event_datetime", "active_user_id", "active_user_name"}


async def test_event_datetime_is_iso_8601_in_utc(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    started = datetime.now(UTC)
    await patch(client, headers_for, "prosumer", account_id, {"name": "When"})
    finished = datetime.now(UTC)
    records = await read_log(client, headers_for, account_id)
    for record in records:
        assert UTC_OFFSET.search(record["event_datetime"]), record["event_datetime"]
        assert datetime.fromisoformat(record["event_datetime"]).utcoffset() == timedelta(0)
    when = datetime.fromisoformat(records[-1]["event_datetime"])
    assert started - timedelta(seconds=1) <= when <= finished + timedelta(seconds=1)


async def test_the_log_is_oldest_first(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    created = await client.post(URL, json={"name": "Chronicle"}, headers=headers_for("admin"))
    account_id = created.json()["id"]
    fields = ["name", "primary_color", "secondary_color", "logo_url", "attributes"]
    values = ["Chronicle 2", "#111", "#222", "https://x.io/l.png", {"a": 1}]
    for field, value in zip(fields, values, strict=True):
        response = await patch(client, headers_for, "admin", account_id, {field: value})
        assert response.status_code == 200
    records = await read_log(client, headers_for, account_id)
    assert [r["event"] for r in records] == [
        "Account Created",
        *(f"Account Updated, Field: {field}" for field in fields),
    ]
    times = [datetime.fromisoformat(r["event_datetime"]) for r in records]
    assert times == sorted(times)


async def test_other_accounts_changes_are_not_in_the_log(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    await patch(client, headers_for, "admin", world.account(SUPPLIER), {"name": "Elsewhere"})
    assert await events(client, headers_for, world.account(PROSUMER)) == ["Account Created"]


# --- pages and filter -------------------------------------------------------------------------


async def write_history(client: AsyncClient, headers_for: Headers, account_id: int) -> None:
    """Four updates of the prosumer account, by four different users, after its creation."""
    steps = [
        ("prosumer", {"name": "P1", "logo_url": "https://x.io/l.png"}),  # Test Prosumer User
        ("prosumer_admin", {"primary_color": "#111"}),  # Test Prosumer User 2
        ("admin", {"logo_url": "https://x.io/2.png", "name": "P1"}),  # Test Admin User
        ("prosumer_3", {"attributes": {"a": 1}}),  # Test Prosumer User 3
    ]
    for user, body in steps:
        assert (await patch(client, headers_for, user, account_id, body)).status_code == 200


HISTORY = [
    "Account Created",
    "Account Updated, Field: name, logo_url",
    "Account Updated, Field: primary_color",
    "Account Updated, Field: logo_url",
    "Account Updated, Field: attributes",
]


async def test_without_page_the_log_is_a_bare_list(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    await write_history(client, headers_for, account_id)
    assert await events(client, headers_for, account_id) == HISTORY


async def test_the_bare_list_and_the_pages_hold_the_same_records(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    """The whole log (read on the driver) and its pages (read through the ORM) agree field for
    field, timestamps' text included."""
    account_id = world.account(PROSUMER)
    await write_history(client, headers_for, account_id)
    whole = await read_log(client, headers_for, account_id)
    paged = await read_log(client, headers_for, account_id, page=1, per_page=len(HISTORY))
    assert whole == paged["data"]
    assert [record["event"] for record in whole] == HISTORY


async def test_paginated_envelope(client: AsyncClient, headers_for: Headers, world: World) -> None:
    account_id = world.account(PROSUMER)
    await write_history(client, headers_for, account_id)
    body = await read_log(client, headers_for, account_id, page=1, per_page=2)
    assert set(body) == {"data", "num-records", "filtered-records"}
    assert body["num-records"] == len(HISTORY)
    assert body["filtered-records"] == len(HISTORY)
    assert [r["event"] for r in body["data"]] == HISTORY[:2]


@pytest.mark.parametrize("size_param", ["per_page", "per-page"])
async def test_pages_partition_the_log(
    client: AsyncClient, headers_for: Headers, world: World, size_param: str
) -> None:
    account_id = world.account(PROSUMER)
    await write_history(client, headers_for, account_id)
    seen: list[str] = []
    for page in (1, 2, 3):
        body = await read_log(client, headers_for, account_id, page=page, **{size_param: 2})
        assert len(body["data"]) == (2 if page < 3 else 1)
        seen += [r["event"] for r in body["data"]]
    assert seen == HISTORY


async def test_a_page_past_the_end_is_empty(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    body = await read_log(client, headers_for, world.account(PROSUMER), page=5)
    assert body == {"data": [], "num-records": 1, "filtered-records": 1}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": 0}, "page"),
        ({"page": 1, "per_page": 1001}, "per_page"),
        ({"filter": '"'}, "filter"),
    ],
)
async def test_bad_query_parameters_are_422(
    client: AsyncClient, headers_for: Headers, world: World, params: dict[str, Any], field: str
) -> None:
    response = await client.get(
        log_url(world.account(PROSUMER)), params=params, headers=headers_for("admin")
    )
    assert_error(response, 422, "UNPROCESSABLE_ENTITY")
    assert list(response.json()["message"]["query"]) == [field]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("logo_url", [1, 3]),
        ("LOGO_URL", [1, 3]),
        ("prosumer", [1, 2, 4]),  # only in the acting users' names
        ('"user 2"', [2]),
        ("prosumer logo_url", [1]),  # every term must occur, in either place
        ("admin logo", [3]),
        ("created", [0]),
        ("updated admin prosumer", []),
        ("_", [1, 2, 3]),  # literal, not a wildcard
        ("%", []),
        ("", [0, 1, 2, 3, 4]),
        ("   ", [0, 1, 2, 3, 4]),
    ],
)
async def test_filter_terms_must_all_occur_in_the_event_or_the_users_name(
    client: AsyncClient, headers_for: Headers, world: World, text: str, expected: list[int]
) -> None:
    account_id = world.account(PROSUMER)
    await write_history(client, headers_for, account_id)
    bare = await read_log(client, headers_for, account_id, filter=text)
    assert [r["event"] for r in bare] == [HISTORY[i] for i in expected]
    paged = await read_log(client, headers_for, account_id, filter=text, page=1, per_page=100)
    assert [r["event"] for r in paged["data"]] == [HISTORY[i] for i in expected]
    assert paged["num-records"] == len(HISTORY)
    assert paged["filtered-records"] == len(expected)


async def test_filter_and_pages_combine(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    account_id = world.account(PROSUMER)
    await write_history(client, headers_for, account_id)
    body = await read_log(client, headers_for, account_id, filter="prosumer", page=2, per_page=2)
    assert [r["event"] for r in body["data"]] == [HISTORY[4]]
    assert body["filtered-records"] == 3
    assert body["num-records"] == len(HISTORY)
