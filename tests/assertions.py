"""Assertions that many test modules share."""

from __future__ import annotations

from typing import Any

from httpx import Response


def assert_error(response: Response, http_status: int, status: str) -> Any:
    """The common error envelope (SPEC §7), never a stack trace; returns its message."""
    assert response.status_code == http_status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"message", "status"}, body
    assert body["status"] == status
    assert "Traceback" not in response.text
    return body["message"]
