"""Real SMTP peers for the tests, on 127.0.0.1 and free ports: a server that receives (aiosmtpd,
optionally with STARTTLS and log-in), one that refuses with 5xx, one that never answers, and a
port where nothing listens. Each stops exactly what it started."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import re
import ssl
import tempfile
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.live import free_port

USER, PASSWORD = "mailer", "mail-secret"
LINK = re.compile(r"https?://\S+")


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    over_tls: bool

    @property
    def body(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content())

    @property
    def link(self) -> str:
        found = LINK.search(self.body)
        assert found, self.body
        return found.group(0)


@dataclass
class SmtpServer:
    url: str
    client_tls: ssl.SSLContext | None
    messages: list[Received] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    #: With `hold`: a message's DATA waits until `release()` (at most 20 s).
    gate: threading.Event | None = None
    _holding: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_holding(self) -> None:
        """Until a message is being held at DATA (at most 10 seconds)."""
        async with asyncio.timeout(10):
            await self._holding.wait()

    def release(self) -> None:
        assert self.gate is not None
        self.gate.set()

    async def wait_for_message(self, count: int = 1) -> Received:
        """The `count`th message received, waiting at most 10 seconds for it."""
        async with asyncio.timeout(10):
            while len(self.messages) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.messages[count - 1]


class _Handler:
    def __init__(self, server: SmtpServer, loop: asyncio.AbstractEventLoop, reject: bool) -> None:
        self.server = server
        self.loop = loop
        self.reject = reject

    async def handle_EHLO(
        self, _server: Any, session: Any, _envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        self.server.commands.append("EHLO")
        return responses

    async def handle_AUTH(self, *_args: Any) -> None:
        self.server.commands.append("AUTH")

    async def handle_DATA(self, _server: Any, session: Any, envelope: Any) -> str:
        gate = self.server.gate
        if gate is not None:
            self.loop.call_soon_threadsafe(self.server._holding.set)
            await asyncio.to_thread(gate.wait, 20)
        if self.reject:
            return "554 5.7.1 Message rejected"
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.server.messages.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), message, session.ssl is not None)
        )
        self.loop.call_soon_threadsafe(self.server._arrived.set)
        return "250 OK"


def _auth_callback(server: SmtpServer) -> Any:
    # The old-style callback: aiosmtpd 1.4's `authenticator` path asserts an envelope that
    # its STARTTLS has just reset.
    def check(_mechanism: str, login: bytes, password: bytes) -> bool:
        server.commands.append("AUTH")  # credentials arrived
        return (login, password) == (USER.encode(), PASSWORD.encode())

    return check


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@asynccontextmanager
async def smtp_server(
    *,
    starttls: bool = False,
    tls_on_connect: bool = False,
    require_auth: bool = False,
    auth_without_tls: bool = False,
    reject: bool = False,
    hold: bool = False,
) -> AsyncIterator[SmtpServer]:
    """A receiving SMTP server; `reject`: it answers every message with 554; `hold`: it keeps
    each message waiting at DATA until `release()`."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="accounts-smtp-") as tmp:
        server_tls = client_tls = None
        if starttls or tls_on_connect:
            cert, key = _certificate(Path(tmp))
            server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server_tls.load_cert_chain(cert, key)
            client_tls = ssl.create_default_context(cafile=str(cert))
        credentials = f"{USER}:{PASSWORD}@" if require_auth else ""
        # Note: aiosmtpd 1.4.6 stops answering AUTH after its own STARTTLS, so log-in is only
        # offered (and tested) without TLS, where the client must refuse it.
        scheme = "smtps" if tls_on_connect else "smtp"
        server = SmtpServer(
            f"{scheme}://{credentials}127.0.0.1:{port}",
            client_tls,
            gate=threading.Event() if hold else None,
        )
        controller = Controller(
            _Handler(server, asyncio.get_running_loop(), reject),
            hostname="127.0.0.1",
            port=port,
            ssl_context=server_tls if tls_on_connect else None,
            tls_context=server_tls if starttls else None,
            require_starttls=False,
            auth_callback=_auth_callback(server) if require_auth else None,
            auth_required=require_auth,
            # aiosmtpd only knows of TLS it negotiated itself (STARTTLS), not of smtps's.
            auth_require_tls=not (auth_without_tls or tls_on_connect),
        )
        controller.start()
        try:
            yield server
        finally:
            if server.gate is not None:
                server.gate.set()
            controller.stop()


@asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """An smtp:// URL of a server that accepts connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"smtp://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


def closed_port_url() -> str:
    """An smtp:// URL where nothing listens."""
    return f"smtp://127.0.0.1:{free_port()}"
