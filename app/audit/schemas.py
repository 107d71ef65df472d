"""Response shape of the audit log."""

from __future__ import annotations

from datetime import datetime

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


class AuditRecordPage(Page[AuditRecordOut]):
    """One page of an account's audit log."""
