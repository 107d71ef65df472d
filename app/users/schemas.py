"""Response shapes of the users API (the part FlexMeasures clients need)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.pagination import Page
from app.users.models import User


class UserOut(BaseModel):
    id: int = Field(examples=[5])
    email: str = Field(examples=["test_prosumer_user@seita.nl"])
    username: str = Field(examples=["Test Prosumer User"])
    account_id: int = Field(examples=[1])
    active: bool = Field(examples=[True])
    flexmeasures_roles: list[int] = Field(description="Ids of the user's roles.", examples=[[1]])

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            username=user.username,
            account_id=user.account_id,
            active=user.active,
            flexmeasures_roles=[role.id for role in user.roles],
        )


class UserPage(Page[UserOut]):
    """One page of users."""
