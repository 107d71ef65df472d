"""A live server per test module, so that what one module writes never meets another."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.databases import Backend
from tests.live import LiveServer, live_server


@pytest.fixture(scope="module")
async def server(backend: Backend) -> AsyncIterator[LiveServer]:
    async with live_server(backend) as running:
        yield running
