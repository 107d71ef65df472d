"""Request and response shapes of the users API and of password resets."""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
)

from app.accounts.schemas import AccountOut
from app.auth.passwords import MAX_LENGTH, MIN_LENGTH
from app.pagination import Page, SortDir
from app.users.models import DEFAULT_TIMEZONE, User
from app.validation import storable_text

UserSortKey = Literal["id", "username", "email", "lastLogin", "lastSeen"]

# One @, something on each side, no spaces, a dot in the domain: what a mail can be sent to.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _check_email(value: str) -> str:
    value = storable_text(value).strip().lower()
    if not _EMAIL.match(value):
        raise ValueError("Not an email address.")
    return value


def _check_username(value: str) -> str:
    if not value.strip():
        raise ValueError("A username cannot be empty.")
    return storable_text(value.strip())


@lru_cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _check_timezone(value: str) -> str:
    if value not in _timezones():
        raise ValueError("Not an IANA timezone name (e.g. Europe/Amsterdam).")
    return value


Email = Annotated[
    str,
    StringConstraints(max_length=255),
    AfterValidator(_check_email),
    Field(description="Stored lower-cased; unique whatever its case.", examples=["ann@acme.org"]),
]
Username = Annotated[
    str, StringConstraints(max_length=255), AfterValidator(_check_username), Field(examples=["Ann"])
]
Timezone = Annotated[
    str,
    StringConstraints(max_length=64),
    AfterValidator(_check_timezone),
    Field(description="An IANA timezone name.", examples=[DEFAULT_TIMEZONE]),
]
RoleIds = Annotated[
    list[StrictInt], Field(description="Ids of the user's roles (the whole list).", examples=[[3]])
]
Password = Annotated[
    str,
    StringConstraints(min_length=MIN_LENGTH, max_length=MAX_LENGTH),
    AfterValidator(storable_text),
    Field(description=f"{MIN_LENGTH} to {MAX_LENGTH} characters, not the email address."),
]

USER_EXAMPLE: dict[str, Any] = {
    "id": 5,
    "email": "ann@acme.org",
    "username": "Ann",
    "account_id": 1,
    "active": True,
    "timezone": "Europe/Amsterdam",
    "flexmeasures_roles": [3],
    "last_login_at": "2026-11-30T10:47:13Z",
    "last_seen_at": "2026-11-30T11:02:00Z",
}


class UserOut(BaseModel):
    """A user (never a password or its hash)."""

    model_config = ConfigDict(json_schema_extra={"examples": [USER_EXAMPLE]})

    id: int
    email: str
    username: str
    account_id: int
    active: bool
    timezone: str
    flexmeasures_roles: list[int] = Field(description="Ids of the user's roles.")
    last_login_at: datetime | None = Field(description="The last successful log-in (UTC).")
    last_seen_at: datetime | None = Field(
        description="The last authenticated request (UTC), recorded at most once a minute."
    )

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(**_user_fields(user))


class UserListItem(UserOut):
    """A user in the list, with their account (as FlexMeasures' list has it)."""

    account: AccountOut

    @classmethod
    def of(cls, user: User) -> UserListItem:
        return cls(**_user_fields(user), account=AccountOut.model_validate(user.account))


def _user_fields(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "username": user.username,
        "account_id": user.account_id,
        "active": user.active,
        "timezone": user.timezone,
        "flexmeasures_roles": [role.id for role in user.roles],
        "last_login_at": user.last_login_at,
        "last_seen_at": user.last_seen_at,
    }


class UserPage(Page[UserListItem]):
    """One page of users."""


@dataclass(frozen=True, slots=True)
class UserListQuery:
    """The list's filters and order, parsed from the query string by the router."""

    account_id: int | None = None
    include_inactive: bool = False
    filter: str | None = None
    sort_by: UserSortKey | None = None
    sort_dir: SortDir = "asc"


class UserCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "email": "ann@acme.org",
                    "username": "Ann",
                    "account_id": 1,
                    "timezone": "Europe/Amsterdam",
                    "flexmeasures_roles": [3],
                }
            ]
        },
    )

    email: Email
    username: Username
    account_id: StrictInt = Field(examples=[1])
    timezone: Timezone = DEFAULT_TIMEZONE
    flexmeasures_roles: RoleIds = Field(default_factory=list)


class UserPatch(BaseModel):
    """Any subset of the fields; an empty body changes nothing."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"username": "Ann B.", "timezone": "Europe/Berlin"}]},
    )

    email: Email | None = None
    username: Username | None = None
    active: StrictBool | None = None
    timezone: Timezone | None = None
    flexmeasures_roles: RoleIds | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Defaults are not validated, so this only sees a null the client sent.
        if value is None:
            raise ValueError("This field cannot be null.")
        return value


class PasswordResetRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "ann@acme.org"}]})

    email: Annotated[str, StringConstraints(max_length=255), AfterValidator(storable_text)]


class PasswordReset(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"token": "eyJhbGciOi...", "password": "a new s3cret"}]}
    )

    token: Annotated[str, StringConstraints(max_length=2048)] = Field(
        description="The token of a set-password link."
    )
    password: Password


class Processed(BaseModel):
    message: str = Field(
        examples=["If that address has an account, a link to set a password is on its way."]
    )
    status: Literal["PROCESSED"] = "PROCESSED"
