"""The users' lifecycle over HTTP with a real SMTP server: invite, the mailed link, set a
password, log in; reset; forgot-password; what a mail server that fails leaves behind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlsplit

import pytest
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.main import create_app
from app.settings import Settings
from tests.conftest import with_sessions
from tests.smtp import SmtpServer, closed_port_url, silent_server, smtp_server
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


@asynccontextmanager
async def failing_mail(kind: str) -> AsyncIterator[str]:
    """An SMTP URL that fails the given way."""
    if kind == "refused":
        async with smtp_server(reject=True) as server:
            yield server.url
    elif kind == "silent":
        async with silent_server() as url:
            yield url
    else:
        yield closed_port_url()


@asynccontextmanager
async def app_client(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], **update: object
) -> AsyncIterator[AsyncClient]:
    app = with_sessions(create_app(settings.model_copy(update=update)), sessions)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http:
        yield http


FAILURES = ["refused", "silent", "closed"]


@pytest.mark.parametrize("kind", FAILURES)
async def test_an_invitation_the_mail_server_does_not_take_stores_no_user(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    headers_for: Headers,
    world: World,
    kind: str,
) -> None:
    async with (
        failing_mail(kind) as url,
        app_client(settings, sessions, smtp_url=SecretStr(url), smtp_timeout=1.0) as client,
    ):
        body = {
            "email": "lost@acme.org",
            "username": "Lost",
            "account_id": world.account("Test Prosumer Account"),
        }
        response = await client.post(USERS, json=body, headers=headers_for("admin"))
        assert response.status_code == 503
        assert response.json()["status"] == "SERVICE_UNAVAILABLE"
        assert "mail" in response.json()["message"]
        assert "database" not in response.json()["message"]
        listed = await client.get(
            USERS,
            params={"filter": "lost@acme.org", "include_inactive": True},
            headers=headers_for("admin"),
        )
        assert listed.json() == []


async def test_without_smtp_in_production_an_invitation_is_503_and_stores_nothing(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    headers_for: Headers,
    world: World,
) -> None:
    async with app_client(settings, sessions, app_env="production", smtp_url=None) as client:
        body = {
            "email": "prod@acme.org",
            "username": "P",
            "account_id": world.account("Test Prosumer Account"),
        }
        response = await client.post(USERS, json=body, headers=headers_for("admin"))
        assert response.status_code == 503
        listed = await client.get(
            USERS, params={"filter": "prod@acme.org"}, headers=headers_for("admin")
        )
        assert listed.json() == []


@pytest.mark.parametrize("kind", FAILURES)
async def test_a_password_reset_the_mail_server_does_not_take_changes_nothing(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    headers_for: Headers,
    world: World,
    kind: str,
) -> None:
    user = world.user("prosumer")
    async with (
        failing_mail(kind) as url,
        app_client(settings, sessions, smtp_url=SecretStr(url), smtp_timeout=1.0) as client,
    ):
        response = await client.patch(
            f"{USERS}/{user.id}/password-reset", headers=headers_for("prosumer_admin")
        )
        assert response.status_code == 503
        # The old password and the old token still work.
        login = await client.post(LOGIN, json={"email": user.email, "password": PASSWORD})
        assert login.status_code == 200
        me = await client.get(f"{USERS}/{user.id}", headers=headers_for("prosumer"))
        assert me.status_code == 200
        log = await client.get(f"{USERS}/{user.id}/auditlog", headers=headers_for("admin"))
        assert [r["event"] for r in log.json()] == ["User Created"]  # by the demo, no more


async def test_a_password_reset_ends_the_password_and_every_token_and_mails_a_link(
    mail_client: AsyncClient, smtp: SmtpServer, headers_for: Headers, world: World
) -> None:
    user = world.user("prosumer")
    response = await mail_client.patch(
        f"{USERS}/{user.id}/password-reset", headers=headers_for("prosumer_admin")
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == user.id
    old_token = await mail_client.get(f"{USERS}/{user.id}", headers=headers_for("prosumer"))
    assert old_token.status_code == 401
    old_password = await mail_client.post(LOGIN, json={"email": user.email, "password": PASSWORD})
    assert old_password.status_code == 401
    mail = await smtp.wait_for_message()
    assert mail.recipients == [user.email]
    # The password rules: not the email, 8 to 128 characters.
    for bad in (user.email.upper(), "short", "x" * 129):
        refused = await mail_client.post(
            "/api/resetPassword", json={"token": token_of(mail.link), "password": bad}
        )
        assert refused.status_code == 422, bad
        assert list(refused.json()["message"]["json"]) == ["password"]
    done = await mail_client.post(
        "/api/resetPassword", json={"token": token_of(mail.link), "password": "brand new pass"}
    )
    assert done.status_code == 200
    log = await mail_client.get(f"{USERS}/{user.id}/auditlog", headers=headers_for("admin"))
    assert [r["event"] for r in log.json()] == [
        "User Created",  # by the demo
        "Password Reset Requested",
        "Password Set",
    ]


async def test_a_forgotten_password_gets_the_same_answer_for_any_address(
    mail_client: AsyncClient, smtp: SmtpServer, world: World
) -> None:
    user = world.user("dummy")
    known = await mail_client.post("/api/requestPasswordReset", json={"email": user.email.upper()})
    unknown = await mail_client.post("/api/requestPasswordReset", json={"email": "nobody@x.org"})
    assert known.status_code == unknown.status_code == 200
    assert known.json() == unknown.json()
    assert known.json()["status"] == "PROCESSED"
    mail = await smtp.wait_for_message()
    assert mail.recipients == [user.email]
    assert len(smtp.messages) == 1  # nothing for the unknown address
    # The request alone changed nothing: the password still works.
    login = await mail_client.post(LOGIN, json={"email": user.email, "password": PASSWORD})
    assert login.status_code == 200
    # An older link dies when the password changes through a newer one.
    await mail_client.post("/api/requestPasswordReset", json={"email": user.email})
    newer = await smtp.wait_for_message(2)
    assert newer.link != mail.link
    ok = await mail_client.post(
        "/api/resetPassword", json={"token": token_of(newer.link), "password": "newer password"}
    )
    assert ok.status_code == 200
    stale = await mail_client.post(
        "/api/resetPassword", json={"token": token_of(mail.link), "password": "older password"}
    )
    assert stale.status_code == 401


async def test_forgot_password_requests_are_counted_like_failed_log_ins(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], world: World
) -> None:
    async with app_client(settings, sessions, login_failure_limit="2/minute") as client:
        email = world.user("supplier").email
        answers = [
            await client.post("/api/requestPasswordReset", json={"email": email}) for _ in range(3)
        ]
        assert [r.status_code for r in answers] == [200, 200, 429]
        assert int(answers[2].headers["Retry-After"]) > 0
        assert answers[2].json()["status"] == "TOO_MANY_REQUESTS"


async def test_a_forgotten_password_whose_mail_fails_still_answers_200_and_logs_it(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    world: World,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with app_client(
        settings, sessions, smtp_url=SecretStr(closed_port_url()), smtp_timeout=1.0
    ) as client:
        response = await client.post(
            "/api/requestPasswordReset", json={"email": world.user("dummy").email}
        )
    assert response.status_code == 200
    assert "set-password mail not sent" in caplog.text


@pytest.mark.parametrize(
    "token",
    ["", "not-a-token", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."],
    ids=["empty", "garbage", "alg-none"],
)
async def test_a_bad_link_is_401(client: AsyncClient, token: str) -> None:
    response = await client.post(
        "/api/resetPassword", json={"token": token, "password": "a fine password"}
    )
    assert response.status_code == 401


async def test_an_access_token_is_no_set_password_link(
    client: AsyncClient, token_for: Callable[[str], str]
) -> None:
    response = await client.post(
        "/api/resetPassword", json={"token": token_for("prosumer"), "password": "a fine password"}
    )
    assert response.status_code == 401


async def test_an_expired_link_is_401(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], world: World, smtp: SmtpServer
) -> None:
    async with app_client(
        settings, sessions, smtp_url=SecretStr(smtp.url), password_reset_max_age=-1
    ) as client:
        smtp.messages.clear()
        await client.post("/api/requestPasswordReset", json={"email": world.user("dummy").email})
        mail = await smtp.wait_for_message()
        response = await client.post(
            "/api/resetPassword", json={"token": token_of(mail.link), "password": "a fine password"}
        )
    assert response.status_code == 401
