"""Who is calling: the frozen Principal that every access rule is a function of."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    account_id: int
    roles: frozenset[str]
    account_roles: frozenset[str]

    def has_role(self, role: str) -> bool:
        return role in self.roles
