"""An app whose mail goes to a real SMTP server of the tests' own, and a client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.main import create_app
from app.settings import Settings
from tests.conftest import with_sessions
from tests.smtp import SmtpServer, smtp_server

RESET_URL = "http://reset.test/reset-password?token={token}"


@pytest.fixture(scope="module")
async def smtp() -> AsyncIterator[SmtpServer]:
    async with smtp_server() as server:
        yield server


@pytest.fixture(scope="module")
def mail_app(settings: Settings, smtp: SmtpServer) -> FastAPI:
    return create_app(
        settings.model_copy(
            update={"smtp_url": SecretStr(smtp.url), "password_reset_url": RESET_URL}
        )
    )


@pytest.fixture
async def mail_client(
    mail_app: FastAPI, sessions: async_sessionmaker[AsyncSession], smtp: SmtpServer
) -> AsyncIterator[AsyncClient]:
    smtp.messages.clear()
    with_sessions(mail_app, sessions)
    async with AsyncClient(transport=ASGITransport(app=mail_app), base_url="http://test") as http:
        yield http
