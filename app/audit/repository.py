"""Writing and reading audit records."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditRecord
from app.pagination import Counted, PageRequest, SortKey, find_counted, match_terms


def add(session: AsyncSession, record: AuditRecord) -> None:
    session.add(record)


async def find_page(
    session: AsyncSession,
    about: ColumnElement[bool],
    terms: Sequence[str],
    page: PageRequest,
) -> Counted[AuditRecord]:
    """The records `about` an account or a user, oldest first (then by id); each filter term
    may occur in the event text or in the acting user's name (SPEC §6)."""
    return await find_counted(
        session,
        select(AuditRecord),
        id_column=AuditRecord.id,
        scope=[about],
        filters=match_terms(terms, AuditRecord.event, AuditRecord.active_user_name),
        order=[SortKey(AuditRecord.event_datetime)],
        page=page,
    )
