"""The set-password page in a real browser (Debian's Chromium, headless): an admin invites a user,
the real SMTP server receives the mail, its link opens the page, the form sets the password, the
user logs in over the API; the same link a second time says it no longer works. Nothing leaves
127.0.0.1, and no request carries the token in a Referer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Request, Route, async_playwright, expect

from tests.databases import Backend
from tests.live import LiveServer, free_port, live_server
from tests.openapi.test_swagger_ui import ARTIFACTS, CHROMIUM_ARGS
from tests.smtp import SmtpServer, smtp_server
from tests.world import PASSWORD

SUCCESS = "Your password is set. You can now log in."
FAILURE = "This link does not work (any more). Ask for a new one."
EMAIL = "browser-user@example.org"
NEW_PASSWORD = "set in a browser"


@pytest.fixture(scope="module")
async def mail() -> AsyncIterator[SmtpServer]:
    async with smtp_server() as server:
        yield server


@pytest.fixture(scope="module")
async def mailing_server(backend: Backend, mail: SmtpServer) -> AsyncIterator[LiveServer]:
    port = free_port()
    env = {
        "SMTP_URL": mail.url,
        "PASSWORD_RESET_URL": f"http://127.0.0.1:{port}/reset-password?token={{token}}",
    }
    async with live_server(backend, extra_env=env, port=port) as running:
        yield running


async def test_an_invited_user_sets_a_password_in_the_browser(
    mailing_server: LiveServer, mail: SmtpServer, chromium: str
) -> None:
    server = mailing_server
    admin = await server.token("test_admin_user@seita.nl", PASSWORD)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        invited = await http.post(
            "/api/v3_0/users",
            json={"email": EMAIL, "username": "Browser User", "account_id": 1},
            headers={"Authorization": admin},
        )
        assert invited.status_code == 201, invited.text
    link = (await mail.wait_for_message()).link
    token = link.split("token=", 1)[1]
    assert link.startswith(server.base_url)

    outside: list[str] = []
    leaked: list[str] = []

    async def local_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    async def no_token_in_referer(request: Request) -> None:
        referer = (await request.all_headers()).get("referer", "")
        if token in referer or (token in request.url and "/reset-password" not in request.url):
            leaked.append(request.url)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            page.set_default_timeout(15_000)
            await page.route("**/*", local_only)
            page.on("request", no_token_in_referer)
            await page.goto(link)
            await expect(page.get_by_role("heading", name="Set your password")).to_be_visible()
            assert token not in page.url  # out of the address bar at once
            await page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
            await page.get_by_label("New password, again").fill(NEW_PASSWORD)
            await page.get_by_role("button", name="Set password").click()
            await expect(page.get_by_role("status")).to_have_text(SUCCESS)
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "reset-password.png"), full_page=True)

            # The same link again: used, so it no longer works.
            await page.goto(link)
            await page.get_by_label("New password", exact=True).fill("yet another one")
            await page.get_by_label("New password, again").fill("yet another one")
            await page.get_by_role("button", name="Set password").click()
            await expect(page.get_by_role("status")).to_have_text(FAILURE)
        finally:
            await browser.close()
    assert outside == []
    assert leaked == []
    assert await server.token(EMAIL, NEW_PASSWORD)
