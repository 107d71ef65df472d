"""Writing and reading audit records."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditRecord
from app.pagination import PageRequest, count_where, paginate


def add(session: AsyncSession, record: AuditRecord) -> None:
    session.add(record)


def _term_clauses(terms: Sequence[str]) -> list[ColumnElement[bool]]:
    # Each term may occur in the event text or in the acting user's name (SPEC §6).
    return [
        or_(
            AuditRecord.event.icontains(term, autoescape=True),
            AuditRecord.active_user_name.icontains(term, autoescape=True),
        )
        for term in terms
    ]


async def find_for_account(
    session: AsyncSession, account_id: int, terms: Sequence[str], page: PageRequest
) -> tuple[list[AuditRecord], int, int]:
    """An account's records, oldest first (then by id), with counts before and after filtering."""
    clauses = _term_clauses(terms)
    statement = (
        select(AuditRecord)
        .where(AuditRecord.affected_account_id == account_id, *clauses)
        .order_by(AuditRecord.event_datetime.asc(), AuditRecord.id.asc())
    )
    records = list((await session.execute(paginate(statement, page))).scalars())
    if page.page is None:
        return records, len(records), len(records)
    count_statement = select(
        func.count(), count_where(and_(*clauses)) if clauses else func.count()
    ).where(AuditRecord.affected_account_id == account_id)
    total, filtered = (await session.execute(count_statement)).one()
    return records, int(total), int(filtered)
