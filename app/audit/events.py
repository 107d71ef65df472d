"""The audit records of account and user changes, worded as SPEC §6 words them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from app.audit.models import AuditRecord
from app.auth.principal import Principal

USER_CREATED = "User Created"
USER_DEACTIVATED = "User Deactivated"
USER_ACTIVATED = "User Activated"
PASSWORD_RESET_REQUESTED = "Password Reset Requested"
PASSWORD_SET = "Password Set"


def account_created(who: Principal | None, account_id: int) -> AuditRecord:
    return _record(who, "Account Created", account_id=account_id)


#: An account update's event: this, then the changed fields' names joined by FIELD_SEPARATOR
#: (app.accounts.repository words it so in SQL too, from the fields that change there).
ACCOUNT_UPDATED = "Account Updated, Field: "
FIELD_SEPARATOR = ", "


def account_updated(who: Principal | None, account_id: int, fields: Sequence[str]) -> AuditRecord:
    return _record(who, ACCOUNT_UPDATED + FIELD_SEPARATOR.join(fields), account_id=account_id)


def user_event(who: Principal | None, user_id: int, event: str) -> AuditRecord:
    """A record about a user (one of the constants above, or what the helpers below word).
    It is on the user's audit log only: an account's log is about the account itself."""
    return _record(who, event, account_id=None, user_id=user_id)


def user_updated(fields: Sequence[str]) -> str:
    return f"User Updated, Field: {', '.join(fields)}"


def role_added(role: str) -> str:
    return f"Role added: {role}"


def role_removed(role: str) -> str:
    return f"Role removed: {role}"


def _record(
    who: Principal | None,
    event: str,
    *,
    account_id: int | None,
    user_id: int | None = None,
) -> AuditRecord:
    return AuditRecord(
        event=event,
        event_datetime=datetime.now(UTC),
        active_user_id=who.user_id if who else None,
        active_user_name=who.username if who else None,
        affected_user_id=user_id,
        affected_account_id=account_id,
    )
