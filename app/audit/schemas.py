"""Response shape of the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

from app.pagination import Page


class AuditRecordOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    event: str = Field(examples=["Account Updated, Field: name, logo_url"])
    event_datetime: datetime = Field(
        description="When it happened, ISO 8601 with a UTC offset.",
        examples=["2026-01-31T12:00:00Z"],
    )
    active_user_id: int | None = Field(description="Who did it (none for the CLI).", examples=[5])
    active_user_name: str | None = Field(examples=["Test Admin User"])


#: The `filter` of both audit logs (SPEC §6).
AuditFilter = Annotated[
    str | None,
    Query(
        description=(
            "Search terms (shell-split); every term must occur in the event text or in "
            "the acting user's name, case-insensitively."
        )
    ),
]


class AuditRecordPage(Page[AuditRecordOut]):
    """One page of an account's audit log."""
