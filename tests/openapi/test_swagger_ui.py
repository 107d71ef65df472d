"""Swagger UI works offline in a real browser: Authorize with a token, then "Try it out" on
list_accounts. Chromium is Debian's (Playwright's own browser download does not work here)."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

from playwright.async_api import Route, async_playwright, expect

from tests.live import LiveServer
from tests.world import PASSWORD

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


async def test_swagger_ui_authorizes_and_lists_accounts_offline(
    server: LiveServer, chromium: str
) -> None:
    token = await server.token("test_admin_user@seita.nl", PASSWORD)
    outside: list[str] = []

    async def local_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname in {"127.0.0.1", "localhost"}:
            await route.continue_()
        else:  # a CDN asset would leave the page blank on an offline machine
            outside.append(route.request.url)
            await route.abort()

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 2000})
            page.set_default_timeout(15_000)
            await page.route("**/*", local_only)
            await page.goto(f"{server.base_url}/api/v3_0/docs")

            await page.get_by_role("button", name="Authorize").first.click()
            await page.locator(".modal-ux input[type=text]").fill(token)
            await page.locator(".modal-ux .auth-btn-wrapper button.authorize").click()
            await page.locator(".modal-ux .auth-btn-wrapper button.btn-done").click()

            operation = page.locator("#operations-Accounts-list_accounts")
            await operation.locator(".opblock-summary").first.click()
            await operation.get_by_role("button", name="Try it out").click()
            await operation.get_by_role("button", name="Execute").click()

            live = operation.locator(".live-responses-table tbody .response")
            await expect(live.locator(".response-col_status")).to_have_text("200")
            await expect(live.locator(".response-col_description")).to_contain_text(
                "Test Prosumer Account"
            )
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(
                path=str(ARTIFACTS / "swagger-ui-list-accounts.png"), full_page=True
            )
        finally:
            await browser.close()
    assert outside == []
