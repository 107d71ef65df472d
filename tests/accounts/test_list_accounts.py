"""GET /api/v3_0/accounts: visibility, pagination, filter, sort, role, bounds."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from httpx import AsyncClient

from tests.conftest import QueryCounter
from tests.world import World

URL = "/api/v3_0/accounts"
Headers = Callable[[str | None], dict[str, str]]

ALL_ACCOUNTS = 7


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("admin", ALL_ACCOUNTS),
        ("admin_reader", ALL_ACCOUNTS),
        ("prosumer", 1),
        ("consultant", 2),
        ("consultancy_user", 1),
        ("client", 1),
    ],
)
async def test_index_shows_what_each_kind_of_user_may_see(
    client: AsyncClient, headers_for: Headers, user: str, expected: int
) -> None:
    response = await client.get(URL, headers=headers_for(user))
    assert response.status_code == 200
    assert len(response.json()) == expected


async def test_consultant_also_sees_client_accounts(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    response = await client.get(URL, headers=headers_for("consultant"))
    assert {a["id"] for a in response.json()} == {
        world.account("Test Consultancy Account"),
        world.account("Test ConsultancyClient Account"),
    }


async def test_account_object_has_the_documented_shape(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    response = await client.get(URL, headers=headers_for("client"))
    (account,) = response.json()
    assert account == {
        "id": world.account("Test ConsultancyClient Account"),
        "name": "Test ConsultancyClient Account",
        "account_roles": [
            {"id": world.account_roles["ConsultancyClient"], "name": "ConsultancyClient"}
        ],
        "consultancy_account_id": world.account("Test Consultancy Account"),
        "primary_color": None,
        "secondary_color": None,
        "logo_url": None,
        "attributes": {},
    }


async def test_unpaginated_list_is_ordered_by_id(client: AsyncClient, headers_for: Headers) -> None:
    ids = [a["id"] for a in (await client.get(URL, headers=headers_for("admin"))).json()]
    assert ids == sorted(ids)


@pytest.mark.parametrize(
    ("params", "first", "last"),
    [
        ({"sort_by": "name", "sort_dir": "asc"}, "Multi Role Account", "Test Supplier Account"),
        ({"sort_by": "name", "sort_dir": "desc"}, "Test Supplier Account", "Multi Role Account"),
        ({"sort-by": "name", "sort-dir": "desc"}, "Test Supplier Account", "Multi Role Account"),
        ({"sort_by": "name"}, "Multi Role Account", "Test Supplier Account"),
    ],
)
async def test_sort_by_name(
    client: AsyncClient, headers_for: Headers, params: dict[str, str], first: str, last: str
) -> None:
    response = await client.get(URL, params=params, headers=headers_for("admin"))
    names = [a["name"] for a in response.json()]
    assert names[0] == first
    assert names[-1] == last
    assert names == sorted(names, key=str.lower, reverse=names[0] == "Test Supplier Account")


async def test_names_sort_case_insensitively(client: AsyncClient, headers_for: Headers) -> None:
    created = await client.post(URL, json={"name": "aardvark Energy"}, headers=headers_for("admin"))
    assert created.status_code == 201
    response = await client.get(URL, params={"sort_by": "name"}, headers=headers_for("admin"))
    assert response.json()[0]["name"] == "aardvark Energy"


async def test_sort_by_users_breaks_ties_by_id(
    client: AsyncClient, headers_for: Headers, world: World
) -> None:
    response = await client.get(
        URL,
        params={"page": 1, "per_page": 100, "sort_by": "users", "sort_dir": "desc"},
        headers=headers_for("admin"),
    )
    rows = [(a["user_count"], a["id"]) for a in response.json()["data"]]
    assert rows == sorted(rows, key=lambda row: (-row[0], row[1]))
    counts = {a["name"]: a["user_count"] for a in response.json()["data"]}
    assert counts["Test Prosumer Account"] == 3
    assert counts["Test Dummy Account"] == 4
    assert counts["Test Empty Account"] == 0


async def test_sort_by_assets_is_422(client: AsyncClient, headers_for: Headers) -> None:
    response = await client.get(URL, params={"sort_by": "assets"}, headers=headers_for("admin"))
    assert response.status_code == 422
    assert response.json()["status"] == "UNPROCESSABLE_ENTITY"
    assert "sort_by" in response.json()["message"]["query"]


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("Dummy", {"Test Dummy Account", "Multi Role Account"}),
        ("Prosumer", {"Test Prosumer Account", "Multi Role Account"}),
        ("Consultancy", {"Test Consultancy Account"}),
    ],
)
async def test_role_filter(
    client: AsyncClient, headers_for: Headers, role: str, expected: set[str]
) -> None:
    response = await client.get(URL, params={"role": role}, headers=headers_for("admin"))
    assert {a["name"] for a in response.json()} == expected


async def test_unknown_role_is_422(client: AsyncClient, headers_for: Headers) -> None:
    response = await client.get(URL, params={"role": "Nope"}, headers=headers_for("admin"))
    assert response.status_code == 422
    assert response.json()["message"] == {"query": {"role": ["Unknown account role: Nope."]}}


async def test_role_filter_keeps_the_callers_scope(
    client: AsyncClient, headers_for: Headers
) -> None:
    response = await client.get(URL, params={"role": "Supplier"}, headers=headers_for("prosumer"))
    assert response.json() == []


async def test_paginated_envelope_counts(client: AsyncClient, headers_for: Headers) -> None:
    response = await client.get(
        URL, params={"page": 1, "per_page": 3, "filter": "test"}, headers=headers_for("admin")
    )
    body = response.json()
    assert set(body) == {"data", "num-records", "filtered-records"}
    assert body["num-records"] == ALL_ACCOUNTS
    assert body["filtered-records"] == 6  # all but "Multi Role Account"
    assert len(body["data"]) == 3
    assert all("user_count" in a for a in body["data"])


async def test_pages_partition_the_list(client: AsyncClient, headers_for: Headers) -> None:
    seen: list[int] = []
    for page in (1, 2, 3):
        response = await client.get(
            URL, params={"page": page, "per-page": 3}, headers=headers_for("admin")
        )
        seen += [a["id"] for a in response.json()["data"]]
    everything = [a["id"] for a in (await client.get(URL, headers=headers_for("admin"))).json()]
    assert seen == everything


@pytest.mark.parametrize("user", ["admin", "consultant"])
@pytest.mark.parametrize("sort_by", [None, "name", "users"])
@pytest.mark.parametrize("sort_dir", ["asc", "desc"])
@pytest.mark.parametrize("text", [None, "account"])
async def test_every_page_is_its_slice_of_the_whole_list(
    client: AsyncClient,
    headers_for: Headers,
    user: str,
    sort_by: str | None,
    sort_dir: str,
    text: str | None,
) -> None:
    """Pages in the back half are read from the end of the list (fewer entries to skip); every
    page must still be exactly its slice, ties and a short last page included."""
    admin = headers_for("admin")
    for name in ("Paging Tie Account", "PAGING TIE ACCOUNT", "paging tie account 2"):
        assert (await client.post(URL, json={"name": name}, headers=admin)).status_code == 201
    params: dict[str, str | int] = {"sort_dir": sort_dir}
    if sort_by is not None:
        params["sort_by"] = sort_by
    if text is not None:
        params["filter"] = text
    headers = headers_for(user)
    whole = [a["id"] for a in (await client.get(URL, params=params, headers=headers)).json()]
    assert len(whole) >= 2
    for per_page in (1, 2, 3, 4):
        pages = -(-len(whole) // per_page)
        for page in range(1, pages + 2):  # and one past the end
            response = await client.get(
                URL, params={**params, "page": page, "per_page": per_page}, headers=headers
            )
            body = response.json()
            start = (page - 1) * per_page
            assert [a["id"] for a in body["data"]] == whole[start : start + per_page], (
                per_page,
                page,
            )
            assert body["filtered-records"] == len(whole)


async def test_page_past_the_end_is_empty(client: AsyncClient, headers_for: Headers) -> None:
    response = await client.get(URL, params={"page": 99}, headers=headers_for("admin"))
    assert response.status_code == 200
    assert response.json()["data"] == []
    assert response.json()["num-records"] == ALL_ACCOUNTS


async def test_default_page_size_is_ten(client: AsyncClient, headers_for: Headers) -> None:
    for index in range(6):
        await client.post(URL, json={"name": f"Extra {index}"}, headers=headers_for("admin"))
    response = await client.get(URL, params={"page": 1}, headers=headers_for("admin"))
    assert len(response.json()["data"]) == 10
    assert response.json()["num-records"] == ALL_ACCOUNTS + 6


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": 0}, "page"),
        ({"page": "x"}, "page"),
        ({"page": 1, "per_page": 0}, "per_page"),
        ({"page": 1, "per-page": 1001}, "per-page"),
        ({"sort_dir": "up"}, "sort_dir"),
        ({"sort-dir": "up"}, "sort-dir"),
        ({"filter": 'unbalanced "quote'}, "filter"),
    ],
)
async def test_bad_query_parameters_are_422_keyed_by_the_name_used(
    client: AsyncClient, headers_for: Headers, params: dict[str, object], field: str
) -> None:
    response = await client.get(URL, params=params, headers=headers_for("admin"))
    assert response.status_code == 422
    assert list(response.json()["message"]["query"]) == [field]


async def test_per_page_accepts_its_maximum(client: AsyncClient, headers_for: Headers) -> None:
    response = await client.get(
        URL, params={"page": 1, "per_page": 1000}, headers=headers_for("admin")
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("prosumer", {"Test Prosumer Account"}),
        ("PROSUMER", {"Test Prosumer Account"}),
        (
            "test account",
            {
                "Test Prosumer Account",
                "Test Supplier Account",
                "Test Dummy Account",
                "Test Empty Account",
                "Test Consultancy Account",
                "Test ConsultancyClient Account",
            },
        ),
        ('"test account"', set()),
        ('"role account"', {"Multi Role Account"}),
        ("consult client", {"Test ConsultancyClient Account"}),
        ("", None),
        ("   ", None),
        ("%", set()),
        ("_", set()),
    ],
)
async def test_filter_terms_must_all_occur_in_the_name(
    client: AsyncClient, headers_for: Headers, text: str, expected: set[str] | None
) -> None:
    response = await client.get(URL, params={"filter": text}, headers=headers_for("admin"))
    names = {a["name"] for a in response.json()}
    assert names == (expected if expected is not None else names)
    if expected is None:
        assert len(names) == ALL_ACCOUNTS


async def test_percent_and_underscore_are_literal(
    client: AsyncClient, headers_for: Headers
) -> None:
    for name in ("100% Green", "100X Green", "a_b", "axb", "back\\slash"):
        await client.post(URL, json={"name": name}, headers=headers_for("admin"))
    admin = headers_for("admin")

    async def names(text: str) -> set[str]:
        response = await client.get(URL, params={"filter": text}, headers=admin)
        return {a["name"] for a in response.json()}

    assert await names("100%") == {"100% Green"}
    assert await names("a_b") == {"a_b"}
    assert await names(r"k\\s") == {"back\\slash"}  # shlex reads k\\s as k\s


@pytest.mark.parametrize("per_page", [2, 50])
async def test_paginated_index_costs_a_constant_number_of_queries(
    client: AsyncClient, headers_for: Headers, count_queries: QueryCounter, per_page: int
) -> None:
    admin = headers_for("admin")
    for index in range(12):
        await client.post(URL, json={"name": f"Counted {index}"}, headers=admin)
    count_queries.reset()
    response = await client.get(
        URL, params={"page": 1, "per_page": per_page, "sort_by": "users"}, headers=admin
    )
    assert response.status_code == 200
    assert len(response.json()["data"]) == min(per_page, ALL_ACCOUNTS + 12)
    # principal, page of accounts, their roles, both counts
    assert count_queries.count == 4, count_queries.statements


async def test_without_a_token_it_is_401(client: AsyncClient) -> None:
    response = await client.get(URL)
    assert response.status_code == 401
    assert response.json()["status"] == "UNAUTHORIZED"
