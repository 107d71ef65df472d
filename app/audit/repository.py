"""Writing and reading audit records."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from pydantic import TypeAdapter
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditRecord
from app.audit.schemas import AuditRecordOut
from app.pagination import Counted, PageRequest, SortKey, find_counted, match_terms
from app.rawrows import DriverQuery


class About(StrEnum):
    """Whose audit log: the records that affected an account, or a user."""

    ACCOUNT = "account"
    USER = "user"


_AFFECTED = {
    About.ACCOUNT: AuditRecord.affected_account_id,
    About.USER: AuditRecord.affected_user_id,
}


def add(session: AsyncSession, record: AuditRecord) -> None:
    session.add(record)


def _whole_log(about: About) -> DriverQuery:
    return DriverQuery(
        select(*(getattr(AuditRecord, name).label(name) for name in AuditRecordOut.model_fields))
        .where(_AFFECTED[about] == bindparam("about_id"))
        .order_by(AuditRecord.event_datetime, AuditRecord.id)
    )


# A log asked for whole and unfiltered (as FlexMeasures' clients ask) is one statement on the
# driver (app.rawrows): no ORM objects to load and validate again, one per record.
_WHOLE_LOG = {about: _whole_log(about) for about in About}
#: The records of a whole log, made from its rows in one call into pydantic's core: ~20 % fewer
#: instructions per served log of 40 records than `model_construct` per record, which is
#: Python (docs/BENCHMARKS.md).
_RECORDS = TypeAdapter(list[AuditRecordOut])


async def find_page(
    session: AsyncSession,
    about: About,
    about_id: int,
    terms: Sequence[str],
    page: PageRequest,
) -> Counted[AuditRecordOut]:
    """The records about an account or a user, oldest first (then by id); each filter term
    may occur in the event text or in the acting user's name (SPEC §6)."""
    if not terms and page.page is None:
        rows = await _WHOLE_LOG[about].rows(session, about_id=about_id)
        records = _RECORDS.validate_python([dict(row) for row in rows])
        return Counted(records, len(records), len(records))
    found = await find_counted(
        session,
        select(AuditRecord),
        id_column=AuditRecord.id,
        scope=[_AFFECTED[about] == about_id],
        filters=match_terms(terms, AuditRecord.event, AuditRecord.active_user_name),
        order=[SortKey(AuditRecord.event_datetime)],
        page=page,
    )
    return Counted(
        [AuditRecordOut.model_validate(record) for record in found.items],
        found.total,
        found.filtered,
    )
