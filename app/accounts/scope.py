"""Turns a policy AccountScope into a WHERE clause on accounts (shared by accounts and users)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, true

from app.accounts.models import Account
from app.auth.policy import AccountScope


def account_scope_clause(scope: AccountScope) -> ColumnElement[bool]:
    if scope.everything:
        return true()
    clauses: list[ColumnElement[bool]] = [Account.id == scope.account_id]
    if scope.clients_of is not None:
        clauses.append(Account.consultancy_account_id == scope.clients_of)
    return or_(*clauses)
