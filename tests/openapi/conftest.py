"""A live server per test module, so that what one module writes never meets another."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.databases import Backend
from tests.live import LiveServer, live_server


@pytest.fixture(scope="module")
async def server(backend: Backend) -> AsyncIterator[LiveServer]:
    async with live_server(backend) as running:
        yield running


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium (Playwright's own browser download does not work here)."""
    from tests.openapi.test_swagger_ui import CHROMIUM

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `apt-get install chromium` (.ci/run installs it)")
    return CHROMIUM
