"""The audit records of account changes, worded as FlexMeasures words them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from app.audit.models import AuditRecord
from app.auth.principal import Principal


def account_created(who: Principal | None, account_id: int) -> AuditRecord:
    return _record(who, account_id, "Account Created")


def account_updated(who: Principal | None, account_id: int, fields: Sequence[str]) -> AuditRecord:
    return _record(who, account_id, f"Account Updated, Field: {', '.join(fields)}")


def _record(who: Principal | None, account_id: int, event: str) -> AuditRecord:
    return AuditRecord(
        event=event,
        event_datetime=datetime.now(UTC),
        active_user_id=who.user_id if who else None,
        active_user_name=who.username if who else None,
        affected_account_id=account_id,
    )
