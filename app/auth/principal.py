"""Who is calling: the frozen Principal that every access rule is a function of."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    account_id: int
    roles: frozenset[str]
    account_roles: frozenset[str]

    def has_role(self, role: str) -> bool:
        return role in self.roles


@dataclass(frozen=True, slots=True)
class StoredPrincipal(Principal):
    """A principal as read from the database, with what decides whether its token still holds."""

    active: bool
    token_version: int
    last_seen_at: datetime | None
