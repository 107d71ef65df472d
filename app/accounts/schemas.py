"""Request and response shapes of the accounts API."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    field_validator,
)

from app.pagination import Page, SortDir
from app.validation import storable_text

AccountSortKey = Literal["id", "name", "users"]


class AccountRoleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[1])
    name: str = Field(examples=["Prosumer"])


class AccountOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 1,
                    "name": "Test Account",
                    "account_roles": [{"id": 1, "name": "Prosumer"}],
                    "consultancy_account_id": 2,
                    "primary_color": "#1a3443",
                    "secondary_color": "#f1a122",
                    "logo_url": "https://example.com/logo.png",
                    "attributes": {},
                }
            ]
        },
    )

    id: int
    name: str
    account_roles: list[AccountRoleOut]
    consultancy_account_id: int | None
    primary_color: str | None
    secondary_color: str | None
    logo_url: str | None
    attributes: dict[str, Any]


class AccountWithUserCount(AccountOut):
    user_count: int = Field(description="How many users the account has.", examples=[3])


class AccountRead(AccountWithUserCount):
    """An account as read for an answer or an access decision, with its version (its ETag)."""

    version: int = Field(exclude=True)


class AccountPage(Page[AccountWithUserCount]):
    """One page of accounts, each with its user count."""


@dataclass(frozen=True, slots=True)
class AccountListQuery:
    """The list's filters and order, parsed from the query string by the router."""

    filter: str | None = None
    role: str | None = None
    sort_by: AccountSortKey | None = None
    sort_dir: SortDir = "asc"


# FlexMeasures accepts `#` and 3 or 6 hex digits, either case (SPEC §5).
COLOR_PATTERN = r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"
Color = Annotated[
    str,
    StringConstraints(pattern=COLOR_PATTERN),
    Field(description="`#` and 3 or 6 hex digits.", examples=["#1a3443"]),
]
MAX_NAME_LENGTH = 100
MAX_URL_LENGTH = 255


def _check_name(value: str) -> str:
    if not value.strip():
        raise ValueError("A name cannot be empty.")
    return storable_text(value)


def _check_logo_url(value: str) -> str:
    storable_text(value)
    parts = urlsplit(value)
    if (
        parts.scheme.lower() not in {"http", "https"}
        or not parts.netloc
        or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value)
    ):
        raise ValueError("The logo URL must be an http(s) URL.")
    return value


MAX_ATTRIBUTES_DEPTH = 16
MAX_ATTRIBUTES_BYTES = 16384


def _attributes_object(value: Any) -> Any:
    # FlexMeasures clients send attributes as a JSON string; responses always carry the object.
    if isinstance(value, str):
        if len(value) > MAX_ATTRIBUTES_BYTES:
            raise ValueError(f"Attributes may take at most {MAX_ATTRIBUTES_BYTES} bytes.")
        try:
            value = json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise ValueError("Attributes must be a JSON object.") from exc
    if not isinstance(value, dict):
        raise ValueError("Attributes must be a JSON object (send {} to clear them).")
    _check_attributes_shape(value)
    return value


def _check_attributes_shape(value: dict[str, Any]) -> None:
    """Bounded depth and size, and no NUL characters (PostgreSQL's JSON cannot store them)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_ATTRIBUTES_DEPTH:
            raise ValueError(f"Attributes may nest at most {MAX_ATTRIBUTES_DEPTH} levels deep.")
        if isinstance(item, dict):
            for key, inner in item.items():
                storable_text(key)
                stack.append((inner, depth + 1))
        elif isinstance(item, list):
            stack.extend((inner, depth + 1) for inner in item)
        elif isinstance(item, str):
            storable_text(item)
    if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_ATTRIBUTES_BYTES:
        raise ValueError(f"Attributes may take at most {MAX_ATTRIBUTES_BYTES} bytes.")


AccountName = Annotated[
    str,
    StringConstraints(max_length=MAX_NAME_LENGTH),
    AfterValidator(_check_name),
    Field(description="Unique as written (case-sensitive).", examples=["ACME Solar"]),
]
LogoUrl = Annotated[
    str,
    StringConstraints(max_length=MAX_URL_LENGTH),
    AfterValidator(_check_logo_url),
    Field(description="An http(s) URL.", examples=["https://example.com/logo.png"]),
]
Attributes = Annotated[
    dict[str, Any],
    BeforeValidator(_attributes_object),
    Field(
        description="A JSON object (a string holding one is accepted too).",
        examples=[{"note": "anything"}],
    ),
]


class AccountCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "ACME Solar", "consultancy_account_id": 2}]},
    )

    name: AccountName
    consultancy_account_id: StrictInt | None = Field(
        default=None,
        description=(
            "The consultancy account acting for this one. A consultant's new account defaults "
            "to the consultant's own account."
        ),
    )


class AccountPatch(BaseModel):
    """Any subset of the fields; an empty body changes nothing."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "ACME Solar", "primary_color": "#1a3443"}]},
    )

    name: AccountName | None = None
    primary_color: Color | None = None
    secondary_color: Color | None = None
    logo_url: LogoUrl | None = None
    consultancy_account_id: StrictInt | None = None
    attributes: Attributes | None = None
    account_roles: list[StrictInt] | None = Field(
        default=None, description="Ids of the account's roles (admins only)."
    )

    @field_validator("name", "attributes", "account_roles", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Defaults are not validated, so this only sees a null the client sent.
        if value is None:
            raise ValueError("This field cannot be null.")
        return value
