"""Plain-text mail, handed to an SMTP server (`SMTP_URL`) with aiosmtplib, bounded in time.

* `smtp://[user:pass@]host:port`: STARTTLS when the server offers it; credentials are never sent
  without TLS (a server that offers no STARTTLS gets none: the mail is not sent).
* `smtps://user:pass@host:465`: TLS from the start.
* Unset in development and test: each mail is written to the log (`app.mail`, INFO), so
  `make run` shows a link a newcomer can click.
* Unset with `APP_ENV=production`: nothing can be sent (a set-password link is a secret and never
  goes to a production log), so the requests that must send mail answer 503.

A mail that is not handed over (refused, a 5xx, a timeout, nothing listening) raises
`MailUnavailable`: 503 with a mail message, never the database's. Failures are logged with the
error's kind and SMTP code only: never the mail (it holds a link), never credentials.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

from app.errors import ServiceUnavailable
from app.settings import Settings

logger = logging.getLogger(__name__)


class MailUnavailable(ServiceUnavailable):
    message = "The mail server did not accept the message; nothing was changed. Try again shortly."


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    body: str


class Mailer(Protocol):
    async def send(self, mail: Mail) -> None:
        """Hand the mail over, or raise MailUnavailable."""


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    host: str
    port: int
    tls_on_connect: bool
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"}:
            raise ValueError("SMTP_URL must start with smtp:// or smtps://")
        if not parts.hostname:
            raise ValueError("SMTP_URL names no host")
        tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if tls else 25),
            tls_on_connect=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


class SmtpMailer:
    def __init__(
        self,
        target: SmtpTarget,
        sender: str,
        *,
        timeout: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.target = target
        self.sender = sender
        self.timeout = timeout
        self.tls_context = tls_context or ssl.create_default_context()
        # The name this host greets with (EHLO): looked up once, in a thread, not per mail.
        self._local_hostname: str | None = None

    def message(self, mail: Mail) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        message.set_content(mail.body, charset="utf-8")
        return message

    async def send(self, mail: Mail) -> None:
        try:
            # The outer bound also covers a server that accepts the connection and never greets.
            async with asyncio.timeout(self.timeout):
                await self._send(self.message(mail))
        except MailUnavailable:
            raise
        except (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError) as exc:
            code = getattr(exc, "code", None)
            logger.warning(
                "mail not handed over to %s:%s: %s%s",
                self.target.host,
                self.target.port,
                type(exc).__name__,
                f" (SMTP {code})" if code else "",
            )
            raise MailUnavailable() from exc

    async def _send(self, message: EmailMessage) -> None:
        target = self.target
        if self._local_hostname is None:
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        client = aiosmtplib.SMTP(
            local_hostname=self._local_hostname,
            hostname=target.host,
            port=target.port,
            use_tls=target.tls_on_connect,
            start_tls=False,  # decided below, from what the server offers
            tls_context=self.tls_context,
            timeout=self.timeout,
        )
        async with client:
            await client.ehlo()  # what the server offers (STARTTLS, AUTH)
            secure = target.tls_on_connect
            if not secure and client.supports_extension("starttls"):
                await client.starttls(tls_context=self.tls_context)
                await client.ehlo()  # what the server offers over TLS (AUTH, typically)
                secure = True
            if target.username is not None:
                if not secure:
                    logger.warning("refusing to send SMTP credentials without TLS")
                    raise MailUnavailable()
                await client.login(target.username, target.password or "")
            await client.send_message(message)


class LogMailer:
    """Development and test without SMTP_URL: the mail goes to the log, link and all."""

    async def send(self, mail: Mail) -> None:
        logger.info("mail to %s: %s\n%s", mail.to, mail.subject, mail.body)


class UnconfiguredMailer:
    """Production without SMTP_URL: nothing can be sent (a link is a secret, never logged)."""

    async def send(self, mail: Mail) -> None:
        logger.warning("mail not sent: SMTP_URL is not set")
        raise MailUnavailable()


def mailer_from_settings(settings: Settings) -> Mailer:
    if settings.smtp_url is None or not settings.smtp_url.get_secret_value():
        return UnconfiguredMailer() if settings.app_env == "production" else LogMailer()
    return SmtpMailer(
        SmtpTarget.from_url(settings.smtp_url.get_secret_value()),
        settings.mail_from,
        timeout=settings.smtp_timeout,
    )
