"""A Python client generated from the committed document (openapi-python-client) drives a
running service: log in, list, read, create, patch and read the audit log."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from app.openapi import COMMITTED
from tests.live import LiveServer
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
