"""GET /reset-password: a self-contained page under a strict Content-Security-Policy."""

from __future__ import annotations

import base64
import hashlib
import re

from httpx import AsyncClient


async def test_the_page_is_self_contained_and_strict(client: AsyncClient) -> None:
    response = await client.get("/reset-password", params={"token": "abc.def.ghi"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    csp = dict(
        part.strip().split(" ", 1)
        for part in response.headers["content-security-policy"].split(";")
    )
    assert csp["default-src"] == "'none'"
    assert csp["connect-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    page = response.text
    # The inline script and style are exactly the ones the policy allows by hash.
    for tag, directive in (("script", "script-src"), ("style", "style-src")):
        inline = re.search(rf"<{tag}>(.*?)</{tag}>", page, re.S)
        assert inline is not None
        digest = base64.b64encode(hashlib.sha256(inline.group(1).encode()).digest()).decode()
        assert csp[directive] == f"'sha256-{digest}'"
    assert not re.search(r"(src|href)=", page)  # no assets, no links
    assert "abc.def.ghi" not in page  # the token stays in the address, never in the page
    for field in ("password", "repeat"):
        assert f'<label for="{field}">' in page
        assert f'id="{field}"' in page
    assert 'role="status"' in page
