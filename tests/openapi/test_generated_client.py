"""A Python client generated from the committed document (openapi-python-client) drives a
running service: log in, list, read, create, patch and read the audit log."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from app.openapi import COMMITTED
from tests.databases import Backend
from tests.live import LiveServer, live_server
from tests.smtp import SmtpServer, smtp_server
from tests.world import PASSWORD

PACKAGE = "accounts_service_client"


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    workdir = tmp_path_factory.mktemp("sdk")
    config = workdir / "config.yml"
    config.write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n")
    generator = Path(sys.executable).parent / "openapi-python-client"
    subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(COMMITTED),
            "--meta",
            "none",
            "--config",
            str(config),
            "--output-path",
            str(workdir / PACKAGE),
        ],
        check=True,
        capture_output=True,
    )
    sys.path.insert(0, str(workdir))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(workdir))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


async def test_generated_client_covers_the_whole_account_flow(
    sdk: ModuleType, server: LiveServer
) -> None:
    models = _module("models")
    login = _module("api.authentication.request_auth_token")
    list_accounts = _module("api.accounts.list_accounts")
    get_account = _module("api.accounts.get_account")
    create_account = _module("api.accounts.create_account")
    update_account = _module("api.accounts.update_account")
    audit_log = _module("api.accounts.get_account_audit_log")

    anonymous = sdk.Client(base_url=server.base_url)
    token = await login.asyncio(
        client=anonymous,
        body=models.TokenRequest(email="test_admin_user@seita.nl", password=PASSWORD),
    )
    assert isinstance(token, models.TokenOut)
    assert token.user_id > 0

    # The scheme is the raw Authorization header: no "Bearer" prefix needed.
    client = sdk.AuthenticatedClient(base_url=server.base_url, token=token.auth_token, prefix="")

    everything = await list_accounts.asyncio(client=client)
    assert isinstance(everything, list)
    assert len(everything) == 7
    assert all(isinstance(account, models.AccountOut) for account in everything)

    page = await list_accounts.asyncio(client=client, page=1, per_page=3, sort_by="name")
    assert isinstance(page, models.AccountPage)
    assert page.num_records == 7
    assert page.filtered_records == 7
    assert [a.name for a in page.data] == [
        "Multi Role Account",
        "Test Consultancy Account",
        "Test ConsultancyClient Account",
    ]
    assert all(a.user_count >= 0 for a in page.data)

    created = await create_account.asyncio_detailed(
        client=client, body=models.AccountCreate(name="SDK Account")
    )
    assert created.status_code == 201
    assert isinstance(created.parsed, models.AccountOut)
    account_id = created.parsed.id

    patched = await update_account.asyncio(
        id=account_id,
        client=client,
        body=models.AccountPatch(name="SDK Account Renamed", primary_color="#123abc"),
    )
    assert isinstance(patched, models.AccountOut)
    assert (patched.name, patched.primary_color) == ("SDK Account Renamed", "#123abc")

    read = await get_account.asyncio(id=account_id, client=client)
    assert isinstance(read, models.AccountOut)
    assert read.name == "SDK Account Renamed"

    forbidden = await get_account.asyncio_detailed(id=account_id + 1000, client=client)
    assert forbidden.status_code == 404
    assert isinstance(forbidden.parsed, models.ErrorEnvelope)
    assert forbidden.parsed.status == "NOT_FOUND"

    log = await audit_log.asyncio(id=account_id, client=client)
    assert isinstance(log, list)
    assert [record.event for record in log] == [
        "Account Created",
        "Account Updated, Field: name, primary_color",
    ]
    assert log[1].active_user_id == token.user_id
    assert log[1].event_datetime.utcoffset() is not None

    paged_log = await audit_log.asyncio(id=account_id, client=client, page=1, per_page=1)
    assert isinstance(paged_log, models.AuditRecordPage)
    assert paged_log.num_records == 2
    assert [record.event for record in paged_log.data] == ["Account Created"]


@pytest.fixture(scope="module")
async def mail() -> AsyncIterator[SmtpServer]:
    async with smtp_server() as server:
        yield server


@pytest.fixture(scope="module")
async def mailing_server(backend: Backend, mail: SmtpServer) -> AsyncIterator[LiveServer]:
    async with live_server(backend, extra_env={"SMTP_URL": mail.url}) as running:
        yield running


async def test_generated_client_covers_the_whole_user_flow(
    sdk: ModuleType, mailing_server: LiveServer, mail: SmtpServer
) -> None:
    """invite -> mail -> set password -> log in -> update -> deactivate -> log-in refused."""
    server = mailing_server
    models = _module("models")
    login = _module("api.authentication.request_auth_token")
    reset_password = _module("api.authentication.reset_password")
    create_user = _module("api.users.create_user")
    get_user = _module("api.users.get_user")
    update_user = _module("api.users.update_user")
    user_audit_log = _module("api.users.get_user_audit_log")

    anonymous = sdk.Client(base_url=server.base_url)
    admin_token = await login.asyncio(
        client=anonymous,
        body=models.TokenRequest(email="test_admin_user@seita.nl", password=PASSWORD),
    )
    assert isinstance(admin_token, models.TokenOut)
    admin = sdk.AuthenticatedClient(
        base_url=server.base_url, token=admin_token.auth_token, prefix=""
    )

    invited = await create_user.asyncio_detailed(
        client=admin,
        body=models.UserCreate(
            email="sdk-user@example.org", username="SDK User", account_id=1, timezone="Europe/Paris"
        ),
    )
    assert invited.status_code == 201, invited.content
    assert isinstance(invited.parsed, models.UserOut)
    user_id = invited.parsed.id
    assert invited.parsed.timezone == "Europe/Paris"

    link = (await mail.wait_for_message()).link
    token = parse_qs(urlsplit(link).query)["token"][0]
    logged_in = await reset_password.asyncio(
        client=anonymous, body=models.PasswordReset(token=token, password="sdk password 1")
    )
    assert isinstance(logged_in, models.TokenOut)
    assert logged_in.user_id == user_id
    again = await login.asyncio(
        client=anonymous,
        body=models.TokenRequest(email="sdk-user@example.org", password="sdk password 1"),
    )
    assert isinstance(again, models.TokenOut)

    read = await get_user.asyncio_detailed(id=user_id, client=admin)
    assert read.status_code == 200
    etag = read.headers["ETag"]
    updated = await update_user.asyncio(
        id=user_id,
        client=admin,
        body=models.UserPatch(username="SDK User Renamed", timezone="Europe/Berlin"),
        if_match=etag,
    )
    assert isinstance(updated, models.UserOut)
    assert (updated.username, updated.timezone) == ("SDK User Renamed", "Europe/Berlin")
    stale = await update_user.asyncio_detailed(
        id=user_id, client=admin, body=models.UserPatch(username="Too late"), if_match=etag
    )
    assert stale.status_code == 412

    deactivated = await update_user.asyncio(
        id=user_id, client=admin, body=models.UserPatch(active=False)
    )
    assert isinstance(deactivated, models.UserOut)
    assert deactivated.active is False
    refused = await login.asyncio_detailed(
        client=anonymous,
        body=models.TokenRequest(email="sdk-user@example.org", password="sdk password 1"),
    )
    assert refused.status_code == 401
    assert isinstance(refused.parsed, models.ErrorEnvelope)

    log = await user_audit_log.asyncio(id=user_id, client=admin)
    assert isinstance(log, list)
    assert [record.event for record in log] == [
        "User Created",
        "Password Reset Requested",
        "Password Set",
        "User Updated, Field: username, timezone",
        "User Deactivated",
    ]
