"""Errors of the accounts domain."""

from __future__ import annotations

from app.errors import NotFound


class AccountNotFound(NotFound):
    def __init__(self, account_id: int) -> None:
        super().__init__(f"Account {account_id} not found")
