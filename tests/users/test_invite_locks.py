"""An invitation's mail goes out before its user is written, on a real server with real
sessions: while the SMTP server takes its time, the account the user joins is not locked (the
INSERT's trigger locks the account's row for its `user_count` until the commit)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.databases import Backend
from tests.live import live_server
from tests.smtp import smtp_server

# SQLite's write transaction holds the whole database from its first statement: there, a
# PATCH does wait for the invitation.
pytestmark = pytest.mark.postgres_only

ADMIN = {"email": "test_admin_user@seita.nl", "password": "testtest"}


async def test_a_patch_of_the_account_does_not_wait_for_an_invitations_mail(
    backend: Backend,
) -> None:
    async with (
        smtp_server(hold=True) as mail,
        live_server(backend, extra_env={"SMTP_URL": mail.url}) as server,
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
    ):
        login = await http.post("/api/requestAuthToken", json=ADMIN)
        headers = {"Authorization": login.json()["auth_token"]}
        accounts = await http.get("/api/v3_0/accounts", headers=headers)
        account = next(a for a in accounts.json() if a["name"] == "Test Prosumer Account")
        url = f"/api/v3_0/accounts/{account['id']}"
        invite = asyncio.create_task(
            http.post(
                "/api/v3_0/users",
                json={"email": "held@example.org", "username": "Held", "account_id": account["id"]},
                headers=headers,
            )
        )
        await mail.wait_holding()
        async with asyncio.timeout(5):  # a lock held across the mail would wait for 20 s
            patched = await http.patch(url, json={"primary_color": "#123456"}, headers=headers)
        assert patched.status_code == 200, patched.text
        assert not invite.done()
        mail.release()
        invited = await invite
        assert invited.status_code == 201, invited.text
        message = await mail.wait_for_message()
        assert message.recipients == ["held@example.org"]
        read = await http.get(url, headers=headers)
        users = await http.get(
            "/api/v3_0/users", params={"account_id": account["id"]}, headers=headers
        )
    assert read.json()["primary_color"] == "#123456"
    assert "held@example.org" in [user["email"] for user in users.json()]
