"""The users' lifecycle over HTTP with a real SMTP server: invite, the mailed link, set a
password, log in; reset; forgot-password; what a mail server that fails leaves behind."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from httpx import AsyncClient

from tests.smtp import SmtpServer
from tests.world import PASSWORD, World

Headers = Callable[[str | None], dict[str, str]]
USERS = "/api/v3_0/users"
LOGIN = "/api/requestAuthToken"


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


async def invite(
    client: AsyncClient, headers: dict[str, str], account_id: int, email: str = "new@acme.org"
) -> dict[str, object]:
    response = await client.post(
        USERS,
        json={"email": email, "username": "New User", "account_id": account_id},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_an_invited_user_sets_a_password_through_the_mailed_link_and_logs_in(
    mail_client: AsyncClient, smtp: SmtpServer, headers_for: Headers, world: World
) -> None:
    account_id = world.account("Test Prosumer Account")
    user = await invite(mail_client, headers_for("prosumer_admin"), account_id, "New@ACME.org")
    assert user["email"] == "new@acme.org"
    assert user["account_id"] == account_id
    assert user["timezone"] == "Europe/Amsterdam"
    assert user["last_login_at"] is None
    mail = await smtp.wait_for_message()
    assert mail.recipients == ["new@acme.org"]
    assert mail.link.startswith("http://reset.test/reset-password?token=")
    # No usable password yet: nothing logs in.
    for password in ("", PASSWORD, "x" * 20):
        refused = await mail_client.post(
            LOGIN, json={"email": "new@acme.org", "password": password}
        )
        assert refused.status_code == 401

    token = token_of(mail.link)
    response = await mail_client.post(
        "/api/resetPassword", json={"token": token, "password": "a fine password"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == user["id"]
    me = await mail_client.get(
        f"{USERS}/{user['id']}", headers={"Authorization": response.json()["auth_token"]}
    )
    assert me.status_code == 200
    assert me.json()["last_login_at"] is not None
    login = await mail_client.post(
        LOGIN, json={"email": "NEW@acme.org", "password": "a fine password"}
    )
    assert login.status_code == 200
    # The link worked once.
    again = await mail_client.post(
        "/api/resetPassword", json={"token": token, "password": "another password"}
    )
    assert again.status_code == 401
    assert again.json()["status"] == "UNAUTHORIZED"
    assert token not in again.text

    log = await mail_client.get(f"{USERS}/{user['id']}/auditlog", headers=headers_for("admin"))
    assert [record["event"] for record in log.json()] == [
        "User Created",
        "Password Reset Requested",
        "Password Set",
    ]
    assert log.json()[0]["active_user_name"] == world.user("prosumer_admin").username
    assert log.json()[2]["active_user_id"] is None
