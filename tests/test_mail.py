"""app.mail against real SMTP peers (tests/smtp.py): what arrives, TLS, credentials never in
clear, and every way a server can fail is a MailUnavailable (503), logged without the mail."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from app.mail import (
    LogMailer,
    Mail,
    MailUnavailable,
    SmtpMailer,
    SmtpTarget,
    UnconfiguredMailer,
    mailer_from_settings,
)
from app.settings import Settings
from tests.smtp import PASSWORD, closed_port_url, silent_server, smtp_server

MAIL = Mail(to="ann@acme.org", subject="Set your password", body="Open https://x/r?token=SECRET ✓")


def mailer(url: str, **kwargs: object) -> SmtpMailer:
    return SmtpMailer(SmtpTarget.from_url(url), "accounts@example.org", **kwargs)  # type: ignore[arg-type]


async def test_a_mail_arrives_with_sender_recipient_subject_and_body() -> None:
    async with smtp_server() as server:
        await mailer(server.url).send(MAIL)
        received = await server.wait_for_message()
    assert received.recipients == ["ann@acme.org"]
    assert received.message["From"] == "accounts@example.org"
    assert received.message["To"] == "ann@acme.org"
    assert received.message["Subject"] == "Set your password"
    assert received.message["Message-ID"]
    assert received.body.strip() == MAIL.body
    assert received.link == "https://x/r?token=SECRET"
    assert not received.over_tls


async def test_starttls_is_used_when_offered() -> None:
    async with smtp_server(starttls=True) as server:
        await mailer(server.url, tls_context=server.client_tls).send(MAIL)
        received = await server.wait_for_message()
    assert received.over_tls


async def test_a_certificate_the_client_does_not_trust_is_mail_unavailable() -> None:
    async with smtp_server(starttls=True) as server:
        with pytest.raises(MailUnavailable):
            await mailer(server.url).send(MAIL)  # the system's trust store, not the test CA
    assert server.messages == []


async def test_credentials_are_never_sent_without_tls(caplog: pytest.LogCaptureFixture) -> None:
    # Accepts AUTH even without TLS, so a client that sent credentials in clear would be seen.
    async with smtp_server(require_auth=True, auth_without_tls=True) as server:
        with pytest.raises(MailUnavailable):
            await mailer(server.url).send(MAIL)
    assert "AUTH" not in server.commands
    assert server.messages == []
    assert PASSWORD not in caplog.text


async def test_smtps_is_tls_from_the_start() -> None:
    async with smtp_server(tls_on_connect=True) as server:
        await mailer(server.url, tls_context=server.client_tls).send(MAIL)
        received = await server.wait_for_message()
        # The server speaks nothing but TLS: a plain-text client is not understood.
        plain = server.url.replace("smtps://", "smtp://")
        with pytest.raises(MailUnavailable):
            await mailer(plain, timeout=2.0).send(MAIL)
    assert received.recipients == ["ann@acme.org"]
    assert len(server.messages) == 1


async def test_a_server_answering_5xx_is_mail_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    async with smtp_server(reject=True) as server:
        with pytest.raises(MailUnavailable):
            await mailer(server.url).send(MAIL)
    assert "554" in caplog.text
    assert "SECRET" not in caplog.text


async def test_a_server_that_never_answers_is_mail_unavailable_within_the_timeout() -> None:
    async with silent_server() as url:
        with pytest.raises(MailUnavailable):
            await mailer(url, timeout=0.5).send(MAIL)


async def test_nothing_listening_is_mail_unavailable() -> None:
    with pytest.raises(MailUnavailable):
        await mailer(closed_port_url(), timeout=2.0).send(MAIL)


async def test_without_smtp_url_development_logs_the_mail(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="app.mail")
    await LogMailer().send(MAIL)
    assert "https://x/r?token=SECRET" in caplog.text


async def test_without_smtp_url_production_sends_nothing_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(MailUnavailable):
        await UnconfiguredMailer().send(MAIL)
    assert "SECRET" not in caplog.text


@pytest.mark.parametrize(
    ("env", "url", "kind"),
    [
        ("development", None, LogMailer),
        ("test", None, LogMailer),
        ("production", None, UnconfiguredMailer),
        ("production", "smtp://127.0.0.1:2525", SmtpMailer),
        ("development", "smtps://u:p@mail.example.org", SmtpMailer),
    ],
)
def test_the_mailer_follows_the_settings(env: str, url: str | None, kind: type) -> None:
    settings = Settings(
        app_env=env,  # type: ignore[arg-type]
        secret_key=SecretStr("k" * 40),
        smtp_url=SecretStr(url) if url else None,
    )
    assert isinstance(mailer_from_settings(settings), kind)


def test_an_smtp_url_of_another_scheme_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="smtp:// or smtps://"):
        Settings(secret_key=SecretStr("k" * 40), smtp_url=SecretStr("http://mail:25"))
