"""The audit log: one record per change to an account (SPEC §6)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


class AuditRecord(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_datetime: Mapped[datetime] = mapped_column(UTCDateTime())
    event: Mapped[str] = mapped_column(String(255))
    # No foreign key to users: the log outlives them, as in FlexMeasures.
    active_user_id: Mapped[int | None]
    active_user_name: Mapped[str | None] = mapped_column(String(255))
    affected_user_id: Mapped[int | None]
    affected_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("account.id", ondelete="CASCADE")
    )


Index(
    "ix_audit_log_affected_account_id_event_datetime",
    AuditRecord.affected_account_id,
    AuditRecord.event_datetime,
    AuditRecord.id,
)
Index(
    "ix_audit_log_affected_user_id_event_datetime",
    AuditRecord.affected_user_id,
    AuditRecord.event_datetime,
    AuditRecord.id,
)
